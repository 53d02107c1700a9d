"""Ignite handler of the class-fairness metric (per-class IoU and the criteria of the TCE paper)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from monai.handlers import IgniteMetricHandler
from monai.utils import min_version, optional_import

from ..metrics.fairness import ClassFairnessMetric, fairness_summary

if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", "0.4.11", min_version, "Engine")

__all__ = ["ClassFairness"]


class ClassFairness(IgniteMetricHandler):
    """Per-class IoU over an epoch and its fairness summary (:class:`monai_gamble.metrics.ClassFairnessMetric`,
    :func:`monai_gamble.metrics.fairness_summary`), used like MONAI's ``MeanIoU`` handler.

    At the end of each epoch, with ``name`` the name it is attached under, it writes into
    ``engine.state.metrics`` (so a ``StatsHandler`` prints and an ``MLFlowHandler`` logs them):

    - ``name``: the mIoU over classes (a number, so it can be the key metric);
    - ``"<name>_<key>"`` for every key of :func:`~monai_gamble.metrics.fairness_summary` but ``miou``
      (``sorted_bottom_miou``, ``bottom_percentile``, ``worst_iou``, ``std_iou``, ...);
    - ``"<name>_iou_<class name>"``: the IoU of each class (NaN for a class seen nowhere).

    Args:
        include_background: whether to score the first channel.
        reference_iou: per-class IoUs of a reference model, for the sorted 25% (None: the model's own).
        fraction: the share of classes at each end (the paper: 0.25).
        class_names: names of the scored classes in the keys (default ``"0"``, ``"1"``, ... by channel).
        output_transform: extracts ``(y_pred, y)``, binarised one-hot, from ``engine.state.output``.
        save_details: keep the per-image ``(C, 4)`` confusion matrices (true and false positives, true and
            false negatives: MONAI's ``get_confusion_matrix``) in ``engine.state.metric_details``.

    Example:
        >>> ClassFairness(include_background=False, output_transform=from_engine(["pred", "label"])).attach(
        ...     evaluator, "val_iou")
    """

    def __init__(
        self,
        include_background: bool = True,
        reference_iou: Sequence[float] | np.ndarray | torch.Tensor | None = None,
        fraction: float = 0.25,
        class_names: Sequence[str] | None = None,
        output_transform: Callable = lambda x: x,
        save_details: bool = True,
    ) -> None:
        metric_fn = ClassFairnessMetric(include_background, reference_iou, fraction)
        super().__init__(metric_fn=metric_fn, output_transform=output_transform, save_details=save_details)
        self.class_names = None if class_names is None else [str(n) for n in class_names]
        self.include_background = include_background
        self.last_summary: dict[str, float] = {}
        self.last_iou: torch.Tensor | None = None

    def compute(self) -> Any:
        """The ``(C,)`` per-class IoUs (as a tensor; :meth:`completed` turns them into numbers)."""
        result = self.metric_fn.aggregate()
        self._is_reduced = True
        if self.save_details and self._engine is not None and self._name is not None:
            self._engine.state.metric_details[self._name] = self.metric_fn.get_buffer()  # type: ignore[attr-defined]
        return result

    def completed(self, engine: Engine, name: str) -> None:
        """Write the mIoU, the fairness summary and the per-class IoUs into ``engine.state.metrics``."""
        iou = self.compute().detach().float().cpu()
        summary = fairness_summary(iou, self.metric_fn.reference_iou, self.metric_fn.fraction)  # type: ignore[attr-defined]
        offset = 0 if self.include_background else 1
        names = self.class_names or [str(c + offset) for c in range(iou.numel())]
        if len(names) != iou.numel():
            raise ValueError(f"class_names names {len(names)} classes, the metric scored {iou.numel()}.")
        engine.state.metrics[name] = summary["miou"]
        for key, value in summary.items():
            if key != "miou":
                engine.state.metrics[f"{name}_{key}"] = value
        for n, value in zip(names, iou.tolist()):
            engine.state.metrics[f"{name}_iou_{n}"] = value
        self.last_summary, self.last_iou = summary, iou
