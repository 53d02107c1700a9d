"""A MONAI trainer for two networks: a segmenter and a critic that sees (image, prediction)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from monai.engines import SupervisedTrainer
from monai.engines.utils import IterationEvents, default_metric_cmp_fn, default_prepare_batch
from monai.engines.workflow import Workflow
from monai.inferers import Inferer
from monai.transforms import Transform
from monai.utils import StrEnum, look_up_option, min_version, optional_import
from monai.utils.enums import CommonKeys as Keys
from torch import nn
from torch.optim.optimizer import Optimizer
from torch.utils.data import DataLoader

from .objectives import CriticObjective, ObjectiveOutput

if TYPE_CHECKING:
    from ignite.engine import EventEnum
    from ignite.metrics import Metric
else:
    Metric, _ = optional_import("ignite.metrics", "0.4.11", min_version, "Metric")
    EventEnum, _ = optional_import("ignite.engine", "0.4.11", min_version, "EventEnum")

__all__ = ["Alternation", "SegmenterCriticTrainer"]


class Alternation(StrEnum):
    """How the two networks take turns after the critic's warm-up.

    - ``"iteration"``: every iteration updates the critic, then the segmenter, on the same batch.
    - ``"blocks"``: ``segmenter_iterations`` iterations update only the segmenter, then
      ``critic_iterations`` iterations update only the critic, and so on.
    """

    ITERATION = "iteration"
    BLOCKS = "blocks"


def _unwrap(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


def frozen(module: nn.Module) -> Callable[..., Any]:
    """``module`` as a function of its inputs only: its parameters enter the graph detached, so a
    backward pass computes gradients for its inputs (and whatever produced them) but none for its
    weights, without touching ``requires_grad`` (which DDP does not allow to change)."""
    inner = _unwrap(module)
    params = {name: p.detach() for name, p in inner.named_parameters()}

    def call(*args: Any, **kwargs: Any) -> Any:
        return torch.func.functional_call(inner, params, args, kwargs)

    return call


def _check_objective(objective: Any, fused: bool) -> None:
    """Refuse what the trainer cannot use as its objective (a plain loss would be ignored)."""
    if not isinstance(objective, CriticObjective):
        raise TypeError(
            "the objective (also set as loss_function, e.g. by a ProgressiveResizing stage) must be a "
            f"CriticObjective, got {type(objective).__name__}: SegmenterCriticTrainer takes its losses from its "
            "objective and would ignore a plain loss (train with MONAI's SupervisedTrainer for one)."
        )
    if fused and objective.fused_critic_grad_scale is None:
        raise ValueError(
            f"{type(objective).__name__} cannot fuse the two backward passes "
            "(fused_critic_grad_scale is None); use fused=False."
        )


class SegmenterCriticTrainer(SupervisedTrainer):
    """Two-network training of a segmenter and a critic, as a MONAI ``SupervisedTrainer``.

    The method (gambling nets, conventional adversarial training, adversarial confidence
    learning, SegAN, ...) is an *objective* (:class:`~monai_gamble.engines.CriticObjective`) that
    returns the two losses; this engine runs the rest the same way for all of them. One iteration:

    1. the segmenter's forward pass through ``inferer`` (without gradient when only the critic is
       updated in this iteration);
    2. if the critic is updated: its loss from the *detached* prediction, backward, step;
    3. if the segmenter is updated: its loss with the critic's weights frozen but its input not
       detached (so the segmenter gets gradient through the critic), backward, step.

    The loss of a network that is not updated in an iteration is still computed (without
    gradient), so ``engine.state.output`` always holds ``loss`` (= ``seg_loss``), ``seg_loss``,
    ``critic_loss``, ``"<objective.critic_name>_loss"`` (e.g. ``gambler_loss``), the objective's
    maps (e.g. ``betting_map``) and loss terms, besides ``image``, ``label`` and ``pred``.

    Schedule (the options of the gambling authors' code):

    - ``critic_warmup_iterations``: the first iterations of the run train only the critic.
    - ``ce_only_epochs``: during the first epochs the segmenter's loss is the objective's
      supervised part only (``adversarial=False``); the critic trains as scheduled.
    - ``alternation``: ``"iteration"`` (both networks every iteration, critic first) or
      ``"blocks"`` (``segmenter_iterations`` segmenter-only iterations, then ``critic_iterations``
      critic-only ones).
    - ``fused=True``: when both networks are updated in an iteration and the objective allows it
      (:attr:`CriticObjective.fused_critic_grad_scale`), one critic forward and one backward pass
      give both networks' gradients: the critic's are the segmenter loss's gradients with
      respect to the critic's weights, multiplied by that scale in parameter hooks (a gradient
      reversal at the weights, not at the critic's output, so the segmenter's own gradient is
      unchanged). It equals the two-pass step on the same weights, except that in the two-pass
      step the segmenter already sees the critic updated on this batch.

    **Extra phases of an iteration** (a subclass hook): after the supervised phase above and before
    ``MODEL_COMPLETED``, the iteration runs :meth:`extra_phases` (nothing by default); a phase that
    trains the segmenter calls :meth:`segmenter_backward` for each of its backward passes and declares
    how many it will run in :meth:`extra_segmenter_passes`, so that the end-of-epoch step of
    accumulated gradients waits for the iteration's last pass.
    :class:`~monai_gamble.engines.SemiSupervisedAdversarialTrainer` adds its unlabelled batches this way.

    **The loss is the objective**: ``loss_function`` is an alias of ``objective``; setting it (e.g. a
    :class:`~monai_gamble.handlers.ProgressiveResizing` stage's ``loss_function``) replaces the
    objective, and anything but a :class:`~monai_gamble.engines.CriticObjective` is refused (a plain
    loss would otherwise be ignored).

    Like ``SupervisedTrainer``: ``optimizer`` is the segmenter's; ``accumulation_steps`` applies to
    both networks (each steps after that many of its own backward passes, and at the end of an
    epoch); ``amp=True`` runs the forward passes under ``torch.autocast`` on the engine's device
    type with one ``torch.amp.GradScaler`` per network (one shared scaler in fused iterations);
    ``IterationEvents`` fire at the same points (``FORWARD_COMPLETED`` after the segmenter's
    forward, ``LOSS_COMPLETED`` and ``BACKWARD_COMPLETED`` around the segmenter's loss), and
    ``MODEL_COMPLETED`` fires last. Both networks may be ``DistributedDataParallel`` modules.

    Args:
        device: the device of the networks and batches.
        max_epochs: number of epochs.
        train_data_loader: the training data.
        network: the segmenter, ``(B, in, *spatial) -> (B, C, *spatial)`` logits.
        optimizer: the segmenter's optimizer.
        critic: the critic network (e.g. :class:`monai_gamble.networks.nets.Gambler`).
        critic_optimizer: the critic's optimizer.
        objective: the method (e.g. :class:`~monai_gamble.engines.GamblingObjective`).
        critic_warmup_iterations: iterations at the start that train only the critic.
        ce_only_epochs: epochs at the start in which the segmenter's loss is not adversarial.
        alternation: ``"iteration"`` or ``"blocks"`` (:class:`Alternation`).
        segmenter_iterations: length of a segmenter block (``"blocks"`` only).
        critic_iterations: length of a critic block (``"blocks"`` only).
        fused: compute both networks' gradients in one backward pass where possible.
        The other arguments are ``SupervisedTrainer``'s (``compile`` is not supported).

    Raises:
        ValueError: for negative schedule lengths, empty blocks, an unknown alternation, or
            ``fused=True`` with an objective that cannot fuse.
    """

    def __init__(
        self,
        device: str | torch.device,
        max_epochs: int,
        train_data_loader: Iterable | DataLoader,
        network: nn.Module,
        optimizer: Optimizer,
        critic: nn.Module,
        critic_optimizer: Optimizer,
        objective: CriticObjective,
        critic_warmup_iterations: int = 0,
        ce_only_epochs: int = 0,
        alternation: Alternation | str = Alternation.ITERATION,
        segmenter_iterations: int = 1,
        critic_iterations: int = 1,
        fused: bool = False,
        epoch_length: int | None = None,
        non_blocking: bool = False,
        prepare_batch: Callable = default_prepare_batch,
        iteration_update: Callable | None = None,
        inferer: Inferer | None = None,
        postprocessing: Transform | None = None,
        key_train_metric: dict[str, Metric] | None = None,
        additional_metrics: dict[str, Metric] | None = None,
        metric_cmp_fn: Callable = default_metric_cmp_fn,
        train_handlers: Sequence | None = None,
        amp: bool = False,
        event_names: list[str | EventEnum | type[EventEnum]] | None = None,
        event_to_attr: dict | None = None,
        decollate: bool = True,
        optim_set_to_none: bool = False,
        to_kwargs: dict | None = None,
        amp_kwargs: dict | None = None,
        accumulation_steps: int = 1,
    ) -> None:
        _check_objective(objective, fused)
        for name, value in (("critic_warmup_iterations", critic_warmup_iterations), ("ce_only_epochs", ce_only_epochs)):
            if int(value) < 0:
                raise ValueError(f"{name} must be non-negative, got {value}.")
        if int(segmenter_iterations) < 1 or int(critic_iterations) < 1:
            raise ValueError(
                f"segmenter_iterations and critic_iterations must be at least 1, got {segmenter_iterations}, "
                f"{critic_iterations}."
            )
        super().__init__(
            device=device,
            max_epochs=max_epochs,
            train_data_loader=train_data_loader,
            network=network,
            optimizer=optimizer,
            loss_function=objective,
            epoch_length=epoch_length,
            non_blocking=non_blocking,
            prepare_batch=prepare_batch,
            iteration_update=iteration_update,
            inferer=inferer,
            postprocessing=postprocessing,
            key_train_metric=key_train_metric,
            additional_metrics=additional_metrics,
            metric_cmp_fn=metric_cmp_fn,
            train_handlers=train_handlers,
            amp=amp,
            event_names=event_names,
            event_to_attr=event_to_attr,
            decollate=decollate,
            optim_set_to_none=optim_set_to_none,
            to_kwargs=to_kwargs,
            amp_kwargs=amp_kwargs,
            accumulation_steps=accumulation_steps,
        )
        self.critic = critic
        self.critic_optimizer = critic_optimizer
        self.critic_warmup_iterations = int(critic_warmup_iterations)
        self.ce_only_epochs = int(ce_only_epochs)
        self.alternation = look_up_option(alternation, Alternation)
        self.segmenter_iterations = int(segmenter_iterations)
        self.critic_iterations = int(critic_iterations)
        self.fused = bool(fused)
        self.critic_scaler: torch.amp.GradScaler | None = None
        #: backward passes of each network since its last optimizer step (gradient accumulation)
        self._pending = {"segmenter": 0, "critic": 0}
        #: backward passes of each network still to come in the current iteration
        self._passes_left = {"segmenter": 0, "critic": 0}

    @property
    def objective(self) -> CriticObjective:
        """The method's objective (also reachable as ``loss_function``)."""
        return self._objective

    @objective.setter
    def objective(self, objective: CriticObjective) -> None:
        _check_objective(objective, getattr(self, "fused", False))
        self._objective = objective

    @property
    def loss_function(self) -> CriticObjective:  # type: ignore[override]
        """``SupervisedTrainer``'s loss, here the objective (setting it sets :attr:`objective`)."""
        return self._objective

    @loss_function.setter
    def loss_function(self, objective: CriticObjective) -> None:
        self.objective = objective

    def run(self) -> None:  # type: ignore[override]
        """Train; one ``torch.amp.GradScaler`` per network when ``amp`` is on.

        Why this calls ``Workflow.run`` and not ``SupervisedTrainer.run``: MONAI's ``Trainer.run``
        (which ``SupervisedTrainer`` inherits) does two things, create ``torch.cuda.amp.GradScaler()``
        (deprecated, and for CUDA only) and call ``Workflow.run``. This method does the first the
        current way, ``torch.amp.GradScaler(device_type)`` for each network, and then the second;
        ``tests/engines/test_trainer.py`` checks that ``Trainer.run`` still does nothing else, so that a
        MONAI release that adds to it fails a test instead of being skipped without notice.
        """
        device_type = torch.device(self.state.device).type
        self.scaler = torch.amp.GradScaler(device_type) if self.amp else None
        self.critic_scaler = torch.amp.GradScaler(device_type) if self.amp else None
        self._pending = {"segmenter": 0, "critic": 0}
        Workflow.run(self)

    def extra_segmenter_passes(self, engine: SegmenterCriticTrainer) -> int:
        """Hook: how many segmenter backward passes :meth:`extra_phases` will run in the current
        iteration (default 0). The trainer counts them with the supervised phase's, so that the step
        of gradients accumulated to the end of an epoch comes after the iteration's last pass."""
        return 0

    def extra_phases(self, engine: SegmenterCriticTrainer) -> None:
        """Hook: more phases of the current iteration, run after the supervised phase (whose
        ``engine.state.output`` is complete) and before ``MODEL_COMPLETED`` (default: none).

        A phase computes its losses under :meth:`autocast` and trains the segmenter with
        :meth:`segmenter_backward`, once per pass announced by :meth:`extra_segmenter_passes`; it may
        add keys to ``engine.state.output``.
        """

    def autocast(self, engine: SegmenterCriticTrainer) -> contextlib.AbstractContextManager:
        """``torch.autocast`` on the engine's device type when ``amp`` is on, else a null context."""
        if not engine.amp:
            return contextlib.nullcontext()
        return torch.autocast(torch.device(engine.state.device).type, **engine.amp_kwargs)

    def segmenter_backward(self, engine: SegmenterCriticTrainer, loss: torch.Tensor) -> None:
        """One backward pass of a segmenter loss (AMP scaling and accumulation as the supervised
        phase's): zero the gradients after a step, backward, and step when due."""
        engine._zero_grad(engine, "segmenter", engine.optimizer)
        engine._backward(engine, loss, engine.scaler, [("segmenter", engine.optimizer)])

    def schedule(self, iteration: int) -> tuple[bool, bool]:
        """Which networks ``(segmenter, critic)`` are updated at a (1-based, global) iteration."""
        i = iteration - 1 - self.critic_warmup_iterations
        if i < 0:
            return False, True
        if self.alternation == Alternation.ITERATION:
            return True, True
        in_segmenter_block = i % (self.segmenter_iterations + self.critic_iterations) < self.segmenter_iterations
        return in_segmenter_block, not in_segmenter_block

    def _epoch_end(self, engine: SegmenterCriticTrainer) -> bool:
        epoch_length = engine.state.epoch_length
        return epoch_length is not None and (engine.state.iteration - 1) % epoch_length + 1 == epoch_length

    def _backward(
        self,
        engine: SegmenterCriticTrainer,
        loss: torch.Tensor,
        scaler: torch.amp.GradScaler | None,
        names_optimizers: Sequence[tuple[str, Optimizer]],
    ) -> None:
        """Backward of ``loss`` (scaled for AMP and accumulation); step the optimizers when due: after
        ``accumulation_steps`` passes of that network, or at its last pass of an epoch's last iteration."""
        acc = engine.accumulation_steps
        loss = loss / acc if acc > 1 else loss
        (scaler.scale(loss) if scaler is not None else loss).backward()
        due = []
        for name, opt in names_optimizers:
            engine._pending[name] += 1
            engine._passes_left[name] -= 1
            if engine._pending[name] >= acc or (engine._passes_left[name] <= 0 and self._epoch_end(engine)):
                due.append(opt)
                engine._pending[name] = 0
        for opt in due:
            if scaler is not None:
                scaler.step(opt)
            else:
                opt.step()
        if due and scaler is not None:
            scaler.update()
        if any(opt is engine.critic_optimizer for opt in due):
            engine.objective.after_critic_step(_unwrap(engine.critic))

    def _zero_grad(self, engine: SegmenterCriticTrainer, name: str, optimizer: Optimizer) -> None:
        if engine._pending[name] == 0:
            optimizer.zero_grad(set_to_none=engine.optim_set_to_none)

    def _publish(self, engine: SegmenterCriticTrainer, out: ObjectiveOutput) -> None:
        for key, value in {**out.maps, **out.terms}.items():
            engine.state.output[key] = value.detach()

    def _iteration(self, engine: SegmenterCriticTrainer, batchdata: dict[str, torch.Tensor]) -> dict:  # type: ignore[override]
        """One iteration of two-network training (see the class docstring); returns ``engine.state.output``."""
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
        objective = engine.objective
        update_seg, update_critic = engine.schedule(engine.state.iteration)
        adversarial = engine.state.epoch > engine.ce_only_epochs
        engine._passes_left = {
            "segmenter": int(update_seg) + engine.extra_segmenter_passes(engine),
            "critic": int(update_critic),
        }
        engine.network.train()
        engine.critic.train()

        grad_ctx = contextlib.nullcontext() if update_seg else torch.no_grad()
        with grad_ctx, engine.autocast(engine):
            logits = engine.inferer(inputs, engine.network, *args, **kwargs)
        engine.state.output[Keys.PRED] = logits
        engine.fire_event(IterationEvents.FORWARD_COMPLETED)

        if engine.fused and update_seg and update_critic and adversarial:
            engine._zero_grad(engine, "segmenter", engine.optimizer)
            engine._zero_grad(engine, "critic", engine.critic_optimizer)
            with engine.autocast(engine):
                seg = objective.segmenter_loss(engine.critic, inputs, logits, targets, adversarial=True)
            if seg.critic_loss is None:
                raise RuntimeError(f"{type(objective).__name__}.segmenter_loss gave no critic_loss for the fused step.")
            critic_loss = seg.critic_loss
            engine.state.output[Keys.LOSS] = seg.loss
            engine.fire_event(IterationEvents.LOSS_COMPLETED)
            scale = float(objective.fused_critic_grad_scale)  # type: ignore[arg-type]
            hooks = [p.register_hook(lambda g: g * scale) for p in engine.critic.parameters() if p.requires_grad]
            try:
                engine._backward(
                    engine,
                    seg.loss,
                    engine.scaler,
                    [("segmenter", engine.optimizer), ("critic", engine.critic_optimizer)],
                )
            finally:
                for h in hooks:
                    h.remove()
            engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
        else:
            # the critic, on the detached prediction
            if update_critic:
                engine._zero_grad(engine, "critic", engine.critic_optimizer)
                with engine.autocast(engine):
                    crit = objective.critic_loss(engine.critic, inputs, logits.detach(), targets)
                engine._backward(engine, crit.loss, engine.critic_scaler, [("critic", engine.critic_optimizer)])
            else:
                with torch.no_grad(), engine.autocast(engine):
                    crit = objective.critic_loss(engine.critic, inputs, logits.detach(), targets)
            critic_loss = crit.loss
            self._publish(engine, crit)
            # the segmenter, through the critic with frozen weights
            if update_seg:
                engine._zero_grad(engine, "segmenter", engine.optimizer)
                with engine.autocast(engine):
                    seg = objective.segmenter_loss(frozen(engine.critic), inputs, logits, targets, adversarial)
                engine.state.output[Keys.LOSS] = seg.loss
                engine.fire_event(IterationEvents.LOSS_COMPLETED)
                engine._backward(engine, seg.loss, engine.scaler, [("segmenter", engine.optimizer)])
                engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
            else:
                with torch.no_grad(), engine.autocast(engine):
                    seg = objective.segmenter_loss(engine.critic, inputs, logits, targets, adversarial)
                engine.state.output[Keys.LOSS] = seg.loss
                engine.fire_event(IterationEvents.LOSS_COMPLETED)

        self._publish(engine, seg)
        loss = seg.loss.detach()
        engine.state.output[Keys.LOSS] = loss
        engine.state.output["seg_loss"] = loss
        engine.state.output["critic_loss"] = critic_loss.detach()
        engine.state.output[f"{objective.critic_name}_loss"] = critic_loss.detach()
        engine.state.output[Keys.PRED] = logits.detach()
        engine.extra_phases(engine)
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output
