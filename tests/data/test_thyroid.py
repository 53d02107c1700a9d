import csv
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from monai_gamble.data import (
    image_folder_datalist,
    make_thyroid_ultrasound,
    read_csv_rows,
    split_datalist,
    thyroid_ultrasound_sample,
    tnscui_datalist,
)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return make_thyroid_ultrasound(tmp_path_factory.mktemp("tn") / "ds", num_images=24, seed=3, label_noise=0.05)


class TestGenerator:
    def test_layout_sizes_values(self, synthetic):
        images = sorted((synthetic / "image").glob("*.PNG"))
        assert len(images) == 24
        rows = read_csv_rows(synthetic / "train.csv")
        assert [r["ID"] for r in rows] == [str(i) for i in range(1, 25)]
        assert {r["category"] for r in rows} <= {"0", "1"}
        sizes = set()
        for p in images:
            im, m = Image.open(p), Image.open(synthetic / "mask" / p.name)
            assert im.mode == "L" and m.mode == "L" and im.size == m.size
            assert 300 <= im.size[0] <= 560 and 300 <= im.size[1] <= 560
            sizes.add(im.size)
            mask = np.asarray(m)
            assert set(np.unique(mask)) <= {0, 255} and mask.any()
        assert len(sizes) > 10  # varied sizes

    def test_nodule_is_hypoechoic_on_average(self, synthetic):
        ratios = []
        for p in sorted((synthetic / "image").glob("*.PNG")):
            im = np.asarray(Image.open(p), dtype=float)
            m = np.asarray(Image.open(synthetic / "mask" / p.name)) > 0
            window = im > 0
            ratios.append(im[m].mean() / im[window & ~m].mean())
        assert np.median(ratios) < 0.8

    def test_same_seed_same_bytes_other_seed_other_bytes(self, tmp_path, synthetic, digest):
        again = make_thyroid_ultrasound(tmp_path / "again", num_images=24, seed=3, label_noise=0.05)
        assert digest(again) == digest(synthetic)
        other = make_thyroid_ultrasound(tmp_path / "other", num_images=24, seed=4, label_noise=0.05)
        assert digest(other) != digest(synthetic)

    def test_first_images_do_not_depend_on_num_images(self, tmp_path, synthetic):
        small = make_thyroid_ultrasound(tmp_path / "small", num_images=3, seed=3, label_noise=0.05)
        for name in ("1.PNG", "2.PNG", "3.PNG"):
            assert (small / "image" / name).read_bytes() == (synthetic / "image" / name).read_bytes()

    def test_label_noise_moves_the_boundary_not_the_image(self):
        def draw(noise):
            rng = np.random.default_rng([0, 7])
            return thyroid_ultrasound_sample(rng, 320, 320, malignant=False, label_noise=noise)

        (im0, m0), (im1, m1) = draw(0.0), draw(0.15)
        assert np.array_equal(im0, im1)
        a, b = m0 > 0, m1 > 0
        dice = 2 * (a & b).sum() / (a.sum() + b.sum())
        assert 0.7 < dice < 0.995

    def test_reuse_and_conflicts(self, tmp_path, digest):
        root = make_thyroid_ultrasound(tmp_path / "d", num_images=2, seed=0)
        before = digest(root)
        assert make_thyroid_ultrasound(root, num_images=2, seed=0) == root  # reused, untouched
        assert digest(root) == before
        with pytest.raises(FileExistsError, match="other parameters"):
            make_thyroid_ultrasound(root, num_images=3, seed=0)
        make_thyroid_ultrasound(root, num_images=3, seed=0, overwrite=True)
        assert len(list((root / "image").iterdir())) == 3
        foreign = tmp_path / "foreign"
        foreign.mkdir()
        with pytest.raises(FileExistsError, match="not written by this generator"):
            make_thyroid_ultrasound(foreign, num_images=2)

    @pytest.mark.parametrize(
        "kwargs, match",
        [
            ({"num_images": 0}, "num_images"),
            ({"size_range": (400, 300)}, "size_range"),
            ({"size_range": (10, 20)}, "size_range"),
            ({"label_noise": -0.1}, "label_noise"),
            ({"label_noise": float("nan")}, "label_noise"),
            ({"malignant_fraction": 1.5}, "malignant_fraction"),
        ],
    )
    def test_bad_arguments(self, tmp_path, kwargs, match):
        with pytest.raises(ValueError, match=match):
            make_thyroid_ultrasound(tmp_path / "x", **{"num_images": 2, **kwargs})
        assert not (tmp_path / "x").exists()


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

    @pytest.mark.parametrize("fractions", [(0.8, 0.1), (0.5, 0.5, 0.5), (1.2, -0.1, -0.1), (float("nan"), 0.5, 0.5)])
    def test_bad_fractions(self, fractions):
        with pytest.raises(ValueError, match="fractions"):
            split_datalist([{"id": "1"}], fractions)


def copy_dataset(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


class TestTNSCUIDatalist:
    def test_synthetic(self, synthetic):
        dl = tnscui_datalist(synthetic)
        sizes = [len(dl[k]) for k in ("training", "validation", "test")]
        assert sum(sizes) == 24 and 18 <= sizes[0] <= 20 and min(sizes) >= 2
        item = dl["training"][0]
        assert set(item) == {"image", "label", "id", "category"}
        assert Path(item["image"]).name == item["id"] + ".PNG" and "mask" in item["label"]

    def test_real_ddti_without_csv_is_split_unstratified(self, realdata):
        with pytest.warns(UserWarning, match="not stratified"):
            dl = tnscui_datalist(realdata / "ultrasound_thyroid_ddti_tnscui")
        assert [len(dl[k]) for k in ("training", "validation", "test")] == [32, 4, 4]
        assert all(set(i) == {"image", "label", "id"} for k in dl for i in dl[k])  # no category

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
