"""The study's markdown tables: Tables 1-3 (the five metrics per architecture, mean ± std over seeds,
the best mean of each column in bold), Table 4 (MMCL) and the paired comparisons."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

__all__ = ["DISPLAY_NAMES", "TABLE_METRICS", "display_name", "format_cell", "paired_table", "study_tables"]

#: The metrics of Tables 1-3 and whether higher is better; Table 4 is MMCL.
TABLE_METRICS: dict[str, bool] = {"Dice": True, "Jaccard": True, "BF-score": True, "Chamfer": False, "Hausdorff": False}
#: How the tables name the methods.
DISPLAY_NAMES = {"ce": "Cross-entropy", "focal": "Focal loss", "adversarial": "Cross-entropy + adv.",
                 "segan": "SegAN", "confidence": "Confidence adv.", "gambling": "Gambling adv."}  # fmt: skip


def display_name(method: str) -> str:
    """The tables' name of a method (its own name when it has none)."""
    return DISPLAY_NAMES.get(method, method)


def _arrow(metric: str, higher_is_better: bool) -> str:
    return f"{metric} {'↑' if higher_is_better else '↓'}"


def format_cell(mean: float, std: float, n_inf: int, digits: int, bold: bool) -> str:
    """One table cell: ``mean ± std`` (no spread for one seed, whose sample std is NaN), bold for the
    best of its column, and ``†k`` for k images with an infinite value."""
    if math.isnan(mean):
        text = "nan"
    else:
        text = f"{mean:.{digits}f}" + ("" if math.isnan(std) else f" ± {std:.{digits}f}")
    text = f"**{text}**" if bold else text
    return text + (f" †{n_inf}" if n_inf else "")


def study_tables(
    name: str,
    seeds: Sequence[int],
    agg: pd.DataFrame,
    methods: Sequence[str],
    architectures: Sequence[str],
    digits: int,
) -> list[str]:
    """The markdown lines of Tables 1-4 of the aggregated runs (:func:`~monai_gamble.study.aggregation.aggregate_runs`).

    Args:
        name: the study's name (the heading).
        seeds: the study's seeds.
        agg: the aggregated frame indexed by ``(method, architecture, metric)``.
        methods: the methods with finished runs, in the study's order (the rows).
        architectures: the study's architectures (one table each, if it has runs).
        digits: decimals.
    """
    stats = agg.to_dict(orient="index")
    lines = [f"# {name}: mean ± std over seeds {list(seeds)} (sample std over the seeds, ddof=1)", ""]
    archs = [a for a in architectures if a in agg.index.get_level_values("architecture")]
    for t, arch in enumerate(archs):
        lines += [
            f"## Table {t + 1}: {arch}",
            "",
            "| method | " + " | ".join(_arrow(k, hb) for k, hb in TABLE_METRICS.items()) + " | runs |",
            "|---|" + "---:|" * (len(TABLE_METRICS) + 1),
        ]
        best = {}
        for k, hb in TABLE_METRICS.items():
            means = [stats[(m, arch, k)]["mean"] for m in methods if (m, arch, k) in stats]
            means = [v for v in means if not math.isnan(v)]
            best[k] = (max(means) if hb else min(means)) if means else None
        for m in methods:
            cells = []
            for k in TABLE_METRICS:
                s = stats.get((m, arch, k))
                cells.append(
                    "" if s is None else format_cell(s["mean"], s["std"], s["n_inf"], digits, s["mean"] == best[k])
                )
            n_runs = max((stats[(m, arch, k)]["n_runs"] for k in TABLE_METRICS if (m, arch, k) in stats), default=0)
            lines.append(f"| {display_name(m)} | " + " | ".join(cells) + f" | {n_runs} |")
        lines.append("")
    mmcl_archs = [a for a in architectures if any((m, a, "MMCL") in stats for m in methods)]
    if mmcl_archs:
        lines += [
            f"## Table {len(architectures) + 1}: MMCL",
            "",
            "| method | " + " | ".join(mmcl_archs) + " |",
            "|---|" + "---:|" * len(mmcl_archs),
        ]
        for m in methods:
            cells = [f"{stats[(m, a, 'MMCL')]['mean']:.3f}" if (m, a, "MMCL") in stats else "" for a in mmcl_archs]
            lines.append(f"| {display_name(m)} | " + " | ".join(cells) + " |")
        lines.append("")
    if (agg["n_inf"] > 0).any():
        lines.append(
            "†k: k evaluation images (over all seeds) with an infinite distance (a missed or spurious "
            "nodule), left out of the means of Chamfer and Hausdorff."
        )
    return lines


def paired_table(
    method: str,
    baseline: str,
    architecture: str,
    n_seeds: tuple[int, int],
    rows: Mapping[str, Mapping[str, Any]],
    digits: int,
) -> list[str]:
    """The markdown lines of one paired comparison (:func:`~monai_gamble.study.paired_comparison` per metric).

    Args:
        method: the method.
        baseline: its baseline.
        architecture: the architecture of both.
        n_seeds: the number of runs of the method and of the baseline.
        rows: per metric of :data:`TABLE_METRICS`, the result of the comparison.
        digits: decimals.
    """
    lines = [
        f"### {display_name(method)} vs {display_name(baseline)}, {architecture}: paired over "
        f"images (each image's mean over {n_seeds[0]} and {n_seeds[1]} seeds)",
        "",
        f"| metric | {method} | {baseline} | difference [95% CI] | Wilcoxon p | wins / ties / losses | images |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for k, hb in TABLE_METRICS.items():
        r = rows[k]
        if not r["n_images"]:
            continue
        excl = f" ({r['n_excluded']} excluded: inf)" if r["n_excluded"] else ""
        lines.append(
            f"| {_arrow(k, hb)} | {r['mean_method']:.{digits}f} | {r['mean_baseline']:.{digits}f} | "
            f"{r['mean_diff']:+.{digits}f} [{r['ci_low']:+.{digits}f}, {r['ci_high']:+.{digits}f}] | "
            f"{r['p_wilcoxon']:.3g} | {r['wins']} / {r['ties']} / {r['losses']} | {r['n_images']}{excl} |"
        )
    lines.append("")
    return lines
