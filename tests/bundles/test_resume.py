"""Runs that survive and lose nothing, tested the way they fail for users, on the thyroid bundle in
subprocesses: ``kill -9`` then ``--resume true`` (bit-for-bit the uninterrupted run), SIGTERM (the MLflow run
ends KILLED and the resume continues it), a rerun that keeps the earlier run's files, and two runs started
together in one fresh folder."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from bundle_helpers import copy_bundle, recorded_runs, run_bundle
from test_thyroid_bundle import TINY  # the same tiny settings as the thyroid bundle's tests

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "thyroid_ultrasound_gambling"


def _start(cwd: Path, *args: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", "configs/train.json", *TINY, *args]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env |= {"PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for_epoch(cwd: Path, proc: subprocess.Popen, epoch: int, timeout: float = 240) -> Path:
    """The run folder, once its run.json says ``epoch`` epochs are saved."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for record in (cwd / "models").glob("*/run.json"):
            try:
                data = json.loads(record.read_text())
            except ValueError:
                continue
            if data["epoch"] >= epoch and data["status"] == "RUNNING":
                return record.parent
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before epoch {epoch}:\n{proc.stdout.read()[-4000:]}")
        time.sleep(0.02)
    proc.kill()
    raise AssertionError(f"no epoch {epoch} after {timeout} s")


def _weights(last: Path) -> dict[str, torch.Tensor]:
    state = torch.load(last, weights_only=True)["state"]
    return {f"{net}.{k}": v for net in ("model", "critic") for k, v in state[net].items()}


def _steps(client, run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, key))


@pytest.mark.slow
def test_kill_9_then_resume_equals_the_uninterrupted_run(tmp_path):
    reference = copy_bundle(BUNDLE, tmp_path / "reference")
    run_bundle(reference, ["train.json"], *TINY, "--max_epochs", "4")
    (expected_last,) = (reference / "models").glob("*/last.pt")

    bundle = copy_bundle(BUNDLE, tmp_path / "killed")
    proc = _start(bundle, "--max_epochs", "4")
    run_dir = _wait_for_epoch(bundle, proc, 2)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    run_id = json.loads((run_dir / "run.json").read_text())["mlflow_run_id"]
    client, runs = recorded_runs(bundle, "thyroid_ultrasound_gambling")
    assert [r.info.status for r in runs] == ["RUNNING"]  # what kill -9 leaves

    out = run_bundle(bundle, ["train.json"], *TINY, "--max_epochs", "4", "--resume", "true")
    assert f"resumed from {run_dir.relative_to(bundle)}/last.pt: epoch" in out
    expected, got = _weights(expected_last), _weights(run_dir / "last.pt")
    assert expected.keys() == got.keys()
    for k in expected:  # one thread on the CPU: the same weights, bit for bit
        assert torch.equal(expected[k], got[k]), k

    client, runs = recorded_runs(bundle, "thyroid_ultrasound_gambling")
    assert [(r.info.run_id, r.info.status) for r in runs] == [(run_id, "FINISHED")]  # the same MLflow run
    assert _steps(client, run_id, "val_dice") == [1, 2, 3, 4]  # no step twice
    assert _steps(client, run_id, "train_loss") == [1, 2, 3, 4]
    # the stable pointer is the run's best model, with a record of the run it came from
    assert (bundle / "models" / "model.pt").read_bytes() == (run_dir / "model.pt").read_bytes()
    assert json.loads((bundle / "models" / "model.json").read_text())["mlflow_run_id"] == run_id


