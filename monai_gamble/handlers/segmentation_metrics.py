"""Segmentation metric handlers in physical units, per class and averaged: Dice, BF-score, Chamfer,
Hausdorff (and HD95) and ASSD of any number of classes, 2D or 3D.

MONAI's metric handlers call their metric with ``(y_pred, y)`` only, so a distance is in voxels,
which on anisotropic CT (0.8 x 0.8 x 5 mm) mixes units. :class:`SegmentationMetricHandler` passes
each item's voxel spacing, read from the affine of its label (a MONAI ``MetaTensor`` after
``Spacingd`` or at the original resolution), so distances come out in millimetres; and it reports
either one class or the mean over the foreground classes *per image* (one column per handler,
one value per image in ``engine.state.metric_details``, which is what
:class:`monai_gamble.handlers.MetricsReport` writes). All the boundary handlers of one engine share
one boundary extraction and one distance query per batch (:func:`shared_boundary_cache`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from monai.handlers import IgniteMetricHandler
from monai.metrics import CumulativeIterationMetric, compute_dice
from monai.utils import MetricReduction, StrEnum, look_up_option, min_version, optional_import

from ..metrics import BoundaryDistanceCache, BoundaryMetric, compute_boundary_distances
from .metrics import shared_boundary_cache

if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", "0.4.11", min_version, "Engine")

__all__ = [
    "SegmentationMetric",
    "SegmentationMetricHandler",
    "metric_display_names",
    "segmentation_metric_handlers",
    "spacing_from_affine",
]


class SegmentationMetric(StrEnum):
    """The metrics of :class:`SegmentationMetricHandler`.

    - ``"dice"``: MONAI's ``compute_dice`` (``ignore_empty=False``: both masks empty is 1).
    - ``"bf_score"``, ``"chamfer"``, ``"hausdorff"``, ``"hd95"``, ``"assd"``: the boundary metrics of
      :mod:`monai_gamble.metrics` (BF-score, Chamfer distance, Hausdorff distance, its 95th
      percentile, average symmetric surface distance), in the units of the spacing.
    """

    DICE = "dice"
    BF_SCORE = "bf_score"
    CHAMFER = "chamfer"
    HAUSDORFF = "hausdorff"
    HD95 = "hd95"
    ASSD = "assd"


_BOUNDARY = {
    SegmentationMetric.BF_SCORE: BoundaryMetric.BF,
    SegmentationMetric.CHAMFER: BoundaryMetric.CHAMFER,
    SegmentationMetric.HAUSDORFF: BoundaryMetric.HAUSDORFF,
    SegmentationMetric.HD95: BoundaryMetric.HAUSDORFF95,
    SegmentationMetric.ASSD: BoundaryMetric.ASSD,
}
_DISPLAY = {
    SegmentationMetric.DICE: "Dice",
    SegmentationMetric.BF_SCORE: "BF-score",
    SegmentationMetric.CHAMFER: "Chamfer",
    SegmentationMetric.HAUSDORFF: "Hausdorff",
    SegmentationMetric.HD95: "HD95",
    SegmentationMetric.ASSD: "ASSD",
}


def spacing_from_affine(y: Any) -> list[tuple[float, ...]]:
    """The voxel spacing of every item of a batch (a ``(B, C, *spatial)`` ``MetaTensor`` or a list of
    ``(C, *spatial)`` ones): the norms of the columns of each affine's spatial part, in the axis order
    of the array.

    Raises:
        ValueError: for an item without an affine (not a ``MetaTensor``: keep ``track_meta`` on for
            the evaluation, or give the handler a fixed ``spacing``).
    """
    items = list(y) if isinstance(y, (list, tuple)) else [y[i] for i in range(y.shape[0])]
    out = []
    for item in items:
        affine = getattr(item, "affine", None)
        if affine is None:
            raise ValueError(
                "the label has no affine (not a MetaTensor): cannot read its spacing; keep track_meta=True "
                "in the evaluation transforms or give the metric handler a fixed spacing."
            )
        a = np.asarray(affine.detach().cpu() if isinstance(affine, torch.Tensor) else affine, dtype=float)
        d = item.ndim - 1
        a = a[-1] if a.ndim == 3 else a
        out.append(tuple(float(v) for v in np.linalg.norm(a[:d, :d], axis=0)))
    return out


class _ClassesMetric(CumulativeIterationMetric):
    """``(B, 1)`` (the mean over ``classes`` per image) or ``(B, len(classes))`` values of one metric."""

    def __init__(
        self,
        metric: SegmentationMetric,
        classes: Sequence[int] | None,
        average: bool,
        tolerance: float | None,
        cache: BoundaryDistanceCache | None,
    ) -> None:
        super().__init__()
        self.metric = metric
        self.classes = None if classes is None else [int(c) for c in classes]
        self.average = average
        self.tolerance = tolerance
        self.cache = cache

    def _all_classes(self, y_pred: Any, y: Any, spacing: Any) -> torch.Tensor:
        if self.metric == SegmentationMetric.DICE:
            if isinstance(y_pred, (list, tuple)):
                return torch.cat([compute_dice(p[None], g[None], True, False) for p, g in zip(y_pred, y, strict=True)])
            return compute_dice(y_pred, y, include_background=True, ignore_empty=False)
        fn = self.cache if self.cache is not None else compute_boundary_distances
        distances = fn(y_pred, y, spacing, True)
        return distances.metric(_BOUNDARY[self.metric], self.tolerance)

    def _values(self, y_pred: Any, y: Any, spacing: Any = None) -> torch.Tensor:
        values = self._all_classes(y_pred, y, spacing).float()
        c = values.shape[1]
        classes = list(range(1, c)) if self.classes is None else self.classes
        if not classes or any(not 0 <= k < c for k in classes):
            raise ValueError(f"classes {classes} do not fit predictions of {c} channels (one-hot, background first).")
        picked = values[:, classes]
        return picked.mean(dim=1, keepdim=True) if self.average else picked

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        return self._values(y_pred, y, kwargs.get("spacing"))

    def _compute_list(self, y_pred: Any, y: Any = None, **kwargs: Any) -> torch.Tensor:
        return self._values(list(y_pred), list(y), kwargs.get("spacing"))

    def aggregate(self, reduction: MetricReduction | str | None = MetricReduction.MEAN) -> torch.Tensor:
        """The mean of the buffered values (``inf`` kept: a missed object makes a mean distance ``inf``)."""
        data = self.get_buffer()
        if not isinstance(data, torch.Tensor) or data.numel() == 0:
            return torch.tensor(float("nan"))
        return data.mean() if reduction == MetricReduction.MEAN else data


class SegmentationMetricHandler(IgniteMetricHandler):
    """An Ignite metric handler of one :class:`SegmentationMetric`, in physical units, of one class or
    of the mean over several classes per image, used like MONAI's ``MeanDice``.

    ``output_transform`` gives ``(y_pred, y)``: binarised one-hot predictions and labels
    ``(B, C, *spatial)`` (or decollated lists), background first (MONAI's ``AsDiscreted(argmax=True,
    to_onehot=C)``). Per image, the value is that of class ``classes`` (one index), or the mean over
    ``classes`` (a list; None: every foreground class ``1..C-1``); the epoch's value is the mean over
    images, ``inf`` if any distance is (see :mod:`monai_gamble.metrics` for the empty-mask values).

    Args:
        metric: ``"dice"``, ``"bf_score"``, ``"chamfer"``, ``"hausdorff"``, ``"hd95"`` or ``"assd"``.
        classes: a class index, a list of them (averaged per image), or None for the foreground classes.
        spacing: ``"affine"`` (read each label's spacing from its ``MetaTensor`` affine), a fixed
            spacing (one number or one per axis), or None (voxels).
        tolerance: the BF-score's tolerance in the units of the spacing (None: 0.75% of the diagonal).
        output_transform: extracts ``(y_pred, y)`` from ``engine.state.output``.
        save_details: keep the per-image values in ``engine.state.metric_details``.
        cache: a :class:`~monai_gamble.metrics.BoundaryDistanceCache`; None: the engine's shared one.

    Raises:
        ValueError: for an unknown metric or spacing mode; on update, for classes that do not fit the
            predictions or labels without an affine under ``spacing="affine"``.

    Example:
        >>> hd95 = SegmentationMetricHandler("hd95", output_transform=from_engine(["pred", "label"]))
        >>> hd95.attach(evaluator, "val_hd95")  # mm, mean over the foreground classes
    """

    def __init__(
        self,
        metric: SegmentationMetric | str = SegmentationMetric.DICE,
        classes: int | Sequence[int] | None = None,
        spacing: str | float | Sequence[float] | None = "affine",
        tolerance: float | None = None,
        output_transform: Callable = lambda x: x,
        save_details: bool = True,
        cache: BoundaryDistanceCache | None = None,
    ) -> None:
        m = look_up_option(metric, SegmentationMetric)
        if isinstance(spacing, str) and spacing != "affine":
            raise ValueError(f"spacing must be 'affine', a number, one number per axis or None; got {spacing!r}.")
        one = isinstance(classes, (int, np.integer))
        cls = [int(classes)] if one else (None if classes is None else [int(c) for c in classes])
        self.spacing = spacing
        metric_fn = _ClassesMetric(m, cls, average=True, tolerance=tolerance, cache=cache)
        super().__init__(metric_fn=metric_fn, output_transform=output_transform, save_details=save_details)

    def update(self, output: Sequence[Any]) -> None:
        """Compute the metric of a batch ``(y_pred, y)`` with its spacing."""
        if len(output) != 2:
            raise ValueError(f"output must have length 2 (y_pred, y), got {len(output)}.")
        y_pred, y = output
        spacing = spacing_from_affine(y) if self.spacing == "affine" else self.spacing
        self.metric_fn(y_pred, y, spacing=spacing)

    def attach(self, engine: Engine, name: str) -> None:  # type: ignore[override]
        """Attach as MONAI's ``IgniteMetricHandler`` and share the engine's boundary cache."""
        super().attach(engine, name)
        fn = self.metric_fn
        if fn.metric != SegmentationMetric.DICE and fn.cache is None:  # type: ignore[attr-defined]
            fn.cache = shared_boundary_cache(engine)  # type: ignore[attr-defined]


def _key(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name.strip().lower()).strip("_") or "class"


def segmentation_metric_handlers(
    class_names: Sequence[str],
    prefix: str = "val",
    metrics: Sequence[SegmentationMetric | str] = ("dice", "hd95", "chamfer", "bf_score"),
    per_class: bool = True,
    skip: Sequence[str] = (),
    spacing: str | float | Sequence[float] | None = "affine",
    tolerance: float | None = None,
    output_transform: Callable = lambda x: x,
) -> dict[str, SegmentationMetricHandler]:
    """Metric handlers for an evaluator: ``"<prefix>_<metric>"`` (the mean over the foreground
    classes) and, with ``per_class`` and more than one foreground class, ``"<prefix>_<metric>_<class>"``
    for each (class names lower-cased, non-alphanumerics as ``_``).

    Args:
        class_names: the C class names, background first.
        prefix: the name prefix (``"val"``, ``"test"``).
        metrics: the :class:`SegmentationMetric` names.
        per_class: add one handler per foreground class (when there are several).
        skip: names to leave out (e.g. the evaluator's key metric ``"val_dice"``, given separately).
        spacing: the spacing mode of every handler (see :class:`SegmentationMetricHandler`).
        tolerance: the BF-score's tolerance.
        output_transform: extracts ``(y_pred, y)``.

    Returns:
        ``{name: handler}``, for ``additional_metrics`` of a MONAI evaluator.
    """
    names = list(class_names)
    if len(names) < 2:
        raise ValueError(f"need at least two classes (background first), got {names}.")
    out: dict[str, SegmentationMetricHandler] = {}
    for metric in metrics:
        m = look_up_option(metric, SegmentationMetric)
        entries: list[tuple[str, int | None]] = [(f"{prefix}_{m.value}", None)]
        if per_class and len(names) > 2:
            entries += [(f"{prefix}_{m.value}_{_key(n)}", k) for k, n in enumerate(names) if k > 0]
        for name, cls in entries:
            if name not in skip:
                out[name] = SegmentationMetricHandler(m, cls, spacing, tolerance, output_transform)
    return out


def metric_display_names(
    class_names: Sequence[str],
    prefix: str = "test",
    metrics: Sequence[SegmentationMetric | str] = ("dice", "hd95", "chamfer", "bf_score"),
    per_class: bool = True,
    unit: str = "mm",
) -> dict[str, str]:
    """``{handler name: column name}`` of the handlers of :func:`segmentation_metric_handlers`, for
    :class:`monai_gamble.handlers.MetricsReport` (e.g. ``"test_hd95_lesion": "HD95 lesion (mm)"``)."""
    names = list(class_names)
    out: dict[str, str] = {}
    for metric in metrics:
        m = look_up_option(metric, SegmentationMetric)
        suffix = "" if m in (SegmentationMetric.DICE, SegmentationMetric.BF_SCORE) or not unit else f" ({unit})"
        out[f"{prefix}_{m.value}"] = f"{_DISPLAY[m]}{suffix}"
        if per_class and len(names) > 2:
            for k, n in enumerate(names):
                if k > 0:
                    out[f"{prefix}_{m.value}_{_key(n)}"] = f"{_DISPLAY[m]} {n}{suffix}"
    return out
