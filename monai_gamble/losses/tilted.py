"""Tilted cross-entropy (TCE): cross-entropy tilted at image or class level to promote fairness.

Szabó, Jamali-Rad & Mannava, "Tilted Cross-Entropy (TCE): Promoting Fairness in Semantic
Segmentation" (CVPR Workshops 2021), built on tilted empirical risk minimisation (TERM: Li,
Beirami, Sanjabi & Smith, "Tilted Empirical Risk Minimization", ICLR 2021). TERM replaces the
mean of losses :math:`f_i` by the *tilted* mean

.. math::
    \\tilde{R}(t) = \\frac{1}{t}\\log\\Big(\\frac{1}{M}\\sum_{i=1}^{M} e^{t f_i}\\Big),

which is the mean at :math:`t \\to 0`, the maximum at :math:`t \\to +\\infty` (fairness: the worst
case is minimised) and the minimum at :math:`t \\to -\\infty` (robustness to outliers). Its gradient
is the average of the :math:`\\nabla f_i` weighted by :math:`\\mathrm{softmax}(t f)_i` (TERM's Lemma 1).

This module tilts the per-pixel cross-entropy of :func:`monai_gamble.losses.cross_entropy_map` over
the images of a batch (eq. 2 of the paper) or over the classes of each image (eq. 3). The
stochastic solver (Algorithm 1) is not a loss: it trains with the plain cross-entropy and tilts the
*sampling* of classes, with :class:`monai_gamble.data.ClassConditionalBatchSampler` and
:class:`monai_gamble.handlers.StochasticTCEHandler`.

Selecting the method by name (for bundle configs): :func:`tilted_loss` maps ``"tce_image"``,
``"tce_class"`` and ``"stochastic_tce"`` to the loss to train with::

    "loss_name": "tce_class",
    "t": 1.0,
    "loss": {"_target_": "monai_gamble.losses.tilted_loss", "method": "@loss_name", "t": "@t"}
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from monai.utils import StrEnum, look_up_option
from torch.nn.modules.loss import _Loss

from .cross_entropy import CrossEntropyLoss, _class_weights, cross_entropy_map

__all__ = ["TCEMethod", "TiltLevel", "TiltedCrossEntropyLoss", "tilted_loss"]


class TiltLevel(StrEnum):
    """What the cross-entropy is tilted over.

    - ``"image"``: the images of the batch (eq. 2 of the TCE paper).
    - ``"class"``: the classes present in each image, then averaged over images (eq. 3).
    """

    IMAGE = "image"
    CLASS = "class"


class TCEMethod(StrEnum):
    """The three ways of training with tilted cross-entropy, and their baseline, as a config selects them
    (:func:`tilted_loss`).

    - ``"ce"``: the plain (class-weighted) cross-entropy, eq. 1: the baseline, TCE's limit ``t -> 0``.
    - ``"tce_image"``: :class:`TiltedCrossEntropyLoss` with ``level="image"`` (eq. 2).
    - ``"tce_class"``: :class:`TiltedCrossEntropyLoss` with ``level="class"`` (eq. 3).
    - ``"stochastic_tce"``: Algorithm 1: the plain cross-entropy (eq. 1) on minibatches drawn by
      :class:`monai_gamble.data.ClassConditionalBatchSampler`, whose class weights
      :class:`monai_gamble.handlers.StochasticTCEHandler` tilts after every iteration.
    """

    CE = "ce"
    TCE_IMAGE = "tce_image"
    TCE_CLASS = "tce_class"
    STOCHASTIC_TCE = "stochastic_tce"


def _check_tilt(t: float) -> float:
    """``t`` as a float; raises ``ValueError`` unless it is a finite number."""
    try:
        value = float(t)
    except (TypeError, ValueError):
        raise ValueError(f"the tilt t must be a finite number, got {t!r}.") from None
    if not math.isfinite(value):
        raise ValueError(f"the tilt t must be a finite number, got {value}: use a large finite t for the max.")
    return value


def _tilted_mean(values: torch.Tensor, weights: torch.Tensor, t: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted tilted mean over the last dimension, and which rows have any weight.

    ``(1/t) log(sum_i p_i exp(t x_i))`` with ``p = a / sum(a)`` (``sum_i p_i x_i`` when ``t == 0``).
    Entries with ``a_i = 0`` are left out; a row with no positive weight gives 0 with zero
    gradient, and ``False`` in the second output.

    Computed about the weighted mean :math:`\\bar{x}` as :math:`\\bar{x} + g/t` with
    :math:`g = \\log\\sum_i p_i e^{d_i}`, :math:`d_i = t(x_i - \\bar{x})`: by ``logsumexp`` (no overflow)
    when some :math:`|d_i| > 1`, else by ``log1p(sum p expm1(d))``, which keeps its precision as
    :math:`t \\to 0` (the difference of two ``logsumexp`` values divided by a small ``t`` does not).
    """
    has_any = (weights > 0).any(-1, keepdim=True)
    # rows without any weight get uniform dummy weights, so nothing below is NaN or -inf everywhere
    safe_w = torch.where(has_any, weights, torch.ones_like(weights))
    log_p = torch.log_softmax(torch.log(safe_w), -1)  # -inf where a_i = 0: exp(-inf) = 0, zero gradient
    p = log_p.exp()
    values = torch.where(safe_w > 0, values, torch.zeros_like(values))
    mean = (p * values).sum(-1, keepdim=True)
    out = mean
    if t != 0.0:
        d = torch.where(safe_w > 0, t * (values - mean), torch.zeros_like(values))
        small = (d.abs() <= 1).all(-1, keepdim=True)
        g_small = torch.log1p((p * torch.expm1(d.clamp(-1.0, 1.0))).sum(-1, keepdim=True))
        g_large = torch.logsumexp(d + log_p, -1, keepdim=True)
        out = mean + torch.where(small, g_small, g_large) / t
    out = torch.where(has_any, out, torch.zeros_like(out))
    return out.squeeze(-1), has_any.squeeze(-1)


