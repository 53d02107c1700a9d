"""benchmarks/resume_check.py: the comparison of two saved training states, and the X-ray bundle killed
with SIGKILL at the end of its first progressive-resizing stage and resumed, bit for bit the run that
was not interrupted (the resumed run starts with a stage change and a data loader of another batch size)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import resume_check  # noqa: E402


def test_compare_states_counts_every_tensor_and_the_largest_difference(tmp_path):
    a = {"model": {"w": torch.zeros(3), "b": torch.ones(2)}, "rng": {"torch": torch.tensor([1, 2], dtype=torch.uint8)}}
    b = {"model": {"w": torch.tensor([0.0, 0.5, -2.0]), "b": torch.ones(2)}, "rng": {"torch": a["rng"]["torch"]}}
    torch.save({"state": a}, tmp_path / "a.pt")
    torch.save({"state": b}, tmp_path / "b.pt")
    assert resume_check.compare_states(tmp_path / "a.pt", tmp_path / "a.pt") == (3, True, 0.0)
    assert resume_check.compare_states(tmp_path / "a.pt", tmp_path / "b.pt") == (3, False, 2.0)
    torch.save({"state": {"model": {"w": torch.zeros(4)}}}, tmp_path / "c.pt")  # another shape, a tensor missing
    assert resume_check.compare_states(tmp_path / "a.pt", tmp_path / "c.pt")[1:] == (False, float("inf"))


@pytest.mark.slow
def test_xray_killed_at_a_stage_change_resumes_bit_for_bit(tmp_path):
    row = resume_check.run_check("xray", tmp_path)
    assert row.equal and row.max_abs_diff == 0.0 and row.tensors > 100, row
    assert row.mlflow == "ok", row  # one MLflow run, the killed one's id, FINISHED, each step once
