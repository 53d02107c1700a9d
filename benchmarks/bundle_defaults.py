"""Each bundle's default training config: seconds per iteration, peak memory, and the projected run time.

For every bundle, ``configs/train.json`` as shipped (its default network, image or patch size, batch
size, data set, schedule) is parsed with ``monai.bundle.ConfigParser`` in a temporary copy of the
bundle (its synthetic data set is generated there, nothing is written into the repository), with
only these overrides: the device (``--device``), tracking, progress bars and figures off
(``is_not_rank0``), no validation during the timed iterations, and the training and validation sets
cut to the few batches that are timed (the number of iterations per epoch is that of the *full*
default data set). Then:

- **seconds per iteration**: the median of ``--iterations`` training iterations after one warm-up
  (each from the fetch of its batch to the end of its step, ``torch.cuda.synchronize`` on CUDA);
- **peak memory**: on CUDA ``torch.cuda.max_memory_allocated`` during those iterations; on a CPU
  the growth of the process's peak resident set (``resource.getrusage``) over the state before the
  first iteration (each bundle runs in its own process);
- **validation**: the median seconds per validation iteration (``validate#evaluator``, after one
  warm-up), times the iterations of one validation, times the validations of a run
  (``max_epochs // val_interval``);
- **projected run**: :func:`projected_seconds`, the sum over the schedule's stages of
  epochs x iterations per epoch x seconds per iteration, plus the validations. The X-ray bundle's
  progressive resizing has four stages (image size, batch size and accumulation change): each
  distinct stage is timed on its own; the others have one stage (``max_epochs`` epochs).

On CUDA the bundles' default ``amp`` (``torch.cuda.is_available()``) is on: float16 autocast with a
GradScaler. On a CPU the default is float32 (``--amp`` forces bfloat16 autocast).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bundle_defaults.py --device cpu --iterations 2
    python benchmarks/bundle_defaults.py --bundles thyroid_ultrasound_gambling xray_pneumothorax --out defaults.md
    python benchmarks/bundle_defaults.py --work_dir /tmp/defaults   # keep (and reuse) the synthetic data sets
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
BUNDLES_DIR = REPO / "bundles"
BUNDLES = (
    "thyroid_ultrasound_gambling",
    "nerve_ultrasound_ems",
    "pathology_semisupervised_adversarial",
    "xray_pneumothorax",
    "generic_segmentation",
)


# ---------------------------------------------------------------------------------------------------
# building a bundle's trainer
# ---------------------------------------------------------------------------------------------------


def bundle_copy(name: str, work_dir: Path) -> Path:
    """``work_dir/<name>``: a copy of ``bundles/<name>/configs`` (and of its embedded ``data``, the
    pathology bundle's default data set), reused when it is already there."""
    root = Path(work_dir) / name
    src = BUNDLES_DIR / name
    if not (src / "configs" / "train.json").is_file():
        raise FileNotFoundError(f"no bundle {name!r}: {src / 'configs' / 'train.json'} does not exist.")
    if not (root / "configs").is_dir():
        shutil.copytree(src / "configs", root / "configs")
    if (src / "data").is_dir() and not (root / "data").is_dir():
        shutil.copytree(src / "data", root / "data")
    return root


def quiet_overrides(device: str) -> dict[str, Any]:
    """Overrides of every bundle for a timed run: the device, no tracking (MLflow), progress bar,
    figures or checkpoint copies of rank 0 (``is_not_rank0``), no validation during training."""
    return {
        "device": f"$torch.device({device!r})",
        "is_not_rank0": True,
        "tracking_uri": None,
        "val_interval": 10**6,
    }


def amp_overrides(device: str, amp: bool) -> dict[str, Any]:
    """AMP on or off: ``amp`` and ``train#trainer#amp_kwargs``, float16 on CUDA, bfloat16 elsewhere."""
    if not amp:
        return {"amp": False}
    dtype = "float16" if torch.device(device).type == "cuda" else "bfloat16"
    return {"amp": True, "train#trainer#amp_kwargs": {"dtype": f"$torch.{dtype}"}}


def subset_overrides(train_items: int | None, val_items: int | None, unlabeled_items: int | None = None) -> dict:
    """Cut the training (and validation, unlabelled) sets of a parsed config to their first items."""
    out: dict[str, Any] = {}
    if train_items is not None:
        out["train#dataset#data"] = f"$@datalist['training'][:{int(train_items)}]"
    if val_items is not None:
        out["validate#dataset#data"] = f"$@datalist['validation'][:{int(val_items)}]"
    if unlabeled_items is not None:
        out["train#unlabeled_dataset#data"] = f"$@datalist['unlabeled'][:{int(unlabeled_items)}]"
    return out


def train_parser(root: Path, files: Sequence[str] = ("train.json",), overrides: dict | None = None):
    """A ``ConfigParser`` of ``root/configs/<files>`` with ``bundle_root`` = ``root`` and ``overrides``."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config([str(root / "configs" / f) for f in files])
    parser.update({"bundle_root": str(root), **(overrides or {})})
    return parser


@contextlib.contextmanager
def in_bundle(root: Path) -> Iterator[None]:
    """Parse in the bundle's folder (``%configs/train.json#...`` macros are relative to it), quietly."""
    with warnings.catch_warnings(), contextlib.chdir(root):
        warnings.simplefilter("ignore")
        yield


# ---------------------------------------------------------------------------------------------------
# timing
# ---------------------------------------------------------------------------------------------------


def synchronize(device: str | torch.device) -> None:
    """``torch.cuda.synchronize`` on a CUDA device (the kernels of a timed step are done), else nothing."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def peak_rss_mib() -> float:
    """The process's peak resident set so far (``ru_maxrss``, KiB on Linux), in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _output_loss(output: Any) -> float | None:
    """The ``loss`` of an engine's output (a dict, or a list of decollated dicts), or None."""
    item = output[0] if isinstance(output, list) and output else output
    if not isinstance(item, dict) or "loss" not in item:
        return None
    return float(torch.as_tensor(item["loss"]).detach().float().cpu())


def _batch_images(output: Any) -> int:
    """The images (patches) of an iteration: the decollated items, or the first dim of ``image``."""
    if isinstance(output, list):
        return len(output)
    image = output.get("image") if isinstance(output, dict) else None
    return int(image.shape[0]) if isinstance(image, torch.Tensor) else 0


@dataclass
class IterationTimer:
    """Times an Ignite engine's iterations (batch fetch to end of step) and stops it after ``iterations``.

    Attributes:
        iterations: iterations to run (``engine.terminate()`` after the last; None: the engine's own).
        device: the engine's device (synchronised around each timing on CUDA).
        seconds: the duration of each iteration.
        cpu_seconds: the process's CPU time of each iteration (``time.process_time``: on a CPU shared with
            other jobs, and with ``OMP_NUM_THREADS=1``, the steadier measure of the work).
        losses: the ``loss`` of each iteration's output (NaN where there is none).
        images: the images (patches) of each iteration.
    """

    iterations: int | None
    device: str | torch.device
    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    images: list[int] = field(default_factory=list)
    _start: float = 0.0
    _cpu_start: float = 0.0

    def attach(self, engine: Any) -> IterationTimer:
        """Add the handlers to ``engine`` (before its ``run``); returns self."""
        from ignite.engine import Events

        engine.add_event_handler(Events.GET_BATCH_STARTED, self._started)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._completed)
        return self

    def _started(self, engine: Any) -> None:
        synchronize(self.device)
        self._start = time.perf_counter()
        self._cpu_start = time.process_time()

    def _completed(self, engine: Any) -> None:
        synchronize(self.device)
        self.seconds.append(time.perf_counter() - self._start)
        self.cpu_seconds.append(time.process_time() - self._cpu_start)
        loss = _output_loss(engine.state.output)
        self.losses.append(math.nan if loss is None else loss)
        self.images.append(_batch_images(engine.state.output))
        if self.iterations is not None and len(self.seconds) >= self.iterations:
            engine.terminate()

    def median_seconds(self, warmup: int = 1, cpu: bool = False) -> float:
        """The median duration (``cpu``: CPU time) after ``warmup`` iterations (all if there are no more)."""
        values = self.cpu_seconds if cpu else self.seconds
        timed = values[warmup:] or values
        return statistics.median(timed) if timed else math.nan

    def loss_finite(self) -> bool:
        """Whether every recorded loss is finite (False without any)."""
        values = [v for v in self.losses if not math.isnan(v)] if self.losses else []
        return bool(values) and bool(np.isfinite(values).all()) and len(values) == len(self.losses)


