"""Shared fixtures: the real-data samples (../shared/realdata, or $MONAI_GAMBLE_REALDATA) and helpers."""

import os
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
