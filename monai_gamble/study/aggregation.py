"""Reading a study's evaluations and aggregating them with pandas: one row per (run, metric), then the
mean and spread over seeds per (method, architecture, metric) by ``groupby``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .config import StudyConfig

__all__ = ["aggregate_runs", "per_image_csv", "read_per_image", "run_metrics"]

#: the grouping of :func:`aggregate_runs`
GROUP_KEYS = ["method", "architecture", "metric"]


def per_image_csv(config: StudyConfig, method: str, architecture: str, seed: int) -> Path:
    """The ``metrics_per_image.csv`` of one run's evaluation (``eval/evaluation_<split>/<method>/``).

    Raises:
        FileNotFoundError: if the run has no evaluation.
    """
    root = config.run_dir(method, architecture, seed) / "eval" / f"evaluation_{config.evaluation_split}"
    found = sorted(root.glob("*/metrics_per_image.csv"))
    if not found:
        raise FileNotFoundError(f"no evaluation of {method}/{architecture}/seed {seed} in {root}.")
    return found[0]


def read_per_image(path: Path) -> pd.DataFrame:
    """A ``metrics_per_image.csv`` (written by :class:`~monai_gamble.handlers.MetricsReport`) as a frame
    indexed by the image ``id`` (kept as text), one float column per metric (``inf`` read as such)."""
    return pd.read_csv(path, dtype={"id": str}).set_index("id").astype(float)


def run_metrics(path: Path) -> pd.DataFrame:
    """Per metric of one run: the mean over images of the finite values (``value``; NaN if none) and the
    number of infinite ones (``n_inf``), as a frame indexed by metric."""
    values = read_per_image(path)
    return pd.DataFrame(
        {"value": values.where(np.isfinite(values)).mean(), "n_inf": np.isinf(values).sum().astype(int)}
    ).rename_axis("metric")


def aggregate_runs(per_run: pd.DataFrame) -> pd.DataFrame:
    """Mean and sample std over seeds per (method, architecture, metric) of the per-run values.

    Args:
        per_run: one row per (method, architecture, seed, metric) with ``value`` (the run's mean over
            images) and ``n_inf`` (its images with an infinite value).

    Returns:
        A frame indexed by ``(method, architecture, metric)`` (sorted) with ``mean`` and ``std`` of the
        finite run values (``std`` with ``ddof=1``, NaN for fewer than two runs: one seed shows no
        spread), ``n_runs`` (all runs) and ``n_inf`` (summed over the runs).
    """
    finite = per_run.assign(value=per_run["value"].where(np.isfinite(per_run["value"])))
    groups = finite.groupby(GROUP_KEYS, sort=True)
    return pd.DataFrame(
        {
            "mean": groups["value"].mean(),
            "std": groups["value"].std(ddof=1),
            "n_runs": groups["value"].size(),
            "n_inf": groups["n_inf"].sum(),
        }
    )
