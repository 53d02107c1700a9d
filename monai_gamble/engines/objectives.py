r"""Objectives of two-network (segmenter + critic) training.

Gambling nets, conventional adversarial training, adversarial confidence learning, SegAN and
semi-supervised adversarial learning are all "a segmenter and a critic that sees (image,
prediction)"; they differ only in the losses. An objective computes them;
:class:`~monai_gamble.engines.SegmenterCriticTrainer` (and, with unlabelled images,
:class:`~monai_gamble.engines.SemiSupervisedAdversarialTrainer`) runs the forward and backward
passes, the schedule, AMP, gradient accumulation and DDP, the same for all.

Every objective calls its critic through :func:`call_critic` (how the pair is fed, the last of a list
of outputs, logits resized to the prediction), and returns :func:`supervised_only` while the
segmenter is not adversarial yet (``ce_only_epochs``).

Semi-supervised adversarial segmentation: Lalwani, "DeepLab with adversarial loss for
semi-supervised semantic segmentation of Medical Images" (University at Buffalo): a DeepLabV3+
generator and a fully convolutional discriminator that tells, per pixel, whether the segmentation is
correct; labelled images train both, then unlabelled images train the generator alone through the
discriminator, which is no longer trained. Hung et al., "Adversarial Learning for Semi-Supervised
Semantic Segmentation" (BMVC 2018) train a per-pixel real/fake discriminator, interleave labelled and
unlabelled batches in every iteration, and add self-training on the pixels the discriminator trusts.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from monai.losses import DiceLoss
from monai.utils import StrEnum, look_up_option
from torch import nn

from ..losses import (
    CrossEntropyLoss,
    GamblingLoss,
    adversarial_bce,
    betting_map,
    class_probabilities,
    confidence_weighted_cross_entropy,
    cross_entropy_map,
    last_output,
    masked_critic_input,
    multiscale_l1,
    target_probabilities,
)
from ..networks.utils import linear_resize

__all__ = [
    "AdversarialObjective",
    "ConfidenceObjective",
    "CriticInput",
    "CriticObjective",
    "DiscriminatorTarget",
    "GamblingObjective",
    "ObjectiveOutput",
    "SegANObjective",
    "SemiSupervisedAdversarialObjective",
    "SemiSupervisedObjective",
    "SemiSupervisedSchedule",
    "call_critic",
    "correctness_target",
    "supervised_only",
    "with_critic_map",
]

#: A critic as the objectives call it: ``critic(image, prediction) -> tensor``.
Critic = Callable[..., torch.Tensor] | nn.Module


class ObjectiveOutput(NamedTuple):
    """What an objective returns for one network.

    Attributes:
        loss: the scalar to minimise (with its graph).
        maps: per-pixel maps ``(B, 1, *spatial)`` to expose in ``engine.state.output`` (detached),
            e.g. ``{"betting_map": w}``.
        terms: scalar components of the loss to expose (detached), e.g. ``{"ce": ..., "bet_ce": ...}``.
        critic_loss: for a segmenter loss, the critic's loss computed from the same forward pass
            when the objective can (needed by the fused step), else None.
    """

    loss: torch.Tensor
    maps: Mapping[str, torch.Tensor] = {}
    terms: Mapping[str, torch.Tensor] = {}
    critic_loss: torch.Tensor | None = None


def supervised_only(loss: torch.Tensor, name: str = "ce", **terms: torch.Tensor) -> ObjectiveOutput:
    """The segmenter's output while it is not adversarial yet (``adversarial=False``: the trainer's
    ``ce_only_epochs``): the supervised loss alone, exposed as the term ``name`` (with ``terms``, e.g.
    an adversarial term of zero), and no critic needed.

    Example:
        >>> supervised_only(ce)  # ObjectiveOutput(ce, terms={"ce": ce.detach()})
    """
    return ObjectiveOutput(loss, terms={name: loss.detach(), **{k: v.detach() for k, v in terms.items()}})


def with_critic_map(keys: Sequence[str], objective: CriticObjective | None, critic: Any) -> list[str]:
    """``keys`` and, when there is a critic and its objective has a per-pixel map, the map's key
    (``objective.map_name``): the keys of an evaluator's output to draw or invert, for a method with or
    without a critic (a config's ``critic`` may be null).

    Example:
        >>> with_critic_map(["prob"], GamblingObjective(), gambler)  # ["prob", "betting_map"]
    """
    name = getattr(objective, "map_name", None) if critic is not None else None
    return [*keys, name] if name else list(keys)


class CriticInput(StrEnum):
    """How an objective feeds (image, prediction) to its critic (:func:`call_critic`).

    - ``"pair"``: ``critic(image, prediction)`` (:class:`~monai_gamble.networks.nets.Gambler`, the
      confidence network);
    - ``"concatenate"``: ``critic(cat([image, prediction], 1))`` (MONAI's ``PatchDiscriminator``,
      :class:`~monai_gamble.networks.nets.FCDiscriminator`);
    - ``"masked"``: ``critic(masked_critic_input(image, prediction))``, the image masked by each
      foreground class map (SegAN, :func:`~monai_gamble.losses.masked_critic_input`).
    """

    PAIR = "pair"
    CONCATENATE = "concatenate"
    MASKED = "masked"


def call_critic(
    critic: Critic,
    image: torch.Tensor,
    prediction: torch.Tensor,
    critic_input: CriticInput | str = CriticInput.PAIR,
    size: Sequence[int] | None = None,
    all_outputs: bool = False,
    with_input: bool = False,
) -> Any:
    """Call a critic on (image, prediction), the one way every objective does.

    Args:
        critic: the critic (its weights frozen or not: the caller decides, see
            :func:`~monai_gamble.engines.frozen`).
        image: ``(B, K, *spatial)``.
        prediction: ``(B, C, *spatial)`` soft prediction or one-hot label (cast to the image's dtype
            when concatenated).
        critic_input: how the two are fed (:class:`CriticInput`).
        size: resize the logits linearly to this spatial size when they differ
            (:func:`~monai_gamble.networks.utils.linear_resize`; a PatchGAN's logits are coarser
            than the prediction); None: as the critic gives them.
        all_outputs: return every output of a critic that returns a list (SegAN's multi-scale
            features; a tensor output becomes a list of one) instead of the last one.
        with_input: also return the tuple of tensors the critic was called on (SegAN counts its
            masked image as the pixel-level feature).

    Returns:
        The critic's logits (the last element of a list output, as MONAI's ``PatchDiscriminator``
        returns every layer's output), or with ``all_outputs`` the list of its outputs; with
        ``with_input``, ``(critic inputs, that)``.

    Raises:
        ValueError: for an unknown ``critic_input`` or a critic that returns an empty list.
    """
    mode = look_up_option(critic_input, CriticInput)
    if mode == CriticInput.CONCATENATE:
        inputs: tuple[torch.Tensor, ...] = (torch.cat([image, prediction.to(image.dtype)], dim=1),)
    elif mode == CriticInput.MASKED:
        inputs = (masked_critic_input(image, prediction),)
    else:
        inputs = (image, prediction)
    out = critic(*inputs)
    if all_outputs:
        out = list(out) if isinstance(out, (list, tuple)) else [out]
    else:
        out = last_output(out)
        out = out if size is None else linear_resize(out, size)
    return (inputs, out) if with_input else out


class CriticObjective(ABC):
    """The two losses of one segmenter-critic method.

    Subclasses implement :meth:`critic_loss` and :meth:`segmenter_loss`; both receive the
    segmenter's *logits* ``(B, C, *spatial)`` (the trainer detaches them for the critic's loss) and
    the labels as the data loader gives them. The critic passed to :meth:`segmenter_loss` has its
    weights frozen (its input is not detached, so the segmenter gets gradient through it).

    Attributes:
        critic_name: name of the critic in ``engine.state.output`` (``"<critic_name>_loss"``).
        map_name: key of the critic's per-pixel map (:meth:`critic_map`), or None if it has none.
    """

    critic_name: str = "critic"
    map_name: str | None = None

    @abstractmethod
    def critic_loss(self, critic: Critic, image: torch.Tensor, logits: torch.Tensor, label: Any) -> ObjectiveOutput:
        """The critic's loss for one batch (``logits`` already detached)."""

    @abstractmethod
    def segmenter_loss(
        self, critic: Critic, image: torch.Tensor, logits: torch.Tensor, label: Any, adversarial: bool = True
    ) -> ObjectiveOutput:
        """The segmenter's loss for one batch; ``adversarial=False`` during the supervised-only
        warm-up epochs (then the critic must not be needed)."""

    def critic_map(self, critic: Critic, image: torch.Tensor, logits: torch.Tensor) -> torch.Tensor | None:
        """The critic's per-pixel map ``(B, 1, *spatial)`` for figures, or None."""
        return None

    def after_critic_step(self, critic: nn.Module) -> None:  # noqa: B027 - an optional hook, a no-op by default
        """Called by the trainer after each optimizer step of the critic (e.g. SegAN's weight clipping)."""

    @property
    def fused_critic_grad_scale(self) -> float | None:
        """If the critic's loss gradient equals ``s`` times the gradient of the segmenter's loss
        with respect to the critic's weights, ``s``; the trainer can then get both networks'
        gradients from one backward pass (the *fused* step). None if that does not hold."""
        return None


