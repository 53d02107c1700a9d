"""A study runner: a grid of methods x architectures x seeds trained and evaluated with a bundle,
tracked in MLflow, summarised in the tables and figures of the thyroid gambling paper.

Bakhtiariziabari & Ghafoorian compare gambling nets with cross-entropy, cross-entropy +
adversarial, SegAN, focal loss and adversarial confidence learning over U-Net, PSPNet and
DeepLabV3+, averaging three runs: Tables 1-3 (Dice, Jaccard, BF-score, Chamfer, Hausdorff per
architecture), Table 4 (MMCL) and Fig. 2 (confidence map vs betting map). This module runs that
study on any dataset the bundle reads::

    python -m monai_gamble.compare --config study.json            # runs, resumes, summarises
    python -m monai_gamble.compare --config study.json --summarize-only

A study config (JSON) names the bundle, the grid and the overrides applied to every run::

    {
        "bundle": "bundles/thyroid_ultrasound_gambling",
        "output_dir": "outputs/study",
        "name": "thyroid_study",
        "methods": ["ce", "focal", "adversarial", "segan", "confidence", "gambling"],
        "architectures": ["unet", "pspnet", "deeplabv3plus"],
        "seeds": [0, 1, 2],
        "overrides": {"max_epochs": 30, "image_size": [128, 128]}
    }

Relative paths are relative to the config file. Each (method, architecture, seed) is one training
and one evaluation of the bundle (``configs/train.json`` + the method's and the architecture's
override files, then ``configs/evaluate.json``) in ``<output_dir>/runs/<method>-<arch>-seed<k>/``,
tracked as MLflow runs of the experiment ``name`` (in ``<output_dir>/mlruns.db`` unless
``tracking_uri`` is given), tagged ``method``, ``architecture``, ``seed`` and nested under a
parent run of the study. A finished run leaves ``done.json``; running the study again skips it
(resume after an interruption, or grow the grid).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "ARCHITECTURE_CONFIGS",
    "METHOD_CONFIGS",
    "StudyConfig",
    "load_study_config",
    "paired_comparison",
    "run_study",
    "summarize_study",
]

#: Override files (in the bundle's ``configs/``) that turn ``train.json`` into each method.
METHOD_CONFIGS: dict[str, list[str]] = {
    "ce": ["train_ce.json"],
    "focal": ["train_ce.json", "train_focal.json"],
    "adversarial": ["train_adversarial.json"],
    "segan": ["train_segan.json"],
    "confidence": ["train_confidence.json"],
    "gambling": [],
}
#: Override files that replace the segmenter.
ARCHITECTURE_CONFIGS: dict[str, list[str]] = {
    "unet": [],
    "pspnet": ["arch_pspnet.json"],
    "deeplabv3plus": ["arch_deeplabv3plus.json"],
}
#: The metrics of Tables 1-3 and whether higher is better; Table 4 is MMCL.
TABLE_METRICS: dict[str, bool] = {"Dice": True, "Jaccard": True, "BF-score": True, "Chamfer": False, "Hausdorff": False}
_DISPLAY = {"ce": "Cross-entropy", "focal": "Focal loss", "adversarial": "Cross-entropy + adv.", "segan": "SegAN",
            "confidence": "Confidence adv.", "gambling": "Gambling adv."}  # fmt: skip


@dataclass
class StudyConfig:
    """A study: the bundle, the grid and the settings of every run (see the module docstring).

    Attributes:
        bundle: the bundle folder (holding ``configs/train.json`` and ``configs/evaluate.json``).
        output_dir: where the runs, tables and figures go.
        methods: method names (keys of ``method_configs``).
        architectures: architecture names (keys of ``architecture_configs``).
        seeds: training seeds (the bundle's ``seed``: initialisation and augmentation; the data
            and its split stay the same).
        overrides: bundle overrides applied to every run (``{"max_epochs": 30, ...}``).
        name: the MLflow experiment and the parent run's name.
        tracking_uri: MLflow tracking URI (default: SQLite in ``output_dir``).
        evaluation_split: the split of the evaluation (``"test"``).
        method_configs: override files per method (default :data:`METHOD_CONFIGS`).
        architecture_configs: override files per architecture (default :data:`ARCHITECTURE_CONFIGS`).
        figure_images: test images in the Fig. 2 grid.
        base_configs: override files (in the bundle's ``configs/``) applied to every run right after
            ``train.json``, before the method's and the architecture's files (e.g.
            ``["real_cpu.json"]``, the recipe of the real data).
        paired: ``[method, baseline]`` pairs compared image by image (:func:`paired_comparison`);
            None: every method against ``"ce"`` when the grid has it.
        bootstrap_samples: resamples of the paired comparison's bootstrap confidence interval.
    """

    bundle: Path
    output_dir: Path
    methods: list[str]
    architectures: list[str] = field(default_factory=lambda: ["unet"])
    seeds: list[int] = field(default_factory=lambda: [0])
    overrides: dict[str, Any] = field(default_factory=dict)
    name: str = "study"
    tracking_uri: str | None = None
    evaluation_split: str = "test"
    method_configs: dict[str, list[str]] = field(default_factory=lambda: dict(METHOD_CONFIGS))
    architecture_configs: dict[str, list[str]] = field(default_factory=lambda: dict(ARCHITECTURE_CONFIGS))
    figure_images: int = 4
    base_configs: list[str] = field(default_factory=list)
    paired: list[list[str]] | None = None
    bootstrap_samples: int = 10000

    def __post_init__(self) -> None:
        self.bundle = Path(self.bundle).resolve()
        self.output_dir = Path(self.output_dir).resolve()
        if not (self.bundle / "configs" / "train.json").is_file():
            raise ValueError(f"bundle {self.bundle} has no configs/train.json.")
        for kind, names, known in (
            ("methods", self.methods, self.method_configs),
            ("architectures", self.architectures, self.architecture_configs),
        ):
            if isinstance(names, str) or not isinstance(names, Sequence) or not names:
                raise ValueError(f"{kind} must be a non-empty list, got {names!r}.")
            if len(set(names)) != len(names):
                raise ValueError(f"{kind} lists a name twice: {names}.")
            unknown = [n for n in names if n not in known]
            if unknown:
                raise ValueError(f"unknown {kind} {unknown}; known: {sorted(known)}.")
            for n in names:
                for f in known[n]:
                    if not (self.bundle / "configs" / f).is_file():
                        raise ValueError(f"{kind[:-1]} {n!r} needs configs/{f}, which {self.bundle} lacks.")
        if (
            isinstance(self.seeds, str)
            or not isinstance(self.seeds, Sequence)
            or not self.seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in self.seeds)
            or len(set(self.seeds)) != len(self.seeds)
        ):
            raise ValueError(f"seeds must be a non-empty list of distinct integers, got {self.seeds!r}.")
        if not isinstance(self.overrides, Mapping):
            raise ValueError(
                f"overrides must be a mapping of bundle ids to values, got {type(self.overrides).__name__}."
            )
        reserved = {"seed", "bundle_root", "ckpt_dir", "output_dir", "tracking_uri", "experiment_name", "run_name"}
        if clash := sorted(reserved & set(self.overrides)):
            raise ValueError(f"overrides may not set {clash}: the study sets them for every run.")
        if int(self.figure_images) < 0:
            raise ValueError(f"figure_images must be non-negative, got {self.figure_images}.")
        if isinstance(self.base_configs, str) or not isinstance(self.base_configs, Sequence):
            raise ValueError(f"base_configs must be a list of file names, got {self.base_configs!r}.")
        for f in self.base_configs:
            if not (self.bundle / "configs" / f).is_file():
                raise ValueError(f"base_configs names configs/{f}, which {self.bundle} lacks.")
        if self.paired is None:
            self.paired = [[m, "ce"] for m in self.methods if m != "ce"] if "ce" in self.methods else []
        for pair in self.paired:
            if not isinstance(pair, Sequence) or isinstance(pair, str) or len(pair) != 2:
                raise ValueError(f"paired must list [method, baseline] pairs, got {pair!r}.")
            if unknown := [m for m in pair if m not in self.methods]:
                raise ValueError(f"paired names {unknown}, which are not among the methods {self.methods}.")
        if int(self.bootstrap_samples) < 100:
            raise ValueError(f"bootstrap_samples must be at least 100, got {self.bootstrap_samples}.")
        if self.tracking_uri is None:
            self.tracking_uri = "sqlite:///" + str(self.output_dir / "mlruns.db")

    @property
    def grid(self) -> list[tuple[str, str, int]]:
        """All (method, architecture, seed) of the study, in run order."""
        return [(m, a, s) for a in self.architectures for m in self.methods for s in self.seeds]

    def run_dir(self, method: str, architecture: str, seed: int) -> Path:
        return self.output_dir / "runs" / f"{method}-{architecture}-seed{seed}"


#: Overrides that name a folder or a file: a relative path is relative to the study config.
_PATH_OVERRIDES = ("dataset_dir", "evaluation_dataset_dir", "pretrained_checkpoint")


def load_study_config(path: str | os.PathLike, **changes: Any) -> StudyConfig:
    """Read a study config (JSON); ``changes`` replace its top-level entries.

    ``bundle`` and ``output_dir``, and the overrides ``dataset_dir``, ``evaluation_dataset_dir`` and
    ``pretrained_checkpoint``, may be relative to the config file.

    Raises:
        ValueError: for an unreadable file, unknown keys or a bad grid (see :class:`StudyConfig`).
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read the study config {path}: {e}") from e
    if not isinstance(raw, dict):
        raise ValueError(f"{path} must hold a JSON object.")
    raw.update(changes)
    known = set(StudyConfig.__dataclass_fields__)
    if unknown := sorted(set(raw) - known):
        raise ValueError(f"{path}: unknown keys {unknown}; known: {sorted(known)}.")
    for key in ("bundle", "output_dir"):
        if key not in raw:
            raise ValueError(f"{path}: {key!r} is required.")
        if not Path(raw[key]).is_absolute():
            raw[key] = path.parent / raw[key]
    overrides = raw.get("overrides")
    if isinstance(overrides, Mapping):
        raw["overrides"] = {
            k: str((path.parent / v).resolve()) if k in _PATH_OVERRIDES and isinstance(v, str) and v and
            not Path(v).is_absolute() else v
            for k, v in overrides.items()
        }  # fmt: skip
    return StudyConfig(**raw)


def _workflow(config: StudyConfig, files: list[str], overrides: dict[str, Any]) -> None:
    from monai.bundle import ConfigWorkflow

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="parsing config_file")
        wf = ConfigWorkflow(
            config_file=[str(config.bundle / "configs" / f) for f in files],
            logging_file=False,
            workflow_type=None,
            **overrides,
        )
        wf.initialize()
        wf.run()
        wf.finalize()


