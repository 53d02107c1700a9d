"""Kill every bundle's training with SIGKILL, resume it, and compare it with a run that was never killed.

For each workflow this trains the bundle's ``train.json`` on its tiny synthetic set (the settings
of ``benchmarks/gpu_check.py``, MLflow on, one thread) three times in fresh copies of the bundle:

1. the reference, uninterrupted, for ``epochs`` epochs;
2. the same command, its whole process group killed with SIGKILL once ``run.json`` says
   ``kill_after`` epochs are saved (what a pre-empted job or an out-of-memory kill does);
3. in the killed copy, the same command with ``--resume True``.

It then compares the resumed run's ``last.pt`` with the reference's: every tensor of the saved
training state (both networks, the optimizers, the schedulers, SWA's averaged model, the handlers'
states), bit for bit, and the largest difference; and the MLflow store: one run, the killed one's id,
``FINISHED``, each metric's steps those of the reference, none twice. ``--torchrun 2`` runs the
thyroid bundle's ``multi_gpu_train.json`` under ``torchrun`` (two CPU processes, gloo) the same way.

Run: ``python benchmarks/resume_check.py [--workflows thyroid xray ...] [--torchrun 2]``; it prints a
Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bad_inputs import WORKFLOWS, copy_bundle, tiny_args

#: epochs of each check and the epoch after which it is killed; extra settings (for the X-ray bundle,
#: progressive resizing over two stages with their own batch sizes and SWA in the last epoch, killed
#: at the end of the first stage: the resumed run starts with a stage change)
SETTINGS: dict[str, tuple[int, int, list[str]]] = {
    "thyroid": (4, 2, []),
    "nerve": (3, 1, []),
    "xray": (
        4,
        2,
        [
            "--stages",
            '[{"epochs": 2, "spatial_size": [32, 32], "batch_size": 2, "accumulation_steps": 2}, '
            '{"epochs": 2, "spatial_size": [48, 48], "batch_size": 3}]',
            "--swa_epochs",
            "1",
        ],
    ),  # fmt: skip
    "pathology": (3, 1, []),
    "generic": (3, 1, ["--val_interval", "1"]),
}


@dataclass
class Row:
    workflow: str
    epochs: int
    killed_after: int
    tensors: int
    equal: bool
    max_abs_diff: float
    mlflow: str
    seconds: float


def _command(torchrun: int, configs: Sequence[str], args: Sequence[str]) -> list[str]:
    head = [sys.executable, "-m"]
    if torchrun:
        head += ["torch.distributed.run", f"--nproc_per_node={torchrun}", "--standalone", "-m"]
    config = "[" + ",".join(f"'configs/{c}'" for c in configs) + "]"
    return [*head, "monai.bundle", "run", "--config_file", config, *args]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return env | {"PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}


def _run(cwd: Path, cmd: list[str], timeout: float = 900) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-4000:]}")
    return proc.stdout + proc.stderr


def _record(cwd: Path) -> tuple[Path, dict] | None:
    for path in (cwd / "models").rglob("run.json"):
        try:
            return path.parent, json.loads(path.read_text())
        except ValueError:
            continue  # being replaced
    return None


def _kill_after(cwd: Path, cmd: list[str], epoch: int, timeout: float = 600) -> Path:
    """Start ``cmd`` in its own process group; SIGKILL the group once ``epoch`` epochs are saved."""
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            found = _record(cwd)
            if found and found[1].get("epoch", 0) >= epoch and found[1].get("status") == "RUNNING":
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(60)
                return found[0]
            if proc.poll() is not None:
                raise RuntimeError(f"the run ended before epoch {epoch}:\n{proc.stdout.read()[-4000:]}")
            time.sleep(0.02)
        raise RuntimeError(f"no epoch {epoch} saved after {timeout} s")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(60)


def _tensors(value: Any, prefix: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    if isinstance(value, torch.Tensor):
        yield prefix, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _tensors(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _tensors(v, f"{prefix}[{i}]")


def compare_states(a: Path, b: Path) -> tuple[int, bool, float]:
    """``(number of tensors, all equal bit for bit, largest absolute difference)`` of the training
    states saved in two ``last.pt`` files (their ``state`` entry; a tensor missing on one side or
    of another shape counts as a difference of ``inf``)."""
    sa = dict(_tensors(torch.load(a, weights_only=True, map_location="cpu")["state"]))
    sb = dict(_tensors(torch.load(b, weights_only=True, map_location="cpu")["state"]))
    equal, worst = sa.keys() == sb.keys(), 0.0 if sa.keys() == sb.keys() else float("inf")
    for key in sa.keys() & sb.keys():
        x, y = sa[key], sb[key]
        if x.shape != y.shape or x.dtype != y.dtype:
            equal, worst = False, float("inf")
            continue
        if not torch.equal(x, y):
            equal = False
            worst = max(worst, float((x.double() - y.double()).abs().max()))
    return len(sa), equal, worst


def mlflow_summary(bundle: Path, reference: Path, run_id: str) -> str:
    """``ok`` when the store of ``bundle`` holds one run, ``run_id``, FINISHED, whose metrics have the
    reference run's steps, none twice; else what differs."""
    import mlflow

    def runs(folder: Path) -> tuple[mlflow.MlflowClient, list]:
        client = mlflow.MlflowClient(f"sqlite:///{folder / 'eval' / 'mlruns.db'}")
        found = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
        return client, found

    client, got = runs(bundle)
    ref_client, ref = runs(reference)
    if [(r.info.run_id, r.info.status) for r in got] != [(run_id, "FINISHED")]:
        return f"runs {[(r.info.run_name, r.info.status) for r in got]}"
    problems = []
    for key in sorted(ref[0].data.metrics):
        steps = sorted(m.step for m in client.get_metric_history(run_id, key))
        expected = sorted(m.step for m in ref_client.get_metric_history(ref[0].info.run_id, key))
        if steps != expected:
            problems.append(f"{key} steps {steps} (reference {expected})")
    return "ok" if not problems else "; ".join(problems)