class GamblingObjective(CriticObjective):
    """Gambling adversarial nets (Samson et al. 2019; Bakhtiariziabari & Ghafoorian, eqs. 5-7)
    as an objective of :class:`~monai_gamble.engines.SegmenterCriticTrainer`.

    The critic is a gambler (:class:`monai_gamble.networks.nets.Gambler`) called as
    ``gambler(image, class_probabilities(logits))``. Its loss is
    :attr:`GamblingLossOutput.gambler_loss`, the segmenter's is
    :attr:`GamblingLossOutput.seg_loss` (:class:`monai_gamble.losses.GamblingLoss`); during the
    supervised-only warm-up epochs the segmenter's loss is the plain (class-weighted)
    cross-entropy.

    Because the gambler's loss is :math:`-L_{bet}` with the cross-entropy detached, its gradient is
    :math:`-1/\\lambda_{bet}` times the gradient of the segmenter's loss with respect to the
    gambler's weights: :attr:`fused_critic_grad_scale` lets the trainer compute both in one
    backward pass.

    Args:
        loss: a :class:`~monai_gamble.losses.GamblingLoss`; if None, one is built from ``loss_kwargs``.
        loss_kwargs: arguments of :class:`~monai_gamble.losses.GamblingLoss` (``lambda_ce``,
            ``lambda_bet``, ``beta``, ``activation``, ``weight``, ``ignore_index``, ``budget``).

    Example:
        >>> objective = GamblingObjective(lambda_bet=1.0, beta=0.02, activation="sigmoid")
    """

    critic_name = "gambler"
    map_name = "betting_map"

    def __init__(self, loss: GamblingLoss | None = None, **loss_kwargs: Any) -> None:
        if loss is not None and loss_kwargs:
            raise ValueError("give either a GamblingLoss or its arguments, not both.")
        self.loss = GamblingLoss(**loss_kwargs) if loss is None else loss
        self.ce = CrossEntropyLoss(weight=self.loss.class_weight, ignore_index=self.loss.ignore_index)

    def _bet(self, critic: Critic, image: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return call_critic(critic, image, class_probabilities(logits))

    def critic_loss(self, critic: Critic, image: torch.Tensor, logits: torch.Tensor, label: Any) -> ObjectiveOutput:
        out = self.loss(logits, label, self._bet(critic, image, logits))
        return ObjectiveOutput(out.gambler_loss, {self.map_name: out.betting_map.detach()})

    def segmenter_loss(
        self, critic: Critic, image: torch.Tensor, logits: torch.Tensor, label: Any, adversarial: bool = True
    ) -> ObjectiveOutput:
        if not adversarial:
            return supervised_only(self.ce(logits, label))
        out = self.loss(logits, label, self._bet(critic, image, logits))
        return ObjectiveOutput(
            out.seg_loss,
            maps={self.map_name: out.betting_map.detach()},
            terms={"ce": out.ce.detach(), "bet_ce": out.bet_ce.detach()},
            critic_loss=out.gambler_loss.detach(),
        )

    def critic_map(self, critic: Critic, image: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """The normalised betting map ``(B, 1, *spatial)`` (mean 1 per image, or the loss's ``budget``)."""
        return betting_map(
            self._bet(critic, image, logits), self.loss.beta, self.loss.activation, budget=self.loss.budget
        )

    @property
    def fused_critic_grad_scale(self) -> float | None:
        return -1.0 / self.loss.lambda_bet if self.loss.lambda_bet > 0 else None


class AdversarialObjective(CriticObjective):
    r"""Conventional adversarial training for segmentation (Luc et al., "Semantic Segmentation using
    Adversarial Networks", 2016), as an objective of
    :class:`~monai_gamble.engines.SegmenterCriticTrainer`.

    A discriminator :math:`D` tells (image, one-hot label) as real from (image, softmax
    prediction) as fake; the segmenter minimises its cross-entropy plus the non-saturating
    adversarial term:

    .. math::
        L_D = \tfrac12\big[\mathrm{BCE}(D(x, y), 1) + \mathrm{BCE}(D(x, \mathrm{sg}(s(x))), 0)\big], \qquad
        L_S = L_{ce} + \lambda\, \mathrm{BCE}(D(x, s(x)), 1).

    The default critic is MONAI's ``PatchDiscriminator`` on the concatenation of image and
    prediction (``concatenate=True``; it returns all layers' outputs, the last being the logits);
    any module returning logits (or such a list) works.

    Args:
        lambda_adv: weight of the adversarial term (0.01, as in the thyroid paper's comparison).
        weight: optional class weights of the cross-entropy.
        ignore_index: label value of pixels that count nowhere (zeroed in both critic inputs).
        concatenate: call the critic on ``cat([image, prediction])`` (True) or as
            ``critic(image, prediction)`` (False).
    """

    critic_name = "discriminator"

    def __init__(
        self,
        lambda_adv: float = 0.01,
        weight: Any = None,
        ignore_index: int | None = None,
        concatenate: bool = True,
    ) -> None:
        if not lambda_adv >= 0:
            raise ValueError(f"lambda_adv must be non-negative, got {lambda_adv}.")
        self.lambda_adv = float(lambda_adv)
        self.ignore_index = ignore_index
        self.concatenate = concatenate
        self.critic_input = CriticInput.CONCATENATE if concatenate else CriticInput.PAIR
        self.ce = CrossEntropyLoss(weight=weight, ignore_index=ignore_index)

    def _fake_real(self, logits: torch.Tensor, label: Any) -> tuple[torch.Tensor, torch.Tensor]:
        real, valid = target_probabilities(label, logits, self.ignore_index)
        return class_probabilities(logits) * valid, real

    def critic_loss(self, critic: Critic, image: torch.Tensor, logits: torch.Tensor, label: Any) -> ObjectiveOutput:
        fake, real = self._fake_real(logits, label)
        d_real = adversarial_bce(call_critic(critic, image, real, self.critic_input), real=True)
        d_fake = adversarial_bce(call_critic(critic, image, fake, self.critic_input), real=False)
        return ObjectiveOutput(0.5 * (d_real + d_fake), terms={"d_real": d_real.detach(), "d_fake": d_fake.detach()})

    def segmenter_loss(
        self, critic: Critic, image: torch.Tensor, logits: torch.Tensor, label: Any, adversarial: bool = True
    ) -> ObjectiveOutput:
        ce = self.ce(logits, label)
        if not adversarial:
            return supervised_only(ce)
        fake, _ = self._fake_real(logits, label)
        adv = adversarial_bce(call_critic(critic, image, fake, self.critic_input), real=True)
        return ObjectiveOutput(ce + self.lambda_adv * adv, terms={"ce": ce.detach(), "adv": adv.detach()})


class ConfidenceObjective(CriticObjective):
    r"""Adversarial confidence learning (Nie et al., "Difficulty-aware Attention Network with
    Confidence Learning for Medical Image Segmentation", AAAI 2019; Nie & Shen, IJCV 2020), as an
    objective of :class:`~monai_gamble.engines.SegmenterCriticTrainer`.

    A fully convolutional confidence network :math:`D` (e.g.
    :class:`monai_gamble.networks.nets.ConfidenceNetwork`) gives a per-pixel logit of how *real*
    (ground-truth-like) the label map looks; its sigmoid :math:`c = \sigma(D(x, s(x)))` is the
    confidence map. With the per-pixel cross-entropy :math:`\ell_j` and class weight
    :math:`\omega_j`,

    .. math::
        L_D = \tfrac12\big[\mathrm{BCE}(D(x, y), 1) + \mathrm{BCE}(D(x, \mathrm{sg}(s(x))), 0)\big],

    .. math::
        L_S = \lambda_{adv}\, \mathrm{BCE}(D(x, s(x)), 1)
        + \frac{\sum_j \mathrm{sg}(1 - c_j)^{\gamma} \omega_j \ell_j}{\sum_j \omega_j}

    (:func:`~monai_gamble.losses.confidence_weighted_cross_entropy`; the weight is per pixel).
    During supervised-only warm-up epochs the segmenter's loss is the plain cross-entropy. The map
    exposed for figures is the confidence :math:`c` (the paper's Fig. 2 shows :math:`1 - c` as the
    uncertainty).

    Args:
        lambda_adv: weight of the adversarial term (0.05).
        gamma: focusing exponent of the confidence weight (2).
        weight: optional class weights of the cross-entropy.
        ignore_index: label value of pixels that count nowhere.
    """

    critic_name = "confidence"
    map_name = "confidence_map"

    def __init__(
        self, lambda_adv: float = 0.05, gamma: float = 2.0, weight: Any = None, ignore_index: int | None = None
    ) -> None:
        if not lambda_adv >= 0 or not gamma >= 0:
            raise ValueError(f"lambda_adv and gamma must be non-negative, got {lambda_adv}, {gamma}.")
        self.lambda_adv = float(lambda_adv)
        self.gamma = float(gamma)
        self.weight = weight
        self.ignore_index = ignore_index
        self.ce = CrossEntropyLoss(weight=weight, ignore_index=ignore_index)

    def critic_loss(self, critic: Critic, image: torch.Tensor, logits: torch.Tensor, label: Any) -> ObjectiveOutput:
        real, valid = target_probabilities(label, logits, self.ignore_index)
        d_real = call_critic(critic, image, real)
        d_fake = call_critic(critic, image, class_probabilities(logits) * valid)
        loss = 0.5 * (adversarial_bce(d_real, real=True) + adversarial_bce(d_fake, real=False))
        return ObjectiveOutput(loss, {self.map_name: torch.sigmoid(d_fake).detach()})

    def segmenter_loss(
        self, critic: Critic, image: torch.Tensor, logits: torch.Tensor, label: Any, adversarial: bool = True
    ) -> ObjectiveOutput:
        if not adversarial:
            return supervised_only(self.ce(logits, label))
        _, valid = target_probabilities(label, logits, self.ignore_index)
        d = call_critic(critic, image, class_probabilities(logits) * valid)
        confidence = torch.sigmoid(d)
        adv = adversarial_bce(d, real=True)
        weighted = confidence_weighted_cross_entropy(
            logits, label, confidence, self.gamma, self.weight, self.ignore_index
        )
        return ObjectiveOutput(
            self.lambda_adv * adv + weighted,
            maps={self.map_name: confidence.detach()},
            terms={"adv": adv.detach(), "weighted_ce": weighted.detach()},
        )

    def critic_map(self, critic: Critic, image: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        r"""The confidence map :math:`\sigma(D(x, s(x)))` ``(B, 1, *spatial)``."""
        return torch.sigmoid(call_critic(critic, image, class_probabilities(logits)))


class SegANObjective(CriticObjective):
    r"""SegAN (Xue et al., "SegAN: Adversarial Network with Multi-scale L1 Loss for Medical Image
    Segmentation", Neuroinformatics 2018), as an objective of
    :class:`~monai_gamble.engines.SegmenterCriticTrainer`.

    The critic :math:`f` extracts multi-scale features of the image masked by a segmentation
    (:func:`~monai_gamble.losses.masked_critic_input`); MONAI's ``PatchDiscriminator`` returns the
    output of every layer, which are those features. With
    :math:`\ell_{mae} = \frac1L\sum_i \mathrm{mean}|f_i(x \odot s(x)) - f_i(x \odot y)|`
    (:func:`~monai_gamble.losses.multiscale_l1`, the masked input itself counted as the first scale),

    .. math::
        L_{critic} = -\ell_{mae}(\mathrm{sg}(s(x)), y), \qquad
        L_S = \lambda_{mae}\, \ell_{mae}(s(x), y) + \lambda_{dice}\, \mathrm{Dice}(s(x), y),

    the critic maximising the feature distance and the segmenter minimising it plus a soft Dice
    loss (MONAI's ``DiceLoss``); after each critic step its weights are clipped to
    :math:`[-c, c]` (c = 0.05), as in SegAN. During supervised-only warm-up epochs the segmenter's
    loss is the Dice term.

    Args:
        lambda_mae: weight of the multi-scale L1 term in the segmenter's loss.
        lambda_dice: weight of the Dice term.
        clip: weight clipping bound of the critic (None: no clipping).
        ignore_index: label value of pixels that count nowhere (zeroed in both masks).
    """

    critic_name = "critic"

    def __init__(
        self,
        lambda_mae: float = 1.0,
        lambda_dice: float = 1.0,
        clip: float | None = 0.05,
        ignore_index: int | None = None,
    ) -> None:
        if not lambda_mae >= 0 or not lambda_dice >= 0:
            raise ValueError(f"lambda_mae and lambda_dice must be non-negative, got {lambda_mae}, {lambda_dice}.")
        if clip is not None and not clip > 0:
            raise ValueError(f"clip must be positive or None, got {clip}.")
        self.lambda_mae = float(lambda_mae)
        self.lambda_dice = float(lambda_dice)
        self.clip = clip
        self.ignore_index = ignore_index

    def _features(self, critic: Critic, image: torch.Tensor, probabilities: torch.Tensor) -> list[torch.Tensor]:
        """The masked input (the pixel level) and every output of the critic on it."""
        (x,), outputs = call_critic(critic, image, probabilities, CriticInput.MASKED, all_outputs=True, with_input=True)
        return [x, *outputs]

    def _dice(self, logits: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        p = class_probabilities(logits)
        include_background = p.shape[1] == 1
        return DiceLoss(include_background=include_background)(p, real)

    def critic_loss(self, critic: Critic, image: torch.Tensor, logits: torch.Tensor, label: Any) -> ObjectiveOutput:
        real, valid = target_probabilities(label, logits, self.ignore_index)
        fake = class_probabilities(logits) * valid
        mae = multiscale_l1(self._features(critic, image, fake), self._features(critic, image, real))
        return ObjectiveOutput(-mae, terms={"mae": mae.detach()})

    def segmenter_loss(
        self, critic: Critic, image: torch.Tensor, logits: torch.Tensor, label: Any, adversarial: bool = True
    ) -> ObjectiveOutput:
        real, valid = target_probabilities(label, logits, self.ignore_index)
        dice = self._dice(logits, real)
        if not adversarial:
            return supervised_only(dice, "dice")
        fake = class_probabilities(logits) * valid
        mae = multiscale_l1(self._features(critic, image, fake), self._features(critic, image, real))
        return ObjectiveOutput(
            self.lambda_mae * mae + self.lambda_dice * dice, terms={"mae": mae.detach(), "dice": dice.detach()}
        )

    def after_critic_step(self, critic: nn.Module) -> None:
        """Clip the critic's weights to ``[-clip, clip]``."""
        if self.clip is None:
            return
        with torch.no_grad():
            for p in critic.parameters():
                p.clamp_(-self.clip, self.clip)


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
    """Mean binary cross-entropy with logits over the valid pixels (0 when none is valid): torch's
    ``binary_cross_entropy_with_logits`` with the mask as its per-element ``weight``, summed and divided
    by the number of valid pixels."""
    if valid is None:
        return F.binary_cross_entropy_with_logits(logits.float(), target.float())
    v = valid.float()
    return F.binary_cross_entropy_with_logits(
        logits.float(), target.float(), weight=v, reduction="sum"
    ) / v.sum().clamp_min(1.0)


class SemiSupervisedObjective(CriticObjective):
    """The losses of a semi-supervised segmenter-critic method: :class:`CriticObjective`'s two losses on
    labelled batches, and :meth:`unlabeled_loss`, the segmenter's loss on an unlabelled batch through
    the frozen critic (run by :class:`~monai_gamble.engines.SemiSupervisedAdversarialTrainer`).

    Attributes:
        unlabeled_terms: the names of the terms of :meth:`unlabeled_loss`, published by the trainer as
            zeros in iterations that skip the unsupervised phase (so that every iteration's output has
            the same keys).
        schedule: how labelled and unlabelled batches alternate (:class:`SemiSupervisedSchedule`).
        labeled_stage_epochs: the epochs of the labelled stage of ``"two_stage"`` (None otherwise).
    """

    unlabeled_terms: tuple[str, ...] = ()
    schedule: SemiSupervisedSchedule = SemiSupervisedSchedule.INTERLEAVED
    labeled_stage_epochs: int | None = None

    @abstractmethod
    def unlabeled_loss(
        self,
        critic: Critic,
        image: torch.Tensor,
        logits: torch.Tensor,
        adversarial: bool = True,
        self_training: bool = False,
    ) -> ObjectiveOutput:
        """The segmenter's loss on an unlabelled batch (``critic`` frozen): its adversarial term when
        ``adversarial``, its self-training term when ``self_training``; the terms named
        :attr:`unlabeled_terms`."""

    @property
    def uses_unlabeled_adversarial(self) -> bool:
        """Whether :meth:`unlabeled_loss` has an adversarial term (its weight is not zero)."""
        return True

    @property
    def uses_self_training(self) -> bool:
        """Whether :meth:`unlabeled_loss` has a self-training term (its weight is not zero)."""
        return False


class SemiSupervisedAdversarialObjective(SemiSupervisedObjective):
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
        self.critic_input = CriticInput.CONCATENATE if self.concatenate else CriticInput.PAIR
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
        """The discriminator's per-pixel logits ``(B, 1, *spatial)`` of (image, soft prediction)
        (:func:`call_critic`: a list output gives its last element; logits at another resolution are
        resized linearly to the prediction's).

        Raises:
            ValueError: for logits with more than one channel.
        """
        out = call_critic(critic, image, probabilities, self.critic_input, size=probabilities.shape[2:])
        if out.shape[1] != 1:
            raise ValueError(f"the discriminator must give one channel of logits, got {tuple(out.shape)}.")
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
            return supervised_only(sup, "supervised", adv=torch.zeros_like(sup))
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

    @property
    def uses_unlabeled_adversarial(self) -> bool:
        """Whether the unlabelled loss has its adversarial term (``lambda_unlabeled > 0``)."""
        return self.lambda_unlabeled > 0

    @property
    def uses_self_training(self) -> bool:
        """Whether the unlabelled loss has its self-training term (``lambda_semi > 0``)."""
        return self.lambda_semi > 0

    def critic_map(self, critic: Critic, image: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """The correctness (or, ``"real_fake"``, confidence) map :math:`\\sigma(D(x, s(x)))` ``(B, 1, *spatial)``."""
        return torch.sigmoid(self.discriminator_logits(critic, image, class_probabilities(logits)))