def timed_run(engine: Any, iterations: int | None, device: str | torch.device) -> tuple[IterationTimer, float]:
    """Run ``engine`` for ``iterations`` iterations (``engine.run()``); returns the timer and the peak
    memory in MiB during the run (CUDA: ``max_memory_allocated``; CPU: growth of the peak RSS)."""
    timer = IterationTimer(iterations, device).attach(engine)
    cuda = torch.device(device).type == "cuda"
    if cuda:
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    base = peak_rss_mib()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        engine.run()
    synchronize(device)
    memory = torch.cuda.max_memory_allocated(device) / 2**20 if cuda else peak_rss_mib() - base
    return timer, memory


# ---------------------------------------------------------------------------------------------------
# the projection
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    """A part of a training schedule with one cost per iteration.

    Attributes:
        epochs: its epochs.
        iterations_per_epoch: training iterations of one epoch (``ceil(training items / batch size)``).
        seconds_per_iteration: measured seconds of one training iteration.
        validation_seconds: measured seconds of one whole validation at this stage (0: none measured).
    """

    epochs: int
    iterations_per_epoch: int
    seconds_per_iteration: float
    validation_seconds: float = 0.0


def projected_seconds(stages: Sequence[Stage], val_interval: int | None = 1) -> float:
    """The projected duration of a training run: over the stages, ``epochs x iterations_per_epoch x
    seconds_per_iteration``, plus one validation (``validation_seconds`` of its stage) at every
    epoch that is a multiple of ``val_interval`` (MONAI's ``ValidationHandler``; None: no validation).

    Example:
        >>> projected_seconds([Stage(10, 5, 2.0, 3.0)], val_interval=5)  # 10*5*2 + 2 validations * 3
        106.0
    """
    if not stages:
        return 0.0
    epochs = np.array([s.epochs for s in stages], dtype=np.int64)
    train = np.array([s.iterations_per_epoch * s.seconds_per_iteration for s in stages], dtype=np.float64)
    val = np.array([s.validation_seconds for s in stages], dtype=np.float64)
    if val_interval is None:
        validations = np.zeros_like(epochs)
    else:
        ends = np.cumsum(epochs)  # validations up to the end of each stage minus those before it
        validations = ends // int(val_interval) - (ends - epochs) // int(val_interval)
    return float(epochs @ train + validations @ val)


