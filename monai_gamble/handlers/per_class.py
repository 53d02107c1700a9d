"""Per-class precision, recall and F1 of an evaluation, with the per-class IoU and fairness summary of a
:class:`~monai_gamble.handlers.ClassFairness` handler, as one table."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from monai.handlers import ConfusionMatrix
from monai.utils import min_version, optional_import

from ..metrics import format_fairness_table
from .fairness import ClassFairness
from .figures import log_artifact_to_mlflow

Events, _ = optional_import("ignite.engine", "0.4.11", min_version, "Events")
MetricsLambda, _ = optional_import("ignite.metrics", "0.4.11", min_version, "MetricsLambda")
idist, _ = optional_import("ignite", "0.4.11", min_version, "distributed")
if TYPE_CHECKING:
    from ignite.engine import Engine
    from monai.handlers import MLFlowHandler
else:
    Engine, _ = optional_import("ignite.engine", "0.4.11", min_version, "Engine")
    MLFlowHandler = Any

__all__ = ["PerClassMetrics"]


class _ClassChannel:
    """``output_transform`` of one class: ``([pred[c:c+1]], [label[c:c+1]])`` of a decollated output."""

    def __init__(self, channel: int, pred_key: str = "pred", label_key: str = "label") -> None:
        self.channel, self.pred_key, self.label_key = channel, pred_key, label_key

    def __call__(self, output: Sequence[dict]) -> tuple[list, list]:
        c = self.channel
        return [o[self.pred_key][c : c + 1] for o in output], [o[self.label_key][c : c + 1] for o in output]


def _nanmean(*values: Any) -> float:
    return float(np.nanmean([float(v) for v in values]))


class PerClassMetrics:
    """Precision, recall and F1 of every class over a whole evaluation (dataset-level counts: MONAI's
    ``ConfusionMatrix`` handler on each class's channel, ``compute_sample=False``) and their means over
    classes, attached to an evaluator; at the end, one markdown table with the IoU of each class from a
    :class:`~monai_gamble.handlers.ClassFairness` handler of the same evaluator, and that handler's
    fairness summary (Table 3 of the TCE paper, :func:`monai_gamble.metrics.format_fairness_table`).

    Metrics written into ``engine.state.metrics`` (so MLflow logs them): ``<prefix>_<m>_<class>`` and
    ``<prefix>_mean_<m>`` for ``m`` in ``precision``, ``recall``, ``f1``. The table is written to
    ``output_path`` (with a heading), printed and logged to the MLflow run of ``mlflow_handler``::

        | class | IoU | precision | recall | F1 |
        |---|---:|---:|---:|---:|
        | background | 0.9512 | 0.9730 | 0.9771 | 0.9750 |
        ...
        | mean | 0.6012 | ... |

    Args:
        class_names: one name per channel of the one-hot ``pred`` and ``label`` (background first).
        fairness: the ``ClassFairness`` handler of the evaluator (its key metric, say), attached before
            this one.
        prefix: the first part of the metric names.
        output_path: the markdown file (None: print only).
        title: the heading's words after "Per-class metrics, " (a list is joined with ``", "``).
        fairness_row: the name of the model in the fairness table (e.g. the method).
        mlflow_handler: the ``MLFlowHandler`` whose run receives the file (None: file only).
        print_table: print the tables.
        digits: decimals.
        pred_key: key of the one-hot prediction in the decollated output.
        label_key: key of the one-hot label.

    Example:
        >>> PerClassMetrics(["background", "glomeruli"], fairness=iou_handler, output_path="eval/per_class.md")
    """

    #: the confusion-matrix metrics and their short names
    METRICS = (("precision", "precision"), ("recall", "recall"), ("f1 score", "f1"))

    def __init__(
        self,
        class_names: Sequence[str],
        fairness: ClassFairness,
        prefix: str = "test",
        output_path: str | os.PathLike | None = None,
        title: str | Sequence[str] | None = None,
        fairness_row: str = "model",
        mlflow_handler: MLFlowHandler | None = None,
        print_table: bool = True,
        digits: int = 4,
        pred_key: str = "pred",
        label_key: str = "label",
    ) -> None:
        if not class_names:
            raise ValueError("class_names must name at least one class.")
        if not isinstance(fairness, ClassFairness):
            raise TypeError(f"fairness must be a ClassFairness handler, got {type(fairness).__name__}.")
        self.class_names = [str(n) for n in class_names]
        self.fairness = fairness
        self.prefix = prefix
        self.output_path = None if output_path is None else Path(output_path)
        self.title = title if title is None or isinstance(title, str) else ", ".join(str(t) for t in title)
        self.fairness_row = fairness_row
        self.mlflow_handler = mlflow_handler
        self.print_table = print_table
        self.digits = digits
        self.pred_key, self.label_key = pred_key, label_key
        #: the markdown of the last evaluation
        self.text = ""

    def metric_name(self, metric: str, class_name: str | None = None) -> str:
        """``<prefix>_<metric>_<class>``, or ``<prefix>_mean_<metric>`` without a class."""
        return f"{self.prefix}_mean_{metric}" if class_name is None else f"{self.prefix}_{metric}_{class_name}"

    def attach(self, engine: Engine) -> None:
        """Attach the per-class and mean metrics, and the table at ``Events.EPOCH_COMPLETED``."""
        for metric, short in self.METRICS:
            per_class = []
            for c, n in enumerate(self.class_names):
                handler = ConfusionMatrix(
                    include_background=True,
                    metric_name=metric,
                    compute_sample=False,
                    reduction="mean",
                    save_details=False,
                    output_transform=_ClassChannel(c, self.pred_key, self.label_key),
                )
                handler.attach(engine, self.metric_name(short, n))
                per_class.append(handler)
            MetricsLambda(_nanmean, *per_class).attach(engine, self.metric_name(short))
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._write)

    def table(self, metrics: dict[str, Any]) -> str:
        """The per-class table of an evaluator's ``engine.state.metrics``."""
        iou = self.fairness.last_iou
        if iou is None or iou.numel() != len(self.class_names):
            raise ValueError(
                f"the ClassFairness handler scored {None if iou is None else iou.numel()} classes, class_names names "
                f"{len(self.class_names)}: give it include_background=True and the same classes."
            )

        def fmt(v: Any) -> str:
            return f"{float(v):.{self.digits}f}" if v is not None and not math.isnan(float(v)) else "nan"

        lines = ["| class | IoU | precision | recall | F1 |", "|---|---:|---:|---:|---:|"]
        for n, v in zip(self.class_names, iou.tolist()):
            cells = [fmt(v), *(fmt(metrics[self.metric_name(short, n)]) for _, short in self.METRICS)]
            lines.append(f"| {n} | " + " | ".join(cells) + " |")
        means = [fmt(self.fairness.last_summary["miou"]), *(fmt(metrics[self.metric_name(s)]) for _, s in self.METRICS)]
        lines.append("| mean | " + " | ".join(means) + " |")
        return "\n".join(lines)

    def _write(self, engine: Engine) -> None:
        per_class = self.table(engine.state.metrics)
        fairness = format_fairness_table({self.fairness_row: self.fairness.last_summary}, digits=self.digits)
        heading = "Per-class metrics" + (f", {self.title}" if self.title else "")
        self.text = (
            f"## {heading} (dataset-level counts)\n\n{per_class}\n\n## Fairness across classes (IoU)\n\n{fairness}\n"
        )
        if idist.get_rank() > 0:
            return
        if self.output_path is not None:
            self.output_path.parent.mkdir(parents=True, exist_ok=True)
            self.output_path.write_text(self.text)
            log_artifact_to_mlflow(self.mlflow_handler, self.output_path, "evaluation")
        if self.print_table:
            print(f"\n{heading}:\n{per_class}\n\nFairness across classes (IoU):\n{fairness}\n", flush=True)
