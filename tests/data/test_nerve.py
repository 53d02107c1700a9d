"""The nerve challenge's layout: the synthetic generator and the datalist (split by subject, balance,
conflicting duplicates, checks of every file), on synthetic and on the real sample."""

import json
import warnings

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from monai_gamble.data import (
    find_conflicting_duplicates,
    make_nerve_ultrasound,
    nerve_datalist,
    nerve_test_datalist,
    nerve_ultrasound_sweep,
    read_csv_rows,
    rle_decode,
)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """6 subjects of 6 frames at the real size (580x420), 2 conflicting duplicates, 3 test images."""
    root = tmp_path_factory.mktemp("nerve") / "synthetic"
    return make_nerve_ultrasound(root, num_subjects=6, images_per_subject=6, seed=0, num_test_images=3, num_conflicts=2)


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def test_layout_and_files(synthetic):
    train = sorted(p.name for p in (synthetic / "train").iterdir())
    assert len(train) == 72 and "6_6.tif" in train and "6_6_mask.tif" in train
    assert sorted(p.name for p in (synthetic / "test").iterdir()) == ["1.tif", "2.tif", "3.tif"]
    marker = json.loads((synthetic / "synthetic.json").read_text())
    assert marker["num_conflicts"] == 2 and marker["image_shape"] == [420, 580]
    for name in ("1_1.tif", "1_1_mask.tif"):
        with Image.open(synthetic / "train" / name) as im:
            assert im.size == (580, 420) and im.mode == "L" and im.info["compression"] == "tiff_lzw"
    rows = read_csv_rows(synthetic / "train_masks.csv")
    assert list(rows[0]) == ["subject", "img", "pixels"] and len(rows) == 36
    for row in rows:
        mask = np.asarray(Image.open(synthetic / "train" / f"{row['subject']}_{row['img']}_mask.tif"))
        assert set(np.unique(mask)) <= {0, 255}
        np.testing.assert_array_equal(rle_decode(row["pixels"], mask.shape), mask > 0)