def _mlflow_client(config: StudyConfig) -> tuple[Any, str]:
    import mlflow

    client = mlflow.MlflowClient(config.tracking_uri)
    exp = client.get_experiment_by_name(config.name)
    exp_id = exp.experiment_id if exp is not None else client.create_experiment(config.name)
    return client, exp_id


def _parent_run(config: StudyConfig) -> str:
    client, exp_id = _mlflow_client(config)
    found = client.search_runs([exp_id], filter_string="tags.study_parent = 'true'", max_results=1)
    if found:
        return found[0].info.run_id
    run = client.create_run(exp_id, run_name=f"{config.name}_study", tags={"study_parent": "true"})
    for key, value in (("methods", config.methods), ("architectures", config.architectures), ("seeds", config.seeds)):
        client.log_param(run.info.run_id, key, json.dumps(value))
    client.log_param(run.info.run_id, "overrides", json.dumps(config.overrides)[:6000])
    return run.info.run_id


def _tag_runs(config: StudyConfig, run_names: list[str], tags: dict[str, str]) -> list[str]:
    client, exp_id = _mlflow_client(config)
    ids = []
    for name in run_names:
        for run in client.search_runs([exp_id], filter_string=f"attributes.run_name = '{name}'"):
            for k, v in tags.items():
                client.set_tag(run.info.run_id, k, v)
            ids.append(run.info.run_id)
    return ids


