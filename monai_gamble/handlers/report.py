"""A per-image metrics report for evaluation runs (on MONAI's ``MetricsSaver``): one CSV, one markdown table
and a JSON summary, printed; and the side-by-side comparison of several methods' reports."""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from monai.data import decollate_batch
from monai.handlers import MetricsSaver
from monai.handlers.utils import write_metrics_reports
from monai.utils import min_version, optional_import, string_list_all_gather

from ..utils import atomic_copy
from ..visualize import plot_metric_comparison
from .figures import log_artifact_to_mlflow

idist, _ = optional_import("ignite", "0.4.11", min_version, "distributed")
Events, _ = optional_import("ignite.engine", "0.4.11", min_version, "Events")
if TYPE_CHECKING:
    from ignite.engine import Engine
    from monai.handlers import MLFlowHandler
else:
    Engine, _ = optional_import("ignite.engine", "0.4.11", min_version, "Engine")
    MLFlowHandler = Any

__all__ = ["MetricsReport", "compare_reports", "format_summary_table", "summarize"]

_STATS = ("mean", "std", "median", "min", "max")
_PER_IMAGE_CSV = "metrics_per_image.csv"
#: Direction of the metrics of the bundles' reports (for the arrows of comparison charts).
HIGHER_IS_BETTER = {"Dice": True, "Jaccard": True, "BF-score": True, "Chamfer": False, "Hausdorff": False}


def _json_safe(obj: Any) -> Any:
    """``obj`` with non-finite floats as the strings ``"inf"``, ``"-inf"``, ``"nan"`` (strict JSON has none)."""
    if isinstance(obj, Mapping):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    return obj


def summarize(values: Sequence[float]) -> dict[str, float]:
    """Mean, standard deviation (population, ``ddof=0``), median, min and max of the finite values,
    with ``n`` (all values), ``n_inf`` and ``n_nan``. The mean and std are ``inf`` when any value is
    ``inf`` (a missed object must not vanish from a mean); NaN values are counted and left out."""
    a = np.asarray(values, dtype=float)
    finite = a[np.isfinite(a)]
    n_inf, n_nan = int(np.isinf(a).sum()), int(np.isnan(a).sum())
    out: dict[str, float] = {"n": int(a.size), "n_inf": n_inf, "n_nan": n_nan}
    if finite.size == 0 and n_inf == 0:
        return out | dict.fromkeys(_STATS, math.nan)
    kept = a[~np.isnan(a)]
    out["mean"] = float(kept.mean())
    out["std"] = float(kept.std()) if n_inf == 0 else math.inf
    out["median"] = float(np.median(kept))
    out["min"] = float(kept.min())
    out["max"] = float(kept.max())
    return out


