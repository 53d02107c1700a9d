"""check_splits: a split too small to train or validate on is a clear error before any work."""

import pytest

from monai_gamble.data import check_splits


def test_check_splits_names_an_empty_or_too_small_split(monkeypatch):

    data = {"training": [{"id": 1}, {"id": 2}], "validation": [{"id": 3}], "test": []}
    assert check_splits(data) is data
    with pytest.raises(ValueError, match=r"the validation split holds 0 items \(splits: .*'validation': 0"):
        check_splits({**data, "validation": []})
    with pytest.raises(ValueError, match="validation split holds 1 items for 2 processes.*or fewer processes"):
        check_splits(data, num_processes=2)
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(SystemExit, match="Bad setting, nothing was run: the training split holds 2 items for 3"):
        check_splits(data, exit_on_error=True)
    check_splits(data, splits=("training",), num_processes=2)
