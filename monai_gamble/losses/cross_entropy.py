"""Pixel-wise cross-entropy on MONAI-shaped tensors: the base of the re-weighted losses.

MONAI's losses take ``(B, C, *spatial)`` logits and ``(B, 1, *spatial)`` index labels (or one-hot
``(B, C, *spatial)``), but MONAI has no plain cross-entropy loss and no per-pixel one. The
gambling, confidence and tilted losses all re-weight a per-pixel cross-entropy map; this module
computes it once, with class weights and ignored pixels, for one sigmoid channel or C softmax
channels, in 2D and 3D.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.utils import LossReduction, look_up_option
from torch.nn.modules.loss import _Loss

__all__ = ["CrossEntropyLoss", "cross_entropy_map"]


def _class_weights(weight: Sequence[float] | torch.Tensor | None, num_classes: int) -> torch.Tensor | None:
    if weight is None:
        return None
    w = torch.as_tensor(weight, dtype=torch.float32).flatten()
    if w.numel() != num_classes:
        raise ValueError(f"weight must have one value per class ({num_classes}), got {w.numel()}.")
    if not torch.isfinite(w).all() or (w < 0).any():
        raise ValueError(f"class weights must be finite and non-negative, got {w.tolist()}.")
    return w


def cross_entropy_map(
    input: torch.Tensor,
    target: torch.Tensor,
    weight: Sequence[float] | torch.Tensor | None = None,
    ignore_index: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel cross-entropy and per-pixel weight.

    With :math:`p = \\mathrm{softmax}(x)` over the C channels (or :math:`(1 - \\sigma(x), \\sigma(x))` for
    one channel), target class probabilities :math:`t` (one-hot for index labels) and class weights
    :math:`w`, at every pixel :math:`j`

    .. math::
        \\ell_j = -\\sum_c t_{c,j} \\log p_{c,j}, \\qquad \\omega_j = \\sum_c w_c\\, t_{c,j}

    and :math:`\\omega_j = 0` on ignored pixels. The weighted mean :math:`\\sum_j \\omega_j \\ell_j /
    \\sum_j \\omega_j` is then ``torch.nn.CrossEntropyLoss`` for index labels (eq. 1 of
    Bakhtiariziabari & Ghafoorian with a class-based weighting). Log-probabilities come from
    ``log_softmax`` / ``binary_cross_entropy_with_logits``, so large logits do not overflow.

    Args:
        input: logits ``(B, C, *spatial)``; C = 1 is a binary segmenter with a sigmoid output.
        target: index labels ``(B, 1, *spatial)`` (or ``(B, *spatial)``) with values in
            ``0..K-1`` (K = C, or 2 when C = 1) or ``ignore_index``; or class probabilities
            ``(B, C, *spatial)`` (one-hot or soft) when C > 1; for C = 1, values in [0, 1] are
            foreground probabilities.
        weight: optional class weights, K non-negative values.
        ignore_index: label value of pixels that count nowhere (index labels only).

    Returns:
        ``(ce, omega)``, two ``(B, *spatial)`` float tensors: the cross-entropy and the weight of
        every pixel.

    Raises:
        ValueError: for mismatched shapes, labels out of range (e.g. a {0, 255} mask), probability
            targets outside [0, 1], NaN or inf logits, or bad weights.
    """
    if input.ndim < 3:
        raise ValueError(f"input must be logits of shape (B, C, *spatial), got {tuple(input.shape)}.")
    b, c, *spatial = input.shape
    if not torch.isfinite(input).all():
        raise ValueError("input logits hold NaN or inf values: the segmenter diverged (lower the learning rate).")
    num_classes = 2 if c == 1 else c
    w = _class_weights(weight, num_classes)
    if target.ndim == input.ndim - 1:
        target = target.unsqueeze(1)
    if target.ndim != input.ndim or target.shape[0] != b or list(target.shape[2:]) != spatial:
        raise ValueError(
            f"target of shape {tuple(target.shape)} does not match input {tuple(input.shape)}: expected "
            f"(B, 1, *spatial) labels or (B, {c}, *spatial) probabilities."
        )
    valid = torch.ones_like(target[:, 0], dtype=torch.bool) if ignore_index is None else target[:, 0] != ignore_index
    if c == 1:  # binary, one sigmoid channel: target holds foreground probabilities (or 0/1 labels)
        if target.shape[1] != 1:
            raise ValueError(f"a one-channel input needs a one-channel target, got {tuple(target.shape)}.")
        y = target[:, 0].float().masked_fill(~valid, 0.0)
        if (y < 0).any() or (y > 1).any():
            raise ValueError(
                f"binary targets must lie in [0, 1]{' or equal ignore_index' if ignore_index is not None else ''}, "
                f"found [{y.min().item():g}, {y.max().item():g}]: map {{0, 255}} masks to {{0, 1}} first."
            )
        ce = F.binary_cross_entropy_with_logits(input[:, 0].float(), y, reduction="none")
        omega = torch.ones_like(ce) if w is None else w[0].to(ce) * (1 - y) + w[1].to(ce) * y
        return ce, omega * valid
    logp = F.log_softmax(input.float(), dim=1)
    if target.shape[1] == 1:  # index labels
        idx = target[:, 0]
        if idx.is_floating_point() and (idx != idx.round()).any():
            raise ValueError("index labels must be whole numbers; pass probabilities as (B, C, *spatial).")
        idx = idx.long().masked_fill(~valid, 0)
        if idx.numel() and (idx.min() < 0 or idx.max() >= c):
            raise ValueError(
                f"labels must be class indices in [0, {c - 1}]"
                f"{' or ignore_index' if ignore_index is not None else ''}, found [{idx.min().item()}, {idx.max().item()}]."
            )
        ce = -logp.gather(1, idx.unsqueeze(1))[:, 0]
        omega = torch.ones_like(ce) if w is None else w.to(ce)[idx]
        return ce, omega * valid
    if target.shape[1] != c:
        raise ValueError(f"probability targets need {c} channels like the input, got {target.shape[1]}.")
    t = target.float()
    if t.numel() and not (torch.isfinite(t).all() and t.min() >= 0 and t.max() <= 1):
        raise ValueError(
            f"probability targets must lie in [0, 1], found [{t.min().item():g}, {t.max().item():g}]: "
            "a one-hot x 255 mask must be divided by 255 first."
        )
    ce = -(t * logp).sum(1)
    omega = t.sum(1) if w is None else (w.to(t).reshape(1, c, *([1] * len(spatial))) * t).sum(1)
    return ce, omega * valid


