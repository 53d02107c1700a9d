"""Loss terms of the adversarial baselines that gambling nets are compared with.

- Conventional adversarial training (Luc et al., "Semantic Segmentation using Adversarial
  Networks", NIPS Workshop on Adversarial Training 2016): :func:`adversarial_bce`.
- Adversarial confidence learning (Nie et al., AAAI 2019; Nie & Shen, IJCV 2020):
  :func:`adversarial_bce` for the confidence network, :func:`confidence_weighted_cross_entropy` for
  the segmenter.
- SegAN (Xue et al., "SegAN: Adversarial Network with Multi-scale L1 Loss for Medical Image
  Segmentation", Neuroinformatics 2018): :func:`masked_critic_input`, :func:`multiscale_l1`.

All are pure functions of tensors in MONAI's ``(B, C, *spatial)`` layout; the objectives of
:mod:`monai_gamble.engines` compose them with the critics.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.networks.utils import one_hot

from .cross_entropy import cross_entropy_map

__all__ = [
    "adversarial_bce",
    "confidence_weighted_cross_entropy",
    "last_output",
    "masked_critic_input",
    "multiscale_l1",
    "target_probabilities",
]


def last_output(critic_output: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    """The final logits of a critic: its output if it returns a tensor, else the last of its list of
    outputs (MONAI's ``PatchDiscriminator`` returns every layer's output, the last being the logits).

    Raises:
        ValueError: for an empty list.
    """
    if isinstance(critic_output, torch.Tensor):
        return critic_output
    if not critic_output:
        raise ValueError("the critic returned an empty list of outputs.")
    return critic_output[-1]


def adversarial_bce(critic_output: torch.Tensor | Sequence[torch.Tensor], real: bool) -> torch.Tensor:
    """Binary cross-entropy of a critic's logits against an all-real (1) or all-fake (0) target.

    .. math::
        \\mathrm{BCE}(D, r) = -\\frac{1}{|D|}\\sum_j \\big[r \\log \\sigma(D_j) + (1 - r)\\log(1 - \\sigma(D_j))\\big]

    averaged over every element of the logits (one per image for an image-level critic, one per
    patch for a PatchGAN, one per pixel for a confidence network). The segmenter's non-saturating
    adversarial term of Luc et al. is ``adversarial_bce(D(x, s(x)), real=True)``.

    Args:
        critic_output: logits of any shape, or a list whose last element is the logits.
        real: the target: True for 1 (real / correct), False for 0 (fake).

    Returns:
        A scalar tensor.
    """
    logits = last_output(critic_output)
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, float(real)))


def target_probabilities(
    label: torch.Tensor, logits: torch.Tensor, ignore_index: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ground truth in the segmenter's output format, as the real input of a critic.

    Args:
        label: index labels ``(B, 1, *spatial)`` (or ``(B, *spatial)``), or class probabilities /
            one-hot ``(B, C, *spatial)``.
        logits: the segmenter's logits ``(B, C, *spatial)``, for the format (C = 1: a sigmoid
            segmenter, whose target is the foreground probability).
        ignore_index: label value of pixels that count nowhere.

    Returns:
        ``(probabilities, valid)``: ``(B, C, *spatial)`` float one-hot (zero on ignored pixels) and
        the ``(B, 1, *spatial)`` boolean mask of counted pixels.

    Raises:
        ValueError: for labels out of range or whose shape does not match the logits.
    """
    c = logits.shape[1]
    if label.ndim == logits.ndim - 1:
        label = label.unsqueeze(1)
    if label.ndim != logits.ndim or label.shape[0] != logits.shape[0] or label.shape[2:] != logits.shape[2:]:
        raise ValueError(
            f"label of shape {tuple(label.shape)} does not match the logits {tuple(logits.shape)}: expected "
            f"(B, 1, *spatial) labels or (B, {c}, *spatial) probabilities."
        )
    if c > 1 and label.shape[1] == c:
        return label.float(), torch.ones_like(label[:, :1], dtype=torch.bool)
    if label.shape[1] != 1:
        raise ValueError(f"label has {label.shape[1]} channels; expected 1 (index labels) or {c}.")
    valid = torch.ones_like(label, dtype=torch.bool) if ignore_index is None else label != ignore_index
    lab = label.masked_fill(~valid, 0)
    if c == 1:
        if (lab < 0).any() or (lab > 1).any():
            raise ValueError("binary labels must lie in [0, 1]: map {0, 255} masks to {0, 1} first.")
        return lab.float() * valid, valid
    idx = lab.long()
    if idx.numel() and (idx.min() < 0 or idx.max() >= c):
        raise ValueError(f"labels must be class indices in [0, {c - 1}], found [{idx.min()}, {idx.max()}].")
    return one_hot(idx, num_classes=c, dtype=torch.float32, dim=1) * valid, valid