def format_duration(seconds: float) -> str:
    """``"12.3 s"``, ``"4.5 min"``, ``"6.7 h"`` or ``"1.2 d"``."""
    if not math.isfinite(seconds):
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.1f} s"


# ---------------------------------------------------------------------------------------------------
# one bundle
# ---------------------------------------------------------------------------------------------------


def _schedule(name: str, root: Path) -> tuple[list[dict], int, int | None]:
    """The default schedule: the stages (``epochs``, ``spatial_size`` (or None), ``batch_size``,
    ``accumulation_steps``, the stage's own overrides), ``max_epochs`` and ``val_interval``."""
    parser = train_parser(root)
    with in_bundle(root):
        max_epochs = int(parser.get_parsed_content("max_epochs"))
        val_interval = parser.get_parsed_content("val_interval")
        if name != "xray_pneumothorax":
            return [{"epochs": max_epochs, "overrides": {}}], max_epochs, val_interval
        raw_stages = parser.get("stages")
    stages = []
    for raw in raw_stages:
        batch, acc = int(raw.get("batch_size", 4)), int(raw.get("accumulation_steps", 1))
        one = {k: v for k, v in raw.items() if k not in ("epochs", "batch_size")}
        one["epochs"] = 1  # no batch size in the stage: the handler keeps the (cut) loader
        over = {"stages": [one], "train#dataloader#batch_size": batch, "train#trainer#accumulation_steps": acc}
        stages.append(
            {"epochs": int(raw["epochs"]), "overrides": over, "key": json.dumps(one, sort_keys=True) + str(batch)}
        )
    return stages, max_epochs, val_interval


