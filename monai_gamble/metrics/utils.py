"""Input checks and the cumulative-metric base shared by the metrics."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from monai.metrics import CumulativeIterationMetric
from monai.metrics.utils import do_metric_reduction, ignore_background
from monai.utils import MetricReduction, convert_to_tensor

__all__ = [
    "ReducedCumulativeMetric",
    "check_binary_pair",
    "check_probabilities",
    "empty_masks",
    "tolerance_from_diagonal",
]


class ReducedCumulativeMetric(CumulativeIterationMetric):
    """A MONAI ``CumulativeIterationMetric`` whose :meth:`aggregate` reduces the buffered per-image
    values with a ``MetricReduction`` (MONAI's ``do_metric_reduction``), as ``DiceMetric`` does: the
    base of the package's MMCL and boundary metrics.

    Args:
        reduction: MONAI ``MetricReduction`` applied by :meth:`aggregate`.
        get_not_nans: whether :meth:`aggregate` also returns the count of not-NaN values.
    """

    def __init__(self, reduction: MetricReduction | str = MetricReduction.MEAN, get_not_nans: bool = False) -> None:
        super().__init__()
        self.reduction = reduction
        self.get_not_nans = get_not_nans

    def aggregate(
        self, reduction: MetricReduction | str | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Reduce the buffered values with ``reduction`` (default the constructor's); NaN values are
        left out, ``inf`` values kept (one missed object makes a mean distance ``inf``)."""
        data = self.get_buffer()
        if not isinstance(data, torch.Tensor):
            raise ValueError(f"the data to aggregate must be a PyTorch Tensor, got {type(data)}.")
        f, not_nans = do_metric_reduction(data, reduction or self.reduction)
        return (f, not_nans) if self.get_not_nans else f


def _as_tensor(x: Any, name: str) -> torch.Tensor:
    if isinstance(x, (list, tuple)):  # a decollated batch: list of channel-first tensors
        if not x:
            raise ValueError(f"{name} is an empty list.")
        x = torch.stack([convert_to_tensor(i) for i in x])
    t = convert_to_tensor(x)
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a tensor or an array, got {type(x).__name__}.")
    return t


def check_binary_pair(y_pred: Any, y: Any, include_background: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Check a pair of binarised one-hot segmentations ``(B, C, *spatial)`` and return them as boolean tensors.

    Args:
        y_pred: the prediction (tensor, array, or list of channel-first items).
        y: the reference, of the same shape.
        include_background: False drops the first channel when there are several (MONAI's
            ``ignore_background``), after the shape checks and before the value checks, which then cover
            only the channels kept.

    Raises:
        ValueError: for different shapes, fewer than two or more than three spatial dimensions,
            NaN values, or values other than 0 and 1 (with a hint to binarise first).
    """
    y_pred, y = _as_tensor(y_pred, "y_pred"), _as_tensor(y, "y")
    if y_pred.shape != y.shape:
        raise ValueError(
            f"y_pred and y must have the same shape (B, C, *spatial), got {tuple(y_pred.shape)} and {tuple(y.shape)}."
        )
    if y.ndim not in (4, 5):
        raise ValueError(f"expected (B, C, H, W) or (B, C, H, W, D) tensors, got shape {tuple(y.shape)}.")
    if not include_background:
        y_pred, y = ignore_background(y_pred, y)
    out = []
    for name, t in (("y_pred", y_pred), ("y", y)):
        if t.dtype == torch.bool:
            out.append(t)
            continue
        b = t.bool()
        if not torch.equal(b.to(t.dtype), t):  # one comparison; NaN, like any value but 0 and 1, fails it
            if t.is_floating_point() and torch.isnan(t).any():
                raise ValueError(f"{name} contains NaN.")
            raise ValueError(
                f"{name} must be binarised one-hot (values 0 and 1); apply "
                "monai.transforms.AsDiscrete(argmax=True, to_onehot=C) (or threshold=0.5) first."
            )
        out.append(b)
    return out[0], out[1]


def check_probabilities(probabilities: Any, atol: float = 1e-3) -> torch.Tensor:
    """Check class probabilities ``(B, C, *spatial)``: finite, in [0, 1], summing to 1 over C when C > 1.

    Raises:
        ValueError: naming what is wrong, with a hint when logits were passed instead of probabilities.
    """
    p = _as_tensor(probabilities, "probabilities").float()
    if p.ndim < 3:
        raise ValueError(f"expected probabilities of shape (B, C, *spatial), got {tuple(p.shape)}.")
    if not torch.isfinite(p).all():
        raise ValueError("probabilities contain NaN or infinite values.")
    if p.numel() and (p.min() < 0 or p.max() > 1):
        raise ValueError(
            f"probabilities must lie in [0, 1], found [{p.min().item():.4g}, {p.max().item():.4g}]: "
            "pass softmax (or sigmoid) outputs, not logits."
        )
    if p.shape[1] > 1 and p.numel() and not torch.allclose(p.sum(1), torch.ones((), device=p.device), atol=atol):
        raise ValueError(
            f"the {p.shape[1]} class probabilities must sum to 1 at each pixel (softmax over dim 1); "
            "for one sigmoid channel pass a single channel."
        )
    return p


def empty_masks(t: torch.Tensor) -> torch.Tensor:
    """``(B, C)`` boolean tensor: True where the mask of batch item b, channel c is empty."""
    return ~t.reshape(*t.shape[:2], -1).any(-1)


def tolerance_from_diagonal(shape: tuple[int, ...], spacing: Any, fraction: float) -> float:
    """``fraction`` of the image diagonal, in the units of ``spacing`` (pixels when None)."""
    sp = np.ones(len(shape)) if spacing is None else np.broadcast_to(np.asarray(spacing, dtype=float), (len(shape),))
    return float(fraction * np.sqrt(np.sum((np.asarray(shape) * sp) ** 2)))