def format_summary_table(summary: Mapping[str, Mapping[str, float]], digits: int = 4) -> str:
    """A markdown table with one row per metric and the columns of :func:`summarize`."""
    lines = [
        "| metric | mean | std | median | min | max | n | inf | nan |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in summary.items():
        cells = [f"{s[k]:.{digits}f}" if math.isfinite(s[k]) else str(s[k]) for k in _STATS]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {s['n']} | {s['n_inf']} | {s['n_nan']} |")
    return "\n".join(lines)


def _read_per_image(path: Path) -> dict[str, np.ndarray]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return {}
    return {k: np.array([float(r[k]) for r in rows]) for k in rows[0] if k != "id"}


def compare_reports(
    folder: str | os.PathLike,
    mlflow_handler: MLFlowHandler | None = None,
    print_table: bool = True,
    digits: int = 4,
) -> str | None:
    """Compare the evaluations of several methods side by side.

    Every sub-folder ``folder/<method>/`` that holds a ``metrics_per_image.csv`` (written by
    :class:`MetricsReport`) is a method. With two or more, write ``folder/comparison.md`` (a
    markdown table: one row per metric, one column per method, ``mean ± std`` with the count of
    ``inf`` values where there are some) and ``folder/comparison.png``
    (:func:`monai_gamble.visualize.plot_metric_comparison`), print the table and log both files to
    the MLflow run of ``mlflow_handler``.

    Returns:
        The markdown table, or None when fewer than two methods were found.
    """
    folder = Path(folder)
    per_method = {
        p.parent.name: _read_per_image(p) for p in sorted(folder.glob(f"*/{_PER_IMAGE_CSV}")) if p.parent.is_dir()
    }
    per_method = {m: cols for m, cols in per_method.items() if cols}
    if len(per_method) < 2:
        return None
    summaries = {m: {k: summarize(v) for k, v in cols.items()} for m, cols in per_method.items()}
    metrics = list(dict.fromkeys(k for cols in per_method.values() for k in cols))
    methods = list(summaries)
    lines = ["| metric | " + " | ".join(methods) + " |", "|---|" + "---:|" * len(methods)]
    for metric in metrics:
        cells = []
        for m in methods:
            s = summaries[m].get(metric)
            if s is None:
                cells.append("")
                continue
            cell = f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}" if math.isfinite(s["mean"]) else str(s["mean"])
            cells.append(cell + (f" ({s['n_inf']} inf)" if s["n_inf"] else ""))
        lines.append(f"| {metric} | " + " | ".join(cells) + " |")
    n = {m: next(iter(cols.values())).size for m, cols in per_method.items()}
    table = "\n".join(lines)
    title = f"Comparison of {', '.join(methods)} (" + ", ".join(f"{m}: {k} images" for m, k in n.items()) + ")"
    md_path = folder / "comparison.md"
    md_path.write_text(f"## {title}\n\n{table}\n")
    fig = plot_metric_comparison(summaries, metrics, title=title, higher_is_better=HIGHER_IS_BETTER)
    png_path = folder / "comparison.png"
    fig.savefig(png_path, dpi=100)
    if print_table:
        print(f"\n{title}\n{table}\n", flush=True)
    for p in (md_path, png_path):
        log_artifact_to_mlflow(mlflow_handler, p, artifact_path="evaluation")
    return table


