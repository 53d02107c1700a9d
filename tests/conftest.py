"""Shared fixtures: the real-data samples (../shared/realdata, or $MONAI_GAMBLE_REALDATA) and helpers."""

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REALDATA = Path(os.environ.get("MONAI_GAMBLE_REALDATA", REPO.parent / "shared" / "realdata"))


@pytest.fixture(scope="session")
def realdata() -> Path:
    """The folder of real dataset samples; tests that need it are skipped where it is absent."""
    if not REALDATA.is_dir():
        pytest.skip(f"real data samples not found at {REALDATA} (set MONAI_GAMBLE_REALDATA)")
    return REALDATA


def _folder_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="session")
def digest() -> Callable[[Path], str]:
    """``digest(folder)``: a SHA-256 of every file's relative path and bytes (same bytes, same digest)."""
    return _folder_digest


def _torchrun(script: str, folder: Path, nproc: int = 2, timeout: int = 300) -> None:
    """Write ``script`` to ``folder/script.py`` and run it in ``nproc`` processes with ``torchrun``
    (``python -m torch.distributed.run --standalone``), ``folder`` as its one argument.

    Raises:
        AssertionError: with the tail of stderr when the launch fails.
    """
    path = folder / "script.py"
    path.write_text(script)
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--standalone", str(path)]
    done = subprocess.run([*cmd, str(folder)], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="session")
def torchrun() -> Callable[..., None]:
    """``torchrun(script, folder, nproc=2)``: run a Python script in ``nproc`` processes (see :func:`_torchrun`)."""
    return _torchrun


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (``make test`` runs two workers on the 2-core CI machine) each worker
    computes with one thread: two workers with two OpenMP threads each oversubscribe the cores."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        os.environ["OMP_NUM_THREADS"] = "1"  # the notebooks' kernels and the bundles' subprocesses too
        torch.set_num_threads(1)
