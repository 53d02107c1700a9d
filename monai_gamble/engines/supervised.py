"""MONAI's ``SupervisedTrainer`` with AMP on the engine's own device type (CPU bfloat16 included)."""

from __future__ import annotations

import torch
from monai.engines import SupervisedTrainer
from monai.engines.utils import IterationEvents
from monai.engines.workflow import Workflow
from monai.utils.enums import CommonKeys as Keys

__all__ = ["AmpSupervisedTrainer", "amp_device_type"]


def amp_device_type(device: str | torch.device) -> str:
    """The ``torch.autocast`` / ``torch.amp.GradScaler`` device type of an engine's device
    (``"cuda"`` for ``"cuda:1"``, ``"cpu"`` for ``"cpu"``)."""
    return torch.device(device).type


class AmpSupervisedTrainer(SupervisedTrainer):
    """MONAI's ``SupervisedTrainer``, whose ``amp=True`` autocasts on the engine's device type.

    MONAI 1.6.1's ``SupervisedTrainer`` autocasts with ``torch.autocast("cuda", **amp_kwargs)`` and
    its ``Trainer.run`` creates ``torch.cuda.amp.GradScaler()``, whatever the device: on a CPU,
    ``amp=True`` (e.g. ``amp_kwargs={"dtype": torch.bfloat16}``) then trains in float32 without a
    word (a CUDA autocast leaves CPU tensors alone and the CUDA scaler disables itself). This trainer
    autocasts with ``torch.autocast(device_type, **amp_kwargs)`` and scales with
    ``torch.amp.GradScaler(device_type)``, ``device_type`` the engine's (:func:`amp_device_type`),
    as :class:`~monai_gamble.engines.SegmenterCriticTrainer` does.

    On CUDA, with ``amp=False``, or with ``compile=True`` (whose MetaTensor handling is MONAI's),
    an iteration is MONAI's own ``SupervisedTrainer._iteration``; only the non-CUDA AMP iteration is
    this class's, step for step the same as MONAI's AMP branch (the same events, gradient
    accumulation, ``optim_set_to_none``) with the autocast on the engine's device.
    :func:`~monai_gamble.engines.segmentation_trainer` builds one for a method without a critic
    when ``amp`` is on and the device is not CUDA. The arguments are ``SupervisedTrainer``'s.

    Example:
        >>> trainer = AmpSupervisedTrainer("cpu", 1, loader, net, opt, loss, amp=True,
        ...                                amp_kwargs={"dtype": torch.bfloat16})
        >>> trainer.run()  # the forward passes in bfloat16
    """

    def run(self) -> None:  # type: ignore[override]
        """Train; ``torch.amp.GradScaler`` on the engine's device type when ``amp`` is on.

        MONAI's ``Trainer.run`` creates ``torch.cuda.amp.GradScaler()`` (CUDA only, deprecated) and
        calls ``Workflow.run``: this does the first for the engine's device type, then the second
        (``tests/engines/test_trainer.py`` pins that ``Trainer.run`` does nothing else).
        """
        self.scaler = torch.amp.GradScaler(amp_device_type(self.state.device)) if self.amp else None
        Workflow.run(self)

    def _iteration(self, engine: SupervisedTrainer, batchdata: dict[str, torch.Tensor]) -> dict:  # type: ignore[override]
        """One iteration: MONAI's, except under AMP on a non-CUDA device (autocast on that device).

        Raises:
            ValueError: when ``batchdata`` is None.
        """
        device_type = amp_device_type(engine.state.device)
        if not engine.amp or engine.scaler is None or device_type == "cuda" or engine.compile:
            return super()._iteration(engine, batchdata)
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        batch = engine.prepare_batch(batchdata, engine.state.device, engine.non_blocking, **engine.to_kwargs)
        if len(batch) == 2:
            inputs, targets = batch
            args: tuple = ()
            kwargs: dict = {}
        else:
            inputs, targets, args, kwargs = batch
        engine.state.output = {Keys.IMAGE: inputs, Keys.LABEL: targets}

        acc = engine.accumulation_steps
        length = engine.state.epoch_length
        local = (engine.state.iteration - 1) % length if length is not None else engine.state.iteration - 1
        should_zero_grad = acc <= 1 or local % acc == 0
        should_step = acc <= 1 or (local + 1) % acc == 0 or (length is not None and local + 1 == length)

        engine.network.train()
        if should_zero_grad:
            engine.optimizer.zero_grad(set_to_none=engine.optim_set_to_none)
        with torch.autocast(device_type, **engine.amp_kwargs):
            engine.state.output[Keys.PRED] = engine.inferer(inputs, engine.network, *args, **kwargs)
            engine.fire_event(IterationEvents.FORWARD_COMPLETED)
            engine.state.output[Keys.LOSS] = engine.loss_function(engine.state.output[Keys.PRED], targets).mean()
            engine.fire_event(IterationEvents.LOSS_COMPLETED)
        loss = engine.state.output[Keys.LOSS]
        engine.scaler.scale(loss / acc if acc > 1 else loss).backward()
        engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
        if should_step:
            engine.scaler.step(engine.optimizer)
            engine.scaler.update()
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output