class MetricsReport(MetricsSaver):
    """At the end of an evaluation, write every image's metrics and their summary: MONAI's
    ``MetricsSaver`` with the tables of this package.

    Built on ``monai.handlers.MetricsSaver``: its handlers collect the image IDs of the decollated
    batches (gathered across ranks under DDP), and MONAI's ``write_metrics_reports`` writes its files
    into ``output_dir``: ``metrics.csv`` (the dataset-level values of ``engine.state.metrics``) and
    ``<metric key>_raw.csv`` (one row per image, one column per class, from the per-image values
    that MONAI's metric handlers keep in ``engine.state.metric_details``, ``save_details=True``).
    On top of them, for the bundles' tables, comparisons and benchmarks:

    - ``metrics_per_image.csv``: one row per image (``id`` first), one column per metric under its
      display name (and class, ``<name>_class<c>``, when a metric scores several classes);
    - ``metrics_summary.md``: mean, std, median, min, max, and the counts of ``inf`` / NaN values per
      metric (:func:`summarize`: a mean with an ``inf`` is ``inf``, so a missed object is not hidden,
      which NaN-skipping summaries would do); it is also printed;
    - ``metrics.json``: the same summary, machine-readable (``{"title", "num_images", "metrics":
      {name: {"mean", "std", ...}}, "dataset_metrics": {key: value}}``, ``dataset_metrics`` being the
      numbers of ``engine.state.metrics``; non-finite values as the strings ``"inf"`` / ``"nan"``).

    The last three are logged to the MLflow run of ``mlflow_handler``.

    Args:
        output_dir: folder of the files.
        metric_names: which metrics, in which order, with display names, e.g.
            ``{"test_dice": "Dice", ...}``; None takes all in ``metric_details`` under their own names.
        id_key: key of the image identifier in the decollated batch; falls back to the image's
            ``filename_or_obj`` metadata, then to the image's index.
        image_key: key of the image (for the fallback).
        title: a heading printed above the table; a list is joined with ``", "``. The number of images
            is appended (``"<title> (<n> images)"``, or ``"(<n> images, <title_note>)"``).
        title_note: a remark added after the number of images (e.g. ``"original resolution"``).
        title_counts: more counts after the number of images, e.g. ``{"with pneumothorax": 5}`` gives
            ``"(20 images, 5 with pneumothorax, ...)"``.
        class_names: the names of the classes of a multi-class metric's ``<name>_class<c>`` columns,
            listed in the title (``"classes: 0 background, 1 glomeruli, ..."``).
        mlflow_handler: the ``MLFlowHandler`` whose run receives the files (None: files only).
        print_table: print the table on stdout.
        compare_in: a folder whose sub-folders hold the reports of several methods (this report's
            ``output_dir`` being one of them); after writing, :func:`compare_reports` compares them.
        summary_ops: MONAI's summary operations for ``<metric key>_summary.csv`` files
            (``MetricsSaver``'s argument; None: no such files).
        save_rank: the rank that writes (``MetricsSaver``'s argument).
        latest_dir: with ``output_dir`` the run's own folder (``<evaluation>/runs/<run_name>``, never
            written by another run), a folder that receives a copy of every report file (atomically,
            file by file) once it is written: the stable "latest" place that tables, comparisons and
            benchmarks read. None: no copy.

    Raises:
        KeyError: at the end of the evaluation, if a named metric kept no per-image values.
        ValueError: if a metric has another number of values than there are images.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        metric_names: Mapping[str, str] | Sequence[str] | None = None,
        id_key: str = "id",
        image_key: str = "image",
        title: str | Sequence[str] | None = None,
        title_note: str | None = None,
        title_counts: Mapping[str, int] | None = None,
        class_names: Sequence[str] | None = None,
        mlflow_handler: MLFlowHandler | None = None,
        print_table: bool = True,
        compare_in: str | os.PathLike | None = None,
        summary_ops: str | Sequence[str] | None = None,
        save_rank: int = 0,
        latest_dir: str | os.PathLike | None = None,
    ) -> None:
        if metric_names is not None and not isinstance(metric_names, Mapping):
            metric_names = {m: m for m in metric_names}
        super().__init__(
            save_dir=str(output_dir),
            metrics="*",
            metric_details="*" if metric_names is None else list(metric_names),
            batch_transform=self._item_ids,
            summary_ops=summary_ops,
            save_rank=save_rank,
        )
        self.output_dir = Path(output_dir)
        self.metric_names = metric_names
        self.id_key = id_key
        self.image_key = image_key
        self.title = title if title is None or isinstance(title, str) else ", ".join(str(t) for t in title)
        self.title_note = title_note
        self.title_counts = dict(title_counts or {})
        self.class_names = None if class_names is None else [str(n) for n in class_names]
        self.mlflow_handler = mlflow_handler
        self.print_table = print_table
        self.compare_in = None if compare_in is None else Path(compare_in)
        self.latest_dir = None if latest_dir is None else Path(latest_dir)
        self.summary: dict[str, dict[str, float]] = {}

    def attach(self, engine: Engine) -> None:
        """MONAI's ``MetricsSaver`` events; with ``latest_dir``, also a last copy when the engine completes
        (registered when it starts, so after every other handler: files that other handlers write into
        ``output_dir`` at the end, e.g. ensemble weights, reach ``latest_dir`` too)."""
        super().attach(engine)
        if self.latest_dir is not None:
            engine.add_event_handler(Events.STARTED, self._register_final_copy)

    def _register_final_copy(self, engine: Engine) -> None:
        if not engine.has_event_handler(self.copy_to_latest, Events.COMPLETED):
            engine.add_event_handler(Events.COMPLETED, self.copy_to_latest)

    def copy_to_latest(self, engine: Engine | None = None) -> None:
        """Copy the report files (``.csv``, ``.md``, ``.json``, ``.png``) of ``output_dir`` to ``latest_dir``."""
        if self.latest_dir is None or idist.get_rank() != self.save_rank or not self.output_dir.is_dir():
            return
        if self.latest_dir.resolve() == self.output_dir.resolve():
            return
        for p in sorted(self.output_dir.rglob("*")):
            if p.is_file() and p.suffix in (".csv", ".md", ".json", ".png"):
                atomic_copy(p, self.latest_dir / p.relative_to(self.output_dir))

    def _item_ids(self, batch: Any) -> list[dict[str, str]]:
        """``MetricsSaver``'s ``batch_transform``: one ``{"filename_or_obj": id}`` per image of the batch."""
        items = decollate_batch(batch) if isinstance(batch, Mapping) else batch
        out = []
        for i, item in enumerate(items):
            if self.id_key in item:
                sid = item[self.id_key]
            else:
                meta = getattr(item.get(self.image_key), "meta", {})
                sid = meta.get("filename_or_obj", len(self._filenames) + i)
            out.append({"filename_or_obj": str(sid)})
        return out

    def full_title(self, num_images: int) -> str | None:
        """The title with the number of images (and the note), as printed and written."""
        if self.title is None:
            return None
        parts = [f"{num_images} images", *(f"{n} {what}" for what, n in self.title_counts.items())]
        if self.title_note:
            parts.append(self.title_note)
        if self.class_names:
            parts.append("classes: " + ", ".join(f"{i} {n}" for i, n in enumerate(self.class_names)))
        return f"{self.title} ({', '.join(parts)})"

    def _columns(self, details: Mapping[str, Any], names: Mapping[str, str], n: int) -> dict[str, np.ndarray]:
        columns: dict[str, np.ndarray] = {}
        for key, display in names.items():
            v = details[key]
            v = v.detach().float().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v, dtype=float)
            v = v.reshape(v.shape[0], -1)
            if v.shape[0] != n:
                raise ValueError(f"MetricsReport: {key} has {v.shape[0]} values for {n} images.")
            if v.shape[1] == 1:
                columns[display] = v[:, 0]
            else:
                for c in range(v.shape[1]):
                    columns[f"{display}_class{c}"] = v[:, c]
        return columns

    def __call__(self, engine: Engine) -> None:
        """Write the reports (``Events.EPOCH_COMPLETED``): MONAI's files, then the tables of this package."""
        details: dict[str, Any] = getattr(engine.state, "metric_details", {}) or {}
        names = self.metric_names or {k: k for k in details}
        missing = [k for k in names if k not in details]
        if missing:
            raise KeyError(
                f"MetricsReport: no per-image values for {missing}; set save_details=True on those handlers."
            )
        ids = string_list_all_gather(self._filenames) if idist.get_world_size() > 1 else self._filenames
        columns = self._columns(details, names, len(ids))
        if idist.get_rank() != self.save_rank:
            return
        dataset_metrics = {
            k: float(v) for k, v in engine.state.metrics.items() if isinstance(v, (int, float, np.number))
        }
        write_metrics_reports(
            save_dir=self.save_dir,
            images=ids,
            metrics=dataset_metrics,
            metric_details={k: details[k] for k in names},
            summary_ops=self.summary_ops,
            deli=self.deli,
            output_type=self.output_type,
        )
        self.summary = {name: summarize(col) for name, col in columns.items()}
        csv_path = self.output_dir / _PER_IMAGE_CSV
        with open(csv_path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["id", *columns])
            for i, sid in enumerate(ids):
                w.writerow([sid, *(f"{columns[c][i]:.6g}" for c in columns)])
        title = self.full_title(len(ids))
        table = format_summary_table(self.summary)
        md_path = self.output_dir / "metrics_summary.md"
        md_path.write_text((f"## {title}\n\n" if title else "") + table + "\n")
        if self.print_table:
            print(("\n" + title if title else "") + "\n" + table + "\n", flush=True)
        json_path = self.output_dir / "metrics.json"
        record = {"title": title, "num_images": len(ids), "metrics": self.summary, "dataset_metrics": dataset_metrics}
        json_path.write_text(json.dumps(_json_safe(record), indent=1) + "\n")
        for p in (csv_path, md_path, json_path):
            log_artifact_to_mlflow(self.mlflow_handler, p, artifact_path="evaluation")
        self.copy_to_latest()
        if self.compare_in is not None:
            compare_reports(self.compare_in, self.mlflow_handler, print_table=self.print_table)
