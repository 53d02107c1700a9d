"""Image-by-image comparison of a method with a baseline over seeds: the mean difference, its bootstrap
confidence interval, the Wilcoxon signed-rank test and the wins, ties and losses."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["paired_comparison"]

#: the keys of :func:`paired_comparison` besides ``n_images`` and ``n_excluded``
PAIRED_KEYS = ("mean_method", "mean_baseline", "mean_diff", "ci_low", "ci_high", "p_wilcoxon", "wins", "ties", "losses")


def paired_comparison(
    method_runs: Sequence[Mapping[str, Mapping[str, float]]],
    baseline_runs: Sequence[Mapping[str, Mapping[str, float]]],
    metric: str,
    higher_is_better: bool = True,
    confidence: float = 0.95,
    bootstrap_samples: int = 10000,
    seed: int = 0,
) -> dict[str, float]:
    """Image-by-image comparison of a method with a baseline on one metric, over seeds.

    Each image's value is averaged over the runs (seeds) of each method, giving one pair
    ``(m_i, b_i)`` per evaluation image; the test is on the paired differences ``d_i = m_i - b_i``
    (images are the independent units: every run is evaluated on the same images, and the seeds
    only average out the training noise). Reported: the mean difference, its percentile bootstrap
    confidence interval (``bootstrap_samples`` resamples of the images, seeded), the two-sided
    Wilcoxon signed-rank p-value (``scipy.stats.wilcoxon``, zero differences dropped as in
    Wilcoxon's original test), and how many images the method wins, ties and loses (a win is a
    higher value when ``higher_is_better``, else a lower one). An image whose value is not finite in
    any run (an infinite distance: a missed nodule) is left out and counted in ``n_excluded``.

    Args:
        method_runs: per run of the method, ``{image id: {metric: value}}``.
        baseline_runs: the same for the baseline.
        metric: the metric's name (a column of the per-image CSV).
        higher_is_better: the metric's direction.
        confidence: the confidence level of the interval.
        bootstrap_samples: number of bootstrap resamples.
        seed: the bootstrap's random seed.

    Returns:
        ``{"n_images", "n_excluded", "mean_method", "mean_baseline", "mean_diff", "ci_low",
        "ci_high", "p_wilcoxon", "wins", "ties", "losses"}``.

    Raises:
        ValueError: if a side has no run or the runs were evaluated on different images.
    """
    from scipy.stats import wilcoxon

    if not method_runs or not baseline_runs:
        raise ValueError("paired_comparison needs at least one run of each method.")
    ids = sorted(method_runs[0])
    for runs in (method_runs, baseline_runs):
        for r in runs:
            if sorted(r) != ids:
                raise ValueError(
                    "the runs were evaluated on different images: a paired comparison needs the same ones."
                )

    def per_image(runs: Sequence[Mapping[str, Mapping[str, float]]]) -> np.ndarray:
        return np.array([[r[i][metric] for i in ids] for r in runs], dtype=float).mean(0)

    m, b = per_image(method_runs), per_image(baseline_runs)
    keep = np.isfinite(m) & np.isfinite(b)
    m, b = m[keep], b[keep]
    d = m - b
    out: dict[str, float] = {"n_images": int(d.size), "n_excluded": int((~keep).sum())}
    if d.size == 0:
        return out | dict.fromkeys(PAIRED_KEYS, math.nan)
    rng = np.random.default_rng(seed)
    boot = d[rng.integers(0, d.size, size=(int(bootstrap_samples), d.size))].mean(1)
    alpha = (1 - confidence) / 2
    sign = 1 if higher_is_better else -1
    nonzero = d[d != 0]
    p = float(wilcoxon(nonzero).pvalue) if nonzero.size else 1.0
    return out | {
        "mean_method": float(m.mean()),
        "mean_baseline": float(b.mean()),
        "mean_diff": float(d.mean()),
        "ci_low": float(np.quantile(boot, alpha)),
        "ci_high": float(np.quantile(boot, 1 - alpha)),
        "p_wilcoxon": p,
        "wins": int((sign * d > 0).sum()),
        "ties": int((d == 0).sum()),
        "losses": int((sign * d < 0).sum()),
    }