def confidence_weighted_cross_entropy(
    input: torch.Tensor,
    target: torch.Tensor,
    confidence: torch.Tensor,
    gamma: float = 2.0,
    weight: Sequence[float] | torch.Tensor | None = None,
    ignore_index: int | None = None,
) -> torch.Tensor:
    """Cross-entropy re-weighted per pixel by a confidence network (Nie et al. 2019, eq. 3 of the
    thyroid gambling paper):

    .. math::
        L = \\frac{\\sum_j \\mathrm{sg}(1 - c_j)^{\\gamma}\\, \\omega_j \\ell_j}{\\sum_j \\omega_j}

    with :math:`c_j \\in [0, 1]` the confidence (the network's sigmoid output: how real / correct
    the prediction looks at pixel :math:`j`), :math:`\\ell_j, \\omega_j` the per-pixel
    cross-entropy and class weight of :func:`~monai_gamble.losses.cross_entropy_map`, and
    :math:`\\mathrm{sg}` a stop-gradient: the weight is a per-pixel attention, not a path for
    gradients into the confidence network. The weight applies per pixel, before averaging (the
    authors' public code multiplies an already averaged loss, which makes it a scalar factor).

    Args:
        input: segmenter logits ``(B, C, *spatial)``.
        target: labels, as :func:`~monai_gamble.losses.cross_entropy_map` takes them.
        confidence: ``(B, 1, *spatial)`` confidences in [0, 1].
        gamma: focusing exponent (2 in Nie et al.).
        weight: optional class weights.
        ignore_index: label value of pixels to ignore.

    Returns:
        A scalar tensor.

    Raises:
        ValueError: for a confidence map of another shape or outside [0, 1], or a negative gamma.
    """
    if not gamma >= 0:
        raise ValueError(f"gamma must be non-negative, got {gamma}.")
    expected = (input.shape[0], 1, *input.shape[2:])
    if tuple(confidence.shape) != expected:
        raise ValueError(f"confidence must have shape {expected}, got {tuple(confidence.shape)}.")
    c = confidence.detach().float()
    if c.numel() and (c.min() < 0 or c.max() > 1):
        raise ValueError("confidence must lie in [0, 1] (apply a sigmoid to the confidence network's logits).")
    ce, omega = cross_entropy_map(input, target, weight, ignore_index)
    w = (1 - c[:, 0]) ** gamma
    return (w * omega * ce).sum() / omega.sum().clamp_min(torch.finfo(ce.dtype).tiny)


def masked_critic_input(image: torch.Tensor, probabilities: torch.Tensor) -> torch.Tensor:
    """SegAN's critic input: the image multiplied by each foreground class map.

    For ``(B, K, *spatial)`` images and ``(B, C, *spatial)`` class probabilities (C > 1: softmax,
    the background channel 0 is left out; C = 1: the sigmoid foreground), returns
    ``(B, K * C', *spatial)`` with C' = C - 1 (or 1), channel ``c * K + k`` being
    :math:`x_k \\cdot p_{c+1}` (Xue et al. 2018: the critic sees the image masked by the predicted or
    the true segmentation).
    """
    if image.shape[0] != probabilities.shape[0] or image.shape[2:] != probabilities.shape[2:]:
        raise ValueError(
            f"image {tuple(image.shape)} and probabilities {tuple(probabilities.shape)} differ in batch or spatial size."
        )
    fg = probabilities if probabilities.shape[1] == 1 else probabilities[:, 1:]
    masked = fg.unsqueeze(2) * image.unsqueeze(1)  # (B, C', K, *spatial)
    return masked.flatten(1, 2)


def multiscale_l1(features_a: Sequence[torch.Tensor], features_b: Sequence[torch.Tensor]) -> torch.Tensor:
    """SegAN's multi-scale L1 loss (Xue et al. 2018, eq. 2): the mean absolute difference of the
    critic's features of two inputs, averaged over the L layers,

    .. math::
        \\ell_{mae}(a, b) = \\frac{1}{L}\\sum_{i=1}^{L} \\frac{1}{|f_i|}\\, \\| f_i(a) - f_i(b) \\|_1 .

    Pass the critic's input as the first "layer" to include the pixel level, as SegAN does.

    Args:
        features_a: the features of the first input, one tensor per layer.
        features_b: the features of the second input, the same shapes.

    Returns:
        A scalar tensor.

    Raises:
        ValueError: for different numbers of layers or shapes.
    """
    if len(features_a) != len(features_b) or not features_a:
        raise ValueError(f"need the same non-zero number of layers, got {len(features_a)} and {len(features_b)}.")
    terms = []
    for i, (a, b) in enumerate(zip(features_a, features_b, strict=True)):
        if a.shape != b.shape:
            raise ValueError(f"layer {i}: feature shapes differ, {tuple(a.shape)} and {tuple(b.shape)}.")
        terms.append((a.float() - b.float()).abs().mean())
    return torch.stack(terms).mean()