class CrossEntropyLoss(_Loss):
    """Cross-entropy for segmentation with MONAI's tensor conventions (see :func:`cross_entropy_map`).

    ``reduction="mean"`` is the weighted mean :math:`\\sum_j \\omega_j \\ell_j / \\sum_j \\omega_j` over all
    pixels of the batch (``torch.nn.CrossEntropyLoss``'s for index labels; 0 when no pixel counts),
    ``"sum"`` is :math:`\\sum_j \\omega_j \\ell_j`, ``"none"`` the map :math:`\\omega_j \\ell_j` of shape
    ``(B, 1, *spatial)``.

    Args:
        weight: optional class weights (K = C values, or 2 for a one-channel binary input).
        ignore_index: label value of pixels to ignore (index labels only).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Example:
        >>> loss = CrossEntropyLoss()
        >>> loss(torch.randn(2, 3, 64, 64), torch.randint(0, 3, (2, 1, 64, 64)))
    """

    def __init__(
        self,
        weight: Sequence[float] | torch.Tensor | None = None,
        ignore_index: int | None = None,
        reduction: LossReduction | str = LossReduction.MEAN,
    ) -> None:
        super().__init__(reduction=look_up_option(reduction, LossReduction).value)
        w = None if weight is None else torch.as_tensor(weight, dtype=torch.float32)
        self.register_buffer("class_weight", w)
        self.ignore_index = ignore_index

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Compute the loss of ``input`` logits ``(B, C, *spatial)`` against ``target``."""
        ce, omega = cross_entropy_map(input, target, self.class_weight, self.ignore_index)
        weighted = omega * ce
        if self.reduction == LossReduction.NONE.value:
            return weighted.unsqueeze(1)
        if self.reduction == LossReduction.SUM.value:
            return weighted.sum()
        return weighted.sum() / omega.sum().clamp_min(torch.finfo(weighted.dtype).tiny)
