"""Every tutorial notebook runs top to bottom (with its own small settings) without an error."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

TUTORIALS = sorted((Path(__file__).resolve().parents[2] / "tutorials").glob("*.ipynb"))


@pytest.mark.slow
@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    monkeypatch.setenv("MONAI_GAMBLE_TUTORIAL_QUICK", "1")  # the notebooks' tiny settings
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors


def test_there_are_tutorials():
    assert TUTORIALS, "tutorials/ holds no notebook"
