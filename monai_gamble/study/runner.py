"""Running a study: one training and one evaluation of the bundle per (method, architecture, seed),
resumable, each logged into its own MLflow child run of the study's parent run."""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Sequence
from typing import Any

from filelock import FileLock

from .config import StudyConfig
from .summary import summarize_study
from .tracking import finish_run, mlflow_client, parent_run, start_child_run

__all__ = ["run_one", "run_study", "run_workflow", "select_cells"]


def run_workflow(config: StudyConfig, files: list[str], overrides: dict[str, Any]) -> None:
    """Initialise, run and finalise MONAI's ``ConfigWorkflow`` of the bundle's ``configs/<files>``."""
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


def run_one(config: StudyConfig, method: str, architecture: str, seed: int, parent_run_id: str | None = None) -> dict:
    """Train and evaluate one (method, architecture, seed) with the bundle; returns what ``done.json`` holds.

    Each workflow logs into an MLflow run that the study creates beforehand with the tags ``method``,
    ``architecture``, ``seed``, ``study`` (and ``mlflow.parentRunId``), by id
    (:func:`~monai_gamble.study.tracking.start_child_run`).
    """
    run_dir = config.run_dir(method, architecture, seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    files = config.config_files(method, architecture)
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
    tags = {"method": method, "architecture": architecture, "seed": str(seed), "study": config.name}
    if parent_run_id is not None:
        tags["mlflow.parentRunId"] = parent_run_id
    run_ids, seconds = [], []
    for kind, kind_files, extra in (
        ("train", files, {}),
        ("evaluate", [*files, "evaluate.json"], {"evaluation_split": config.evaluation_split}),
    ):
        run_name = f"{stem}_{kind}"
        run_id = start_child_run(config, run_name, tags)
        t0 = time.perf_counter()
        run_workflow(config, kind_files, {**overrides, **extra, "run_name": run_name})
        seconds.append(time.perf_counter() - t0)
        finish_run(config, run_id)
        run_ids.append(run_id)
    done = {
        "method": method,
        "architecture": architecture,
        "seed": seed,
        "config_files": files,
        "train_seconds": round(seconds[0], 2),
        "evaluate_seconds": round(seconds[1], 2),
        "mlflow_run_ids": run_ids,
    }
    (run_dir / "done.json").write_text(json.dumps(done, indent=1))
    return done


def select_cells(
    config: StudyConfig,
    methods: Sequence[str] | None = None,
    architectures: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
) -> list[tuple[str, str, int]]:
    """The (method, architecture, seed) cells of ``config.grid`` whose method is in ``methods``, architecture
    in ``architectures`` and seed in ``seeds`` (None: any), in the grid's run order.

    A part of a grid, to run it in several processes at once (one per core or per GPU, each on other
    cells: ``--seeds 0`` in one shell, ``--seeds 1,2`` in another) or to run one cell again.

    Raises:
        ValueError: naming a method, architecture or seed that the study does not have.
    """
    chosen = {"methods": methods, "architectures": architectures, "seeds": seeds}
    for key, values in chosen.items():
        if values is None:
            continue
        if isinstance(values, str) or not isinstance(values, Sequence) or not values:
            raise ValueError(f"{key} must be a non-empty list, got {values!r}.")
        unknown = [v for v in values if v not in getattr(config, key)]
        if unknown:
            raise ValueError(
                f"{key} {unknown} are not in the study {config.name!r}, whose {key} are {getattr(config, key)}."
            )
    return [
        (m, a, s)
        for m, a, s in config.grid
        if (methods is None or m in methods)
        and (architectures is None or a in architectures)
        and (seeds is None or s in seeds)
    ]


def run_study(
    config: StudyConfig,
    resume: bool = True,
    log: Any = print,
    cells: Sequence[tuple[str, str, int]] | None = None,
) -> dict[str, Any]:
    """Run every (method, architecture, seed) of ``config`` (or of ``cells``) not finished yet, then
    summarise all finished cells of the grid.

    Args:
        config: the study.
        resume: skip the runs that left a ``done.json`` (False: run them again).
        log: where progress lines go (``print`` by default; None for silence).
        cells: the part of the grid to run (:func:`select_cells`); None: the whole grid. The tables,
            ``timings.json`` and the parent run's state cover every finished cell of the grid, also those
            that another process ran.

    Returns:
        :func:`~monai_gamble.study.summarize_study`'s result, plus ``"timings"``: ``done.json`` of every
        finished cell of the grid.

    Raises:
        ValueError: for a cell that is not in the grid.
    """
    log = log or (lambda *a, **k: None)
    grid = config.grid
    todo = grid if cells is None else [tuple(c) for c in cells]
    if outside := [c for c in todo if c not in grid]:
        raise ValueError(f"cells {outside} are not in the grid of the study {config.name!r}.")
    config.output_dir.mkdir(parents=True, exist_ok=True)
    # processes that share a study (other cells each) create the MLflow store, the experiment and the
    # parent run, and write the summary, one at a time: sqlite's first migration and two parents race
    lock = FileLock(config.output_dir / ".study.lock")
    with lock:
        parent = parent_run(config)
    for i, (method, arch, seed) in enumerate(todo, start=1):
        head = f"[{i}/{len(todo)}] {method} / {arch} / seed {seed}"
        done_file = config.run_dir(method, arch, seed) / "done.json"
        if resume and done_file.is_file():
            log(f"{head}: done before, skipped", flush=True)
            continue
        log(f"{head}: training and evaluating ...", flush=True)
        done = run_one(config, method, arch, seed, parent_run_id=parent)
        log(f"{head}: {done['train_seconds']:.0f} s training, {done['evaluate_seconds']:.0f} s evaluation", flush=True)
    with lock:
        summary, timings = _summarize_and_log(config, parent)
    log(summary["tables"], flush=True)
    log(
        f"\nTables, CSV and figures in {config.output_dir}; MLflow: {config.tracking_uri} (experiment {config.name})",
        flush=True,
    )
    return {**summary, "timings": timings}


def _summarize_and_log(config: StudyConfig, parent: str) -> tuple[dict[str, Any], list[dict]]:
    """Summarise every finished cell of the grid, write ``timings.json``, log them all to the parent run
    and mark it ``FINISHED`` once the grid is complete; returns the summary and the cells' ``done.json``."""
    grid = config.grid
    summary = summarize_study(config)
    timings = [json.loads((config.run_dir(*c) / "done.json").read_text()) for c in grid if config.is_done(*c)]
    total = sum(d["train_seconds"] + d["evaluate_seconds"] for d in timings)
    timings_path = config.output_dir / "timings.json"
    timings_path.write_text(json.dumps({"total_seconds": round(total, 1), "runs": timings}, indent=1))
    client, _ = mlflow_client(config)
    for path in [*summary["files"], timings_path]:
        client.log_artifact(parent, str(path), artifact_path="study")
    client.log_metric(parent, "total_run_seconds", total)
    if all(config.is_done(*c) for c in grid):
        client.set_terminated(parent, "FINISHED")
    return summary, timings
