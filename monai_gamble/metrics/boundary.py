"""Boundary metrics of segmentations: BF-score, Chamfer distance and Hausdorff distance.

All three compare the *boundaries* of a predicted and a reference mask, per batch item and
class, on binarised one-hot tensors ``(B, C, H, W[, D])``. The boundary of a mask is the mask
AND NOT its erosion by the 4-connected cross (6-connected in 3D), zero padded, so mask pixels
on the image border are boundary pixels (MATLAB ``bfscore`` semantics; MONAI's
``get_mask_edges``). Distances are Euclidean, in the units of ``spacing`` (pixels when None),
from each boundary point to the nearest point of the other boundary (MONAI's ``get_mask_edges``
and ``get_surface_distance``: a KD-tree over the boundary points on CPU, a distance transform on
CUDA; no pairwise distance matrix).

Empty masks have no boundary, and MONAI's own answers differ by case (``NaN`` when both are
empty, ``inf`` when one is, and NaN-skipping averages then silently drop the first). Here every
case has a defined value, the same for the three metrics and for MONAI's Dice and IoU with
``ignore_empty=False``:

============================  =========  ===================  ====================
case                          BF-score   Chamfer, Hausdorff   Dice, IoU
============================  =========  ===================  ====================
both masks empty              1.0        0.0                  1.0
only one of the two empty     0.0        ``inf``              0.0
both non-empty                computed   computed             computed
============================  =========  ===================  ====================

``inf`` is deliberate: a distance to nothing is unbounded, and an average that contains one is
``inf`` rather than a number that hides a missed nodule. Report the number of such cases beside
the mean (:class:`monai_gamble.handlers.MetricsReport` does).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from monai.metrics import CumulativeIterationMetric
from monai.metrics import HausdorffDistanceMetric as _MonaiHausdorffDistanceMetric
from monai.metrics import compute_hausdorff_distance as _monai_compute_hausdorff_distance
from monai.metrics.utils import (
    do_metric_reduction,
    get_mask_edges,
    get_surface_distance,
    ignore_background,
    prepare_spacing,
)
from monai.utils import MetricReduction

from .utils import check_binary_pair, empty_masks, tolerance_from_diagonal

__all__ = [
    "BoundaryFScoreMetric",
    "ChamferDistanceMetric",
    "HausdorffDistanceMetric",
    "compute_bf_score",
    "compute_chamfer_distance",
    "compute_hausdorff_distance",
]

#: Default BF-score tolerance as a fraction of the image diagonal (MATLAB ``bfscore``).
BF_DEFAULT_TOLERANCE_FRACTION = 0.0075

Spacing = int | float | np.ndarray | Sequence[int | float | np.ndarray | Sequence[int | float]] | None


def _pairs(
    y_pred: Any, y: Any, include_background: bool, spacing: Spacing
) -> tuple[torch.Tensor, torch.Tensor, list[Any]]:
    y_pred_b, y_b = check_binary_pair(y_pred, y)
    if not include_background:
        y_pred_b, y_b = ignore_background(y_pred_b, y_b)
    spacing_list = prepare_spacing(spacing=spacing, batch_size=y_b.shape[0], img_dim=y_b.ndim - 2)
    return y_pred_b, y_b, list(spacing_list)


def _surface_distances(
    y_pred: torch.Tensor, y: torch.Tensor, spacing_list: list[Any]
) -> Iterator[tuple[int, int, torch.Tensor, torch.Tensor]]:
    """Yield ``(b, c, d_pred_to_gt, d_gt_to_pred)`` for every (b, c) where both masks are non-empty."""
    both = ~(empty_masks(y_pred) | empty_masks(y))
    for b, c in both.nonzero().tolist():
        with warnings.catch_warnings():  # MONAI 1.6 passes its own deprecated argument internally
            warnings.filterwarnings("ignore", message=".*always_return_as_numpy", category=FutureWarning)
            # no cropping: it costs more than it saves
            edges_pred, edges_gt = get_mask_edges(y_pred[b, c], y[b, c], crop=False)
        d_pg = get_surface_distance(edges_pred, edges_gt, spacing=spacing_list[b])
        d_gp = get_surface_distance(edges_gt, edges_pred, spacing=spacing_list[b])
        yield b, c, d_pg, d_gp


def _apply_empty_policy(
    out: torch.Tensor, y_pred: torch.Tensor, y: torch.Tensor, both: float, one: float
) -> torch.Tensor:
    ep, eg = empty_masks(y_pred).to(out.device), empty_masks(y).to(out.device)
    out[ep & eg] = both
    out[ep ^ eg] = one
    return out


def compute_bf_score(
    y_pred: Any,
    y: Any,
    tolerance: float | None = None,
    spacing: Spacing = None,
    include_background: bool = True,
) -> torch.Tensor:
    """Boundary F1 score (BF-score) of Csurka et al., "What is a good evaluation measure for semantic
    segmentation?" (BMVC 2013), with MATLAB ``bfscore`` semantics; eqs. 9-10 of Bakhtiariziabari &
    Ghafoorian (gambling nets for thyroid nodule segmentation).

    With :math:`X` the predicted and :math:`Y` the reference boundary and :math:`\\tau` the tolerance,

    .. math::
        P = \\frac{1}{|X|}\\sum_{x\\in X}[d(x, Y) < \\tau],\\quad
        R = \\frac{1}{|Y|}\\sum_{y\\in Y}[d(y, X) < \\tau],\\quad
        BF = \\frac{2PR}{P + R}

    (0 when :math:`P + R = 0`). A point matches when its distance is *strictly* less than the
    tolerance. See the module docstring for the boundary definition and the empty-mask cases
    (both empty: 1, one empty: 0).

    Example: a 4x4 square against the same square shifted by one column, in a 10x10 image,
    gives 0.5 at tolerance 1.0 (only coincident boundary points match) and 1.0 at tolerance 1.2.

    Args:
        y_pred: binarised one-hot prediction ``(B, C, H, W[, D])``.
        y: binarised one-hot reference of the same shape.
        tolerance: distance below which a boundary point matches, in the units of ``spacing``.
            Default: 0.75% of the image diagonal (MATLAB's default), ``sqrt(sum((shape * spacing)**2))``.
        spacing: pixel spacing: a number, one per spatial dimension, or one such entry per batch item
            (as MONAI's ``compute_hausdorff_distance``). None means 1.
        include_background: whether to score the first channel (for one-channel inputs the channel
            is always scored, as in MONAI).

    Returns:
        ``(B, C)`` float tensor of BF-scores in [0, 1] (``C - 1`` channels without the background).

    Raises:
        ValueError: for mismatched shapes, non-binary or NaN inputs, or a non-positive tolerance.
    """
    if tolerance is not None and not (np.isfinite(tolerance) and tolerance > 0):
        raise ValueError(f"tolerance must be a positive number, got {tolerance}.")
    y_pred_b, y_b, spacing_list = _pairs(y_pred, y, include_background, spacing)
    out = torch.zeros(y_b.shape[:2], dtype=torch.float32)
    shape = tuple(y_b.shape[2:])
    for b, c, d_pg, d_gp in _surface_distances(y_pred_b, y_b, spacing_list):
        tol = (
            tolerance
            if tolerance is not None
            else tolerance_from_diagonal(shape, spacing_list[b], BF_DEFAULT_TOLERANCE_FRACTION)
        )
        precision = (d_pg < tol).float().mean()
        recall = (d_gp < tol).float().mean()
        denom = precision + recall
        out[b, c] = 0.0 if denom == 0 else float(2 * precision * recall / denom)
    return _apply_empty_policy(out, y_pred_b, y_b, both=1.0, one=0.0).to(y_b.device)


def compute_chamfer_distance(
    y_pred: Any, y: Any, spacing: Spacing = None, include_background: bool = True
) -> torch.Tensor:
    """Chamfer distance between the boundaries of two segmentations: the mean of the two directed
    average boundary distances, eq. 8 of Bakhtiariziabari & Ghafoorian (gambling nets for thyroid
    nodule segmentation):

    .. math::
        d_{Chamfer}(X, Y) = \\frac{1}{2}\\left(\\frac{1}{|X|}\\sum_{x\\in X}\\min_{y\\in Y} d(x, y)
        + \\frac{1}{|Y|}\\sum_{y\\in Y}\\min_{x\\in X} d(x, y)\\right)

    This is *not* MONAI's symmetric average surface distance, which pools the distances of both
    boundaries into one mean (weighting the longer boundary more); the two agree only when the
    boundaries have the same number of points.

    Args:
        y_pred: binarised one-hot prediction ``(B, C, H, W[, D])``.
        y: binarised one-hot reference of the same shape.
        spacing: pixel spacing, as in :func:`compute_bf_score`.
        include_background: whether to score the first channel.

    Returns:
        ``(B, C)`` float tensor of distances in the units of ``spacing`` (0 when both masks are
        empty, ``inf`` when only one is).
    """
    y_pred_b, y_b, spacing_list = _pairs(y_pred, y, include_background, spacing)
    out = torch.zeros(y_b.shape[:2], dtype=torch.float32)
    for b, c, d_pg, d_gp in _surface_distances(y_pred_b, y_b, spacing_list):
        out[b, c] = float(0.5 * (d_pg.float().mean() + d_gp.float().mean()))
    return _apply_empty_policy(out, y_pred_b, y_b, both=0.0, one=float("inf")).to(y_b.device)


def compute_hausdorff_distance(
    y_pred: Any,
    y: Any,
    include_background: bool = True,
    distance_metric: str = "euclidean",
    percentile: float | None = None,
    directed: bool = False,
    spacing: Spacing = None,
) -> torch.Tensor:
    """Hausdorff distance, computed by MONAI's ``compute_hausdorff_distance``, with the empty-mask
    cases of this module (both empty: 0; one empty: ``inf``; MONAI gives NaN for the first).

    .. math::
        d_H(X, Y) = \\max\\left(\\max_{x\\in X}\\min_{y\\in Y} d(x, y), \\max_{y\\in Y}\\min_{x\\in X} d(x, y)\\right)

    Args:
        y_pred: binarised one-hot prediction ``(B, C, H, W[, D])``.
        y: binarised one-hot reference of the same shape.
        include_background: whether to score the first channel.
        distance_metric: ``"euclidean"``, ``"chessboard"`` or ``"taxicab"`` (MONAI's options).
        percentile: if given (0-100), that percentile of the distances instead of the maximum (HD95: 95).
        directed: only the distances from ``y_pred`` to ``y``.
        spacing: pixel spacing, as in :func:`compute_bf_score`.

    Returns:
        ``(B, C)`` float tensor of distances in the units of ``spacing``.
    """
    y_pred_b, y_b, _ = _pairs(y_pred, y, include_background, spacing)
    if y_b.shape[1] == 0:
        return torch.zeros(y_b.shape[:2], device=y_b.device)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is all 0, this may result in nan/inf distance")
        # MONAI 1.6 passes its own deprecated argument internally; nothing a caller can change
        warnings.filterwarnings("ignore", message=".*always_return_as_numpy", category=FutureWarning)
        hd = _monai_compute_hausdorff_distance(
            y_pred_b.float(),
            y_b.float(),
            include_background=True,
            distance_metric=distance_metric,
            percentile=percentile,
            directed=directed,
            spacing=spacing,
        )
    return _apply_empty_policy(hd.float(), y_pred_b, y_b, both=0.0, one=float("inf"))


class _BoundaryMetric(CumulativeIterationMetric):
    """Base of the cumulative boundary metrics: MONAI's ``CumulativeIterationMetric`` protocol."""

    def __init__(
        self,
        include_background: bool = False,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        get_not_nans: bool = False,
    ) -> None:
        super().__init__()
        self.include_background = include_background
        self.reduction = reduction
        self.get_not_nans = get_not_nans

    def aggregate(
        self, reduction: MetricReduction | str | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Reduce the buffered ``(N, C)`` values with ``reduction`` (MONAI's ``do_metric_reduction``;
        ``inf`` values are kept, so one missed object makes a mean distance ``inf``)."""
        data = self.get_buffer()
        if not isinstance(data, torch.Tensor):
            raise ValueError(f"the data to aggregate must be a PyTorch Tensor, got {type(data)}.")
        f, not_nans = do_metric_reduction(data, reduction or self.reduction)
        return (f, not_nans) if self.get_not_nans else f


class BoundaryFScoreMetric(_BoundaryMetric):
    """Cumulative BF-score (see :func:`compute_bf_score`), used like MONAI's ``DiceMetric``.

    Args:
        include_background: whether to score the first channel (default False, as MONAI's
            ``HausdorffDistanceMetric``).
        tolerance: matching tolerance in the units of the spacing; None is 0.75% of the image diagonal.
        reduction: MONAI ``MetricReduction`` applied by :meth:`aggregate`.
        get_not_nans: whether :meth:`aggregate` also returns the count of not-NaN values.

    Example:
        >>> metric = BoundaryFScoreMetric()
        >>> metric(y_pred=onehot_pred, y=onehot_label)   # per batch, shape (B, C - 1)
        >>> metric.aggregate().item()
    """

    def __init__(
        self,
        include_background: bool = False,
        tolerance: float | None = None,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        get_not_nans: bool = False,
    ) -> None:
        super().__init__(include_background, reduction, get_not_nans)
        if tolerance is not None and not (np.isfinite(tolerance) and tolerance > 0):
            raise ValueError(f"tolerance must be a positive number, got {tolerance}.")
        self.tolerance = tolerance

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor, **kwargs: Any) -> torch.Tensor:  # type: ignore[override]
        return compute_bf_score(y_pred, y, self.tolerance, kwargs.get("spacing"), self.include_background)


class ChamferDistanceMetric(_BoundaryMetric):
    """Cumulative Chamfer distance (see :func:`compute_chamfer_distance`), used like MONAI's metrics.

    Args:
        include_background: whether to score the first channel (default False).
        reduction: MONAI ``MetricReduction`` applied by :meth:`aggregate`.
        get_not_nans: whether :meth:`aggregate` also returns the count of not-NaN values.
    """

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor, **kwargs: Any) -> torch.Tensor:  # type: ignore[override]
        return compute_chamfer_distance(y_pred, y, kwargs.get("spacing"), self.include_background)


class HausdorffDistanceMetric(_MonaiHausdorffDistanceMetric):
    """MONAI's ``HausdorffDistanceMetric`` with the empty-mask cases of this module (both masks
    empty: 0 instead of NaN, so a correct empty prediction is not dropped from the mean) and
    checked inputs. Takes the same arguments as MONAI's."""

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor, **kwargs: Any) -> torch.Tensor:  # type: ignore[override]
        if self.ignore_index is not None:
            return super()._compute_tensor(y_pred, y, **kwargs)
        return compute_hausdorff_distance(
            y_pred,
            y,
            include_background=self.include_background,
            distance_metric=self.distance_metric,
            percentile=self.percentile,
            directed=self.directed,
            spacing=kwargs.get("spacing"),
        )