def run_check(workflow: str, work: Path, torchrun: int = 0) -> Row:
    bundle = WORKFLOWS[workflow]
    epochs, kill_after, extra = SETTINGS[workflow]
    args = tiny_args(bundle)
    for key in ("--tracking_uri", "--max_epochs"):  # MLflow on; this check's epochs
        i = args.index(key)
        del args[i : i + 2]
    if workflow != "xray":  # the X-ray bundle's epochs are those of its stages
        args += ["--max_epochs", str(epochs)]
    args += extra
    if torchrun:  # a validation split of one image at least per process
        args[args.index("--synthetic_num_images") + 1] = str(12 * torchrun)
    configs = ["train.json", "multi_gpu_train.json"] if torchrun else ["train.json"]
    start = time.perf_counter()
    name = f"{workflow}{'_torchrun' if torchrun else ''}"
    reference = copy_bundle(bundle, work / name / "reference")
    _run(reference, _command(torchrun, configs, args))
    killed = copy_bundle(bundle, work / name / "killed")
    run_dir = _kill_after(killed, _command(torchrun, configs, args), kill_after)
    run_id = json.loads((run_dir / "run.json").read_text())["mlflow_run_id"]
    _run(killed, _command(torchrun, configs, [*args, "--resume", "True"]))
    (ref_last,) = (reference / "models").rglob("last.pt")
    tensors, equal, worst = compare_states(ref_last, run_dir / "last.pt")
    return Row(
        name, epochs, kill_after, tensors, equal, worst, mlflow_summary(killed, reference, run_id),
        time.perf_counter() - start,
    )  # fmt: skip


def markdown(rows: Sequence[Row]) -> str:
    lines = [
        "| workflow | epochs | killed after epoch | state tensors | bit for bit | max abs difference | MLflow | seconds |",
        "|---|---:|---:|---:|---|---:|---|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.workflow} | {r.epochs} | {r.killed_after} | {r.tensors} | {'yes' if r.equal else 'no'} | "
            f"{r.max_abs_diff:.3g} | {r.mlflow} | {r.seconds:.0f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workflows", nargs="*", default=list(WORKFLOWS), choices=list(WORKFLOWS))
    parser.add_argument("--torchrun", type=int, default=0, help="also check the thyroid bundle under torchrun")
    parser.add_argument("--out", type=Path, default=None, help="keep the runs here")
    args = parser.parse_args(argv)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = args.out or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for workflow in args.workflows:
            rows.append(run_check(workflow, work))
            print(markdown(rows[-1:]).splitlines()[-1], flush=True)
        if args.torchrun:
            rows.append(run_check("thyroid", work, torchrun=args.torchrun))
    print(markdown(rows))
    return rows


if __name__ == "__main__":
    main()