def _class_sums(
    ce: torch.Tensor, counted: torch.Tensor, input: torch.Tensor, target: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, K)`` sums of the pixel cross-entropy over the pixels of each class, and the pixel counts.

    ``counted`` (``(B, *spatial)``) is 0 on ignored pixels. Index labels are summed with
    ``scatter_add`` (no one-hot copy of the batch), probability targets with their channels as
    (soft) class memberships.
    """
    b, c = input.shape[:2]
    if target.ndim == input.ndim - 1:
        target = target.unsqueeze(1)
    ce_flat, counted_flat = ce.reshape(b, -1), counted.reshape(b, -1)
    if c > 1 and target.shape[1] == 1:  # index labels, already checked by cross_entropy_map
        idx = target[:, 0].reshape(b, -1).long().masked_fill(counted_flat == 0, 0)
        # scatter_add accumulates one value after the other: in float32 a class of a million pixels
        # would lose about 3 digits, so the sums are accumulated in float64 (not on MPS, which has none)
        acc = ce_flat.dtype if ce_flat.device.type == "mps" else torch.float64
        sums = torch.zeros(b, c, dtype=acc, device=ce.device).scatter_add_(1, idx, (ce_flat * counted_flat).to(acc))
        counts = torch.zeros(b, c, dtype=acc, device=ce.device).scatter_add_(1, idx, counted_flat.to(acc))
        return sums.to(ce.dtype), counts.to(ce.dtype)
    if c == 1:  # one sigmoid channel: classes (background, foreground) with memberships (1 - y, y)
        y = target[:, 0].reshape(b, -1).float() * (counted_flat > 0)
        member = torch.stack([1.0 - y, y], 1) * counted_flat.unsqueeze(1)
    else:  # one-hot or soft probabilities (B, C, *spatial)
        member = target.reshape(b, c, -1).float() * (counted_flat > 0).unsqueeze(1)
    return (member * ce_flat.unsqueeze(1)).sum(-1), member.sum(-1)


class TiltedCrossEntropyLoss(_Loss):
    """Tilted cross-entropy of Szabó et al. (CVPR-W 2021), eq. 2 (image level) or eq. 3 (class level).

    With :math:`\\ell_j` the cross-entropy of pixel :math:`j` (softmax over C channels, or a sigmoid for
    one channel; :func:`monai_gamble.losses.cross_entropy_map`) and :math:`\\omega_j` its class
    weight (0 on ``ignore_index`` pixels):

    - ``level="image"`` (eq. 2), over the M images of the batch:

      .. math::
          \\tilde{\\mathcal{L}}^{img} = \\frac{1}{t}\\log\\Big(\\frac{1}{M}\\sum_{m=1}^{M} e^{t\\mathcal{L}_m}\\Big),
          \\qquad \\mathcal{L}_m = \\frac{\\sum_{j\\in m}\\omega_j\\ell_j}{\\sum_{j\\in m}\\omega_j}

      (:math:`\\mathcal{L}_m` is the mean pixel CE of image m, ``torch.nn.CrossEntropyLoss`` of that
      image; with no class weights it is eq. 2's :math:`-\\frac{1}{N}\\sum y \\log \\hat{y}`).
    - ``level="class"`` (eq. 3), per image over its classes, then averaged over the images:

      .. math::
          \\tilde{\\mathcal{L}}^{cls} = \\frac{1}{M}\\sum_{m=1}^{M}\\frac{1}{t}
          \\log\\Big(\\frac{\\sum_c a_{m,c}\\, e^{t\\mathcal{L}_{m,c}}}{\\sum_c a_{m,c}}\\Big),
          \\qquad \\mathcal{L}_{m,c} = \\frac{1}{n_{m,c}}\\sum_{j\\in m,\\, y_j = c}\\ell_j,

      with :math:`n_{m,c}` the number of (not ignored) pixels of class c in image m and
      :math:`a_{m,c} = w_c [n_{m,c} > 0]`. **Classes absent from an image are left out of its mean**
      (eq. 3 divides by K, which would count an absent class as a zero loss and pull the tilted
      mean down); without class weights the mean is over the present classes, with weights it is
      the :math:`w_c`-weighted tilted mean (inside :math:`\\mathcal{L}_{m,c}` a class weight would
      cancel). For probability targets the channels are soft memberships:
      :math:`\\mathcal{L}_{m,c} = \\sum_j y_{c,j}\\ell_j / \\sum_j y_{c,j}`.

    An image with no counted pixel (all ignored, or zero class weights) contributes nothing: it
    is left out of the mean over images; the loss is 0 (with a zero gradient) when no image counts.

    Both are computed with ``logsumexp``, so there is no overflow for :math:`t\\mathcal{L}` up to
    1e4 and more. ``t == 0`` is the limit, the plain (weighted) mean: for ``"image"`` the mean of the
    :math:`\\mathcal{L}_m`, which is the batch cross-entropy (eq. 1, ``CrossEntropyLoss``) when the
    images count the same number of pixels with the same weight. :math:`t \\to +\\infty` approaches
    the largest loss (fairness), negative ``t`` the smallest (robustness to outliers, as in TERM).
    The gradient is the :math:`\\mathrm{softmax}(t\\mathcal{L})`-weighted average of the gradients of
    the individual losses (TERM, Lemma 1).

    Args:
        t: the tilt, a finite number (the paper uses 0.1 and 1).
        level: ``"image"`` (eq. 2) or ``"class"`` (eq. 3); see :class:`TiltLevel`.
        weight: optional class weights (K = C values, or 2 for a one-channel binary input).
        ignore_index: label value of pixels that count nowhere (index labels only).

    Shapes:
        input: logits ``(B, C, *spatial)`` (2D or 3D; C = 1 is a binary sigmoid output).
        target: index labels ``(B, 1, *spatial)`` or ``(B, *spatial)``, or one-hot / soft class
        probabilities ``(B, C, *spatial)``. Output: a scalar.

    Raises:
        ValueError: when ``t`` is NaN or infinite, ``level`` is not one of ``"image"``, ``"class"``,
            the class weights are bad, or (in ``forward``) shapes do not match or labels lie
            outside ``[0, C - 1]`` (and are not ``ignore_index``).

    Example:
        >>> loss = TiltedCrossEntropyLoss(t=1.0, level="class")
        >>> logits = torch.randn(2, 4, 32, 32, requires_grad=True)
        >>> labels = torch.randint(0, 4, (2, 1, 32, 32))
        >>> loss(logits, labels).backward()
    """

    def __init__(
        self,
        t: float = 1.0,
        level: TiltLevel | str = TiltLevel.CLASS,
        weight: Sequence[float] | torch.Tensor | None = None,
        ignore_index: int | None = None,
    ) -> None:
        super().__init__()
        self.t = _check_tilt(t)
        self.level = look_up_option(level, TiltLevel)
        w = None if weight is None else torch.as_tensor(weight, dtype=torch.float32)
        if w is not None and (w.ndim != 1 or not torch.isfinite(w).all() or (w < 0).any()):
            raise ValueError(f"class weights must be a 1-D sequence of finite non-negative values, got {weight}.")
        self.register_buffer("class_weight", w)
        self.ignore_index = ignore_index

    def per_image_losses(self, input: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The losses that are tilted: ``(L, a)`` with ``L`` and ``a`` of shape ``(B,)`` (image level:
        :math:`\\mathcal{L}_m` and :math:`\\sum_j\\omega_j`) or ``(B, K)`` (class level:
        :math:`\\mathcal{L}_{m,c}` and :math:`a_{m,c}`); entries with ``a = 0`` do not count (their ``L`` is 0)."""
        if self.level == TiltLevel.IMAGE:
            ce, omega = cross_entropy_map(input, target, self.class_weight, self.ignore_index)
            b = ce.shape[0]
            total = omega.reshape(b, -1).sum(-1)
            loss = (omega * ce).reshape(b, -1).sum(-1) / total.clamp_min(torch.finfo(ce.dtype).tiny)
            return loss, total
        ce, counted = cross_entropy_map(input, target, None, self.ignore_index)
        sums, counts = _class_sums(ce, counted, input, target)
        loss = sums / counts.clamp_min(torch.finfo(ce.dtype).tiny)
        present = (counts > 0).to(ce.dtype)
        if self.class_weight is not None:
            present = present * _class_weights(self.class_weight, counts.shape[1]).to(present)
        return loss, present

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Tilted cross-entropy of ``input`` logits ``(B, C, *spatial)`` against ``target``; a scalar."""
        loss, weight = self.per_image_losses(input, target)
        if self.level == TiltLevel.IMAGE:
            value, _ = _tilted_mean(loss, (weight > 0).to(loss.dtype), self.t)
            return value
        per_image, counted = _tilted_mean(loss, weight, self.t)
        n = counted.sum()
        return (per_image * counted).sum() / n.clamp_min(1).to(per_image.dtype)

    def extra_repr(self) -> str:
        return f"t={self.t}, level={self.level.value!r}, ignore_index={self.ignore_index}"


def tilted_loss(
    method: TCEMethod | str = TCEMethod.TCE_CLASS,
    t: float = 1.0,
    weight: Sequence[float] | torch.Tensor | None = None,
    ignore_index: int | None = None,
) -> _Loss:
    """The loss to train with for a TCE method named in a config (:class:`TCEMethod`).

    ``"ce"`` gives the plain :class:`~monai_gamble.losses.CrossEntropyLoss` (the baseline).
    ``"tce_image"`` and ``"tce_class"`` give :class:`TiltedCrossEntropyLoss` at that level with tilt
    ``t``. ``"stochastic_tce"`` (Algorithm 1 of Szabó et al.) gives the plain
    :class:`~monai_gamble.losses.CrossEntropyLoss` (eq. 1): there the tilt ``t`` (and the rate
    ``gamma``) belong to :class:`monai_gamble.handlers.StochasticTCEHandler`, which re-weights the
    classes that :class:`monai_gamble.data.ClassConditionalBatchSampler` draws; ``t`` is still
    checked here so that a config error shows early.

    Args:
        method: ``"ce"``, ``"tce_image"``, ``"tce_class"`` or ``"stochastic_tce"``.
        t: the tilt, a finite number.
        weight: optional class weights.
        ignore_index: label value of pixels to ignore (index labels only).

    Returns:
        A loss module ``(B, C, *spatial)`` logits, labels -> scalar.

    Raises:
        ValueError: for an unknown method (the message lists the valid ones) or a NaN/infinite ``t``.

    Example:
        >>> tilted_loss("tce_image", t=0.1)
        TiltedCrossEntropyLoss(t=0.1, level='image', ignore_index=None)
    """
    method = look_up_option(method, TCEMethod)
    t = _check_tilt(t)
    if method in (TCEMethod.CE, TCEMethod.STOCHASTIC_TCE):
        return CrossEntropyLoss(weight=weight, ignore_index=ignore_index)
    level = TiltLevel.IMAGE if method == TCEMethod.TCE_IMAGE else TiltLevel.CLASS
    return TiltedCrossEntropyLoss(t=t, level=level, weight=weight, ignore_index=ignore_index)
