"""Summarising a study: the CSV files, the tables (Tables 1-4 and the paired comparisons) and the figures
of its finished runs."""

from __future__ import annotations

from typing import Any

import pandas as pd

from .aggregation import aggregate_runs, per_image_csv, read_per_image, run_metrics
from .config import StudyConfig
from .figures import fig2, metric_figures
from .paired import paired_comparison
from .tables import TABLE_METRICS, paired_table, study_tables

__all__ = ["paired_rows", "summarize_study"]


def _per_image_runs(config: StudyConfig, method: str, arch: str) -> list[dict[str, dict[str, float]]]:
    """``{image id: {metric: value}}`` of every finished run of one method and architecture."""
    return [
        read_per_image(per_image_csv(config, method, arch, s)).to_dict(orient="index")
        for s in config.seeds
        if config.is_done(method, arch, s)
    ]


def paired_rows(config: StudyConfig, digits: int = 3) -> tuple[list[str], list[dict[str, Any]]]:
    """Markdown lines and CSV rows of the paired comparisons of ``config.paired``, per architecture."""
    lines: list[str] = []
    rows: list[dict[str, Any]] = []
    for arch in config.architectures:
        for method, baseline in config.paired or []:
            runs = {m: _per_image_runs(config, m, arch) for m in (method, baseline)}
            if not runs[method] or not runs[baseline]:
                continue
            results = {
                k: paired_comparison(runs[method], runs[baseline], k, hb, bootstrap_samples=config.bootstrap_samples)
                for k, hb in TABLE_METRICS.items()
            }
            rows += [
                {"architecture": arch, "method": method, "baseline": baseline, "metric": k, **r}
                for k, r in results.items()
            ]
            lines += paired_table(method, baseline, arch, (len(runs[method]), len(runs[baseline])), results, digits)
    return lines, rows


def summarize_study(config: StudyConfig, digits: int = 3) -> dict[str, Any]:
    """Tables 1-4, the CSV files and the figures of the finished runs of a study.

    Writes into ``output_dir``: ``results_per_run.csv`` (one row per run and metric),
    ``results.csv`` (mean and std over seeds per method, architecture and metric, by pandas
    ``groupby``), ``tables.md`` (Tables 1-3: one per architecture, methods x the five metrics, mean ±
    std over seeds, the best mean of each column in bold; Table 4: MMCL per method and architecture),
    one bar chart per architecture (``metrics_<arch>.png``) and, when the grid has both, the Fig. 2 grid
    of confidence and betting maps (``fig2_confidence_vs_betting.png``); with ``paired`` pairs, the
    image-by-image comparisons (:func:`~monai_gamble.study.paired_comparison`: mean difference with a
    bootstrap confidence interval and a Wilcoxon signed-rank test) in ``tables.md`` and ``paired.csv``.

    Per run, a metric is the mean over the evaluation images; a distance is infinite for an image
    whose prediction missed the nodule (or found one where there is none): such images are left
    out of the run's mean and counted after a dagger (``†k``: k images over all seeds).

    Returns:
        ``{"tables": markdown, "results": rows, "files": [paths]}``.

    Raises:
        FileNotFoundError: if no run of the grid has finished.
    """
    frames = [
        run_metrics(per_image_csv(config, m, a, s)).reset_index().assign(method=m, architecture=a, seed=s)
        for m, a, s in config.grid
        if config.is_done(m, a, s)
    ]
    if not frames:
        raise FileNotFoundError(f"no finished run in {config.output_dir / 'runs'}: run the study first.")
    per_run = pd.concat(frames, ignore_index=True)[["method", "architecture", "seed", "metric", "value", "n_inf"]]
    config.output_dir.mkdir(parents=True, exist_ok=True)
    files = [config.output_dir / "results_per_run.csv", config.output_dir / "results.csv"]
    per_run.to_csv(files[0], index=False, na_rep="nan")
    agg = aggregate_runs(per_run)
    agg.reset_index().to_csv(files[1], index=False, float_format="%.6g", na_rep="nan")
    methods = [m for m in config.methods if m in set(per_run["method"])]
    lines = study_tables(config.name, config.seeds, agg, methods, config.architectures, digits)
    paired_lines, paired_csv_rows = paired_rows(config, digits)
    if paired_csv_rows:
        lines += ["## Paired comparisons", "", *paired_lines]
        paired_csv = config.output_dir / "paired.csv"
        pd.DataFrame(paired_csv_rows).to_csv(paired_csv, index=False, na_rep="nan")
        files.append(paired_csv)
    tables = "\n".join(lines)
    md = config.output_dir / "tables.md"
    md.write_text(tables + "\n")
    files.append(md)
    files += metric_figures(config, agg, methods)
    if (path := fig2(config)) is not None:
        files.append(path)
    return {"tables": tables, "results": per_run.to_dict(orient="records"), "files": files}
