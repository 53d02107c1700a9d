"""benchmarks/gpu_check.py and benchmarks/bundle_defaults.py: the checks run (on a CPU, tiny settings)
and every row is ok; the projection of a run's time is exact on hand-computed cases."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import bundle_defaults  # noqa: E402
import gpu_check  # noqa: E402
from bundle_defaults import Stage, format_duration, projected_seconds  # noqa: E402


def test_projection_of_one_stage_with_validation_every_fifth_epoch():
    # 10 epochs x 5 iterations x 2 s = 100 s, validations at epochs 5 and 10: 2 x 3 s
    assert projected_seconds([Stage(10, 5, 2.0, 3.0)], val_interval=5) == 106.0
    assert projected_seconds([Stage(10, 5, 2.0, 3.0)], val_interval=None) == 100.0
    assert projected_seconds([Stage(10, 5, 2.0, 3.0)], val_interval=1) == 130.0
    assert projected_seconds([], val_interval=1) == 0.0


def test_projection_of_progressive_stages_counts_validations_across_stage_ends():
    """X-ray-like schedule: 20 epochs of 11 iterations at 2.5 s (a validation 4 s), then 15 epochs of 43
    at 6 s (a validation 8 s), validation every 2nd epoch: epochs 2..20 are 10 validations of the first
    stage, 22..34 are 7 of the second."""
    stages = [Stage(20, 11, 2.5, 4.0), Stage(15, 43, 6.0, 8.0)]
    expected = 20 * 11 * 2.5 + 15 * 43 * 6.0 + 10 * 4.0 + 7 * 8.0  # 550 + 3870 + 40 + 56
    assert expected == 4516.0
    assert projected_seconds(stages, val_interval=2) == expected
    # a stage of 3 epochs after one of 1 epoch, validation every 3rd epoch: only epoch 3 (in the second stage)
    assert projected_seconds([Stage(1, 1, 1.0, 100.0), Stage(3, 1, 1.0, 10.0)], val_interval=3) == 4.0 + 10.0


def test_format_duration():
    assert format_duration(30.0) == "30.0 s"
    assert format_duration(600.0) == "10.0 min"
    assert format_duration(3 * 3600.0) == "3.0 h"
    assert format_duration(3 * 86400.0) == "3.0 d"
    assert format_duration(math.nan) == "-"


def test_iteration_timer_losses():
    timer = bundle_defaults.IterationTimer(None, "cpu", seconds=[3.0, 1.0, 2.0], losses=[1.0, 0.5, 0.25])
    assert timer.median_seconds() == 1.5 and timer.median_seconds(warmup=0) == 2.0
    assert timer.loss_finite()
    assert not bundle_defaults.IterationTimer(None, "cpu", losses=[1.0, math.inf]).loss_finite()
    assert not bundle_defaults.IterationTimer(None, "cpu", losses=[1.0, math.nan]).loss_finite()
    assert not bundle_defaults.IterationTimer(None, "cpu").loss_finite()


def test_markdown_tables():
    rows = [gpu_check.Row("a", 2.0, 8.0, 100.0, True), gpu_check.Row("b", status="FAILED: RuntimeError: x")]
    table = gpu_check.markdown(rows, "cpu")
    assert table.splitlines()[0].startswith("| check | it/s | images/s |")
    assert "| a | 2.00 | 8.0 | 100 | yes | ok |" in table and "| b | - | - | - | - | FAILED: RuntimeError: x |" in table
    result = {"bundle": "x", "device": "cpu", "projected_seconds": 106.0, "projected_cpu_seconds": 53.0,
              "stages": [{"stage": None, "batch_size": 4, "seconds_per_iteration": 2.0, "cpu_seconds_per_iteration": 1.0,
                          "images_per_iteration": 4, "peak_memory_mib": 10.0, "iterations_per_epoch": 5, "epochs": 10,
                          "validation_seconds": 3.0, "cpu_validation_seconds": 1.5, "iterations_timed": 2,
                          "loss_finite": True}]}  # fmt: skip
    line = bundle_defaults.markdown_table([result, {"bundle": "y", "error": "boom"}]).splitlines()
    assert line[2] == "| x | default | 4 | 2.00 | 1.00 | 2.00 | 10 | 5 | 10 | 3.0; 1.5 | 106.0 s | 53.0 s | 2 | yes |"
    assert line[3].startswith("| y | FAILED: boom |")


def test_a_failing_check_is_a_row_and_the_others_run(monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("first line\nsecond line")

    monkeypatch.setattr(gpu_check, "run_metrics_check", boom)
    rows = gpu_check.run_checks("cpu", only=["metrics", "infer thyroid"])
    assert [r.status for r in rows] == ["FAILED: RuntimeError: first line", "ok"]


def test_gpu_check_on_cpu_subset(tmp_path):
    """The thyroid training checks (two-pass and fused gambling, cross-entropy), the metrics and the
    thyroid inference: every row ok, the table and JSON written."""
    out = tmp_path / "check"
    rows = gpu_check.main(["--device", "cpu", "--iterations", "2", "--only", "train thyroid", "metrics",
                           "infer thyroid", "--out", str(out), "--quiet"])  # fmt: skip
    assert len(rows) == 5, [r.check for r in rows]
    assert all(r.status == "ok" and r.finite for r in rows), [(r.check, r.status) for r in rows]
    assert all(r.it_per_s > 0 and r.images_per_s > 0 for r in rows)
    assert "fused" in rows[1].check
    md = (out.with_suffix(".md")).read_text()
    assert md.count("| ok |") == 5
    assert [r["status"] for r in json.loads(out.with_suffix(".json").read_text())["rows"]] == ["ok"] * 5


def test_gpu_check_amp_on_cpu_autocasts_monai_supervised_trainers():
    """``--amp on`` on a CPU: bfloat16 autocast, also for the single-network configs (their trainer is
    ``AmpSupervisedTrainer``: MONAI's ``SupervisedTrainer`` autocasts on CUDA only); a check fails if
    its segmenter's convolutions never ran in the autocast dtype."""
    rows = gpu_check.main(["--device", "cpu", "--iterations", "1", "--amp", "on", "--only", "train thyroid train_ce",
                           "train xray (default", "--quiet"])  # fmt: skip
    assert [r.status for r in rows] == ["ok", "ok"], [(r.check, r.status) for r in rows]


# the checks of the bundles other than the thyroid one (test_gpu_check_on_cpu_subset runs those and the metrics)
OTHER_CHECKS = [f"{kind} {name}" for kind in ("train", "infer") for name in ("nerve", "pathology", "xray", "generic")]


@pytest.mark.slow
def test_gpu_check_command_on_cpu(tmp_path):
    """``gpu_check.py --device cpu --iterations 2`` as a script: every check that the in-process subset test
    (thyroid, metrics) does not run (the other bundles' training variants and inference) ok."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    out = tmp_path / "gpu_check"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--iterations", "2",
         "--out", str(out), "--only", *OTHER_CHECKS],
        capture_output=True, text=True, env=env, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = json.loads(out.with_suffix(".json").read_text())["rows"]
    expected = [c.name for c in gpu_check.train_checks() if "thyroid" not in c.name]
    assert [r["check"] for r in rows][: len(expected)] == expected
    assert len(rows) == len(expected) + len(gpu_check.SHORT) - 1  # and the inference of each other bundle
    assert all(r["status"] == "ok" and r["finite"] for r in rows), [(r["check"], r["status"]) for r in rows]
    table = [line for line in proc.stdout.splitlines() if line.startswith("| ")]
    assert len(table) == len(rows) + 1 and all(line.endswith("| ok |") for line in table[1:])
