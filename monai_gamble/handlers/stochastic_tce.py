"""The weight update of stochastic TCE (lines 6-8 of Algorithm 1) as an Ignite handler."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from monai.utils import min_version, optional_import

from ..data.samplers import ClassConditionalBatchSampler
from ..losses.tilted import _check_tilt

Events, _ = optional_import("ignite.engine", "0.4.11", min_version, "Events")
mlflow_entities, _ = optional_import("mlflow.entities")
if TYPE_CHECKING:
    from ignite.engine import Engine
    from monai.handlers import MLFlowHandler
else:
    Engine, _ = optional_import("ignite.engine", "0.4.11", min_version, "Engine")
    MLFlowHandler = Any

__all__ = ["StochasticTCEHandler"]


def _loss_of_output(output: Any) -> Any:
    """``output["loss"]`` of a MONAI trainer's output, a dict or (decollated) a list of dicts."""
    if isinstance(output, Mapping):
        return output["loss"]
    if isinstance(output, Sequence) and output and isinstance(output[0], Mapping):
        return output[0]["loss"]
    raise ValueError(
        f"cannot find the batch loss in an engine output of type {type(output).__name__}: "
        "pass output_transform=... that returns it."
    )


class StochasticTCEHandler:
    """Stochastic TCE (Algorithm 1 of Szabó, Jamali-Rad & Mannava, "Tilted Cross-Entropy (TCE):
    Promoting Fairness in Semantic Segmentation", CVPR-W 2021): after every iteration, tilt the batch
    loss, update the tilted loss of the class the batch was drawn for, and renormalise the class
    weights of a :class:`monai_gamble.data.ClassConditionalBatchSampler`:

    .. math::
        \\tilde{\\mathcal{L}}_c \\leftarrow (1 - \\gamma)\\,\\tilde{\\mathcal{L}}_c + \\gamma\\, e^{t\\mathcal{L}_B},
        \\qquad w_c = \\tilde{\\mathcal{L}}_c \\Big/ \\sum_l \\tilde{\\mathcal{L}}_l

    (lines 6-8), with :math:`\\mathcal{L}_B` the batch loss (eq. 1, the plain cross-entropy the
    trainer optimises; :func:`monai_gamble.losses.tilted_loss` ``("stochastic_tce")`` gives it) and
    c the class drawn for that batch. The state is kept in log space,
    :math:`\\lambda_c = \\log\\tilde{\\mathcal{L}}_c`, updated as
    :math:`\\lambda_c \\leftarrow \\mathrm{logaddexp}(\\log(1-\\gamma) + \\lambda_c, \\log\\gamma + t\\mathcal{L}_B)`
    and normalised with a softmax, so :math:`e^{t\\mathcal{L}_B}` never overflows (``t * L`` of 1e4 is fine).

    **Initial value.** Algorithm 1 starts from :math:`\\tilde{\\mathcal{L}}_c = 0`; taken literally, the
    first update gives all the weight to the first class drawn, which is then drawn for ever. Here
    every class starts as if a loss ``initial_loss`` had been seen,
    :math:`\\tilde{\\mathcal{L}}_c = e^{t \\cdot \\mathrm{initial\\_loss}}` (uniform weights), and the
    weights follow the losses at the rate ``gamma``. The default is :math:`\\ln C`, the cross-entropy
    of the uniform prediction over the C classes, which is what an untrained network's batch loss
    is about: the first draws then leave the weights nearly uniform, where a start from 0 would
    favour every class drawn early only because its loss is compared with a loss of 0 (with
    :math:`t = 1`, :math:`\\gamma = 0.1`, C = 4 and a first batch loss of :math:`\\ln 4`, the drawn class
    would get weight 0.302 against 0.233 for each of the others; from :math:`\\ln 4` all four stay at
    0.25). Classes that no image contains keep weight 0.

    **Where the batch loss and the class come from.** ``output_transform(engine.state.output)``
    gives :math:`\\mathcal{L}_B` (default: ``engine.state.output["loss"]``, also when the output is
    decollated), as MONAI's ``SupervisedTrainer`` and :class:`monai_gamble.engines.SegmenterCriticTrainer`
    leave it; :meth:`ClassConditionalBatchSampler.consume_class` gives c. Under DDP the batch loss is
    averaged over the ranks (``torch.distributed.all_reduce``), so all ranks keep the same weights and,
    with the same sampler seed, draw the same classes.

    **Logging.** At the end of every epoch the values below (names ``"<tag>_<what>_<class name>"``)
    are logged to the MLflow run of ``mlflow_handler`` (step: the epoch) or, without one, written
    into ``engine.state.metrics``, where an ``MLFlowHandler`` (or ``StatsHandler``) attached *after*
    this handler logs them with the epoch's metrics (give ``mlflow_handler`` or rely on that, not both):

    - ``weight``: :math:`w_c`;
    - ``tilted_loss``: :math:`\\frac{1}{t}\\log\\tilde{\\mathcal{L}}_c`, the running tilted loss in loss
      units (the running loss itself when ``t == 0``);
    - ``loss``: the running mean of the batch losses of class c,
      :math:`m_c \\leftarrow (1-\\gamma) m_c + \\gamma\\mathcal{L}_B` (from ``initial_loss``);
    - ``draws``: how many batches of class c were drawn in the epoch.

    Args:
        sampler: the batch sampler of the training ``DataLoader``.
        t: the tilt (finite; 0 gives uniform class sampling).
        gamma: the rate of the update, in (0, 1].
        initial_loss: the loss every class starts from (see above); None: :math:`\\ln C`.
        output_transform: maps ``engine.state.output`` to the batch loss.
        mlflow_handler: a MONAI ``MLFlowHandler`` whose run receives the values (None: ``engine.state.metrics``).
        class_names: names of the C classes in the logged keys (default ``"0"``, ``"1"``, ...).
        tag: prefix of the logged keys.

    Raises:
        ValueError: for a NaN/infinite ``t``, ``gamma`` outside (0, 1], or ``class_names`` of the
            wrong length; in training, for a NaN or infinite batch loss.

    Example:
        >>> sampler = ClassConditionalBatchSampler(presence, batch_size=8)
        >>> loader = DataLoader(dataset, batch_sampler=sampler)
        >>> trainer = SupervisedTrainer(device, 10, loader, net, opt, tilted_loss("stochastic_tce"))
        >>> StochasticTCEHandler(sampler, t=1.0, gamma=0.1).attach(trainer)
        >>> trainer.run()
    """

    def __init__(
        self,
        sampler: ClassConditionalBatchSampler,
        t: float = 1.0,
        gamma: float = 0.1,
        initial_loss: float | None = None,
        output_transform: Callable[[Any], Any] = _loss_of_output,
        mlflow_handler: MLFlowHandler | None = None,
        class_names: Sequence[str] | None = None,
        tag: str = "stce",
    ) -> None:
        self.sampler = sampler
        self.t = _check_tilt(t)
        try:
            self.gamma = float(gamma)
        except (TypeError, ValueError):
            raise ValueError(f"gamma must be a number in (0, 1], got {gamma!r}.") from None
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"gamma must lie in (0, 1], got {gamma!r}.")
        initial_loss = math.log(sampler.num_classes) if initial_loss is None else float(initial_loss)
        if not math.isfinite(initial_loss):
            raise ValueError(f"initial_loss must be finite, got {initial_loss}.")
        self.initial_loss = initial_loss
        c = sampler.num_classes
        if class_names is not None and len(class_names) != c:
            raise ValueError(f"class_names must name the {c} classes, got {len(class_names)}.")
        self.class_names = [str(n) for n in class_names] if class_names is not None else [str(i) for i in range(c)]
        self.output_transform = output_transform
        self.mlflow_handler = mlflow_handler
        self.tag = tag
        self.available = torch.as_tensor(sampler.available)
        #: log of the tilted class losses, log L~_c (float64)
        self.log_tilted_loss = torch.full((c,), self.t * initial_loss, dtype=torch.float64)
        #: running mean of the batch losses of each class (float64)
        self.running_loss = torch.full((c,), initial_loss, dtype=torch.float64)
        self.draws = torch.zeros(c, dtype=torch.int64)
        self.sampler.set_weights(self.weights)

    @property
    def weights(self) -> torch.Tensor:
        """:math:`w_c = \\tilde{\\mathcal{L}}_c / \\sum_l \\tilde{\\mathcal{L}}_l` over the available classes, ``(C,)`` float64."""
        logits = self.log_tilted_loss.masked_fill(~self.available, -math.inf)
        return torch.softmax(logits, 0)

    def update(self, c: int, batch_loss: float) -> torch.Tensor:
        """Lines 6-8 of Algorithm 1 for the batch loss ``batch_loss`` of a batch of class ``c``; sets and
        returns the new weights.

        Raises:
            ValueError: for a NaN or infinite ``batch_loss``.
        """
        loss = float(batch_loss)
        if not math.isfinite(loss):
            raise ValueError(f"stochastic TCE got a non-finite batch loss ({loss}) for class {c}; training diverged.")
        g = self.gamma
        keep = math.log1p(-g) if g < 1.0 else -math.inf
        new = torch.tensor(math.log(g) + self.t * loss, dtype=torch.float64)
        self.log_tilted_loss[c] = torch.logaddexp(keep + self.log_tilted_loss[c], new)
        self.running_loss[c] = (1.0 - g) * self.running_loss[c] + g * loss
        self.draws[c] += 1
        w = self.weights
        self.sampler.set_weights(w.numpy())
        return w

    def attach(self, engine: Engine) -> None:
        """Update after every iteration, reset the draw counts at every epoch start, log at every epoch end."""
        engine.add_event_handler(Events.EPOCH_STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.iteration_completed)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.epoch_completed)

    def _reset(self, engine: Engine) -> None:
        self.draws.zero_()

    def _batch_loss(self, engine: Engine) -> float:
        loss = self.output_transform(engine.state.output)
        if isinstance(loss, (tuple, list)) and len(loss) == 1:  # e.g. monai.handlers.from_engine(["loss"])
            loss = loss[0]
        loss = loss.detach() if isinstance(loss, torch.Tensor) else torch.as_tensor(float(loss))
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            device = loss.device
            if dist.get_backend() == "nccl" and device.type != "cuda":
                device = torch.device("cuda", torch.cuda.current_device())
            total = loss.reshape(()).to(device=device, dtype=torch.float64).clone()
            dist.all_reduce(total)
            return float(total) / dist.get_world_size()
        return float(loss)

    def iteration_completed(self, engine: Engine) -> None:
        """Read the batch loss and the class of the batch, and :meth:`update`."""
        self.update(self.sampler.consume_class(), self._batch_loss(engine))

    def values(self) -> dict[str, float]:
        """The values logged at the end of an epoch (see the class docstring)."""
        out: dict[str, float] = {}
        tilted = self.log_tilted_loss / self.t if self.t != 0.0 else self.running_loss
        for name, w, tl, rl, n in zip(self.class_names, self.weights, tilted, self.running_loss, self.draws):
            out[f"{self.tag}_weight_{name}"] = float(w)
            out[f"{self.tag}_tilted_loss_{name}"] = float(tl)
            out[f"{self.tag}_loss_{name}"] = float(rl)
            out[f"{self.tag}_draws_{name}"] = float(n)
        return out

    def epoch_completed(self, engine: Engine) -> None:
        """Log :meth:`values` to MLflow (step: the epoch) or into ``engine.state.metrics``."""
        values = self.values()
        if self.mlflow_handler is None:
            engine.state.metrics.update(values)
            return
        run = getattr(self.mlflow_handler, "cur_run", None)
        if run is None:  # not started (or another rank's disabled handler)
            return
        stamp = int(time.time() * 1000)
        metrics = [mlflow_entities.Metric(k, v, stamp, engine.state.epoch) for k, v in values.items()]
        self.mlflow_handler.client.log_batch(run_id=run.info.run_id, metrics=metrics, params=[], tags=[])

    def state_dict(self) -> dict[str, Any]:
        """The log tilted losses and running losses, to resume a run (the sampler has its own)."""
        return {"log_tilted_loss": self.log_tilted_loss.clone(), "running_loss": self.running_loss.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved and push the weights to the sampler."""
        self.log_tilted_loss = torch.as_tensor(state["log_tilted_loss"], dtype=torch.float64).clone()
        self.running_loss = torch.as_tensor(state["running_loss"], dtype=torch.float64).clone()
        self.sampler.set_weights(self.weights.numpy())