def measure_bundle(
    name: str,
    work_dir: Path,
    device: str = "cpu",
    iterations: int = 3,
    val_iterations: int = 2,
    amp: bool | None = None,
) -> dict[str, Any]:
    """Time ``bundles/<name>/configs/train.json`` (its defaults) on ``device``: see the module docstring.

    Args:
        name: the bundle's folder name.
        work_dir: where its copy (and its synthetic data set) goes.
        device: ``"cpu"`` or ``"cuda"``.
        iterations: timed training iterations per stage (after one warm-up).
        val_iterations: timed validation iterations (after one warm-up; 0: no validation estimate).
        amp: autocast (default: on CUDA only, the bundles' own default).

    Returns:
        A dict: ``stages`` (each with ``seconds_per_iteration``, ``iterations_per_epoch``, ``epochs``,
        ``batch_size``, ``peak_memory_mib``, ``validation_seconds``), ``projected_seconds``,
        ``loss_finite`` and the settings.
    """
    amp = torch.device(device).type == "cuda" if amp is None else bool(amp)
    root = bundle_copy(name, work_dir)
    stages, max_epochs, val_interval = _schedule(name, root)
    measured: dict[str, dict] = {}
    results = []
    for stage in stages:
        key = stage.get("key", "")
        if key not in measured:
            measured[key] = _measure_stage(name, root, device, iterations, val_iterations, amp, stage["overrides"])
        results.append({**measured[key], "epochs": stage["epochs"]})
    interval = val_interval if val_iterations > 0 else None
    projected = {
        kind: projected_seconds(
            [Stage(r["epochs"], r["iterations_per_epoch"], r[f"{kind}seconds_per_iteration"],
                   r[f"{kind}validation_seconds"]) for r in results],
            interval,
        )
        for kind in ("", "cpu_")
    }  # fmt: skip
    return {
        "bundle": name, "device": device, "amp": amp, "max_epochs": max_epochs, "val_interval": val_interval,
        "timed_iterations": iterations, "timed_val_iterations": val_iterations, "stages": results,
        "projected_seconds": projected[""], "projected_cpu_seconds": projected["cpu_"], "loss_finite": all(r["loss_finite"] for r in results),
        "torch": torch.__version__, "threads": torch.get_num_threads(),
    }  # fmt: skip


def _measure_stage(
    name: str, root: Path, device: str, iterations: int, val_iterations: int, amp: bool, stage: dict
) -> dict[str, Any]:
    """Time one stage of a bundle's default schedule (its own parser: fresh networks and optimizers)."""
    probe = train_parser(root, overrides=stage)
    with in_bundle(root):
        datalist = probe.get_parsed_content("datalist")  # generates the default synthetic data set once
        batch = int(probe.get_parsed_content("train#dataloader#batch_size"))
        val_batch = int(probe.get_parsed_content("validate#dataloader#batch_size"))
    n_train, n_val = len(datalist["training"]), len(datalist.get("validation", []))
    run_iterations = iterations + 1
    overrides = {
        **quiet_overrides(device),
        **amp_overrides(device, amp),
        **stage,
        **subset_overrides(batch * run_iterations, val_batch * (val_iterations + 1)),
    }
    if "unlabeled" in datalist:
        overrides |= subset_overrides(
            None, None, int(probe.get_parsed_content("train#unlabeled_dataloader#batch_size")) * run_iterations
        )
    parser = train_parser(root, overrides=overrides)
    with in_bundle(root):
        trainer = parser.get_parsed_content("train#trainer")
        timer, memory = timed_run(trainer, run_iterations, device)
        val = {"val_seconds_per_iteration": math.nan, "validation_seconds": 0.0,
               "cpu_val_seconds_per_iteration": math.nan, "cpu_validation_seconds": 0.0}  # fmt: skip
        if val_iterations > 0 and n_val > 0:
            evaluator = parser.get_parsed_content("validate#evaluator")
            val_timer, _ = timed_run(evaluator, val_iterations + 1, device)
            for kind, cpu in (("", False), ("cpu_", True)):
                val[f"{kind}val_seconds_per_iteration"] = val_timer.median_seconds(cpu=cpu)
                val[f"{kind}validation_seconds"] = val_timer.median_seconds(cpu=cpu) * math.ceil(n_val / val_batch)
    epoch_length = math.ceil(n_train / batch)
    if name == "pathology_semisupervised_adversarial":
        with in_bundle(root):
            epoch_length = int(parser.get_parsed_content("epoch_length") or epoch_length)
    return {
        "seconds_per_iteration": timer.median_seconds(), "cpu_seconds_per_iteration": timer.median_seconds(cpu=True),
        "iterations_timed": max(len(timer.seconds) - 1, 0),
        "images_per_iteration": timer.images[-1] if timer.images else 0, "batch_size": batch,
        "iterations_per_epoch": epoch_length, "training_items": n_train, "validation_items": n_val,
        **val,
        "peak_memory_mib": memory, "loss_finite": timer.loss_finite(), "stage": stage.get("stages", [None])[0],
    }  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# the table
