"""The tutorial notebooks.

Every notebook runs top to bottom with its own small settings (``MONAI_GAMBLE_TUTORIAL_QUICK=1``)
without an error and shows its figures as images; and the notebooks as committed were executed
top to bottom in one go, with their outputs and figures, no error and no path of the machine that
ran them.
"""

import os
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[2]
TUTORIALS = sorted((REPO / "tutorials").glob("*.ipynb"))
IDS = [p.stem for p in TUTORIALS]
# a code cell that draws: pyplot, the package's plotting functions, or a figure file shown
DRAWS = re.compile(
    r"\bplt\.(show|subplots|figure)\(|\bplot_(segmentation_grid|volume_slices|metric_comparison)\(|\bdisplay\(Image\("
)


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def has_image(cell):
    return any("image/png" in o.get("data", {}) for o in cell.get("outputs", []))


def outputs(nb):
    """``(index, output)`` of every output of every code cell of ``nb``."""
    return [(i, o) for i, c in enumerate(nb.cells) if c.cell_type == "code" for o in c.get("outputs", [])]


def error_outputs(nb):
    return [f"cell {i}: {o.get('ename')}: {o.get('evalue')}" for i, o in outputs(nb) if o.output_type == "error"]


def figures_as_text(nb):
    """Figures shown as their repr (``<Figure size 470x570 with 1 Axes>``) instead of an image."""
    return [
        f"cell {i}: {o['data']['text/plain']}"
        for i, o in outputs(nb)
        if "image/png" not in o.get("data", {}) and str(o.get("data", {}).get("text/plain", "")).startswith("<Figure")
    ]


def drawing_cells_without_image(nb):
    return [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and DRAWS.search(c.source) and not has_image(c)]


def output_text(nb):
    parts = []
    for c in code_cells(nb):
        for o in c.get("outputs", []):
            parts.append(str(o.get("text", "")))
            parts += [str(v) for k, v in o.get("data", {}).items() if k.startswith("text/")]
            parts += [str(v) for v in o.get("traceback", [])]
    return "\n".join(parts)


def test_there_are_tutorials():
    assert TUTORIALS, "tutorials/ holds no notebook"


def test_drawing_cells_are_recognised():
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("fig = plot_segmentation_grid([x])\nfig"),
            nbformat.v4.new_code_cell(
                "plt.show()", outputs=[nbformat.v4.new_output("display_data", {"image/png": ""})]
            ),
            nbformat.v4.new_code_cell("print(1)"),
        ]
    )
    nb.cells[0].outputs = [
        nbformat.v4.new_output("execute_result", {"text/plain": "<Figure size 470x570 with 1 Axes>"})
    ]
    assert drawing_cells_without_image(nb) == [0]
    assert figures_as_text(nb) == ["cell 0: <Figure size 470x570 with 1 Axes>"]


@pytest.mark.slow
@pytest.mark.parametrize("path", TUTORIALS, ids=IDS)
def test_notebook_runs(path, tmp_path, monkeypatch):
    monkeypatch.setenv("MONAI_GAMBLE_TUTORIAL_QUICK", "1")  # the notebooks' tiny settings
    # each notebook names its own MLflow store; an inherited MLFLOW_TRACKING_URI would take priority over it
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    nb = nbformat.read(path, as_version=4)
    try:
        NotebookClient(
            nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
        ).execute()
    finally:  # keep the executed notebook to read, where asked
        if os.environ.get("MONAI_GAMBLE_TUTORIAL_OUTPUT"):
            Path(os.environ["MONAI_GAMBLE_TUTORIAL_OUTPUT"]).mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, Path(os.environ["MONAI_GAMBLE_TUTORIAL_OUTPUT"]) / path.name)
    assert not error_outputs(nb)
    assert not figures_as_text(nb)
    if any(DRAWS.search(c.source) for c in code_cells(nb)):
        assert any(has_image(c) for c in code_cells(nb)), "the notebook draws but shows no image"
    dice = [float(v) for v in re.findall(r"best validation Dice (\d+\.\d+)", output_text(nb))]
    assert all(d > 0 for d in dice), f"a quick run learnt nothing: best validation Dice {dice}"


@pytest.mark.parametrize("path", TUTORIALS, ids=IDS)
def test_committed_notebook_is_executed(path):
    """The notebook in git holds the outputs of a run: every code cell executed, no error, every
    cell that draws with its image (PNG), no figure as text."""
    nb = nbformat.read(path, as_version=4)
    cells = code_cells(nb)
    unexecuted = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.execution_count is None]
    assert not unexecuted, f"code cells {unexecuted} were not executed: run the notebook and commit it with its outputs"
    assert any(c.get("outputs") for c in cells), "no outputs"
    assert not error_outputs(nb)
    assert not figures_as_text(nb)
    assert not drawing_cells_without_image(nb), "cells that draw but hold no image/png output"


@pytest.mark.parametrize("path", TUTORIALS, ids=IDS)
def test_committed_notebook_ran_in_order(path):
    """Execution counts 1, 2, 3, ...: the notebook was run top to bottom in one go."""
    counts = [c.execution_count for c in code_cells(nbformat.read(path, as_version=4))]
    assert counts == list(range(1, len(counts) + 1)), f"execution counts {counts}"


@pytest.mark.parametrize("path", TUTORIALS, ids=IDS)
def test_committed_notebook_shows_no_local_path(path):
    assert str(REPO) not in output_text(nbformat.read(path, as_version=4))


def test_committed_notebooks_are_small():
    sizes = {p.name: p.stat().st_size for p in TUTORIALS}
    assert sum(sizes.values()) < 5e6, f"tutorial notebooks take {sum(sizes.values()) / 1e6:.1f} MB: {sizes}"
