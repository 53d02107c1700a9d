"""Gambling adversarial loss: a gambler's betting map re-weights the segmenter's cross-entropy.

Samson et al., "I Bet You Are Wrong: Gambling Adversarial Networks for Structured Semantic
Segmentation" (ICCV Workshops 2019); Bakhtiariziabari & Ghafoorian, "Gambling Adversarial Nets
for Hard Sample Mining and Structured Prediction: Application in Ultrasound Thyroid Nodule
Segmentation", eqs. 1 and 5 to 7.

The gambler sees the image and the segmenter's soft prediction and outputs betting logits
:math:`g`; with a fixed budget per image (the mean weight is 1) it bets on the pixels where it
expects the segmenter to be wrong. The gambler maximises the bet-weighted cross-entropy, the
segmenter minimises it (a minimax game), so the segmenter is pushed hardest where its mistakes are
predictable from the structure of its own prediction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from monai.utils import StrEnum, look_up_option
from torch.nn.modules.loss import _Loss

from .cross_entropy import cross_entropy_map

__all__ = ["BettingActivation", "GamblingLoss", "GamblingLossOutput", "betting_map", "class_probabilities"]


class BettingActivation(StrEnum):
    """How betting logits become non-negative stakes before the budget normalisation.

    - ``"sigmoid"``: :math:`\\sigma(g)`, bounded stakes (the original authors' code).
    - ``"exp"``: :math:`e^{g}`, the spatial softmax of eq. 6 of the thyroid paper.
    """

    SIGMOID = "sigmoid"
    EXP = "exp"


def class_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """The segmenter's soft prediction as the critic sees it: softmax over the C channels of
    ``(B, C, *spatial)`` logits, or the sigmoid of a single channel (``(B, 1, *spatial)``, the
    foreground probability). Never the argmax: the critic must see the segmenter's uncertainty,
    and the segmenter must get gradient through it."""
    if logits.ndim < 3:
        raise ValueError(f"logits must have shape (B, C, *spatial), got {tuple(logits.shape)}.")
    return torch.sigmoid(logits) if logits.shape[1] == 1 else torch.softmax(logits, dim=1)


def betting_map(
    logits: torch.Tensor,
    beta: float = 0.02,
    activation: BettingActivation | str = BettingActivation.SIGMOID,
    mask: torch.Tensor | None = None,
    budget: float | None = None,
) -> torch.Tensor:
    r"""Budget-normalised betting map of a gambler, per image.

    With betting logits :math:`g`, the activation :math:`a` (sigmoid or exp), the smoothing
    :math:`\beta \ge 0`, :math:`\Omega_i` the counted pixels of image :math:`i`
    (:math:`N_i = |\Omega_i|`) and the budget :math:`K_i` (default :math:`N_i`),

    .. math::
        w_{i,j} = K_i \, \frac{a(g_{i,j}) + \beta}{\sum_{k \in \Omega_i} (a(g_{i,k}) + \beta)}
        \quad (j \in \Omega_i), \qquad w_{i,j} = 0 \quad (j \notin \Omega_i),

    so every image has the same budget (with :math:`K_i = N_i` its mean weight over the counted
    pixels is 1) and the bet-weighted mean of a per-pixel loss is comparable to its plain mean.
    With ``"exp"`` this is eq. 6 of Bakhtiariziabari & Ghafoorian up to the factor :math:`N_i`,
    except for :math:`\beta`: printed inside the exponent it cancels out of the softmax, so here it
    is added after the activation, where it smooths the map (large :math:`\beta` makes it uniform).

    The map is computed in log space, as a softmax over the counted pixels of each image,

    .. math::
        w_{i,j} = K_i\, \operatorname{softmax}_{j \in \Omega_i}\big(\operatorname{logaddexp}
        (\log a(g_{i,j}), \log\beta)\big),

    with :math:`\log a(g) = g` for ``"exp"`` and :math:`\log\sigma(g)` (``logsigmoid``) for
    ``"sigmoid"``, so neither overflow nor underflow can break it: logits of :math:`\pm 10^4` give
    the same map as the exact formula (no NaN where :math:`\beta e^{-\max g}` would overflow, no
    all-zero map where every sigmoid underflows).

    The authors' code fixes the sum of each image's weights at a ``--budget`` (65536 by default,
    with 512x512 crops: a mean weight of :math:`65536 / 512^2 = 0.25`); ``budget`` does the same
    here (None: :math:`K_i = N_i`, which is their budget when it equals the pixel count).

    Args:
        logits: betting logits ``(B, 1, *spatial)``.
        beta: additive smoothing, non-negative (the authors' code uses 0.02 with ``"sigmoid"``).
        activation: ``"sigmoid"`` or ``"exp"`` (:class:`BettingActivation`).
        mask: optional boolean ``(B, 1, *spatial)`` (or ``(B, *spatial)``) of the counted pixels;
            pixels outside it (e.g. ``ignore_index`` labels) get no budget. An image without a
            counted pixel gets an all-zero map.
        budget: the sum of each image's weights, positive; None: the number of counted pixels.

    Returns:
        ``(B, 1, *spatial)`` float tensor of non-negative weights, differentiable in ``logits``.

    Raises:
        ValueError: for logits that are not ``(B, 1, *spatial)``, NaN or inf logits, a mask of another
            shape, a negative or non-finite ``beta``, or a budget that is not a positive number.

    Example:
        >>> w = betting_map(torch.randn(2, 1, 64, 64))
        >>> w.mean(dim=(1, 2, 3))  # tensor([1., 1.])
    """
    if logits.ndim < 3 or logits.shape[1] != 1:
        raise ValueError(f"betting logits must have shape (B, 1, *spatial), got {tuple(logits.shape)}.")
    beta = float(beta)
    if not (beta >= 0 and beta < float("inf")):
        raise ValueError(f"beta must be a finite non-negative number, got {beta}.")
    if budget is not None and not (float(budget) > 0 and math.isfinite(float(budget))):
        raise ValueError(f"budget must be a positive number (the sum of each image's weights) or None, got {budget}.")
    act = look_up_option(activation, BettingActivation)
    if not logits.is_floating_point():
        raise ValueError(f"betting logits must be a floating-point tensor, got {logits.dtype}.")
    g = logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits
    if not torch.isfinite(g).all():
        raise ValueError("betting logits hold NaN or inf values: the gambler diverged (lower its learning rate).")
    if mask is None:
        valid = torch.ones_like(g, dtype=torch.bool)
    else:
        valid = mask.unsqueeze(1) if mask.ndim == g.ndim - 1 else mask
        if valid.shape != g.shape:
            raise ValueError(f"mask of shape {tuple(mask.shape)} does not match the betting logits {tuple(g.shape)}.")
        valid = valid.bool()
    log_stake = F.logsigmoid(g) if act == BettingActivation.SIGMOID else g
    if beta > 0:
        log_stake = torch.logaddexp(log_stake, torch.tensor(math.log(beta), dtype=g.dtype, device=g.device))
    flat, v = log_stake.flatten(1), valid.flatten(1)
    # images without a counted pixel keep finite logits (their weights are zeroed below): no NaN
    flat = flat.masked_fill(~v & v.any(1, keepdim=True), float("-inf"))
    scale = v.sum(1, keepdim=True).to(g.dtype) if budget is None else float(budget)
    return (torch.softmax(flat, dim=1) * v * scale).reshape(g.shape)


class GamblingLossOutput(NamedTuple):
    """What :class:`GamblingLoss` returns.

    Attributes:
        seg_loss: the segmenter's loss (scalar), to minimise.
        gambler_loss: the gambler's loss (scalar), to minimise; its gradient reaches only the
            betting logits.
        betting_map: the normalised betting map ``(B, 1, *spatial)`` (:func:`betting_map`).
        ce: the plain (class-weighted) cross-entropy term (scalar).
        bet_ce: the bet-weighted cross-entropy term (scalar).
    """

    seg_loss: torch.Tensor
    gambler_loss: torch.Tensor
    betting_map: torch.Tensor
    ce: torch.Tensor
    bet_ce: torch.Tensor


class GamblingLoss(_Loss):
    """The two losses of gambling adversarial training (eqs. 1, 5-7 of Bakhtiariziabari &
    Ghafoorian; Samson et al. 2019).

    With the per-pixel cross-entropy :math:`\\ell_j` and class weight :math:`\\omega_j` of
    :func:`~monai_gamble.losses.cross_entropy_map` (0 on ignored pixels) and the betting map
    :math:`w_j` of :func:`betting_map`, over all pixels of the batch,

    .. math::
        L_{ce} = \\frac{\\sum_j \\omega_j \\ell_j}{\\sum_j \\omega_j}, \\qquad
        L_{bet} = \\frac{\\sum_j w_j \\omega_j \\ell_j}{\\sum_j \\omega_j},

    .. math::
        L_{seg} = \\lambda_{ce} L_{ce} + \\lambda_{bet} L_{bet}, \\qquad
        L_{gambler} = -\\frac{\\sum_j w_j \\omega_j\\, \\mathrm{sg}(\\ell_j)}{\\sum_j \\omega_j}

    (:math:`\\mathrm{sg}`: stop-gradient). A uniform betting map (:math:`w = 1`) gives
    :math:`L_{bet} = L_{ce}`. The gambler's loss reaches only the betting logits. The segmenter's
    loss reaches the segmenter through :math:`\\ell` (path A of the paper's Fig. 1: hard-sample
    re-weighting) and, when the betting logits were computed from the segmenter's un-detached
    probabilities, through :math:`w` (path B: why the gambler bets where it does). Keeping the
    gambler's *weights* out of the segmenter's update is the trainer's job
    (:class:`monai_gamble.engines.SegmenterCriticTrainer`).

    The paper's eq. 7, :math:`L_f = -L_g` (the segmenter minimises the bet-weighted cross-entropy
    alone), is ``lambda_ce=0, lambda_bet=1``; the default ``lambda_ce=1`` follows the authors' code,
    which adds the plain cross-entropy. Their ``--budget`` (the sum of each image's weights) is
    ``budget``; with a budget :math:`K` the mean weight is :math:`K / N` and :math:`L_{bet}` scales
    by it (their 65536 on 512x512 crops: a quarter of the mean-1 term).

    Args:
        lambda_ce: weight of the plain cross-entropy in the segmenter's loss.
        lambda_bet: weight of the bet-weighted cross-entropy in the segmenter's loss.
        beta: betting-map smoothing (:func:`betting_map`).
        activation: betting activation, ``"sigmoid"`` (authors' code) or ``"exp"`` (eq. 6).
        weight: optional class weights (C values, or 2 for a one-channel binary segmenter).
        ignore_index: label value of pixels that count nowhere (index labels only); they get no
            budget in the betting map.
        budget: the sum of each image's betting weights (:func:`betting_map`; the authors'
            ``--budget``); None: the number of counted pixels (a mean weight of 1).

    Raises:
        ValueError: for negative or non-finite lambdas or beta, an unknown activation, a budget that is
            not a positive number, and (on call) betting logits whose shape does not match the
            segmenter's ``(B, 1, *spatial)``.

    Example:
        >>> loss = GamblingLoss()
        >>> out = loss(seg_logits, label, gambler(image, class_probabilities(seg_logits)))
        >>> out.seg_loss.backward()
    """

    def __init__(
        self,
        lambda_ce: float = 1.0,
        lambda_bet: float = 1.0,
        beta: float = 0.02,
        activation: BettingActivation | str = BettingActivation.SIGMOID,
        weight: Sequence[float] | torch.Tensor | None = None,
        ignore_index: int | None = None,
        budget: float | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("lambda_ce", lambda_ce), ("lambda_bet", lambda_bet), ("beta", beta)):
            if not (float(value) >= 0 and float(value) < float("inf")):
                raise ValueError(f"{name} must be a finite non-negative number, got {value}.")
        if budget is not None and not (float(budget) > 0 and math.isfinite(float(budget))):
            raise ValueError(
                f"budget must be a positive number (the sum of each image's weights) or None, got {budget}."
            )
        self.budget = None if budget is None else float(budget)
        self.lambda_ce = float(lambda_ce)
        self.lambda_bet = float(lambda_bet)
        self.beta = float(beta)
        self.activation = look_up_option(activation, BettingActivation)
        self.register_buffer("class_weight", None if weight is None else torch.as_tensor(weight, dtype=torch.float32))
        self.ignore_index = ignore_index

    def forward(  # type: ignore[override]
        self, input: torch.Tensor, target: torch.Tensor, bet_logits: torch.Tensor
    ) -> GamblingLossOutput:
        """Compute both losses.

        Args:
            input: segmenter logits ``(B, C, *spatial)`` (C = 1: one sigmoid channel).
            target: index labels ``(B, 1, *spatial)`` or class probabilities ``(B, C, *spatial)``,
                as :func:`~monai_gamble.losses.cross_entropy_map` takes them.
            bet_logits: the gambler's betting logits ``(B, 1, *spatial)``.

        Returns:
            :class:`GamblingLossOutput` ``(seg_loss, gambler_loss, betting_map, ce, bet_ce)``.
        """
        if bet_logits.ndim != input.ndim or bet_logits.shape[0] != input.shape[0] or bet_logits.shape[1] != 1:
            raise ValueError(
                f"bet_logits must have shape (B, 1, *spatial) = {(input.shape[0], 1, *input.shape[2:])} for "
                f"segmenter logits {tuple(input.shape)}, got {tuple(bet_logits.shape)}."
            )
        if bet_logits.shape[2:] != input.shape[2:]:
            raise ValueError(
                f"the betting map {tuple(bet_logits.shape[2:])} and the prediction {tuple(input.shape[2:])} "
                "must have the same spatial size."
            )
        ce, omega = cross_entropy_map(input, target, self.class_weight, self.ignore_index)
        w = betting_map(bet_logits, self.beta, self.activation, mask=omega > 0, budget=self.budget)
        norm = omega.sum().clamp_min(torch.finfo(ce.dtype).tiny)
        weighted = omega * ce
        ce_term = weighted.sum() / norm
        w0 = w[:, 0]
        bet_term = (w0 * weighted).sum() / norm
        gambler_loss = -(w0 * weighted.detach()).sum() / norm
        seg_loss = self.lambda_ce * ce_term + self.lambda_bet * bet_term
        return GamblingLossOutput(seg_loss, gambler_loss, w, ce_term, bet_term)
