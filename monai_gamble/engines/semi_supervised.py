r"""Semi-supervised adversarial segmentation: a per-pixel correctness (or real/fake) discriminator,
and a trainer that adds an unsupervised phase on unlabelled images to the two-network engine.

Lalwani, "DeepLab with adversarial loss for semi-supervised semantic segmentation of Medical
Images" (University at Buffalo): a DeepLabV3+ generator and a fully convolutional discriminator
that tells, per pixel, whether the segmentation is correct; labelled images train both, then
unlabelled images train the generator alone through the discriminator, which is no longer
trained. Hung et al., "Adversarial Learning for Semi-Supervised Semantic Segmentation" (BMVC 2018)
train a per-pixel real/fake discriminator, interleave labelled and unlabelled batches in every
iteration, and add self-training on the pixels the discriminator trusts.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from monai.engines.utils import IterationEvents
from monai.utils import StrEnum, look_up_option
from torch import nn
from torch.optim.optimizer import Optimizer
from torch.utils.data import DataLoader

from ..losses import CrossEntropyLoss, class_probabilities, cross_entropy_map, target_probabilities
from .objectives import Critic, CriticObjective, ObjectiveOutput
from .trainer import SegmenterCriticTrainer, frozen

__all__ = [
    "DiscriminatorTarget",
    "SemiSupervisedAdversarialObjective",
    "SemiSupervisedAdversarialTrainer",
    "SemiSupervisedSchedule",
    "correctness_target",
]


class DiscriminatorTarget(StrEnum):
    r"""What the discriminator of :class:`SemiSupervisedAdversarialObjective` learns on a labelled batch.

    - ``"correctness"``: per pixel, whether the segmenter's hard prediction is right,
      :math:`\mathrm{BCE}(D(x, \mathrm{sg}(s(x))), [\arg\max s(x) = y])` (the report's stated purpose
      of its discriminator: "if the segmented pixel ... [is] correct or not").
    - ``"real_fake"``: the classic discriminator of Hung et al. (and the report's description of its
      training: ground truth "in class", predictions "out class"),
      :math:`\tfrac12[\mathrm{BCE}(D(x, \mathrm{onehot}(y)), 1) + \mathrm{BCE}(D(x, \mathrm{sg}(s(x))), 0)]`.
    """

    CORRECTNESS = "correctness"
    REAL_FAKE = "real_fake"


class SemiSupervisedSchedule(StrEnum):
    """How labelled and unlabelled batches alternate in :class:`SemiSupervisedAdversarialTrainer`.

    - ``"interleaved"``: every iteration, one labelled batch (discriminator and generator steps), then
      ``unlabeled_batches`` unlabelled batches (generator steps through the frozen discriminator):
      Hung et al.'s schedule.
    - ``"two_stage"``: the report's: a labelled stage of ``labeled_stage_epochs`` epochs (labelled
      batches only, both networks trained), then an unlabelled stage (unlabelled batches only, the
      generator trained through the discriminator, which is no longer trained).
    """

    INTERLEAVED = "interleaved"
    TWO_STAGE = "two_stage"


def _hard_prediction(logits: torch.Tensor) -> torch.Tensor:
    """``(B, 1, *spatial)`` class indices of logits: argmax over C > 1 channels, ``logit > 0`` for one."""
    return (logits > 0).long() if logits.shape[1] == 1 else logits.argmax(1, keepdim=True)


def correctness_target(
    logits: torch.Tensor, label: torch.Tensor, ignore_index: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-pixel target of a correctness discriminator: whether the segmenter's hard
    prediction equals the label,

    .. math:: t_j = [\\,\\arg\\max_c s_{c,j}(x) = y_j\\,]

    (for a one-channel sigmoid segmenter the prediction is :math:`[s_j > 0]`). One-hot or soft
    labels ``(B, C, *spatial)`` count by their argmax.

    Args:
        logits: the segmenter's logits ``(B, C, *spatial)``.
        label: index labels ``(B, 1, *spatial)`` or ``(B, *spatial)``, or ``(B, C, *spatial)`` probabilities.
        ignore_index: label value of pixels that count nowhere.

    Returns:
        ``(target, valid)``: a float ``(B, 1, *spatial)`` map of 1 (correct) and 0 (wrong, and on
        ignored pixels), and the boolean ``(B, 1, *spatial)`` mask of counted pixels.

    Raises:
        ValueError: for labels whose shape does not match the logits, or values outside the classes.
    """
    onehot, valid = target_probabilities(label, logits, ignore_index)
    truth = (onehot > 0.5).long() if logits.shape[1] == 1 else onehot.argmax(1, keepdim=True)
    return ((_hard_prediction(logits) == truth) & valid).float(), valid