# ---------------------------------------------------------------------------------------------------


def markdown_table(results: Sequence[dict]) -> str:
    """One row per bundle (and X-ray stage): the measured seconds per iteration (wall and CPU time),
    images per second, peak memory, iterations per epoch, epochs, one validation and the projected run
    (from the wall time, and on a CPU also from the CPU time)."""
    cuda = any(str(r.get("device", "")).startswith("cuda") for r in results)
    mem = "peak CUDA memory (MiB)" if cuda else "peak RSS growth (MiB)"
    lines = [
        f"| bundle (train.json defaults) | stage | batch | s / iteration | CPU s / iteration | images / s | {mem} "
        "| iterations / epoch | epochs | one validation (s; CPU s) | projected run | projected run, CPU time "
        "| timed iterations | loss finite |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['bundle']} | FAILED: {r['error']} |" + " - |" * 12)
            continue
        for i, s in enumerate(r["stages"]):
            stage = s.get("stage")
            size = "x".join(str(v) for v in stage["spatial_size"]) if stage else "default"
            if stage and "loss_function" in stage:
                size += f", {str(stage['loss_function']).lstrip('@')}"
            sec = s["seconds_per_iteration"]
            ips = s["images_per_iteration"] / sec if sec > 0 else math.nan
            first = i == 0
            lines.append(
                f"| {r['bundle'] if first else ''} | {size} | {s['batch_size']} | {sec:.2f} | "
                f"{s['cpu_seconds_per_iteration']:.2f} | {ips:.2f} | {s['peak_memory_mib']:.0f} | "
                f"{s['iterations_per_epoch']} | {s['epochs']} | "
                f"{s['validation_seconds']:.1f}; {s['cpu_validation_seconds']:.1f} | "
                f"{format_duration(r['projected_seconds']) if first else ''} | "
                f"{format_duration(r['projected_cpu_seconds']) if first else ''} | {s['iterations_timed']} | "
                f"{'yes' if s['loss_finite'] else 'no'} |"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> list[dict]:
    """The command line (see the module docstring); returns the per-bundle results."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--bundles", nargs="+", default=list(BUNDLES), choices=BUNDLES)
    parser.add_argument("--iterations", type=int, default=3, help="timed training iterations (after a warm-up)")
    parser.add_argument("--val_iterations", type=int, default=2, help="timed validation iterations (0: none)")
    parser.add_argument("--amp", choices=("auto", "on", "off"), default="auto", help="auto: on CUDA only")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per bundle (its own process)")
    parser.add_argument("--work_dir", default=None, help="bundle copies and synthetic data (default: a temp dir)")
    parser.add_argument("--out", default=None, help="write the table (.md) and the results (.json) there")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    amp = None if args.amp == "auto" else args.amp == "on"
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="bundle_defaults_"))
    if args.one:
        print(json.dumps(measure_bundle(args.one, work, args.device, args.iterations, args.val_iterations, amp)))
        return []
    results = []
    try:
        for name in args.bundles:
            cmd = [sys.executable, __file__, "--one", name, "--device", args.device, "--iterations", str(args.iterations),
                   "--val_iterations", str(args.val_iterations), "--amp", args.amp, "--work_dir", str(work)]  # fmt: skip
            start = time.perf_counter()
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, env=os.environ.copy())
                if proc.returncode != 0:
                    tail = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
                    results.append({"bundle": name, "error": tail[:200]})
                else:
                    results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            except subprocess.TimeoutExpired:
                results.append({"bundle": name, "error": f"timed out after {args.timeout:.0f} s"})
            results[-1]["wall_seconds"] = time.perf_counter() - start
            print(f"{name}: {results[-1]['wall_seconds']:.0f} s", file=sys.stderr, flush=True)
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    header = (
        f"`{' '.join(['python benchmarks/bundle_defaults.py', *(argv if argv is not None else sys.argv[1:])])}`, "
        f"{datetime.date.today().isoformat()}, torch {torch.__version__}, {args.device}, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}"
    )
    table = markdown_table(results)
    print(header + "\n\n" + table)
    if args.out:
        out = Path(args.out)
        out.with_suffix(".md").write_text(header + "\n\n" + table + "\n")
        out.with_suffix(".json").write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