def test_generator_is_seeded_and_reuses_its_output(tmp_path):
    kwargs = dict(num_subjects=2, images_per_subject=3, seed=0, num_test_images=1, image_shape=(96, 128))
    a = make_nerve_ultrasound(tmp_path / "a", **kwargs)
    b = make_nerve_ultrasound(tmp_path / "b", num_workers=1, **kwargs)
    for name in ("train/2_3.tif", "train/2_3_mask.tif", "test/1.tif", "train_masks.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    c = make_nerve_ultrasound(tmp_path / "c", **(kwargs | {"seed": 1}))
    assert (a / "train/1_1.tif").read_bytes() != (c / "train/1_1.tif").read_bytes()
    mtime = (a / "train_masks.csv").stat().st_mtime_ns
    make_nerve_ultrasound(a, **kwargs)
    assert (a / "train_masks.csv").stat().st_mtime_ns == mtime  # reused, not rewritten
    with pytest.raises(FileExistsError, match="other parameters"):
        make_nerve_ultrasound(a, **(kwargs | {"seed": 1}))


def test_sweeps_look_like_the_real_data():
    """~40% of frames with the nerve, masks of 2,500 to 12,000 px in one piece, consecutive frames
    nearly identical (much more alike than frames of two subjects)."""
    positives, areas, consecutive, across = [], [], [], []
    previous_first = None
    for subject in range(8):
        images, masks = nerve_ultrasound_sweep(np.random.default_rng([0, 0, subject]), 10)
        has = masks.reshape(10, -1).any(1)
        positives.extend(has)
        for m in masks[has]:
            labels, n = ndimage.label(m > 0)
            assert n == 1
            areas.append(int((m > 0).sum()))
        flat = images.reshape(10, -1).astype(float)
        consecutive.extend(np.corrcoef(flat[i], flat[i + 1])[0, 1] for i in range(9))
        if previous_first is not None:
            across.append(np.corrcoef(flat[0], previous_first)[0, 1])
        previous_first = flat[0]
    assert 0.25 <= np.mean(positives) <= 0.6
    assert 2500 <= min(areas) and max(areas) <= 12000
    assert np.median(consecutive) > 0.8 and min(consecutive) > 0.6 and max(across) < 0.5


def test_bad_generator_arguments(tmp_path):
    with pytest.raises(ValueError, match="images_per_subject must be at least 2"):
        make_nerve_ultrasound(tmp_path / "a", num_subjects=2, images_per_subject=1)
    with pytest.raises(ValueError, match="num_conflicts must be between 0 and num_subjects"):
        make_nerve_ultrasound(tmp_path / "a", num_subjects=2, images_per_subject=3, num_conflicts=3)
    with pytest.raises(ValueError, match="at least \\(64, 64\\)"):
        make_nerve_ultrasound(tmp_path / "a", num_subjects=2, image_shape=(32, 580))


def test_conflicting_duplicates_are_found_and_dropped(synthetic):
    items = [it for split in quiet(nerve_datalist, synthetic, drop_conflicts=False).values() for it in split]
    groups = find_conflicting_duplicates(items)
    assert len(groups) == 2
    for group in groups:
        assert len({g.split("_")[0] for g in group}) == 1  # within one subject, as in the real data (8_56, 8_70)
        pixels = [np.asarray(Image.open(synthetic / "train" / f"{g}.tif")) for g in group]
        masks = [np.asarray(Image.open(synthetic / "train" / f"{g}_mask.tif")).any() for g in group]
        assert all(np.array_equal(pixels[0], p) for p in pixels) and len(set(masks)) == 2
    with pytest.warns(UserWarning, match="dropped 4 image\\(s\\) in 2 group\\(s\\) of identical images"):
        kept = nerve_datalist(synthetic)
    dropped = {g for group in groups for g in group}
    assert not dropped & {it["id"] for split in kept.values() for it in split}
    assert sum(len(v) for v in kept.values()) == 36 - 4


def test_split_is_by_subject_seeded_and_balanced(synthetic):
    dl = quiet(nerve_datalist, synthetic, fractions=(0.5, 0.25, 0.25), seed=3, drop_conflicts=False)
    subjects = {name: {it["subject"] for it in items} for name, items in dl.items()}
    assert [len(s) for s in subjects.values()] == [3, 2, 1]  # 6 subjects split 50/25/25 (largest remainders)
    assert not (subjects["training"] & subjects["validation"] or subjects["training"] & subjects["test"])
    assert quiet(nerve_datalist, synthetic, fractions=(0.5, 0.25, 0.25), seed=3, drop_conflicts=False) == dl
    item = dl["training"][0]
    assert set(item) == {"image", "label", "id", "subject", "positive"} and item["positive"] in (0, 1)
    balanced = quiet(nerve_datalist, synthetic, fractions=(0.5, 0.25, 0.25), seed=3, balance=True)
    for name in ("training", "validation"):
        pos = sum(it["positive"] for it in balanced[name])
        assert pos == len(balanced[name]) - pos > 0
        assert {it["subject"] for it in balanced[name]} <= subjects[name]
    conflicts = {g for group in find_conflicting_duplicates(dl["test"]) for g in group}
    assert {it["id"] for it in balanced["test"]} == {it["id"] for it in dl["test"]} - conflicts  # not balanced


def test_real_sample(realdata):
    root = realdata / "ultrasound_nerve_kaggle"
    with pytest.warns(UserWarning, match="115 row\\(s\\) of .*train_masks_subject1.csv have no image"):
        dl = nerve_datalist(root, csv_name="train_masks_subject1.csv")  # checks every RLE against its mask
    assert [len(v) for v in dl.values()] == [5, 0, 0]  # one subject: all in training
    assert [(it["id"], it["positive"]) for it in dl["training"]] == [
        ("1_1", 1),
        ("1_2", 1),
        ("1_3", 1),
        ("1_4", 1),
        ("1_5", 0),
    ]


def copy_sample(synthetic, tmp_path, n=2):
    root = tmp_path / "copy"
    (root / "train").mkdir(parents=True)
    for sid in [f"1_{i}" for i in range(1, n + 1)]:
        for suffix in ("", "_mask"):
            (root / "train" / f"{sid}{suffix}.tif").write_bytes(
                (synthetic / "train" / f"{sid}{suffix}.tif").read_bytes()
            )
    return root


def test_bad_inputs_are_clear_errors(synthetic, tmp_path):
    with pytest.raises(FileNotFoundError, match="nerve dataset folder .*nope does not exist"):
        nerve_datalist(tmp_path / "nope")
    root = copy_sample(synthetic, tmp_path)
    train = root / "train"
    good_mask = (train / "1_1_mask.tif").read_bytes()
    Image.new("L", (579, 420)).save(train / "1_1_mask.tif")
    with pytest.raises(ValueError, match="mask .*1_1_mask.tif is 579x420 \\(WxH\\) but its image 1_1.tif is 580x420"):
        nerve_datalist(root)
    (train / "1_1_mask.tif").write_bytes(good_mask)
    Image.new("RGB", (580, 420)).save(train / "1_1.tif")
    with pytest.raises(ValueError, match="image .*1_1.tif is a RGB image \\(3 channels\\).*grayscale"):
        nerve_datalist(root)
    Image.new("L", (580, 420)).save(train / "1_1.tif")
    Image.fromarray(np.full((420, 580), 7, np.uint8)).save(train / "1_1_mask.tif")
    with pytest.raises(ValueError, match="holds values \\[7\\]; nerve masks hold only 0 and 255"):
        nerve_datalist(root)
    (train / "1_1_mask.tif").write_bytes(good_mask)
    (train / "1_2.tif").write_bytes(b"not a tiff")
    with pytest.raises(ValueError, match="cannot read .*1_2.tif"):
        nerve_datalist(root)
    (train / "1_1_mask.tif").unlink()
    with pytest.raises(ValueError, match="1 image\\(s\\) in .* have no <id>_mask.tif: 1_1"):
        nerve_datalist(root)


def test_csv_that_disagrees_with_a_mask_is_an_error(synthetic, tmp_path):
    root = copy_sample(synthetic, tmp_path)
    (root / "train_masks.csv").write_text("subject,img,pixels\n1,1,1 5\n1,2,\n")
    with pytest.raises(ValueError, match="the RLE of 1_1 \\(5 pixels\\) does not match"):
        nerve_datalist(root)
    (root / "train_masks.csv").write_text("subject,img,pixels\n1,1,1 2 3\n1,2,\n")
    with pytest.raises(ValueError, match="train_masks.csv, image 1_1: RLE '1 2 3' has an odd number"):
        nerve_datalist(root)


def test_test_datalist(synthetic, tmp_path):
    items = nerve_test_datalist(synthetic / "test")
    assert [it["id"] for it in items] == ["1", "2", "3"]
    folder = tmp_path / "test"
    folder.mkdir()
    for name in ("10", "2", "1_mask"):
        Image.new("L", (8, 8)).save(folder / f"{name}.tif")
    assert [it["id"] for it in nerve_test_datalist(folder)] == ["2", "10"]  # natural order, masks left out
    Image.new("RGB", (8, 8)).save(folder / "3.tif")
    with pytest.raises(ValueError, match="3.tif is a RGB image"):
        nerve_test_datalist(folder)
