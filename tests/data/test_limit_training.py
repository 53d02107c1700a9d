import pytest

from monai_gamble.data import ddti_scan_group, limit_training, split_datalist


def ddti_like() -> dict:
    ids = [str(i) for i in range(1, 41)] + [str(10000 + k) for k in range(20)] + [str(20000 + k) for k in range(20)]
    items = [{"id": i, "group": ddti_scan_group(i)} for i in ids]
    return split_datalist(items, seed=0, groups="group")


def test_nested_grouped_subsets():
    dl = ddti_like()
    small, large = limit_training(dl, 8, seed=3), limit_training(dl, 32, seed=3)
    for sub, n in ((small, 8), (large, 32)):
        assert n <= len(sub["training"]) <= n + 1  # whole groups: at most one image over
        ids = {i["id"] for i in sub["training"]}
        assert all(str(int(i) - 10000) in ids for i in ids if int(i) >= 20000)  # a right half keeps its left half
        assert all(str(int(i) + 10000) in ids for i in ids if 10000 <= int(i) < 20000 and str(int(i) + 10000)
                   in {x["id"] for x in dl["training"]})  # fmt: skip
        assert sub["validation"] == dl["validation"] and sub["test"] == dl["test"]
    assert {i["id"] for i in small["training"]} <= {i["id"] for i in large["training"]}  # nested
    assert limit_training(dl, 8, seed=3) == small and limit_training(dl, 8, seed=4) != small
    assert limit_training(dl, None) is dl
    full = limit_training(dl, len(dl["training"]))
    assert full["training"] == dl["training"]


@pytest.mark.parametrize("n", [0, -1, 10_000])
def test_bad_sizes(n):
    with pytest.raises(ValueError, match="num_training_images must be between 1 and"):
        limit_training(ddti_like(), n)