@pytest.mark.slow
def test_sigterm_ends_the_run_killed_and_resume_continues_it(tmp_path):
    bundle = copy_bundle(BUNDLE, tmp_path)
    proc = _start(bundle, "--max_epochs", "3")
    run_dir = _wait_for_epoch(bundle, proc, 1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 128 + signal.SIGTERM
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "KILLED"
    client, runs = recorded_runs(bundle, "thyroid_ultrasound_gambling")
    assert [(r.info.run_id, r.info.status) for r in runs] == [(record["mlflow_run_id"], "KILLED")]
    saved = torch.load(run_dir / "last.pt", weights_only=True)["meta"]
    assert saved["status"] == "KILLED" and saved["iteration"] >= 3  # saved when it stopped

    run_bundle(bundle, ["train.json"], *TINY, "--max_epochs", "3", "--resume", "true")
    client, runs = recorded_runs(bundle, "thyroid_ultrasound_gambling")
    assert [(r.info.run_id, r.info.status) for r in runs] == [(record["mlflow_run_id"], "FINISHED")]
    assert _steps(client, record["mlflow_run_id"], "val_dice") == [1, 2, 3]
    assert json.loads((run_dir / "run.json").read_text())["status"] == "FINISHED"


@pytest.mark.slow
def test_a_rerun_keeps_the_earlier_run_and_resume_errors_are_clear(tmp_path):
    bundle = copy_bundle(BUNDLE, tmp_path)
    with pytest.raises(AssertionError, match="no run to resume in"):
        run_bundle(bundle, ["train.json"], *TINY, "--max_epochs", "1", "--resume", "true")
    run_bundle(bundle, ["train.json"], *TINY, "--max_epochs", "2")
    (first,) = (bundle / "models").glob("*/model.pt")
    first_bytes = first.read_bytes()
    run_bundle(bundle, ["train.json"], *TINY, "--max_epochs", "1")  # the one-epoch rerun of the issue
    runs = sorted(p.parent for p in (bundle / "models").glob("*/model.pt"))
    assert len(runs) == 2 and first.read_bytes() == first_bytes  # the earlier run's best model is intact
    with pytest.raises(AssertionError, match="already trained 1 epochs, max_epochs is 1"):
        run_bundle(bundle, ["train.json"], *TINY, "--max_epochs", "1", "--resume", "true")
    # train a finished run longer: same folder, a new MLflow run of the same name (a finished run stays closed)
    out = run_bundle(bundle, ["train.json"], *TINY, "--max_epochs", "2", "--resume", "true")
    assert "resumed from" in out
    client, recorded = recorded_runs(bundle, "thyroid_ultrasound_gambling")
    assert [r.info.status for r in recorded] == ["FINISHED"] * 3
    # evaluation records which training run and checkpoint it read
    run_bundle(bundle, ["train.json", "evaluate.json"], *TINY)
    client, recorded = recorded_runs(bundle, "thyroid_ultrasound_gambling")
    evaluation = recorded[-1]
    published = json.loads((bundle / "models" / "model.json").read_text())
    assert evaluation.data.tags["training_run_id"] == published["mlflow_run_id"]
    assert evaluation.data.tags["training_run_name"] == published["run_name"]
    # the evaluation's own folder, and its copy in the stable place that tables and comparisons read
    latest = bundle / "eval" / "evaluation_test" / "gambling"
    (own,) = (latest / "runs").glob("*/metrics_per_image.csv")
    assert own.parent.name == evaluation.info.run_name
    assert (latest / "metrics_per_image.csv").read_bytes() == own.read_bytes()
    assert any(own.parent.rglob("*.png")) and any(latest.glob("*.png"))  # figures, copied too


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_two_runs_started_together_in_one_fresh_folder(tmp_path):
    bundle = copy_bundle(BUNDLE, tmp_path)
    procs = [_start(bundle, "--max_epochs", "1", "--seed", str(seed)) for seed in (0, 1)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-3000:] for o in outs)
    client, runs = recorded_runs(bundle, "thyroid_ultrasound_gambling")
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
    hashes = []
    for run in runs:
        record = next(
            json.loads(p.read_text())
            for p in (bundle / "models").glob("*/run.json")
            if json.loads(p.read_text())["mlflow_run_id"] == run.info.run_id
        )
        logged = Path(client.download_artifacts(run.info.run_id, "model.pt", str(tmp_path / run.info.run_id)))
        assert _sha(logged) == _sha(bundle / "models" / record["run_name"] / "model.pt")  # its own model
        hashes.append(_sha(logged))
    assert hashes[0] != hashes[1]  # seeds 0 and 1: two different models, each in its own run
