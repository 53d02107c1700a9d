import csv
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from monai_gamble.data import (
    ddti_scan_group,
    evaluation_datalist,
    evaluation_name,
    image_folder_datalist,
    is_ddti_layout,
    make_thyroid_ultrasound,
    read_csv_rows,
    split_datalist,
    tnscui_datalist,
)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return make_thyroid_ultrasound(tmp_path_factory.mktemp("tn") / "ds", num_images=24, seed=3, label_noise=0.05)


class TestSplit:
    def test_fractions_and_stratification(self):
        items = [{"id": f"{i:03d}", "category": int(i % 4 == 0)} for i in range(100)]
        out = split_datalist(items, (0.8, 0.1, 0.1), seed=1, stratify_by="category")
        assert [len(out[k]) for k in ("training", "validation", "test")] == [80, 10, 10]
        for k, n in (("training", 20), ("validation", 2.5), ("test", 2.5)):
            assert abs(Counter(i["category"] for i in out[k])[1] - n) <= 0.5
        ids = [i["id"] for k in out for i in out[k]]
        assert sorted(ids) == sorted(i["id"] for i in items)  # a partition

    def test_seeded_and_order_independent(self):
        items = [{"id": str(i), "category": i % 3} for i in range(30)]
        a = split_datalist(items, seed=5, stratify_by="category")
        b = split_datalist(list(reversed(items)), seed=5, stratify_by="category")
        c = split_datalist(items, seed=6, stratify_by="category")
        assert a == b and a != c

    @staticmethod
    def pairs(n_whole: int = 30, n_pairs: int = 25) -> list[dict]:
        """DDTI-like items: whole scans 1..n_whole and half-scan pairs (10000 + k, 20000 + k)."""
        ids = [str(i) for i in range(1, n_whole + 1)]
        ids += [str(10000 + k) for k in range(n_pairs)] + [str(20000 + k) for k in range(n_pairs)]
        return [{"id": i} for i in ids]

    @pytest.mark.parametrize("seed", [0, 1, 2, 3])
    def test_groups_never_cross_a_split(self, seed):
        items = self.pairs()
        out = split_datalist(items, seed=seed, groups=ddti_scan_group)
        where = {i["id"]: k for k, v in out.items() for i in v}
        assert sorted(where) == sorted(i["id"] for i in items)  # a partition
        for k in range(25):
            assert where[str(10000 + k)] == where[str(20000 + k)]
        sizes = [len(out[k]) for k in ("training", "validation", "test")]
        assert all(abs(a - b) <= 1 for a, b in zip(sizes, [64, 8, 8], strict=True))  # within one pair
        assert out == split_datalist(list(reversed(items)), seed=seed, groups=ddti_scan_group)

    def test_groups_by_item_key_and_ungrouped_unchanged(self):
        items = [{"id": f"{i:02d}", "patient": i // 3} for i in range(30)]
        out = split_datalist(items, seed=0, groups="patient")
        where = {i["id"]: k for k, v in out.items() for i in v}
        for p in range(10):
            assert len({where[f"{i:02d}"] for i in range(3 * p, 3 * p + 3)}) == 1
        # one-item groups split exactly as without groups
        assert split_datalist(items, seed=4, groups="id") == split_datalist(items, seed=4)

    def test_group_across_strata_is_refused(self):
        items = [{"id": "10001", "category": 0}, {"id": "20001", "category": 1}, {"id": "5", "category": 0}]
        with pytest.raises(ValueError, match="group '10001' holds items of several 'category' values"):
            split_datalist(items, stratify_by="category", groups=ddti_scan_group)

    @pytest.mark.parametrize("seed", [0, 7])
    def test_folds(self, seed):
        items = self.pairs(40, 30)
        plain = split_datalist(items, seed=seed, groups=ddti_scan_group)
        folds = [split_datalist(items, seed=seed, groups=ddti_scan_group, num_folds=5, fold=k) for k in range(5)]
        vals = [{i["id"] for i in f["validation"]} for f in folds]
        for f, v in zip(folds, vals, strict=True):
            assert f["test"] == plain["test"]  # the same test split with and without folds
            train = {i["id"] for i in f["training"]}
            assert not train & v and len(train | v | {i["id"] for i in f["test"]}) == 100
            assert {ddti_scan_group(i) for i in train}.isdisjoint({ddti_scan_group(i) for i in v})
        union = set().union(*vals)
        assert sum(len(v) for v in vals) == len(union) == 100 - len(plain["test"])  # the folds partition the rest
        assert max(map(len, vals)) - min(map(len, vals)) <= 2
        again = split_datalist(items, seed=seed, groups=ddti_scan_group, num_folds=5, fold=3)
        assert again == folds[3]

    @pytest.mark.parametrize(
        "kwargs, match",
        [
            ({"num_folds": 5}, "go together"),
            ({"fold": 1}, "go together"),
            ({"num_folds": 1, "fold": 0}, "num_folds >= 2"),
            ({"num_folds": 5, "fold": 5}, "0 <= fold < num_folds"),
            ({"num_folds": 50, "fold": 0}, "cannot make 50 folds"),
        ],
    )
    def test_bad_folds(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            split_datalist(self.pairs(10, 5), groups=ddti_scan_group, **kwargs)

    @pytest.mark.parametrize("fractions", [(0.8, 0.1), (0.5, 0.5, 0.5), (1.2, -0.1, -0.1), (float("nan"), 0.5, 0.5)])
    def test_bad_fractions(self, fractions):
        with pytest.raises(ValueError, match="fractions"):
            split_datalist([{"id": "1"}], fractions)


class TestDDTIGroups:
    @pytest.mark.parametrize(
        "sid, group", [("20123", "10123"), ("10123", "10123"), ("17", "17"), ("29999", "19999"), ("abc", "abc")]
    )
    def test_group_of_an_id(self, sid, group):
        assert ddti_scan_group(sid) == group
        assert ddti_scan_group({"id": sid}) == group

    def test_layout_detection(self):
        assert is_ddti_layout(["1", "10004", "20004"])
        assert not is_ddti_layout(["1", "2", "10004"])  # no pair
        assert not is_ddti_layout(["1", "case_7"])
        assert not is_ddti_layout(["10004", "20004", "35000"])
        assert not is_ddti_layout([])

    def test_real_517_detected_and_grouped(self, realdata, caplog):
        root = realdata / "ultrasound_thyroid_ddti"
        with caplog.at_level("INFO", logger="monai_gamble"), pytest.warns(UserWarning, match="not stratified"):
            dl = tnscui_datalist(root, check_masks=False)
        assert "looks like DDTI" in caplog.text and "141 half-scan images" in caplog.text and "376 scans" in caplog.text
        assert sum(len(v) for v in dl.values()) == 517
        groups = {k: {i["group"] for i in v} for k, v in dl.items()}
        assert not (groups["training"] & groups["validation"]) and not (groups["training"] & groups["test"])
        assert not (groups["validation"] & groups["test"])
        for k, v in dl.items():  # a right half always with its left half
            ids = {i["id"] for i in v}
            assert all(str(int(i) - 10000) in ids for i in ids if int(i) >= 20000), k
        assert abs(len(dl["test"]) - 52) <= 1 and abs(len(dl["validation"]) - 52) <= 1
        with pytest.warns(UserWarning):
            folds = [tnscui_datalist(root, check_masks=False, num_folds=5, fold=k) for k in range(5)]
        assert all(f["test"] == dl["test"] for f in folds)
        val_groups = [{i["group"] for i in f["validation"]} for f in folds]
        assert sum(map(len, val_groups)) == len(set().union(*val_groups))  # each scan in one fold
        with pytest.warns(UserWarning):
            by_image = tnscui_datalist(root, check_masks=False, groups="none")
        assert all(i["group"] == i["id"] for v in by_image.values() for i in v)

    def test_bad_group_rule(self, synthetic):
        with pytest.raises(ValueError, match="ddti"):
            tnscui_datalist(synthetic, groups="by_patient")


class TestEvaluationDatalist:
    def test_split_or_external(self, tmp_path, synthetic):
        dl = tnscui_datalist(synthetic)
        assert evaluation_datalist(dl, "validation") == dl["validation"]
        assert evaluation_name("validation") == "validation"
        items = evaluation_datalist(dl, "test", synthetic)
        assert len(items) == 24 and {i["id"] for i in items} == {str(i) for i in range(1, 25)}
        assert evaluation_name("test", synthetic) == "external_" + synthetic.name

    def test_bad_external_layout_and_split(self, tmp_path, synthetic):
        dl = tnscui_datalist(synthetic)
        (tmp_path / "flat").mkdir()
        Image.new("L", (8, 8)).save(tmp_path / "flat" / "1.PNG")
        with pytest.raises(ValueError, match=r"evaluation_dataset_dir .*flat cannot be read .*image does not exist"):
            evaluation_datalist(dl, "test", tmp_path / "flat")
        with pytest.raises(ValueError, match="evaluation_split 'tset'"):
            evaluation_datalist(dl, "tset")
        with pytest.raises(ValueError, match="split is empty"):
            evaluation_datalist({**dl, "test": []}, "test")


def copy_dataset(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


class TestTNSCUIDatalist:
    def test_synthetic(self, synthetic):
        dl = tnscui_datalist(synthetic)
        sizes = [len(dl[k]) for k in ("training", "validation", "test")]
        assert sum(sizes) == 24 and 18 <= sizes[0] <= 20 and min(sizes) >= 2
        item = dl["training"][0]
        assert set(item) == {"image", "label", "id", "group", "category"}
        assert item["group"] == item["id"]  # not DDTI: every image its own group
        assert Path(item["image"]).name == item["id"] + ".PNG" and "mask" in item["label"]

    def test_real_ddti_without_csv_is_split_unstratified(self, realdata):
        with pytest.warns(UserWarning, match="not stratified"):
            dl = tnscui_datalist(realdata / "ultrasound_thyroid_ddti_tnscui")
        assert sum(len(v) for v in dl.values()) == 40
        assert all(set(i) == {"image", "label", "id", "group"} for k in dl for i in dl[k])  # no category
        groups = {k: {i["group"] for i in v} for k, v in dl.items()}
        assert not groups["training"] & groups["validation"] and not groups["training"] & groups["test"]

    def test_csv_quirks_bom_spaces_extensions_cate(self, tmp_path, synthetic):
        root = copy_dataset(synthetic, tmp_path / "d")
        rows = read_csv_rows(root / "train.csv")
        text = "\ufeffID , CATE\n" + "".join(f" {r['ID']}.PNG , {r['category']}\n" for r in rows) + "\n"
        (root / "train.csv").write_text(text, encoding="utf-8")

        def ids(dl):
            return {k: [(i["id"], i["category"]) for i in v] for k, v in dl.items()}

        assert ids(tnscui_datalist(root)) == ids(tnscui_datalist(synthetic))

    def test_lowercase_extension(self, tmp_path, synthetic):
        root = copy_dataset(synthetic, tmp_path / "d")
        for sub in ("image", "mask"):
            (root / sub / "5.PNG").rename(root / sub / "5.png")
        assert sum(len(v) for v in tnscui_datalist(root).values()) == 24

    def test_image_without_mask(self, tmp_path, synthetic):
        root = copy_dataset(synthetic, tmp_path / "d")
        (root / "mask" / "7.PNG").unlink()
        with pytest.raises(ValueError, match=r"1 image\(s\) .* have no mask .*: 7\."):
            tnscui_datalist(root)

    def test_mask_without_image(self, tmp_path, synthetic):
        root = copy_dataset(synthetic, tmp_path / "d")
        (root / "image" / "8.PNG").unlink()
        with pytest.raises(ValueError, match=r"have no image .*: 8\."):
            tnscui_datalist(root)

    def test_mask_of_another_size(self, tmp_path, synthetic):
        root = copy_dataset(synthetic, tmp_path / "d")
        Image.new("L", (31, 17)).save(root / "mask" / "9.PNG")
        with pytest.raises(ValueError, match=r"mask .*9\.PNG is 31x17"):
            tnscui_datalist(root)

    def test_mask_values(self, tmp_path, synthetic):
        root = copy_dataset(synthetic, tmp_path / "d")
        size = Image.open(root / "image" / "4.PNG").size
        Image.fromarray(np.ones(size[::-1], np.uint8)).save(root / "mask" / "4.PNG")
        with pytest.raises(ValueError, match=r"mask .*4\.PNG holds values \[1\]"):
            tnscui_datalist(root)
        assert tnscui_datalist(root, check_masks=False)  # the header checks alone pass

    def test_corrupt_file(self, tmp_path, synthetic):
        root = copy_dataset(synthetic, tmp_path / "d")
        (root / "mask" / "3.PNG").write_bytes(b"not a png")
        with pytest.raises(ValueError, match=r"cannot read .*3\.PNG"):
            tnscui_datalist(root)

    def test_csv_rows_and_files_disagree(self, tmp_path, synthetic):
        root = copy_dataset(synthetic, tmp_path / "d")
        with open(root / "train.csv", "a", newline="") as f:
            csv.writer(f).writerow(["999", "1"])
        with pytest.raises(ValueError, match=r"ID\(s\) in .*train.csv have no image file: 999"):
            tnscui_datalist(root)
        rows = read_csv_rows(synthetic / "train.csv")[1:]
        (root / "train.csv").write_text("ID,category\n" + "".join(f"{r['ID']},{r['category']}\n" for r in rows))
        with pytest.raises(ValueError, match=r"have no row in .*train.csv: 1\."):
            tnscui_datalist(root)

    @pytest.mark.parametrize(
        "text, match",
        [
            ("ID,label\n1,0\n", "columns ID and category"),
            ("ID,category\n1,benign\n", "not a number"),
            ("ID,category\n1,0\n1,1\n", "appears twice"),
            ("ID,category\n1,0,5\n", "3 fields"),
            ("", "is empty"),
        ],
    )
    def test_malformed_csv(self, tmp_path, synthetic, text, match):
        root = copy_dataset(synthetic, tmp_path / "d")
        (root / "train.csv").write_text(text)
        with pytest.raises(ValueError, match=match):
            tnscui_datalist(root)

    def test_missing_folders(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="does not exist"):
            tnscui_datalist(tmp_path / "nope")
        (tmp_path / "image").mkdir()
        with pytest.raises(FileNotFoundError, match="mask"):
            tnscui_datalist(tmp_path)
        (tmp_path / "mask").mkdir()
        with pytest.raises(FileNotFoundError, match="no .PNG"):
            tnscui_datalist(tmp_path)


def test_image_folder_datalist(tmp_path, synthetic):
    items = image_folder_datalist(synthetic / "image")
    assert len(items) == 24 and items[0]["id"] == Path(items[0]["image"]).stem
    with pytest.raises(FileNotFoundError, match="holds no image"):
        image_folder_datalist(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        image_folder_datalist(tmp_path / "nope")
