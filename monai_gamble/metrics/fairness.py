"""Fairness across classes: per-class IoU over a dataset and the criteria of the TCE paper (Table 3).

Szabó, Jamali-Rad & Mannava, "Tilted Cross-Entropy (TCE): Promoting Fairness in Semantic
Segmentation" (CVPR Workshops 2021), Section 4: fairness is a less varied performance across
classes, measured from the per-class IoUs by the sorted bottom/top 25% mIoU, the 25th percentiles,
the worst class and the standard deviation across classes (:func:`fairness_summary`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.metrics import ConfusionMatrixMetric, get_confusion_matrix

from .utils import check_binary_pair

__all__ = [
    "FAIRNESS_KEYS",
    "ClassFairnessMetric",
    "compute_class_intersection_union",
    "fairness_summary",
    "format_fairness_table",
]

#: the keys of :func:`fairness_summary`, in the order of Table 3 (then the mIoU)
FAIRNESS_KEYS = (
    "sorted_bottom_miou",
    "sorted_top_miou",
    "bottom_percentile",
    "bottom_percentile_miou",
    "top_percentile",
    "top_percentile_miou",
    "worst_iou",
    "std_iou",
    "miou",
)


def _as_vector(x: Any, name: str) -> np.ndarray:
    a = (x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)).astype(np.float64)
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence of per-class IoUs, got shape {a.shape}.")
    if np.isinf(a).any():
        raise ValueError(f"{name} contains infinite values: IoUs lie in [0, 1] (or [0, 100]).")
    return a


def fairness_summary(
    iou_per_class: Sequence[float] | np.ndarray | torch.Tensor,
    reference_iou: Sequence[float] | np.ndarray | torch.Tensor | None = None,
    fraction: float = 0.25,
) -> dict[str, float]:
    """Fairness criteria of per-class IoUs, Table 3 of Szabó et al. (CVPR-W 2021).

    With the K per-class IoUs :math:`v_1..v_K` of one model (any unit: fractions or percent; the
    outputs are in the same unit), :math:`f` = ``fraction`` and :math:`k = \\lceil fK \\rceil`:

    - ``miou``: :math:`\\frac{1}{K}\\sum_c v_c`.
    - ``sorted_bottom_miou`` / ``sorted_top_miou`` (the paper's "sorted 25%"): the mean IoU of the
      k classes with the lowest / highest *reference* IoU (``reference_iou``, e.g. the MCCE model's;
      the model's own IoUs when None). Ties keep the class order (stable sort). For 19 classes and
      f = 0.25, k = 5, as in the paper.
    - ``bottom_percentile`` / ``top_percentile``: the :math:`100f`-th and :math:`100(1-f)`-th
      percentiles of the model's own IoUs, with **linear interpolation between order statistics**
      (``numpy.percentile(method="linear")``, Hyndman & Fan type 7, Excel ``PERCENTILE.INC``): with
      :math:`v_{(0)} \\le \\dots \\le v_{(K-1)}` and :math:`h = (K-1)q`, the q-quantile is
      :math:`v_{(\\lfloor h\\rfloor)} + (h - \\lfloor h\\rfloor)(v_{(\\lfloor h\\rfloor+1)} - v_{(\\lfloor h\\rfloor)})`.
    - ``bottom_percentile_miou`` / ``top_percentile_miou``: the mean IoU of the classes at or below
      the bottom percentile / at or above the top one (each model sorted by its own IoUs). For
      distinct IoUs and f = 0.25 these are :math:`\\lceil K/4 \\rceil` classes, the same count as
      the sorted 25%.
    - ``worst_iou``: :math:`\\min_c v_c`.
    - ``std_iou``: the **sample** standard deviation across classes,
      :math:`\\sqrt{\\frac{1}{K-1}\\sum_c (v_c - \\bar{v})^2}` (``ddof=1``; NaN when K = 1).

    These conventions reproduce Table 3 of the paper from the per-class IoUs of its Table 1 to the
    printed precision (``tests/metrics/test_fairness.py``); the population standard deviation
    (14.56 instead of 14.96 for MCCE) and the other percentile methods of numpy (``lower``,
    ``nearest``, ``hazen``, ``weibull``, ``median_unbiased``, ...) do not. With K = 19,
    :math:`h = 4.5`, so ``midpoint`` agrees with ``linear`` there.

    Classes whose IoU (or reference IoU) is NaN, e.g. absent from both the prediction and the
    ground truth, are left out of every statistic.

    Args:
        iou_per_class: ``(K,)`` per-class IoUs of the model.
        reference_iou: ``(K,)`` per-class IoUs of the reference model that orders the classes for the
            sorted statistics (None: the model itself).
        fraction: the share of classes at each end, in (0, 0.5] (the paper: 0.25).

    Returns:
        A dict with the keys of :data:`FAIRNESS_KEYS` (floats, in the unit of the IoUs).

    Raises:
        ValueError: for inputs that are not 1-D, of different lengths, infinite, all NaN, or a
            ``fraction`` outside (0, 0.5].

    Example:
        >>> s = fairness_summary([0.5, 0.6, 0.9, 0.95], reference_iou=[0.4, 0.7, 0.8, 0.9])
        >>> s["sorted_bottom_miou"], s["worst_iou"]
        (0.5, 0.5)
    """
    if not (isinstance(fraction, (int, float)) and 0.0 < fraction <= 0.5):
        raise ValueError(f"fraction must lie in (0, 0.5], got {fraction!r}.")
    v = _as_vector(iou_per_class, "iou_per_class")
    ref = v if reference_iou is None else _as_vector(reference_iou, "reference_iou")
    if ref.shape != v.shape:
        raise ValueError(f"reference_iou has {ref.size} values and iou_per_class {v.size}: give one per class to both.")
    keep = ~(np.isnan(v) | np.isnan(ref))
    if not keep.any():
        raise ValueError("every class IoU is NaN: no class was present in the predictions or the labels.")
    v, ref = v[keep], ref[keep]
    k = max(1, math.ceil(fraction * v.size - 1e-9))
    order = np.argsort(ref, kind="stable")
    low = float(np.percentile(v, 100.0 * fraction, method="linear"))
    high = float(np.percentile(v, 100.0 * (1.0 - fraction), method="linear"))
    return {
        "sorted_bottom_miou": float(v[order[:k]].mean()),
        "sorted_top_miou": float(v[order[-k:]].mean()),
        "bottom_percentile": low,
        "bottom_percentile_miou": float(v[v <= low].mean()),
        "top_percentile": high,
        "top_percentile_miou": float(v[v >= high].mean()),
        "worst_iou": float(v.min()),
        "std_iou": float(v.std(ddof=1)) if v.size > 1 else math.nan,
        "miou": float(v.mean()),
    }


def format_fairness_table(
    summaries: Mapping[str, Mapping[str, float]], scale: float = 1.0, digits: int = 2, percent: int = 25
) -> str:
    """A markdown table of :func:`fairness_summary` results, laid out as Table 3 of the TCE paper.

    Args:
        summaries: one summary per method (row), e.g. ``{"MCCE": fairness_summary(...), ...}``.
        scale: multiplies every value (100 shows fractions as percent).
        digits: decimals.
        percent: the share in the column titles (100 x the ``fraction`` of the summaries).

    Returns:
        The table as a string.
    """
    fmt = lambda x: f"{scale * x:.{digits}f}"  # noqa: E731
    lines = [
        f"| method | sorted {percent}% bottom | sorted {percent}% top | ({percent}th perc., mIoU) bottom "
        f"| ({percent}th perc., mIoU) top | worst | std. | mIoU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in summaries.items():
        cells = [
            fmt(s["sorted_bottom_miou"]),
            fmt(s["sorted_top_miou"]),
            f"({fmt(s['bottom_percentile'])}, {fmt(s['bottom_percentile_miou'])})",
            f"({fmt(s['top_percentile'])}, {fmt(s['top_percentile_miou'])})",
            fmt(s["worst_iou"]),
            fmt(s["std_iou"]),
            fmt(s["miou"]),
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def compute_class_intersection_union(y_pred: Any, y: Any, include_background: bool = True) -> torch.Tensor:
    """Per image and class, the pixel counts :math:`|P \\cap G|` and :math:`|P \\cup G|` of a prediction
    P and a ground truth G (true positives, and true positives + false positives + false negatives of
    MONAI's ``get_confusion_matrix``), from which a dataset-level IoU is summed.

    Args:
        y_pred: binarised one-hot prediction ``(B, C, *spatial)`` (2D or 3D).
        y: binarised one-hot ground truth of the same shape.
        include_background: whether to count the first channel.

    Returns:
        ``(B, 2, C)`` float tensor: ``[:, 0]`` the intersections, ``[:, 1]`` the unions
        (``C - 1`` channels without the background).

    Raises:
        ValueError: for mismatched shapes, NaN or non-binary inputs.
    """
    p, g = check_binary_pair(y_pred, y)
    tp, fp, _, fn = get_confusion_matrix(p.float(), g.float(), include_background).unbind(-1)
    return torch.stack([tp, tp + fp + fn], 1)


class ClassFairnessMetric(ConfusionMatrixMetric):
    """Per-class IoU over a whole evaluation (dataset-level, as Cityscapes reports it) and its
    fairness summary (:func:`fairness_summary`).

    The dataset-level IoU of a class is MONAI's ``ConfusionMatrixMetric(metric_name="threat score",
    compute_sample=False, reduction="sum_batch")``: every call ``metric(y_pred=..., y=...)`` buffers
    the per-image confusion matrices ``(B, C, 4)`` (true positives, false positives, true negatives,
    false negatives), and :meth:`aggregate` sums them over all images i before dividing,
    :math:`\\mathrm{IoU}_c = \\sum_i TP_{i,c} / \\sum_i (TP_{i,c} + FP_{i,c} + FN_{i,c})` (NaN for a
    class in no prediction and no label: it is left out of the summary). This class adds the input
    checks (binary one-hot tensors of the same shape) and :meth:`summary`, the fairness criteria. Under
    DDP the buffers are gathered from all ranks.

    Args:
        include_background: whether to score the first channel.
        reference_iou: per-class IoUs of a reference model for the sorted 25% (None: the model's own),
            over the scored channels.
        fraction: the share of classes at each end (the paper: 0.25).

    Example:
        >>> metric = ClassFairnessMetric(include_background=False)
        >>> metric(y_pred=onehot_pred, y=onehot_label)  # per batch
        >>> metric.aggregate()                          # (C - 1,) per-class IoUs
        >>> metric.summary()["worst_iou"]
    """

    def __init__(
        self,
        include_background: bool = True,
        reference_iou: Sequence[float] | np.ndarray | torch.Tensor | None = None,
        fraction: float = 0.25,
    ) -> None:
        super().__init__(
            include_background=include_background,
            metric_name="threat score",
            compute_sample=False,
            reduction="sum_batch",
        )
        if not (isinstance(fraction, (int, float)) and 0.0 < fraction <= 0.5):
            raise ValueError(f"fraction must lie in (0, 0.5], got {fraction!r}.")
        self.reference_iou = None if reference_iou is None else _as_vector(reference_iou, "reference_iou")
        self.fraction = float(fraction)

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor, **kwargs: Any) -> torch.Tensor:  # type: ignore[override]
        p, g = check_binary_pair(y_pred, y)
        return super()._compute_tensor(p.float(), g.float())

    def aggregate(self) -> torch.Tensor:  # type: ignore[override]
        """The ``(C,)`` per-class IoUs over everything buffered since the last :meth:`reset`."""
        (iou,) = super().aggregate()
        return iou  # type: ignore[return-value]

    def summary(self) -> dict[str, float]:
        """:func:`fairness_summary` of :meth:`aggregate` (IoUs as fractions)."""
        return fairness_summary(self.aggregate(), self.reference_iou, self.fraction)
