"""Stochastic weight averaging (SWA) over the last epochs of an Ignite trainer, with ``torch.optim.swa_utils``."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from monai.utils import min_version, optional_import
from torch.optim.swa_utils import AveragedModel, update_bn

Events, _ = optional_import("ignite.engine", "0.4.11", min_version, "Events")
idist, _ = optional_import("ignite", "0.4.11", min_version, "distributed")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", "0.4.11", min_version, "Engine")

__all__ = ["StochasticWeightAveraging"]

logger = logging.getLogger(__name__)


def _has_batch_norm(model: torch.nn.Module) -> bool:
    return any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())


class StochasticWeightAveraging:
    """Average the network's weights at the end of the last ``num_epochs`` epochs (SWA), recompute
    the BatchNorm statistics of the average, and save it.

    Izmailov et al., "Averaging Weights Leads to Wider Optima and Better Generalization" (UAI 2018):
    the running mean of the weights :math:`w_1, \\dots, w_n` visited at the ends of epochs,

    .. math:: w_{\\text{SWA}} \\leftarrow \\frac{n\\, w_{\\text{SWA}} + w_{n+1}}{n + 1},

    lies in a flatter region of the loss than any of them and generalises better. The report on
    SIIM-ACR pneumothorax (Balezo 2019, sec. 4.1.7) averaged the last 3 epochs, under cosine
    annealing. The average of BatchNorm running statistics is not the statistics of the averaged
    weights, so at the end of training they are recomputed with one forward pass over ``loader``
    (``torch.optim.swa_utils.update_bn``; BatchNorm momentum ``None``, i.e. a cumulative average,
    without gradients). Networks without BatchNorm (instance norm, group norm) need no pass; with
    ``update_bn=False`` the buffers are averaged with the weights instead.

    It keeps a ``torch.optim.swa_utils.AveragedModel`` of the network (of its ``module`` under
    DistributedDataParallel) in ``averaged_model``; the learning rate is left to the trainer's
    scheduler. At the end, the averaged weights are saved to ``save_path`` (rank 0; a plain state
    dict that MONAI's ``CheckpointLoader`` loads into the network) and, with
    ``copy_to_network=True``, copied into the network.

    Args:
        network: the trained network (or ``DistributedDataParallel``).
        num_epochs: average the ends of the last ``num_epochs`` epochs of ``engine.state.max_epochs``
            (all epochs if there are fewer).
        update_bn: recompute BatchNorm statistics at the end (when the network has BatchNorm).
        loader: batches for the BatchNorm pass; None uses the trainer's data loader at the end of
            training (its last resolution, for progressive resizing).
        prepare_batch: maps a batch to the network's input tensor; None uses ``batch["image"]`` for
            dict batches (MONAI) and the first element of lists and tuples.
        save_path: the checkpoint of the averaged network (None: not saved).
        copy_to_network: load the averaged weights into ``network`` at the end.

    Raises:
        ValueError: for ``num_epochs < 1``.

    Example:
        >>> swa = StochasticWeightAveraging(network, num_epochs=3, save_path="models/model_swa.pt")
        >>> swa.attach(trainer)
    """

    def __init__(
        self,
        network: torch.nn.Module,
        num_epochs: int = 3,
        update_bn: bool = True,
        loader: Iterable[Any] | None = None,
        prepare_batch: Callable[[Any], torch.Tensor] | None = None,
        save_path: str | os.PathLike | None = None,
        copy_to_network: bool = False,
    ) -> None:
        if int(num_epochs) < 1:
            raise ValueError(f"num_epochs must be at least 1, got {num_epochs}.")
        self.network = network
        self.module = getattr(network, "module", network)
        self.num_epochs = int(num_epochs)
        self.update_bn = bool(update_bn)
        self.loader = loader
        self.prepare_batch = prepare_batch
        self.save_path = None if save_path is None else Path(save_path)
        self.copy_to_network = copy_to_network
        self.averaged_model = AveragedModel(self.module, use_buffers=not self.update_bn)
        #: the epochs whose weights were averaged
        self.averaged_epochs: list[int] = []

    def state_dict(self) -> dict[str, Any]:
        """The running average (``AveragedModel``'s state, with its count) and the epochs averaged, for
        resuming a run (:class:`~monai_gamble.handlers.TrainingCheckpoint`)."""
        return {"averaged_model": self.averaged_model.state_dict(), "averaged_epochs": list(self.averaged_epochs)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.averaged_model.load_state_dict(state["averaged_model"])
        self.averaged_epochs = [int(e) for e in state["averaged_epochs"]]

    def attach(self, engine: Engine) -> None:
        """Average at the end of the last epochs, finalise when training completes."""
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.epoch_completed)
        engine.add_event_handler(Events.COMPLETED, self.completed)

    def start_epoch(self, engine: Engine) -> int:
        """The first epoch whose weights are averaged."""
        return max(1, int(engine.state.max_epochs) - self.num_epochs + 1)

    def epoch_completed(self, engine: Engine) -> None:
        """Add the network's current weights to the average (in the last ``num_epochs`` epochs)."""
        if engine.state.epoch >= self.start_epoch(engine):
            self.averaged_model.update_parameters(self.module)
            self.averaged_epochs.append(int(engine.state.epoch))

    def _input(self, batch: Any) -> torch.Tensor:
        if self.prepare_batch is not None:
            return self.prepare_batch(batch)
        if isinstance(batch, dict):
            return batch["image"]
        if isinstance(batch, (list, tuple)):
            return batch[0]
        return batch

    def completed(self, engine: Engine) -> None:
        """Recompute BatchNorm statistics, save the averaged network, optionally copy it back."""
        if not self.averaged_epochs:
            return
        if self.update_bn and _has_batch_norm(self.averaged_model):
            loader = self.loader if self.loader is not None else engine.state.dataloader
            device = next(self.averaged_model.parameters()).device
            with torch.no_grad():
                update_bn((self._input(b) for b in loader), self.averaged_model, device=device)
        if self.save_path is not None and idist.get_rank() == 0:
            self.save_path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(self.averaged_model.module.state_dict(), self.save_path)
            logger.info("SWA of epochs %s saved to %s", self.averaged_epochs, self.save_path)
        if self.copy_to_network:
            self.module.load_state_dict(self.averaged_model.module.state_dict())
