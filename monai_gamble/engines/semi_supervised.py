r"""Semi-supervised adversarial segmentation: a trainer that adds an unsupervised phase on unlabelled
images to the two-network engine (its objectives, :class:`SemiSupervisedAdversarialObjective` and the
base :class:`SemiSupervisedObjective`, are in :mod:`monai_gamble.engines.objectives` with the others,
and importable from here too).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from monai.utils import min_version, optional_import
from torch import nn
from torch.optim.optimizer import Optimizer
from torch.utils.data import DataLoader

# the objectives lived here before: importable from this module too
from .objectives import (
    DiscriminatorTarget,
    SemiSupervisedAdversarialObjective,
    SemiSupervisedObjective,
    SemiSupervisedSchedule,
    correctness_target,
)
from .trainer import SegmenterCriticTrainer, frozen

__all__ = [
    "DiscriminatorTarget",
    "SemiSupervisedAdversarialObjective",
    "SemiSupervisedAdversarialTrainer",
    "SemiSupervisedObjective",
    "SemiSupervisedSchedule",
    "correctness_target",
]

Events, _ = optional_import("ignite.engine", "0.4.11", min_version, "Events")
Engine, _ = optional_import("ignite.engine", "0.4.11", min_version, "Engine")

#: the unlabelled sampler's ``set_epoch`` is ``epoch * UNLABELED_PASS_STRIDE + pass``: unique per pass
UNLABELED_PASS_STRIDE = 1_000_000


class SemiSupervisedAdversarialTrainer(SegmenterCriticTrainer):
    """:class:`~monai_gamble.engines.SegmenterCriticTrainer` with an unsupervised phase on
    unlabelled images (Lalwani; Hung et al., BMVC 2018).

    Every iteration runs, on one labelled batch of ``train_data_loader``, the supervised phase of
    the two-network engine (critic step on the detached prediction, then the segmenter step through
    the frozen critic; schedules, AMP, accumulation, DDP as there), then, on ``unlabeled_batches``
    batches of ``unlabeled_data_loader``, the **unsupervised phase**: the segmenter's forward pass
    and a segmenter step on ``objective.unlabeled_loss(frozen(critic), ...)``. The critic's weights
    get no gradient there (they enter the graph detached, :func:`~monai_gamble.engines.frozen`) and
    are not stepped; the segmenter gets gradient through the critic's input. ``MODEL_COMPLETED``
    fires after both phases: the unsupervised phase is the two-network engine's
    :meth:`~monai_gamble.engines.SegmenterCriticTrainer.extra_phases` hook.

    - The unlabelled loader starts a new pass at the start of every epoch and whenever it runs out
      within one (with ``set_epoch`` on its sampler, for a ``DistributedSampler``: a number unique
      to the epoch and the pass); the epoch length is the labelled loader's (or ``epoch_length``).
      Epochs are then independent of one another, so that a run resumed from the checkpoint of an
      epoch draws the same unlabelled batches as the run that was not interrupted.
    - The adversarial term of the unsupervised phase is on when the objective's
      ``lambda_unlabeled > 0`` and the supervised phase is adversarial (not during
      ``ce_only_epochs``); self-training is on from the (1-based, global) iteration
      ``self_training_start_iteration`` when the objective's ``lambda_semi > 0``. The phase is
      skipped when neither term is on (``unlabeled_loss`` and its terms are then 0), and computed without gradient (for
      ``engine.state.output``) in iterations that do not update the segmenter (critic warm-up,
      critic blocks).
    - Each unlabelled batch has its own backward pass and counts as one segmenter pass for
      ``accumulation_steps``: with ``accumulation_steps = 1 + unlabeled_batches`` the gradients of
      both phases are summed into one step per iteration (as in Hung et al.'s code).
    - ``engine.state.output`` holds, besides the keys of the two-network engine,
      ``unlabeled_loss`` and the objective's unlabelled terms (``unlabeled_adv``,
      ``self_training``, ``pseudo_label_fraction``), averaged over the unlabelled batches.
    - With the objective's ``schedule="two_stage"`` (the report's schedule) the first
      ``objective.labeled_stage_epochs`` epochs are the **labelled stage**: the supervised phase
      alone, no unlabelled batch. The later epochs are the **unlabelled stage**: every iteration
      runs the unsupervised phase (generator steps, the discriminator frozen and never stepped);
      the labelled batch of the iteration updates neither network, its losses are computed without
      gradient for the logs (``loss``, ``critic_loss``).

    Args:
        device: the device of the networks and batches.
        max_epochs: number of epochs.
        train_data_loader: the labelled data (dicts with ``image`` and ``label``).
        unlabeled_data_loader: the unlabelled data (dicts with ``image``); may be None only when
            ``unlabeled_batches`` is 0.
        network: the segmenter (generator), ``(B, in, *spatial) -> (B, C, *spatial)`` logits.
        optimizer: the segmenter's optimizer.
        critic: the discriminator (e.g. :class:`monai_gamble.networks.nets.FCDiscriminator`).
        critic_optimizer: the discriminator's optimizer.
        objective: a :class:`~monai_gamble.engines.SemiSupervisedObjective` (e.g.
            :class:`SemiSupervisedAdversarialObjective`).
        unlabeled_batches: unlabelled batches per labelled batch (0: no unsupervised phase, i.e.
            supervised adversarial training).
        self_training_start_iteration: first iteration with self-training.
        kwargs: the other arguments of :class:`~monai_gamble.engines.SegmenterCriticTrainer`
            (``critic_warmup_iterations``, ``ce_only_epochs``, ``alternation``, ``epoch_length``,
            ``inferer``, ``amp``, ``accumulation_steps``, handlers and metrics, ...).

    Raises:
        TypeError: if the objective is not a :class:`~monai_gamble.engines.SemiSupervisedObjective`.
        ValueError: for a negative ``unlabeled_batches`` or ``self_training_start_iteration``, a
            missing or empty unlabelled loader, ``fused=True`` (the correctness objective cannot fuse),
            or a two-stage schedule whose unlabelled stage would not run (no unlabelled batches, or
            ``labeled_stage_epochs >= max_epochs``).

    Example:
        >>> trainer = SemiSupervisedAdversarialTrainer(
        ...     device, 100, labelled_loader, unlabelled_loader, deeplab, opt_g, FCDiscriminator(2, 7), opt_d,
        ...     SemiSupervisedAdversarialObjective(lambda_adv=0.01, lambda_unlabeled=0.001))
        >>> trainer.run()
    """

    def __init__(
        self,
        device: str | torch.device,
        max_epochs: int,
        train_data_loader: Iterable | DataLoader,
        unlabeled_data_loader: Iterable | DataLoader | None,
        network: nn.Module,
        optimizer: Optimizer,
        critic: nn.Module,
        critic_optimizer: Optimizer,
        objective: SemiSupervisedObjective,
        unlabeled_batches: int = 1,
        self_training_start_iteration: int = 0,
        **kwargs: Any,
    ) -> None:
        if not isinstance(objective, SemiSupervisedObjective):
            raise TypeError(
                f"{type(objective).__name__} has no unlabeled_loss(critic, image, logits, adversarial, self_training): "
                "the objective must be a SemiSupervisedObjective, e.g. SemiSupervisedAdversarialObjective."
            )
        if int(unlabeled_batches) < 0 or int(self_training_start_iteration) < 0:
            raise ValueError(
                "unlabeled_batches and self_training_start_iteration must be non-negative, got "
                f"{unlabeled_batches} and {self_training_start_iteration}."
            )
        if int(unlabeled_batches) > 0:
            if unlabeled_data_loader is None:
                raise ValueError("unlabeled_data_loader is None: give one, or set unlabeled_batches=0.")
            n = len(unlabeled_data_loader) if hasattr(unlabeled_data_loader, "__len__") else None  # type: ignore[arg-type]
            if n == 0:
                raise ValueError(
                    "the unlabelled data loader is empty: the dataset has no unlabelled tiles (add some, lower the "
                    "labelled fraction, or set unlabeled_batches=0 for supervised adversarial training)."
                )
        if objective.schedule == SemiSupervisedSchedule.TWO_STAGE:
            stage_epochs = int(objective.labeled_stage_epochs)  # type: ignore[arg-type]
            if int(unlabeled_batches) == 0 or stage_epochs >= int(max_epochs):
                raise ValueError(
                    f"the two-stage schedule's unlabelled stage would not run ({unlabeled_batches} unlabelled batches, "
                    f"labelled stage of {stage_epochs} of {max_epochs} epochs): give unlabeled_batches >= 1 and "
                    "labeled_stage_epochs < max_epochs."
                )
        super().__init__(
            device=device,
            max_epochs=max_epochs,
            train_data_loader=train_data_loader,
            network=network,
            optimizer=optimizer,
            critic=critic,
            critic_optimizer=critic_optimizer,
            objective=objective,
            **kwargs,
        )
        self.unlabeled_data_loader = unlabeled_data_loader
        self.unlabeled_batches = int(unlabeled_batches)
        self.self_training_start_iteration = int(self_training_start_iteration)
        self._unlabeled_iter: Iterator | None = None
        self._unlabeled_pass = 0
        self.add_event_handler(Events.EPOCH_STARTED, self.restart_unlabeled)

    def restart_unlabeled(self, engine: Engine | None = None) -> None:
        """Start a new pass of the unlabelled loader with the next batch (at every epoch start)."""
        self._unlabeled_iter = None
        self._unlabeled_pass = 0

    def next_unlabeled_batch(self) -> Any:
        """The next batch of the unlabelled loader, which restarts when it runs out."""
        if self._unlabeled_iter is not None:
            try:
                return next(self._unlabeled_iter)
            except StopIteration:
                self._unlabeled_pass += 1
        sampler = getattr(self.unlabeled_data_loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):  # unique per (epoch, pass): a DistributedSampler's shuffle seed
            sampler.set_epoch(int(self.state.epoch) * UNLABELED_PASS_STRIDE + self._unlabeled_pass)
        self._unlabeled_iter = iter(self.unlabeled_data_loader)  # type: ignore[arg-type]
        try:
            return next(self._unlabeled_iter)
        except StopIteration:
            raise ValueError("the unlabelled data loader gave no batch: it is empty.") from None

    def stage(self, iteration: int) -> SemiSupervisedSchedule | str:
        """The stage of a (1-based, global) iteration: ``"interleaved"`` (both phases every iteration), or,
        with the objective's two-stage schedule, ``"labeled"`` or ``"unlabeled"``."""
        objective: SemiSupervisedObjective = self.objective  # type: ignore[assignment]
        if objective.schedule != SemiSupervisedSchedule.TWO_STAGE:
            return SemiSupervisedSchedule.INTERLEAVED
        length = self.state.epoch_length
        epoch = (iteration - 1) // length + 1 if length else self.state.epoch
        return "labeled" if epoch <= objective.labeled_stage_epochs else "unlabeled"  # type: ignore[operator]

    def schedule(self, iteration: int) -> tuple[bool, bool]:
        """Which networks ``(segmenter, critic)`` the supervised phase updates: as the two-network
        engine, and neither in the unlabelled stage of a two-stage schedule."""
        if self.stage(iteration) == "unlabeled":
            return False, False
        return super().schedule(iteration)

    def unlabeled_plan(self, engine: SemiSupervisedAdversarialTrainer) -> tuple[bool, bool, bool, bool]:
        """For the current iteration, ``(run, update_segmenter, adversarial, self_training)`` of the
        unsupervised phase: whether it runs at all (some unlabelled batches and at least one term on),
        whether it trains the segmenter, and which of the objective's terms are on."""
        iteration = engine.state.iteration
        stage = engine.stage(iteration)
        objective: SemiSupervisedObjective = engine.objective  # type: ignore[assignment]
        if stage == "labeled":
            return False, False, False, False
        update_seg = stage == "unlabeled" or engine.schedule(iteration)[0]
        adversarial = engine.state.epoch > engine.ce_only_epochs and objective.uses_unlabeled_adversarial
        self_training = objective.uses_self_training and iteration >= engine.self_training_start_iteration
        run = engine.unlabeled_batches > 0 and (adversarial or self_training)
        return run, update_seg, adversarial, self_training

    def extra_segmenter_passes(self, engine: SemiSupervisedAdversarialTrainer) -> int:  # type: ignore[override]
        """One segmenter pass per unlabelled batch when the unsupervised phase trains the segmenter."""
        run, update_seg, _, _ = engine.unlabeled_plan(engine)
        return engine.unlabeled_batches if run and update_seg else 0

    def extra_phases(self, engine: SemiSupervisedAdversarialTrainer) -> None:  # type: ignore[override]
        """The unsupervised phase: ``unlabeled_batches`` segmenter passes through the frozen critic
        (without gradient when the iteration does not update the segmenter); its loss and terms,
        averaged over the batches, go to ``engine.state.output`` (zeros when the phase does not run)."""
        run, update_seg, adversarial, self_training = engine.unlabeled_plan(engine)
        objective: SemiSupervisedObjective = engine.objective  # type: ignore[assignment]
        totals: dict[str, torch.Tensor] = {
            key: torch.zeros((), device=engine.state.device) for key in ("unlabeled_loss", *objective.unlabeled_terms)
        }
        for _ in range(engine.unlabeled_batches if run else 0):
            batch = engine.prepare_batch(
                engine.next_unlabeled_batch(), engine.state.device, engine.non_blocking, **engine.to_kwargs
            )
            inputs = batch[0]
            grad_ctx = contextlib.nullcontext() if update_seg else torch.no_grad()
            with grad_ctx, engine.autocast(engine):
                logits = engine.inferer(inputs, engine.network)
                out = objective.unlabeled_loss(frozen(engine.critic), inputs, logits, adversarial, self_training)
            if update_seg:
                engine.segmenter_backward(engine, out.loss)
            for key, value in {"unlabeled_loss": out.loss, **out.terms}.items():
                totals[key] = totals[key] + value.detach().float().to(totals[key].device) / engine.unlabeled_batches
        engine.state.output.update(totals)
