"""SIIM-ACR layout: CSV variants, multi-row union, datalist and its checks, the synthetic DICOM generator."""

import csv
import shutil
import warnings

import numpy as np
import pydicom
import pytest

from monai_gamble.data import (
    chest_xray_sample,
    make_chest_xrays,
    match_siim_files,
    read_csv_rows,
    read_dicom_header,
    read_siim_csv,
    rle_decode,
    rle_encode,
    rle_union,
    siim_datalist,
    siim_test_datalist,
)

SIIM = "chest_xray_siim_pneumothorax/sample_images"


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """20 radiographs of 64 px, half with pneumothorax, 2 test images, stage-1 CSV."""
    root = tmp_path_factory.mktemp("siim") / "ds"
    return make_chest_xrays(root, num_images=20, image_size=64, positive_fraction=0.5, num_test_images=2, num_workers=1)


def test_read_csv_rows_without_a_header(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_bytes("\ufeffa, 1 2\r\nb,-1\r\n\r\n".encode())
    assert read_csv_rows(path, fieldnames=["id", " rle"]) == [{"id": "a", "rle": "1 2"}, {"id": "b", "rle": "-1"}]
    assert read_csv_rows(path) == [{"a": "b", "1 2": "-1"}]  # the first row taken as the header
    with pytest.raises(ValueError, match=r"rows\.csv, line 1: 2 fields where the header \['x'\] has 1"):
        read_csv_rows(path, fieldnames=["x"])


def test_the_three_csv_variants(tmp_path, synthetic):
    stage1 = (synthetic / "train-rle.csv").read_text()
    assert stage1.splitlines()[0] == "ImageId, EncodedPixels"
    assert all(line.split(",")[1].startswith(" ") for line in stage1.splitlines()[1:])
    rows = read_siim_csv(synthetic / "train-rle.csv")
    assert len(rows) == 20 and all(r and not r[0].startswith(" ") for r in rows.values())
    stage2 = tmp_path / "stage_2_train.csv"
    stage2.write_text("ImageId,EncodedPixels\n" + "".join(f"{k},{v}\n" for k, vs in rows.items() for v in vs))
    headerless = tmp_path / "sample.csv"
    headerless.write_bytes(("\ufeff" + "".join(f"{k}, {v}\r\n" for k, vs in rows.items() for v in vs)).encode())
    assert read_siim_csv(stage2) == rows == read_siim_csv(headerless)
    bad = tmp_path / "bad.csv"
    bad.write_text("ImageId,Pixels\n1,-1\n")
    with pytest.raises(ValueError, match=r"bad\.csv must have the columns ImageId, EncodedPixels"):
        read_siim_csv(bad)
    (tmp_path / "empty.csv").write_text("\n")
    with pytest.raises(ValueError, match="is empty"):
        read_siim_csv(tmp_path / "empty.csv")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_siim_csv(tmp_path / "nope.csv")


def test_rle_union_of_rows():
    a = np.zeros((6, 5), dtype=bool)
    a[1:3, 0] = True
    b = np.zeros((6, 5), dtype=bool)
    b[2:5, 3:5] = True  # overlaps a? no; add an overlapping third region
    c = np.zeros((6, 5), dtype=bool)
    c[1:4, 0:2] = True  # overlaps a
    rows = [rle_encode(m, "siim") for m in (a, b, c)] + ["-1"]
    united = rle_union(rows, (6, 5), "siim")
    np.testing.assert_array_equal(rle_decode(united, (6, 5), "siim"), a | b | c)
    assert rle_union(["-1", "-1"], (6, 5), "siim") == "-1"
    assert rle_union([], (6, 5), "kaggle") == ""
    assert rle_union(rle_encode(a), (6, 5)) == rle_encode(a)  # one string
    with pytest.raises(ValueError, match="row 1 of 2: .*odd number"):
        rle_union(["0 1", "1 2 3"], (6, 5), "siim")
    with pytest.raises(ValueError, match="row 0 of 1: .*runs past the end"):
        rle_union(["25 10"], (6, 5), "siim")
    with pytest.raises(ValueError, match="row 0 of 1: .*negative"):
        rle_union(["3 -1"], (6, 5), "siim")
    with pytest.raises(ValueError, match="row 0 of 1: .*non-integer"):
        rle_union(["3 x"], (6, 5), "siim")


def test_synthetic_datalist_joins_unites_and_stratifies(synthetic):
    rows = read_siim_csv(synthetic / "train-rle.csv")
    data = siim_datalist(synthetic)
    items = data["training"] + data["validation"]
    assert len(items) == 20 and not data["test"]
    assert len(data["training"]) == 17 and len(data["validation"]) == 3  # 85/15 of 20
    positives = [i for i in items if i["positive"]]
    assert len(positives) == 10
    assert sum(i["positive"] for i in data["validation"]) in (1, 2)  # 15% of 10 positives, stratified
    multi = 0
    for item in items:
        assert set(item) == {
            "image", "label", "id", "positive", "num_regions", "height", "width", "sex", "age",
            "photometric_interpretation",
        }  # fmt: skip
        assert item["id"] == item["image"].rsplit("/", 1)[1][: -len(".dcm")]
        expected = np.zeros((64, 64), dtype=bool)
        for r in rows[item["id"]]:
            expected |= rle_decode(r, (64, 64), "siim")
        np.testing.assert_array_equal(rle_decode(item["label"], (64, 64), "siim"), expected)
        assert item["num_regions"] == sum(r != "-1" for r in rows[item["id"]])
        multi += item["num_regions"] > 1
        assert item["sex"] in ("M", "F") and 16 <= item["age"] < 90
    assert multi >= 1, "the synthetic set should hold an image with several regions (rows)"
    assert data == siim_datalist(synthetic)  # deterministic
    other = siim_datalist(synthetic, seed=1)
    assert {i["id"] for i in other["validation"]} != {i["id"] for i in data["validation"]}


def test_missing_files_and_rows_are_reported(tmp_path, synthetic):
    root = tmp_path / "copy"
    shutil.copytree(synthetic, root)
    match = match_siim_files(root)
    victim = sorted(match.files)[0]
    match.files[victim].unlink()
    with open(root / "train-rle.csv", "a", newline="") as f:
        f.write("1.2.3.4.5.6,-1\n")
    orphan = sorted(match.files)[1]
    kept = [line for line in (root / "train-rle.csv").read_text().splitlines() if not line.startswith(orphan)]
    (root / "train-rle.csv").write_text("\n".join(kept) + "\n")
    found = match_siim_files(root)
    assert found.missing_file == sorted([victim, "1.2.3.4.5.6"]) and found.missing_row == [orphan]
    with pytest.warns(
        UserWarning,
        match=rf"2 ImageId\(s\) of train-rle.csv have no DICOM file: .*1 DICOM file\(s\) have no row in train-rle.csv: {orphan}",
    ):
        data = siim_datalist(root)
    assert len(data["training"]) + len(data["validation"]) == 18
    with pytest.raises(ValueError, match="have no DICOM file"):
        siim_datalist(root, on_missing="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        siim_datalist(root, on_missing="ignore")
    with pytest.raises(ValueError, match="Unsupported option 'skip'"):
        siim_datalist(root, on_missing="skip")


def test_bad_datasets_are_clear_errors(tmp_path, synthetic):
    root = tmp_path / "copy"
    shutil.copytree(synthetic, root)
    rows = read_siim_csv(root / "train-rle.csv")
    image_id = sorted(rows)[0]
    text = (root / "train-rle.csv").read_text().replace(f"{image_id}, {rows[image_id][0]}", f"{image_id}, 4000 200")
    (root / "train-rle.csv").write_text(text)
    with pytest.raises(
        ValueError, match=rf"train-rle.csv, ImageId {image_id} \(64x64\): row 0 of 1: .*runs past the end"
    ):
        siim_datalist(root)
    with pytest.raises(FileNotFoundError, match="SIIM dataset folder .*nope does not exist"):
        siim_datalist(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="DICOM folder .*dicom-images-test2 does not exist"):
        siim_datalist(root, image_dir="dicom-images-test2")
    with pytest.raises(FileNotFoundError, match="SIIM RLE CSV .*stage_2_train.csv does not exist"):
        siim_datalist(root, csv="stage_2_train.csv")
    first = match_siim_files(root).files[image_id]
    shutil.copy(first, root / "dicom-images-train" / first.name)
    with pytest.raises(ValueError, match=f"two DICOM files have the ImageId '{image_id}'"):
        siim_datalist(root)
    (root / "dicom-images-train" / first.name).write_text("garbage")
    with pytest.raises(ValueError):  # the duplicate is found before the file is read
        siim_datalist(root)
    (root / "dicom-images-train" / first.name).unlink()
    first.write_text("garbage")
    with pytest.raises(ValueError, match=f"{first.name} is not a DICOM file"):
        siim_datalist(root)


def test_test_datalist(synthetic):
    items = siim_test_datalist(synthetic / "dicom-images-test")
    assert len(items) == 2 and [i["id"] for i in items] == sorted(i["id"] for i in items)
    assert all((i["height"], i["width"]) == (64, 64) for i in items)


def test_real_sample_datalist_and_rows(realdata):
    folder = realdata / SIIM
    rows = read_siim_csv(folder / "train-rle-sample.csv")  # no header, BOM, leading spaces
    assert len(rows) == 10 and sum(v != ["-1"] for v in rows.values()) == 5
    data = siim_datalist(folder, "train-rle-sample.csv", image_dir=None)
    items = data["training"] + data["validation"]
    assert len(items) == 10 and sum(i["positive"] for i in items) == 5
    assert {i["sex"] for i in items} <= {"M", "F"} and all(0 < i["age"] < 100 for i in items)  # ages like "38"
    for item in items:
        # one row per image here: the united RLE is the row itself, re-encoded identically
        assert item["label"] == rows[item["id"]][0]
        assert (item["height"], item["width"]) == (1024, 1024)
        if item["positive"]:
            mask = rle_decode(item["label"], (1024, 1024), "siim")
            assert 0 < mask.sum() < 0.2 * mask.size


def test_generator_writes_real_dicoms_with_both_photometric_interpretations(tmp_path):
    root = make_chest_xrays(tmp_path / "g", num_images=16, image_size=64, num_test_images=1, num_workers=1)
    files = sorted(root.glob("dicom-images-train/*/*/*.dcm"))
    assert len(files) == 16 and len(list(root.glob("dicom-images-test/*/*/*.dcm"))) == 1
    seen = set()
    for f in files:
        ds = pydicom.dcmread(f)
        assert f.stem == ds.SOPInstanceUID and f.parent.name == ds.SeriesInstanceUID
        assert f.parent.parent.name == ds.StudyInstanceUID
        assert ds.Modality in ("CR", "DX") and ds.BodyPartExamined == "CHEST"
        assert ds.PatientSex in ("M", "F") and len(ds.PatientAge) == 4 and ds.PatientAge.endswith("Y")
        assert float(ds.PixelSpacing[0]) == pytest.approx(0.168 * 1024 / 64, rel=1e-3)
        assert ds.pixel_array.shape == (64, 64)
        h = read_dicom_header(f, decode=True)
        seen.add((h.photometric_interpretation, ds.Modality, str(ds.file_meta.TransferSyntaxUID)))
        if ds.Modality == "DX":
            assert "RescaleSlope" in ds and ds.BitsStored == 12
    assert {s[0] for s in seen} == {"MONOCHROME1", "MONOCHROME2"}
    assert {s[2] for s in seen} == {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.1"}


def test_generator_positive_fraction_determinism_and_reuse(tmp_path):
    a = make_chest_xrays(tmp_path / "a", num_images=30, image_size=64, num_workers=1)
    rows = read_siim_csv(a / "train-rle.csv")
    order = list(rows)  # CSV order is the generation order
    flags = np.array([rows[k] != ["-1"] for k in order])
    for n in range(1, 31):  # any first n images hold floor or ceil of 22% of n positives
        assert np.floor(0.22 * n) <= flags[:n].sum() <= np.ceil(0.22 * n)
    b = make_chest_xrays(tmp_path / "b", num_images=32, image_size=64, num_workers=2, csv_style="stage2")
    rows_b = read_siim_csv(b / "stage_2_train.csv")
    assert list(rows_b)[:30] == order and all(rows_b[k] == rows[k] for k in order)  # a prefix, same content
    assert (b / "stage_2_train.csv").read_text().splitlines()[0] == "ImageId,EncodedPixels"
    first = match_siim_files(a).files[order[0]]
    same = match_siim_files(b, "stage_2_train.csv").files[order[0]]
    assert first.read_bytes() == same.read_bytes()
    assert make_chest_xrays(tmp_path / "a", num_images=30, image_size=64) == a  # reused
    with pytest.raises(FileExistsError, match="other parameters"):
        make_chest_xrays(tmp_path / "a", num_images=31, image_size=64)
    (tmp_path / "c").mkdir()
    with pytest.raises(FileExistsError, match="not written by this generator"):
        make_chest_xrays(tmp_path / "c", num_images=2, image_size=64)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_images": 0}, "num_images must be at least 1"),
        ({"num_test_images": -1}, "num_test_images must not be negative"),
        ({"image_size": 32}, "image_size must be at least 64"),
        ({"positive_fraction": 1.5}, r"positive_fraction must be in \[0, 1\]"),
        ({"monochrome1_fraction": -0.1}, r"monochrome1_fraction must be in \[0, 1\]"),
        ({"csv_style": "stage3"}, "csv_style must be one of"),
    ],
)
def test_generator_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_chest_xrays(tmp_path / "x", **{"num_images": 2, "image_size": 64, **kwargs})


def test_sample_anatomy_and_regions():
    img, regions = chest_xray_sample(np.random.default_rng(3), 128, positive=True)
    assert img.shape == (128, 128) and img.dtype == np.float32 and 0 <= img.min() and img.max() <= 1
    k = regions.max()
    assert k >= 1 and set(np.unique(regions)) == set(range(k + 1))
    for r in range(1, k + 1):  # each region one connected piece at the edge of a lung
        assert (regions == r).sum() > 0
    neg_img, neg_regions = chest_xray_sample(np.random.default_rng(3), 128, positive=False)
    assert neg_regions.max() == 0
    # lungs are darker (air) than the mediastinum and spine, at mid-height
    band = neg_img[50:70]
    assert band[:, 56:72].mean() > band[:, 25:40].mean() + 0.1
    assert band[:, 56:72].mean() > band[:, 88:103].mean() + 0.1
    with pytest.raises(ValueError, match="size must be at least 64"):
        chest_xray_sample(np.random.default_rng(0), 32)


def test_csv_rows_are_one_region_each(synthetic):
    rows = read_siim_csv(synthetic / "train-rle.csv")
    from scipy import ndimage

    for vs in rows.values():
        for r in vs:
            if r != "-1":
                _, n = ndimage.label(rle_decode(r, (64, 64), "siim"))
                assert n == 1
    with open(synthetic / "train-rle.csv", newline="") as f:
        assert sum(1 for _ in csv.reader(f)) == 1 + sum(len(v) for v in rows.values())
