"""Objectives of two-network (segmenter + critic) training.

Gambling nets, conventional adversarial training, adversarial confidence learning and SegAN are
all "a segmenter and a critic that sees (image, prediction)"; they differ only in the two losses.
An objective computes them; :class:`~monai_gamble.engines.SegmenterCriticTrainer` runs the
forward and backward passes, the schedule, AMP, gradient accumulation and DDP, the same for all.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import torch
from monai.losses import DiceLoss
from torch import nn

from ..losses import (
    CrossEntropyLoss,
    GamblingLoss,
    adversarial_bce,
    betting_map,
    class_probabilities,
    confidence_weighted_cross_entropy,
    masked_critic_input,
    multiscale_l1,
    target_probabilities,
)

__all__ = [
    "AdversarialObjective",
    "ConfidenceObjective",
    "CriticObjective",
    "GamblingObjective",
    "ObjectiveOutput",
    "SegANObjective",
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
        return critic(image, class_probabilities(logits))

    def critic_loss(self, critic: Critic, image: torch.Tensor, logits: torch.Tensor, label: Any) -> ObjectiveOutput:
        out = self.loss(logits, label, self._bet(critic, image, logits))
        return ObjectiveOutput(out.gambler_loss, {self.map_name: out.betting_map.detach()})

    def segmenter_loss(
        self, critic: Critic, image: torch.Tensor, logits: torch.Tensor, label: Any, adversarial: bool = True
    ) -> ObjectiveOutput:
        if not adversarial:
            ce = self.ce(logits, label)
            return ObjectiveOutput(ce, terms={"ce": ce.detach()})
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


def _critic_logits(critic: Critic, image: torch.Tensor, prediction: torch.Tensor, concatenate: bool) -> Any:
    return critic(torch.cat([image, prediction.to(image.dtype)], dim=1)) if concatenate else critic(image, prediction)


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
        self.ce = CrossEntropyLoss(weight=weight, ignore_index=ignore_index)

    def _fake_real(self, logits: torch.Tensor, label: Any) -> tuple[torch.Tensor, torch.Tensor]:
        real, valid = target_probabilities(label, logits, self.ignore_index)
        return class_probabilities(logits) * valid, real

    def critic_loss(self, critic: Critic, image: torch.Tensor, logits: torch.Tensor, label: Any) -> ObjectiveOutput:
        fake, real = self._fake_real(logits, label)
        d_real = adversarial_bce(_critic_logits(critic, image, real, self.concatenate), real=True)
        d_fake = adversarial_bce(_critic_logits(critic, image, fake, self.concatenate), real=False)
        return ObjectiveOutput(0.5 * (d_real + d_fake), terms={"d_real": d_real.detach(), "d_fake": d_fake.detach()})

    def segmenter_loss(
        self, critic: Critic, image: torch.Tensor, logits: torch.Tensor, label: Any, adversarial: bool = True
    ) -> ObjectiveOutput:
        ce = self.ce(logits, label)
        if not adversarial:
            return ObjectiveOutput(ce, terms={"ce": ce.detach()})
        fake, _ = self._fake_real(logits, label)
        adv = adversarial_bce(_critic_logits(critic, image, fake, self.concatenate), real=True)
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
        d_real = critic(image, real)
        d_fake = critic(image, class_probabilities(logits) * valid)
        loss = 0.5 * (adversarial_bce(d_real, real=True) + adversarial_bce(d_fake, real=False))
        return ObjectiveOutput(loss, {self.map_name: torch.sigmoid(d_fake).detach()})

    def segmenter_loss(
        self, critic: Critic, image: torch.Tensor, logits: torch.Tensor, label: Any, adversarial: bool = True
    ) -> ObjectiveOutput:
        if not adversarial:
            ce = self.ce(logits, label)
            return ObjectiveOutput(ce, terms={"ce": ce.detach()})
        _, valid = target_probabilities(label, logits, self.ignore_index)
        d = critic(image, class_probabilities(logits) * valid)
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
        return torch.sigmoid(critic(image, class_probabilities(logits)))


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
        x = masked_critic_input(image, probabilities)
        out = critic(x)
        return [x, *(out if isinstance(out, (list, tuple)) else [out])]

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
            return ObjectiveOutput(dice, terms={"dice": dice.detach()})
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
