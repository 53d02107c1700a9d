"""Bar charts that compare methods on several metrics."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

__all__ = ["plot_metric_comparison"]


def plot_metric_comparison(
    summaries: Mapping[str, Mapping[str, Mapping[str, float]]],
    metrics: Sequence[str] | None = None,
    title: str | None = None,
    higher_is_better: Mapping[str, bool] | None = None,
) -> Figure:
    """One panel per metric, one bar per method: the mean with the standard deviation as an error bar
    (its lower half cut at 0 for non-negative means: distances and scores cannot be negative).

    Args:
        summaries: ``{method: {metric: {"mean": m, "std": s, "n_inf": k, ...}}}`` as
            :func:`monai_gamble.handlers.summarize` gives per metric.
        metrics: which metrics, in which order (default: those of the first method).
        title: the figure's title.
        higher_is_better: per metric, whether higher is better; an arrow in the panel title says
            which way (unknown metrics get none).

    Returns:
        A ``matplotlib.figure.Figure`` (no pyplot state); infinite means are drawn as a hatched
        empty bar labelled ``inf``.

    Raises:
        ValueError: if there is no method or no metric to draw.
    """
    methods = list(summaries)
    if not methods:
        raise ValueError("summaries is empty: nothing to compare.")
    metrics = list(metrics if metrics is not None else summaries[methods[0]])
    if not metrics:
        raise ValueError("no metric to draw.")
    better = dict(higher_is_better or {})
    fig = Figure(figsize=(2.4 * len(metrics) + 0.6, 3.2), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    colours = [f"C{i}" for i in range(len(methods))]
    x = np.arange(len(methods))
    for ax, metric in zip(axes, metrics, strict=True):
        means = np.array([summaries[m].get(metric, {}).get("mean", np.nan) for m in methods], dtype=float)
        stds = np.array([summaries[m].get(metric, {}).get("std", np.nan) for m in methods], dtype=float)
        finite = np.isfinite(means)
        top = np.nanmax(np.where(finite, means + np.nan_to_num(stds, posinf=0.0), np.nan)) if finite.any() else 1.0
        heights = np.where(finite, means, top)
        err = np.where(finite & np.isfinite(stds), stds, 0.0)
        lower = np.where(heights >= 0, np.minimum(err, np.abs(heights)), err)  # no bar below 0 for a metric >= 0
        bars = ax.bar(x, heights, color=colours, yerr=np.stack([lower, err]), capsize=3)
        for bar, ok, mean in zip(bars, finite, means, strict=True):
            if not ok:
                bar.set_facecolor("none")
                bar.set_hatch("//")
            ax.annotate(
                f"{mean:.3g}" if ok else str(mean),
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=8,
                xytext=(0, 2),
                textcoords="offset points",
            )
        arrow = {True: " \u2191", False: " \u2193"}.get(better.get(metric), "")  # type: ignore[arg-type]
        ax.set_title(metric + arrow, fontsize=10)
        ax.set_xticks(x, methods, rotation=30, ha="right", fontsize=8)
        ax.tick_params(axis="y", labelsize=8)
        ax.spines[["top", "right"]].set_visible(False)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig
