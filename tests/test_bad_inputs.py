"""benchmarks/bad_inputs.py: the classification of a run's outcome, the file corruptions (each one
the picture it claims), and one bad input through a real bundle run: a truncated PNG loaded by
DataLoader workers, whose error the user reads last, named."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import bad_inputs  # noqa: E402
from bad_inputs import CONVERT, classify  # noqa: E402

TRACE = 'Traceback (most recent call last):\n  File "x.py", line 1, in <module>\nRuntimeError: Failed to instantiate'


def test_classify_each_outcome():
    assert classify(1, TRACE + "\nThe run stopped ...:\nValueError: cannot load a/1.PNG", "1.PNG") == "clear error"
    assert classify(1, TRACE, "1.PNG") == "deep traceback"  # fails, the last lines do not name the file
    assert classify(1, "1.PNG\n" + "\n".join(["x"] * 5), "1.PNG") == "deep traceback"  # named, but too far up
    assert classify(1, 'ValueError: 1.PNG\n  File "y.py", line 3', "1.PNG") == "deep traceback"  # ends in a frame
    assert classify(0, "done", "1.PNG") == "silently wrong"  # it should have refused
    assert classify(0, "done", "1.PNG", CONVERT, values_match=True) == "converted"
    assert classify(0, "done", "1.PNG", CONVERT, values_match=False) == "silently wrong"
    assert classify(1, "ValueError: mask 1.PNG holds values [0, 1]", "1.PNG", CONVERT) == "clear error"  # refused
    for code in (-6, -11, 134, 137, 139):
        assert classify(code, "terminate called without an active exception", "1.PNG") == "abort"


def _grey(path: Path, shape=(12, 10)) -> np.ndarray:
    grey = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    Image.fromarray(grey).save(path)
    return grey


def test_reencodings_keep_the_picture(tmp_path):
    used = {"a.png"}
    grey = _grey(tmp_path / "a.png")
    _grey(tmp_path / "b.png")  # not read by the datalist: never the one changed
    token, path = bad_inputs.reencode("*.png", "palette")(tmp_path, used)
    assert token == "a.png" and path == tmp_path / "a.png"
    with Image.open(path) as im:
        assert im.mode == "P" and not np.array_equal(np.asarray(im), grey)  # indices differ from values
        assert np.array_equal(np.asarray(im.convert("L")), grey)
    _grey(tmp_path / "a.png")
    bad_inputs.reencode("*.png", "16bit")(tmp_path, used)
    with Image.open(tmp_path / "a.png") as im:
        assert np.array_equal(np.asarray(im).astype(np.int64), grey.astype(np.int64) * 257)
    _grey(tmp_path / "a.png")
    bad_inputs.reencode("*.png", "binary01")(tmp_path, used)
    assert set(np.unique(np.asarray(Image.open(tmp_path / "a.png")))) <= {0, 1}
    _grey(tmp_path / "a.png")
    bad_inputs.reencode("*.png", "resize")(tmp_path, used)
    assert Image.open(tmp_path / "a.png").size == (10 // 2 + 3, 12 // 2 + 5)
    tif = tmp_path / "t.tif"
    _grey(tif)
    bad_inputs.reencode("*.tif", "multipage")(tmp_path, {"t.tif"})
    assert Image.open(tif).n_frames == 3
    with pytest.raises(FileNotFoundError, match="that the datalist reads"):
        bad_inputs.reencode("*.png", "rgb")(tmp_path, {"c.png"})


def test_truncate_empty_remove_and_csv_edits(tmp_path):
    (tmp_path / "x_mask.tif").write_bytes(b"0123456789")
    (tmp_path / "x.tif").write_bytes(b"0123456789")
    used = {"x.tif", "x_mask.tif"}
    assert bad_inputs.truncate("*.tif", exclude="_mask")(tmp_path, used) == ("x.tif", tmp_path / "x.tif")
    assert (tmp_path / "x.tif").read_bytes() == b"012345"
    bad_inputs.empty("*_mask.tif")(tmp_path, used)
    assert (tmp_path / "x_mask.tif").read_bytes() == b""
    assert bad_inputs.remove("*_mask.tif")(tmp_path, used) == ("x", None)  # a missing mask: its image's ID
    (tmp_path / "rle.csv").write_text("\ufeffImageId, EncodedPixels\na, -1\nb, 3 2\n")
    bad_inputs.csv_edit("rle.csv", bad_inputs._huge_rle)(tmp_path, used)
    assert (tmp_path / "rle.csv").read_text().splitlines() == ["ImageId, EncodedPixels", "a, -1", f"b, 5 {10**30}"]


def test_items_leave_out_the_test_split():
    datalist = {"training": [{"image": "a.png", "label": "a_m.png"}], "test": [{"image": "t.png"}]}
    assert [i["image"] for i in bad_inputs._items(datalist)] == ["a.png"]
    assert [i["image"] for i in bad_inputs._items([{"image": "u.jpg"}])] == ["u.jpg"]


def test_a_truncated_png_read_by_loader_workers_is_named_last(tmp_path):
    """The thyroid bundle, its tiny settings, a PNG cut at 60% read by two DataLoader workers (no
    caching): the run fails with the file named in its last lines, no abort."""
    name = "image PNG cut at 60%, loaded by 2 workers"
    [result] = bad_inputs.run_workflow("thyroid", tmp_path, jobs=1, only=[name])
    assert result.outcome == "clear error", result
    assert result.returncode == 1 and result.last_line.startswith("ValueError: cannot load the image file ")
    assert "1.PNG (CheckedPILReader)" in result.last_line and "truncated" in result.last_line
    with pytest.raises(ValueError, match="no case named"):
        bad_inputs.run_workflow("thyroid", tmp_path / "again", jobs=1, only=["no such case"])


def test_summary_table_counts_each_outcome_per_workflow():
    rows = [
        bad_inputs.Result("thyroid", "a", "clear error", 1, 1.0, ""),
        bad_inputs.Result("thyroid", "b", "converted", 0, 1.0, ""),
        bad_inputs.Result("xray", "c", "abort", -6, 1.0, ""),
    ]
    assert bad_inputs.summary_table(rows).splitlines()[2:] == [
        "| thyroid | 2 | 1 | 1 | 0 | 0 | 0 |",
        "| xray | 1 | 0 | 0 | 0 | 0 | 1 |",
    ]