def _masked_bce(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Mean binary cross-entropy with logits over the valid pixels (0 when none is valid)."""
    bce = F.binary_cross_entropy_with_logits(logits.float(), target.float(), reduction="none")
    if valid is None:
        return bce.mean()
    v = valid.to(bce.dtype)
    return (bce * v).sum() / v.sum().clamp_min(1.0)


class SemiSupervisedAdversarialObjective(CriticObjective):
    """Semi-supervised adversarial segmentation with a per-pixel correctness discriminator
    (Lalwani's DeepLabV3+ with adversarial loss; self-training of Hung et al., BMVC 2018), as an
    objective of :class:`SemiSupervisedAdversarialTrainer` (on labelled batches alone, of
    :class:`~monai_gamble.engines.SegmenterCriticTrainer`).

    **The default and its variants.** The default is Hung et al.'s schedule (labelled and unlabelled
    batches interleaved in every iteration, ``schedule="interleaved"``) with a per-pixel
    *correctness* target for the discriminator (``discriminator_target="correctness"``). It departs
    from the report in two ways, each available as an option: the report describes the
    discriminator's training as real/fake (ground truth against predictions; Hung et al.'s too:
    ``discriminator_target="real_fake"``), and it trains in two stages, all labelled images first
    and then the unlabelled ones with the discriminator no longer trained
    (``schedule="two_stage"`` with ``labeled_stage_epochs``). Self-training (``lambda_semi``) is
    Hung et al.'s addition, not the report's.

    The discriminator :math:`D` sees the image concatenated with the segmenter's *softmax*
    :math:`s(x)` (never its argmax: the generator gets gradient through :math:`D`'s input) and gives
    one logit per pixel (logits at a lower resolution, as a PatchGAN's, are upsampled bilinearly).
    With the correctness target :math:`t = [\\arg\\max s(x) = y]` (:func:`correctness_target`) and the
    supervised loss :math:`L_{sup}` (cross-entropy, or TCE, of the labelled batch):

    .. math::
        L_D = \\mathrm{BCE}(D(x, \\mathrm{sg}(s(x))), t), \\qquad
        L_G = L_{sup}(s(x), y) + \\lambda_1\\, \\mathrm{BCE}(D(x, s(x)), 1)

    (with ``"real_fake"``: :math:`L_D = \\tfrac12[\\mathrm{BCE}(D(x, \\mathrm{onehot}(y)), 1) +
    \\mathrm{BCE}(D(x, \\mathrm{sg}(s(x))), 0)]`, as Hung et al.'s code, and the same :math:`L_G`)

    on labelled batches, and, on unlabelled batches :math:`x_u` with :math:`D` frozen
    (:meth:`unlabeled_loss`),

    .. math::
        L_G^{u} = \\lambda_2\\, \\mathrm{BCE}(D(x_u, s(x_u)), 1)
        + \\lambda_{semi}\\, \\frac{\\sum_j m_j\\, \\mathrm{CE}_j(s(x_u), \\hat{y})}{\\sum_j m_j},
        \\qquad m_j = [\\sigma(D(x_u, s(x_u)))_j > T],\\ \\hat{y} = \\arg\\max s(x_u),

    the second term being Hung et al.'s self-training (pseudo-labels where :math:`D` says the
    prediction is correct with probability above :math:`T`; mask and pseudo-labels carry no
    gradient), active when ``lambda_semi > 0`` and the trainer says so. Pixels of ``ignore_index``
    count in neither BCE. The map exposed for figures is :math:`\\sigma(D(x, s(x)))`, the
    probability that the prediction is correct (``"correctness_map"``), or with ``"real_fake"`` that it
    is ground truth (Hung et al.'s confidence map, ``"confidence_map"``); :attr:`map_name` says which.

    Args:
        lambda_adv: :math:`\\lambda_1`, the adversarial weight on labelled batches (Hung et al.: 0.01).
        lambda_unlabeled: :math:`\\lambda_2`, the adversarial weight on unlabelled batches (0.001).
        lambda_semi: :math:`\\lambda_{semi}`, the self-training weight (Hung et al.: 0.1; 0 disables it).
        semi_threshold: :math:`T` in (0, 1). Default 0.9: a correctness discriminator's output is a
            probability of being right, so only pixels it trusts pass. Hung et al.'s 0.2 is for their
            real/fake discriminator, whose output on a prediction rarely approaches 1 (use it with
            ``discriminator_target="real_fake"``).
        loss: the supervised loss ``loss(logits, label) -> scalar``, e.g.
            :func:`monai_gamble.losses.tilted_loss` for TCE; default the (class-weighted) cross-entropy.
        weight: class weights of the default cross-entropy (only without ``loss``).
        ignore_index: label value of pixels that count nowhere.
        concatenate: call the discriminator on ``cat([image, softmax])`` (True: :class:`FCDiscriminator`,
            MONAI's ``PatchDiscriminator``) or as ``critic(image, softmax)`` (False).
        discriminator_target: ``"correctness"`` (default) or ``"real_fake"`` (:class:`DiscriminatorTarget`).
        schedule: ``"interleaved"`` (default) or ``"two_stage"`` (:class:`SemiSupervisedSchedule`; run by
            :class:`SemiSupervisedAdversarialTrainer`).
        labeled_stage_epochs: the epochs of the labelled stage of ``"two_stage"`` (at least 1; None with
            ``"interleaved"``).

    Shapes:
        ``image`` ``(B, K, *spatial)``, ``logits`` ``(B, C, *spatial)`` (C = 1: a sigmoid segmenter),
        ``label`` ``(B, 1, *spatial)`` indices or ``(B, C, *spatial)`` probabilities; the critic
        takes ``(B, K + C, *spatial)`` (``concatenate=True``) and gives ``(B, 1, *spatial')`` logits;
        the losses are scalars, the maps ``(B, 1, *spatial)``.

    Raises:
        ValueError: for negative weights, a threshold outside (0, 1), both ``loss`` and ``weight``, an
            unknown target or schedule, or ``labeled_stage_epochs`` missing (``"two_stage"``) or given
            (``"interleaved"``); in the losses, for labels that do not match the logits or a critic
            output with more than one channel.

    Example:
        >>> objective = SemiSupervisedAdversarialObjective(lambda_adv=0.01, lambda_unlabeled=0.001)
        >>> critic = FCDiscriminator(spatial_dims=2, in_channels=3 + 4)
        >>> report = SemiSupervisedAdversarialObjective(  # the report's variant
        ...     discriminator_target="real_fake", schedule="two_stage", labeled_stage_epochs=20)
    """

    critic_name = "discriminator"
    map_name = "correctness_map"
    #: the terms of :meth:`unlabeled_loss` (published as zeros by the trainer when the phase is skipped)
    unlabeled_terms = ("unlabeled_adv", "self_training", "pseudo_label_fraction")

    def __init__(
        self,
        lambda_adv: float = 0.01,
        lambda_unlabeled: float = 0.001,
        lambda_semi: float = 0.0,
        semi_threshold: float = 0.9,
        loss: Callable[[torch.Tensor, Any], torch.Tensor] | None = None,
        weight: Any = None,
        ignore_index: int | None = None,
        concatenate: bool = True,
        discriminator_target: DiscriminatorTarget | str = DiscriminatorTarget.CORRECTNESS,
        schedule: SemiSupervisedSchedule | str = SemiSupervisedSchedule.INTERLEAVED,
        labeled_stage_epochs: int | None = None,
    ) -> None:
        for name, value in (
            ("lambda_adv", lambda_adv),
            ("lambda_unlabeled", lambda_unlabeled),
            ("lambda_semi", lambda_semi),
        ):
            if not float(value) >= 0:
                raise ValueError(f"{name} must be a non-negative number, got {value}.")
        if not 0.0 < float(semi_threshold) < 1.0:
            raise ValueError(f"semi_threshold must lie in (0, 1) (a probability of D), got {semi_threshold}.")
        if loss is not None and weight is not None:
            raise ValueError("give either a supervised loss or class weights for the default cross-entropy, not both.")
        self.lambda_adv = float(lambda_adv)
        self.lambda_unlabeled = float(lambda_unlabeled)
        self.lambda_semi = float(lambda_semi)
        self.semi_threshold = float(semi_threshold)
        self.loss = CrossEntropyLoss(weight=weight, ignore_index=ignore_index) if loss is None else loss
        self.ignore_index = ignore_index
        self.concatenate = bool(concatenate)
        self.discriminator_target = look_up_option(discriminator_target, DiscriminatorTarget)
        self.schedule = look_up_option(schedule, SemiSupervisedSchedule)
        if self.schedule == SemiSupervisedSchedule.TWO_STAGE:
            if labeled_stage_epochs is None or int(labeled_stage_epochs) < 1:
                raise ValueError(
                    "schedule='two_stage' needs labeled_stage_epochs >= 1 (the epochs of the labelled stage), "
                    f"got {labeled_stage_epochs}."
                )
        elif labeled_stage_epochs is not None:
            raise ValueError("labeled_stage_epochs is only used with schedule='two_stage'.")
        self.labeled_stage_epochs = None if labeled_stage_epochs is None else int(labeled_stage_epochs)
        #: the key of the discriminator's map in the engine's output
        self.map_name = (
            "confidence_map" if self.discriminator_target == DiscriminatorTarget.REAL_FAKE else "correctness_map"
        )

    def discriminator_logits(self, critic: Critic, image: torch.Tensor, probabilities: torch.Tensor) -> torch.Tensor:
        """The discriminator's per-pixel logits ``(B, 1, *spatial)`` of (image, soft prediction).

        A critic that returns a list (MONAI's ``PatchDiscriminator``) gives its last element; logits
        at another resolution are resized (linear interpolation) to the prediction's.
        """
        if self.concatenate:
            out = critic(torch.cat([image, probabilities.to(image.dtype)], dim=1))
        else:
            out = critic(image, probabilities)
        if isinstance(out, (list, tuple)):
            if not out:
                raise ValueError("the discriminator returned an empty list of outputs.")
            out = out[-1]
        if out.shape[1] != 1:
            raise ValueError(f"the discriminator must give one channel of logits, got {tuple(out.shape)}.")
        size = tuple(probabilities.shape[2:])
        if tuple(out.shape[2:]) != size:
            mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[len(size)]
            out = F.interpolate(out, size=size, mode=mode, align_corners=False)
        return out

    def critic_loss(self, critic: Critic, image: torch.Tensor, logits: torch.Tensor, label: Any) -> ObjectiveOutput:
        """:math:`L_D` (``logits`` detached): BCE of the discriminator's logits against the correctness
        target, or (``"real_fake"``) the mean of the BCE of the ground truth against 1 and of the
        prediction against 0. The terms hold ``correct_fraction`` (both) and ``d_real``, ``d_fake``
        (``"real_fake"``)."""
        target, valid = correctness_target(logits, label, self.ignore_index)
        d = self.discriminator_logits(critic, image, class_probabilities(logits))
        correct = (target.sum() / valid.sum().clamp_min(1)).detach()
        if self.discriminator_target == DiscriminatorTarget.CORRECTNESS:
            loss = _masked_bce(d, target, valid)
            return ObjectiveOutput(loss, {self.map_name: torch.sigmoid(d).detach()}, {"correct_fraction": correct})
        real, _ = target_probabilities(label, logits, self.ignore_index)
        d_real = _masked_bce(self.discriminator_logits(critic, image, real), torch.ones_like(d), valid)
        d_fake = _masked_bce(d, torch.zeros_like(d), valid)
        return ObjectiveOutput(
            0.5 * (d_real + d_fake),
            {self.map_name: torch.sigmoid(d).detach()},
            {"correct_fraction": correct, "d_real": d_real.detach(), "d_fake": d_fake.detach()},
        )

    def segmenter_loss(
        self, critic: Critic, image: torch.Tensor, logits: torch.Tensor, label: Any, adversarial: bool = True
    ) -> ObjectiveOutput:
        """:math:`L_G` of a labelled batch (only :math:`L_{sup}` when ``adversarial`` is False)."""
        sup = self.loss(logits, label)
        if not adversarial or self.lambda_adv == 0:
            return ObjectiveOutput(sup, terms={"supervised": sup.detach(), "adv": torch.zeros_like(sup).detach()})
        _, valid = target_probabilities(label, logits, self.ignore_index)
        d = self.discriminator_logits(critic, image, class_probabilities(logits))
        adv = _masked_bce(d, torch.ones_like(d), valid)
        return ObjectiveOutput(
            sup + self.lambda_adv * adv,
            maps={self.map_name: torch.sigmoid(d).detach()},
            terms={"supervised": sup.detach(), "adv": adv.detach()},
        )

    def unlabeled_loss(
        self,
        critic: Critic,
        image: torch.Tensor,
        logits: torch.Tensor,
        adversarial: bool = True,
        self_training: bool = False,
    ) -> ObjectiveOutput:
        """:math:`L_G^u` of an unlabelled batch: the adversarial term (if ``adversarial``) plus the
        self-training term (if ``self_training`` and ``lambda_semi > 0``); ``critic`` is frozen.

        Returns:
            The loss and the terms ``unlabeled_adv``, ``self_training`` and ``pseudo_label_fraction``
            (the fraction of pixels above the threshold; 0 when self-training is off).
        """
        d = self.discriminator_logits(critic, image, class_probabilities(logits))
        zero = logits.new_zeros(())
        adv = _masked_bce(d, torch.ones_like(d)) if adversarial else zero
        loss = self.lambda_unlabeled * adv
        semi, fraction = zero, zero
        if self_training and self.lambda_semi > 0:
            trusted = torch.sigmoid(d.detach()) > self.semi_threshold  # (B, 1, *spatial)
            ce, _ = cross_entropy_map(logits, _hard_prediction(logits.detach()))
            m = trusted[:, 0].to(ce.dtype)
            semi = (ce * m).sum() / m.sum().clamp_min(1.0)
            fraction = m.mean()
            loss = loss + self.lambda_semi * semi
        return ObjectiveOutput(
            loss,
            terms={
                "unlabeled_adv": adv.detach(),
                "self_training": semi.detach(),
                "pseudo_label_fraction": fraction.detach(),
            },
        )

    def critic_map(self, critic: Critic, image: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """The correctness (or, ``"real_fake"``, confidence) map :math:`\\sigma(D(x, s(x)))` ``(B, 1, *spatial)``."""
        return torch.sigmoid(self.discriminator_logits(critic, image, class_probabilities(logits)))


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
    fires after both phases.

    - The unlabelled loader is cycled on its own: when it runs out it starts again (with
      ``set_epoch`` on its sampler, for a ``DistributedSampler``); the epoch length is the labelled
      loader's (or ``epoch_length``).
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
        objective: an objective with an ``unlabeled_loss`` method
            (:class:`SemiSupervisedAdversarialObjective`).
        unlabeled_batches: unlabelled batches per labelled batch (0: no unsupervised phase, i.e.
            supervised adversarial training).
        self_training_start_iteration: first iteration with self-training.
        kwargs: the other arguments of :class:`~monai_gamble.engines.SegmenterCriticTrainer`
            (``critic_warmup_iterations``, ``ce_only_epochs``, ``alternation``, ``epoch_length``,
            ``inferer``, ``amp``, ``accumulation_steps``, handlers and metrics, ...).

    Raises:
        TypeError: if the objective has no ``unlabeled_loss``.
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
        objective: CriticObjective,
        unlabeled_batches: int = 1,
        self_training_start_iteration: int = 0,
        **kwargs: Any,
    ) -> None:
        if not callable(getattr(objective, "unlabeled_loss", None)):
            raise TypeError(
                f"{type(objective).__name__} has no unlabeled_loss(critic, image, logits, adversarial, self_training); "
                "use SemiSupervisedAdversarialObjective."
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
        if getattr(objective, "schedule", SemiSupervisedSchedule.INTERLEAVED) == SemiSupervisedSchedule.TWO_STAGE:
            stage_epochs = int(objective.labeled_stage_epochs)  # type: ignore[attr-defined]
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
        self._unlabeled_epoch = 0
        self._hold_model_completed = False
        self._defer_epoch_end = False
        self._segmenter_passes_left = 0

    def run(self) -> None:  # type: ignore[override]
        """Train; the unlabelled loader starts from its beginning."""
        self._unlabeled_iter = None
        self._unlabeled_epoch = 0
        super().run()

    def fire_event(self, event_name: Any) -> None:
        """Fire an event; ``MODEL_COMPLETED`` of the supervised phase is held back until the
        unsupervised phase is done."""
        if self._hold_model_completed and event_name == IterationEvents.MODEL_COMPLETED:
            return
        super().fire_event(event_name)

    def next_unlabeled_batch(self) -> Any:
        """The next batch of the unlabelled loader, which restarts when it runs out."""
        if self._unlabeled_iter is not None:
            try:
                return next(self._unlabeled_iter)
            except StopIteration:
                self._unlabeled_epoch += 1
        sampler = getattr(self.unlabeled_data_loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(self._unlabeled_epoch)
        self._unlabeled_iter = iter(self.unlabeled_data_loader)  # type: ignore[arg-type]
        try:
            return next(self._unlabeled_iter)
        except StopIteration:
            raise ValueError("the unlabelled data loader gave no batch: it is empty.") from None

    def stage(self, iteration: int) -> SemiSupervisedSchedule | str:
        """The stage of a (1-based, global) iteration: ``"interleaved"`` (both phases every iteration), or,
        with the objective's two-stage schedule, ``"labeled"`` or ``"unlabeled"``."""
        objective: Any = self.objective
        if getattr(objective, "schedule", SemiSupervisedSchedule.INTERLEAVED) != SemiSupervisedSchedule.TWO_STAGE:
            return SemiSupervisedSchedule.INTERLEAVED
        length = self.state.epoch_length
        epoch = (iteration - 1) // length + 1 if length else self.state.epoch
        return "labeled" if epoch <= objective.labeled_stage_epochs else "unlabeled"

    def schedule(self, iteration: int) -> tuple[bool, bool]:
        """Which networks ``(segmenter, critic)`` the supervised phase updates: as the two-network
        engine, and neither in the unlabelled stage of a two-stage schedule."""
        if self.stage(iteration) == "unlabeled":
            return False, False
        return super().schedule(iteration)

    def _unlabeled_plan(self, engine: SemiSupervisedAdversarialTrainer) -> tuple[bool, bool, bool]:
        """For the current iteration: ``(update_segmenter, adversarial, self_training)`` of the unsupervised phase."""
        iteration = engine.state.iteration
        stage = engine.stage(iteration)
        if stage == "labeled":
            return False, False, False
        update_seg = stage == "unlabeled" or engine.schedule(iteration)[0]
        objective: Any = engine.objective
        adversarial = engine.state.epoch > engine.ce_only_epochs and getattr(objective, "lambda_unlabeled", 1.0) > 0
        self_training = objective.lambda_semi > 0 and iteration >= engine.self_training_start_iteration
        return update_seg, adversarial, self_training

    def _epoch_end(self, engine: SemiSupervisedAdversarialTrainer) -> bool:  # type: ignore[override]
        """The end of an epoch, except for segmenter passes followed by more in the same iteration
        (so that with accumulation the iteration's passes still add up to one step)."""
        return not engine._defer_epoch_end and super()._epoch_end(engine)

    def _backward(
        self, engine: SemiSupervisedAdversarialTrainer, loss: torch.Tensor, scaler: Any, names_optimizers: Any
    ) -> None:  # type: ignore[override]
        segmenter = any(name == "segmenter" for name, _ in names_optimizers)
        engine._defer_epoch_end = segmenter and engine._segmenter_passes_left > 0
        try:
            super()._backward(engine, loss, scaler, names_optimizers)
        finally:
            engine._defer_epoch_end = False
        if segmenter:
            engine._segmenter_passes_left -= 1

    def _unlabeled_phase(self, engine: SemiSupervisedAdversarialTrainer) -> None:
        """The unsupervised phase: ``unlabeled_batches`` segmenter passes through the frozen critic."""
        update_seg, adversarial, self_training = engine._unlabeled_plan(engine)
        objective: Any = engine.objective
        totals: dict[str, torch.Tensor] = {
            key: torch.zeros((), device=engine.state.device)
            for key in ("unlabeled_loss", *getattr(objective, "unlabeled_terms", ()))
        }
        if engine.unlabeled_batches == 0 or not (adversarial or self_training):
            engine.state.output.update(totals)
            return
        for _ in range(engine.unlabeled_batches):
            batch = engine.prepare_batch(
                engine.next_unlabeled_batch(), engine.state.device, engine.non_blocking, **engine.to_kwargs
            )
            inputs = batch[0]
            grad_ctx = contextlib.nullcontext() if update_seg else torch.no_grad()
            with grad_ctx, engine._autocast(engine):
                logits = engine.inferer(inputs, engine.network)
                out = objective.unlabeled_loss(frozen(engine.critic), inputs, logits, adversarial, self_training)
            if update_seg:
                engine._zero_grad(engine, "segmenter", engine.optimizer)
                engine._backward(engine, out.loss, engine.scaler, [("segmenter", engine.optimizer)])
            for key, value in {"unlabeled_loss": out.loss, **out.terms}.items():
                totals[key] = totals[key] + value.detach().float().to(totals[key].device) / engine.unlabeled_batches
        engine.state.output.update(totals)

    def _iteration(self, engine: SemiSupervisedAdversarialTrainer, batchdata: dict[str, torch.Tensor]) -> dict:  # type: ignore[override]
        """The supervised phase on the labelled batch, then the unsupervised phase; returns ``engine.state.output``."""
        update_seg, adversarial, self_training = engine._unlabeled_plan(engine)
        unsupervised = engine.unlabeled_batches > 0 and (adversarial or self_training)
        # segmenter backward passes of this iteration after the first (the last one may end the epoch)
        passes = int(engine.schedule(engine.state.iteration)[0]) + (
            engine.unlabeled_batches if update_seg and unsupervised else 0
        )
        engine._segmenter_passes_left = max(passes - 1, 0)
        engine._hold_model_completed = True
        try:
            super()._iteration(engine, batchdata)
        finally:
            engine._hold_model_completed = False
        engine._unlabeled_phase(engine)
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output