def run_one(config: StudyConfig, method: str, architecture: str, seed: int, parent_run_id: str | None = None) -> dict:
    """Train and evaluate one (method, architecture, seed) with the bundle; returns what ``done.json`` holds."""
    run_dir = config.run_dir(method, architecture, seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    files = [
        "train.json",
        *config.base_configs,
        *config.method_configs[method],
        *config.architecture_configs[architecture],
    ]
    stem = f"{method}_{architecture}_seed{seed}"
    overrides = {
        **config.overrides,
        "bundle_root": str(config.bundle),
        "ckpt_dir": str(run_dir / "models"),
        "output_dir": str(run_dir / "eval"),
        "tracking_uri": config.tracking_uri,
        "experiment_name": config.name,
        "seed": seed,
    }
    t0 = time.perf_counter()
    _workflow(config, files, {**overrides, "run_name": f"{stem}_train"})
    t1 = time.perf_counter()
    _workflow(
        config,
        [*files, "evaluate.json"],
        {**overrides, "run_name": f"{stem}_evaluate", "evaluation_split": config.evaluation_split},
    )
    t2 = time.perf_counter()
    tags = {"method": method, "architecture": architecture, "seed": str(seed), "study": config.name}
    if parent_run_id is not None:
        tags["mlflow.parentRunId"] = parent_run_id
    run_ids = _tag_runs(config, [f"{stem}_train", f"{stem}_evaluate"], tags)
    done = {
        "method": method,
        "architecture": architecture,
        "seed": seed,
        "config_files": files,
        "train_seconds": round(t1 - t0, 2),
        "evaluate_seconds": round(t2 - t1, 2),
        "mlflow_run_ids": run_ids,
    }
    (run_dir / "done.json").write_text(json.dumps(done, indent=1))
    return done


def _per_image_csv(config: StudyConfig, method: str, architecture: str, seed: int) -> Path:
    root = config.run_dir(method, architecture, seed) / "eval" / f"evaluation_{config.evaluation_split}"
    found = sorted(root.glob("*/metrics_per_image.csv"))
    if not found:
        raise FileNotFoundError(f"no evaluation of {method}/{architecture}/seed {seed} in {root}.")
    return found[0]


def _run_means(path: Path) -> dict[str, tuple[float, int]]:
    """Per metric of one run: the mean over images of the finite values, and the number of infinite ones."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    out = {}
    for key in rows[0] if rows else []:
        if key == "id":
            continue
        v = np.array([float(r[key]) for r in rows])
        finite = v[np.isfinite(v)]
        out[key] = (float(finite.mean()) if finite.size else math.nan, int(np.isinf(v).sum()))
    return out


def _cell(mean: float, std: float, n_inf: int, digits: int, bold: bool) -> str:
    if math.isnan(mean):
        text = "nan"
    else:  # one seed: no spread to show
        text = f"{mean:.{digits}f}" + ("" if math.isnan(std) else f" ± {std:.{digits}f}")
    text = f"**{text}**" if bold else text
    return text + (f" †{n_inf}" if n_inf else "")


def _per_image_table(path: Path) -> dict[str, dict[str, float]]:
    """``{image id: {metric: value}}`` of one run's ``metrics_per_image.csv``."""
    with open(path, newline="") as f:
        return {r["id"]: {k: float(v) for k, v in r.items() if k != "id"} for r in csv.DictReader(f)}


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
        return out | dict.fromkeys(("mean_method", "mean_baseline", "mean_diff", "ci_low", "ci_high",
                                    "p_wilcoxon", "wins", "ties", "losses"), math.nan)  # fmt: skip
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


def _paired_tables(config: StudyConfig, digits: int) -> tuple[list[str], list[dict[str, Any]]]:
    """Markdown lines and CSV rows of the paired comparisons of ``config.paired``."""
    lines: list[str] = []
    rows: list[dict[str, Any]] = []
    metrics = {**TABLE_METRICS}
    for arch in config.architectures:
        for method, baseline in config.paired or []:
            runs = {}
            for m in (method, baseline):
                runs[m] = [
                    _per_image_table(_per_image_csv(config, m, arch, s))
                    for s in config.seeds
                    if (config.run_dir(m, arch, s) / "done.json").is_file()
                ]
            if not runs[method] or not runs[baseline]:
                continue
            lines += [
                f"### {_DISPLAY.get(method, method)} vs {_DISPLAY.get(baseline, baseline)}, {arch}: paired over "
                f"images (each image's mean over {len(runs[method])} and {len(runs[baseline])} seeds)",
                "",
                "| metric | "
                + f"{method} | {baseline} | difference [95% CI] | Wilcoxon p | wins / ties / losses | images |",
                "|---|---:|---:|---:|---:|---:|---:|",
            ]
            for k, hb in metrics.items():
                r = paired_comparison(runs[method], runs[baseline], k, hb, bootstrap_samples=config.bootstrap_samples)
                rows.append({"architecture": arch, "method": method, "baseline": baseline, "metric": k, **r})
                if not r["n_images"]:
                    continue
                excl = f" ({r['n_excluded']} excluded: inf)" if r["n_excluded"] else ""
                lines.append(
                    f"| {k} {'↑' if hb else '↓'} | {r['mean_method']:.{digits}f} | {r['mean_baseline']:.{digits}f} | "
                    f"{r['mean_diff']:+.{digits}f} [{r['ci_low']:+.{digits}f}, {r['ci_high']:+.{digits}f}] | "
                    f"{r['p_wilcoxon']:.3g} | {r['wins']} / {r['ties']} / {r['losses']} | {r['n_images']}{excl} |"
                )
            lines.append("")
    return lines, rows


def summarize_study(config: StudyConfig, digits: int = 3) -> dict[str, Any]:
    """Tables 1-4, the CSV files and the figures of the finished runs of a study.

    Writes into ``output_dir``: ``results_per_run.csv`` (one row per run and metric),
    ``results.csv`` (mean and std over seeds per method, architecture and metric), ``tables.md``
    (Tables 1-3: one per architecture, methods x the five metrics, mean ± std over seeds, the best
    mean of each column in bold; Table 4: MMCL per method and architecture), one bar chart per
    architecture (``metrics_<arch>.png``) and, when the grid has both, the Fig. 2 grid of
    confidence and betting maps (``fig2_confidence_vs_betting.png``); with ``paired`` pairs, the
    image-by-image comparisons (:func:`paired_comparison`: mean difference with a bootstrap
    confidence interval and a Wilcoxon signed-rank test) in ``tables.md`` and ``paired.csv``.

    Per run, a metric is the mean over the evaluation images; a distance is infinite for an image
    whose prediction missed the nodule (or found one where there is none): such images are left
    out of the run's mean and counted after a dagger (``†k``: k images over all seeds).

    Returns:
        ``{"tables": markdown, "results": rows, "files": [paths]}``.
    """
    per_run: list[dict[str, Any]] = []
    for method, arch, seed in config.grid:
        if not (config.run_dir(method, arch, seed) / "done.json").is_file():
            continue
        for metric, (mean, n_inf) in _run_means(_per_image_csv(config, method, arch, seed)).items():
            per_run.append({"method": method, "architecture": arch, "seed": seed, "metric": metric,
                            "value": mean, "n_inf": n_inf})  # fmt: skip
    if not per_run:
        raise FileNotFoundError(f"no finished run in {config.output_dir / 'runs'}: run the study first.")
    config.output_dir.mkdir(parents=True, exist_ok=True)
    files = [config.output_dir / "results_per_run.csv", config.output_dir / "results.csv"]
    with open(files[0], "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(per_run[0]))
        w.writeheader()
        w.writerows(per_run)
    agg: dict[tuple[str, str, str], dict[str, float]] = {}
    for key in {(r["method"], r["architecture"], r["metric"]) for r in per_run}:
        vals = np.array([r["value"] for r in per_run if (r["method"], r["architecture"], r["metric"]) == key])
        n_inf = sum(r["n_inf"] for r in per_run if (r["method"], r["architecture"], r["metric"]) == key)
        finite = vals[np.isfinite(vals)]
        agg[key] = {
            "mean": float(finite.mean()) if finite.size else math.nan,
            "std": float(finite.std(ddof=1)) if finite.size > 1 else math.nan,  # undefined for one run
            "n_runs": int(vals.size),
            "n_inf": int(n_inf),
        }
    with open(files[1], "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["method", "architecture", "metric", "mean", "std", "n_runs", "n_inf"])
        for (m, a, k), s in sorted(agg.items()):
            w.writerow([m, a, k, f"{s['mean']:.6g}", f"{s['std']:.6g}", s["n_runs"], s["n_inf"]])

    methods = [m for m in config.methods if any(r["method"] == m for r in per_run)]
    lines = [f"# {config.name}: mean ± std over seeds {config.seeds} (sample std over the seeds, ddof=1)", ""]
    for t, arch in enumerate(a for a in config.architectures if any(r["architecture"] == a for r in per_run)):
        lines += [f"## Table {t + 1}: {arch}", "", "| method | " + " | ".join(f"{k} {'↑' if hb else '↓'}"
                  for k, hb in TABLE_METRICS.items()) + " | runs |", "|---|" + "---:|" * (len(TABLE_METRICS) + 1)]  # fmt: skip
        best = {}
        for k, hb in TABLE_METRICS.items():
            means = [agg[(m, arch, k)]["mean"] for m in methods if (m, arch, k) in agg]
            means = [v for v in means if not math.isnan(v)]
            best[k] = (max(means) if hb else min(means)) if means else None
        for m in methods:
            cells = []
            for k in TABLE_METRICS:
                s = agg.get((m, arch, k))
                cells.append("" if s is None else _cell(s["mean"], s["std"], s["n_inf"], digits, s["mean"] == best[k]))
            n_runs = max((agg[(m, arch, k)]["n_runs"] for k in TABLE_METRICS if (m, arch, k) in agg), default=0)
            lines.append(f"| {_DISPLAY.get(m, m)} | " + " | ".join(cells) + f" | {n_runs} |")
        lines.append("")
    archs = [a for a in config.architectures if any((m, a, "MMCL") in agg for m in methods)]
    if archs:
        lines += [f"## Table {len(config.architectures) + 1}: MMCL", "", "| method | " + " | ".join(archs) + " |",
                  "|---|" + "---:|" * len(archs)]  # fmt: skip
        for m in methods:
            cells = [f"{agg[(m, a, 'MMCL')]['mean']:.3f}" if (m, a, "MMCL") in agg else "" for a in archs]
            lines.append(f"| {_DISPLAY.get(m, m)} | " + " | ".join(cells) + " |")
        lines.append("")
    if any(s["n_inf"] for s in agg.values()):
        lines.append("†k: k evaluation images (over all seeds) with an infinite distance (a missed or spurious "
                     "nodule), left out of the means of Chamfer and Hausdorff.")  # fmt: skip
    paired_lines, paired_rows = _paired_tables(config, digits)
    if paired_rows:
        lines += ["## Paired comparisons", "", *paired_lines]
        paired_csv = config.output_dir / "paired.csv"
        with open(paired_csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(paired_rows[0]))
            w.writeheader()
            w.writerows(paired_rows)
        files.append(paired_csv)
    tables = "\n".join(lines)
    md = config.output_dir / "tables.md"
    md.write_text(tables + "\n")
    files.append(md)
    files += _figures(config, agg, methods)
    return {"tables": tables, "results": per_run, "files": files}


def _figures(config: StudyConfig, agg: dict, methods: list[str]) -> list[Path]:
    from .visualize import plot_metric_comparison

    out = []
    for arch in config.architectures:
        summaries = {
            _DISPLAY.get(m, m): {k: agg[(m, arch, k)] for k in [*TABLE_METRICS, "MMCL"] if (m, arch, k) in agg}
            for m in methods
            if any((m, arch, k) in agg for k in TABLE_METRICS)
        }
        if not summaries:
            continue
        fig = plot_metric_comparison(
            summaries,
            [k for k in [*TABLE_METRICS, "MMCL"] if any(k in s for s in summaries.values())],
            title=f"{config.name}, {arch}: mean ± std over seeds",
            higher_is_better=TABLE_METRICS,
        )
        path = config.output_dir / f"metrics_{arch}.png"
        fig.savefig(path, dpi=100)
        out.append(path)
    fig2 = _fig2(config)
    if fig2 is not None:
        out.append(fig2)
    return out


def _critic_maps(config: StudyConfig, method: str, arch: str, seed: int) -> dict[str, Any]:
    """The segmenter's predictions and the critic's maps of the first evaluation images of one run."""
    import torch
    from monai.bundle import ConfigParser

    run_dir = config.run_dir(method, arch, seed)
    parser = ConfigParser()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="parsing config_file")
        parser.read_config(
            [
                str(config.bundle / "configs" / f)
                for f in [
                    "train.json",
                    *config.base_configs,
                    *config.method_configs[method],
                    *config.architecture_configs[arch],
                ]
            ]  # fmt: skip
        )
    parser.update({**config.overrides, "bundle_root": str(config.bundle), "device": "$torch.device('cpu')"})
    net, critic = parser.get_parsed_content("network_def"), parser.get_parsed_content("critic_def")
    objective = parser.get_parsed_content("objective")
    ckpt = torch.load(run_dir / "models" / "model.pt", map_location="cpu", weights_only=True)
    net.load_state_dict(ckpt["model"])
    critic.load_state_dict(ckpt["critic"])
    net.eval()
    critic.eval()
    transform = parser.get_parsed_content("validate#preprocessing")
    items = [
        transform(d) for d in parser.get_parsed_content("datalist")[config.evaluation_split][: config.figure_images]
    ]
    image = torch.stack([torch.as_tensor(d["image"]) for d in items])
    with torch.no_grad():
        logits = net(image)
        cmap = objective.critic_map(critic, image, logits)
    return {"image": image, "label": [d["label"] for d in items], "pred": logits.argmax(1, keepdim=True), "map": cmap}


def _fig2(config: StudyConfig) -> Path | None:
    """Fig. 2 of the thyroid paper: predictions and critic maps of confidence learning and gambling."""
    if config.figure_images < 1 or not {"confidence", "gambling"} <= set(config.methods):
        return None
    for arch in config.architectures:
        for seed in config.seeds:
            if all((config.run_dir(m, arch, seed) / "done.json").is_file() for m in ("confidence", "gambling")):
                break
        else:
            continue
        from .visualize import plot_segmentation_grid

        conf = _critic_maps(config, "confidence", arch, seed)
        gamb = _critic_maps(config, "gambling", arch, seed)
        fig = plot_segmentation_grid(
            images=list(conf["image"]),
            labels=conf["label"],
            preds={"confidence adv.": list(conf["pred"]), "gambling": list(gamb["pred"])},
            maps={"uncertainty (1 - confidence)": list(1 - conf["map"]), "betting map": list(gamb["map"])},
            transpose=True,
            suptitle=f"{config.name}, {arch}, seed {seed}: confidence learning vs gambling ({config.evaluation_split})",
        )
        path = config.output_dir / "fig2_confidence_vs_betting.png"
        fig.savefig(path, dpi=100)
        return path
    return None


def run_study(config: StudyConfig, resume: bool = True, log: Any = print) -> dict[str, Any]:
    """Run every (method, architecture, seed) of ``config`` not finished yet, then summarise.

    Args:
        config: the study.
        resume: skip the runs that left a ``done.json`` (False: run them again).
        log: where progress lines go (``print`` by default; None for silence).

    Returns:
        :func:`summarize_study`'s result, plus ``"timings"``: ``done.json`` of every run.
    """
    log = log or (lambda *a, **k: None)
    config.output_dir.mkdir(parents=True, exist_ok=True)
    parent = _parent_run(config)
    timings = []
    grid = config.grid
    for i, (method, arch, seed) in enumerate(grid, start=1):
        done_file = config.run_dir(method, arch, seed) / "done.json"
        if resume and done_file.is_file():
            log(f"[{i}/{len(grid)}] {method} / {arch} / seed {seed}: done before, skipped", flush=True)
            timings.append(json.loads(done_file.read_text()))
            continue
        log(f"[{i}/{len(grid)}] {method} / {arch} / seed {seed}: training and evaluating ...", flush=True)
        done = run_one(config, method, arch, seed, parent_run_id=parent)
        log(f"[{i}/{len(grid)}] {method} / {arch} / seed {seed}: {done['train_seconds']:.0f} s training, "
            f"{done['evaluate_seconds']:.0f} s evaluation", flush=True)  # fmt: skip
        timings.append(done)
    summary = summarize_study(config)
    total = sum(d["train_seconds"] + d["evaluate_seconds"] for d in timings)
    (config.output_dir / "timings.json").write_text(
        json.dumps({"total_seconds": round(total, 1), "runs": timings}, indent=1)
    )
    client, _ = _mlflow_client(config)
    for path in [*summary["files"], config.output_dir / "timings.json"]:
        client.log_artifact(parent, str(path), artifact_path="study")
    client.log_metric(parent, "total_run_seconds", total)
    log(summary["tables"], flush=True)
    log(f"\nTables, CSV and figures in {config.output_dir}; MLflow: {config.tracking_uri} (experiment {config.name})",
        flush=True)  # fmt: skip
    return {**summary, "timings": timings}


def _parse_override(text: str) -> tuple[str, Any]:
    """``"key=value"`` as ``(key, value)``, the value read as JSON when it is JSON, else kept as a string."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"--override {text!r}: expected KEY=VALUE.")
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monai_gamble.compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--config", required=True, help="the study config (JSON)")
    parser.add_argument("--output_dir", help="replace the config's output_dir")
    parser.add_argument("--summarize-only", action="store_true", help="only write the tables of the finished runs")
    parser.add_argument("--no-resume", action="store_true", help="run the finished runs again")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="set a bundle override of every run (VALUE is JSON, or a plain string), e.g. "
                        "--override dataset_dir=/data/ddti; repeatable")  # fmt: skip
    args = parser.parse_args(argv)
    changes: dict[str, Any] = {"output_dir": str(Path(args.output_dir).resolve())} if args.output_dir else {}
    try:
        extra = dict(_parse_override(o) for o in args.override)
        for k in _PATH_OVERRIDES:  # relative to where the command runs, not to the config file
            if isinstance(extra.get(k), str) and extra[k]:
                extra[k] = str(Path(extra[k]).resolve())
        if extra:
            raw = json.loads(Path(args.config).read_text())
            changes["overrides"] = {**raw.get("overrides", {}), **extra}
        config = load_study_config(args.config, **changes)
    except (ValueError, OSError) as e:
        parser.error(str(e))
    if args.summarize_only:
        print(summarize_study(config)["tables"])
    else:
        run_study(config, resume=not args.no_resume)
    return 0


if __name__ == "__main__":
    sys.exit(main())
