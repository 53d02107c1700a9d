"""Segmentation datasets of the Decathlon and image/mask folder layouts: what is read, and every
malformed dataset as a clear error naming the file."""

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from monai_gamble.data import (
    SYNTHETIC_VOLUME_CLASSES,
    decathlon_dataset,
    image_mask_folder_dataset,
    make_synthetic_volumes,
    prepare_synthetic_volumes,
    segmentation_dataset,
    split_datalist,
)

# an LPS-stored grid (x and y flipped) with anisotropic voxels: 0.8 x 0.8 x 3 mm
AFFINE = np.diag([-0.8, -0.8, 3.0, 1.0])


def _label(shape, k):
    lab = np.zeros(shape, np.uint8)
    lab[1:5, 1:6, 1:3] = 1
    if k % 2 == 0:
        lab[2:4, 2:4, 1] = 2  # the lesion class only in even cases
    return lab


def write_decathlon(root: Path, n: int = 4, modalities=("T1w", "T2w"), shape=(8, 9, 4), **edits) -> Path:
    """A tiny Decathlon folder: ``n`` 4D multi-modal cases, labels 0..2, one test image."""
    for sub in ("imagesTr", "labelsTr", "imagesTs"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    training = []
    for k in range(n):
        img = rng.random((*shape, len(modalities))).astype(np.float32)
        nib.save(nib.Nifti1Image(img if len(modalities) > 1 else img[..., 0], AFFINE), root / f"imagesTr/c{k}.nii.gz")
        nib.save(nib.Nifti1Image(_label(shape, k), AFFINE), root / f"labelsTr/c{k}.nii.gz")
        training.append({"image": f"./imagesTr/c{k}.nii.gz", "label": f"./labelsTr/c{k}.nii.gz"})
    nib.save(
        nib.Nifti1Image(rng.random((*shape, len(modalities))).astype(np.float32), AFFINE), root / "imagesTs/t0.nii.gz"
    )
    meta = {
        "name": "Tiny",
        "modality": {str(i): m for i, m in enumerate(modalities)},
        "labels": {"0": "background", "1": "organ", "2": "lesion"},
        "training": training,
        "test": ["./imagesTs/t0.nii.gz"],
    }
    meta.update(edits)
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


class TestDecathlon:
    def test_multimodal_4d_classes_spacing_presence(self, tmp_path):
        ds = decathlon_dataset(write_decathlon(tmp_path / "d"))
        assert ds.layout == "decathlon" and ds.reader == "NibabelReader" and ds.axcodes == "RAS"
        assert ds.spatial_dims == 3 and ds.in_channels == 2 and ds.modalities == ("T1w", "T2w")
        assert ds.class_names == ("background", "organ", "lesion") and ds.num_classes == 3
        assert ds.label_values == (0, 1, 2) and ds.label_scale == 1
        assert ds.spacing == pytest.approx((0.8, 0.8, 3.0)) and ds.median_shape == (8, 9, 4)
        assert [it["id"] for it in ds.items] == ["c0", "c1", "c2", "c3"]
        assert Path(ds.items[0]["image"]).is_file() and Path(ds.items[0]["label"]).is_file()
        assert [it["id"] for it in ds.test_items] == ["t0"] and ds.inference_items() == ds.test_items
        presence = ds.class_presence(ds.items[::-1])  # in the order asked for
        assert presence.tolist() == [[True, True, False], [True, True, True], [True, True, False], [True, True, True]]
        assert ds.unit == "mm" and ds.prediction_extension == ".nii.gz"
        assert "3 classes (0 background, 1 organ, 2 lesion)" in ds.summary()

    def test_spacing_and_shape_in_ras_axis_order(self, tmp_path):
        root = write_decathlon(tmp_path / "d", n=2, modalities=("CT",))
        permuted = np.array([[0, 0, 3.0, 0], [0.8, 0, 0, 0], [0, 0.7, 0, 0], [0, 0, 0, 1]])  # array z -> world x
        for k in range(2):
            for sub in ("imagesTr", "labelsTr"):
                p = root / sub / f"c{k}.nii.gz"
                nib.save(nib.Nifti1Image(np.asarray(nib.load(p).dataobj), permuted), p)
        ds = decathlon_dataset(root)
        assert ds.in_channels == 1
        assert ds.spacing == pytest.approx((3.0, 0.8, 0.7)) and ds.median_shape == (4, 8, 9)

    def test_patch_size_from_the_median_shape(self, tmp_path):
        ds = decathlon_dataset(write_decathlon(tmp_path / "d", shape=(44, 100, 30), modalities=("CT",)))
        assert ds.patch_size() == (48, 96, 32)  # nearest multiples of 16, at most 96
        assert ds.patch_size(max_size=64, pixdim=(1.6, 1.6, 6.0)) == (16, 48, 16)
        assert ds.patch_size(max_size=(32, 32, 32), divisor=8) == (32, 32, 32)

    def test_headers_only(self, tmp_path):
        ds = decathlon_dataset(write_decathlon(tmp_path / "d"), check_labels=False)
        assert ds.num_classes == 3 and ds.label_values == ()
        with pytest.raises(ValueError, match="were not read"):
            ds.class_presence(ds.items)

    def test_split_of_the_items(self, tmp_path):
        ds = decathlon_dataset(write_decathlon(tmp_path / "d", n=10, modalities=("CT",)))
        out = split_datalist(ds.items, (0.6, 0.2, 0.2), seed=0)
        assert [len(out[k]) for k in ("training", "validation", "test")] == [6, 2, 2]

    def test_label_of_another_shape(self, tmp_path):
        root = write_decathlon(tmp_path / "d")
        nib.save(nib.Nifti1Image(np.zeros((8, 9, 5), np.uint8), AFFINE), root / "labelsTr/c2.nii.gz")
        with pytest.raises(
            ValueError, match=r"label .*c2.nii.gz has shape \(8, 9, 5\) but its image .* \(8, 9, 4, 2\)"
        ):
            decathlon_dataset(root)

    def test_missing_file(self, tmp_path):
        root = write_decathlon(tmp_path / "d")
        (root / "labelsTr/c1.nii.gz").unlink()
        with pytest.raises(FileNotFoundError, match=r"names 1 file\(s\) that do not exist: label .*labelsTr/c1.nii.gz"):
            decathlon_dataset(root)

    def test_labels_outside_the_declared_classes(self, tmp_path):
        root = write_decathlon(tmp_path / "d")
        lab = _label((8, 9, 4), 1)
        lab[0, 0, 0] = 3
        nib.save(nib.Nifti1Image(lab, AFFINE), root / "labelsTr/c1.nii.gz")
        with pytest.raises(ValueError, match=r"c1.nii.gz holds values \[3\] outside the 3 classes"):
            decathlon_dataset(root)

    def test_non_integer_labels(self, tmp_path):
        root = write_decathlon(tmp_path / "d")
        nib.save(nib.Nifti1Image(np.full((8, 9, 4), 0.5, np.float32), AFFINE), root / "labelsTr/c0.nii.gz")
        with pytest.raises(ValueError, match="c0.nii.gz holds non-integer values .*nearest neighbour"):
            decathlon_dataset(root)

    def test_other_affine_and_channel_count(self, tmp_path):
        root = write_decathlon(tmp_path / "d")
        nib.save(nib.Nifti1Image(_label((8, 9, 4), 0), np.diag([-0.8, -0.8, 2.0, 1.0])), root / "labelsTr/c0.nii.gz")
        with pytest.raises(ValueError, match="c0.nii.gz and image .* have different affines"):
            decathlon_dataset(root)
        root = write_decathlon(tmp_path / "e", modality={"0": "CT"})
        with pytest.raises(ValueError, match="has 2 channel.* declares 1 modalities"):
            decathlon_dataset(root)

    def test_malformed_datalists(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="dataset.json does not exist"):
            decathlon_dataset(tmp_path)
        root = write_decathlon(tmp_path / "d", labels={"0": "background", "2": "lesion"})
        with pytest.raises(ValueError, match="keys of 'labels' must be 0..1 without gaps"):
            decathlon_dataset(root)
        root = write_decathlon(tmp_path / "e", training=[{"image": "./imagesTr/c0.nii.gz"}])
        with pytest.raises(ValueError, match="'training' entry 0 .*expected"):
            decathlon_dataset(root)


def write_folder(root: Path, masks: list[np.ndarray], rgb: bool = False) -> Path:
    (root / "image").mkdir(parents=True)
    (root / "mask").mkdir()
    for k, m in enumerate(masks):
        img = np.full((*m.shape, 3) if rgb else m.shape, 100, np.uint8)
        Image.fromarray(img).save(root / "image" / f"{k}.png")
        Image.fromarray(m.astype(np.uint8)).save(root / "mask" / f"{k}.png")
    return root


class TestImageMaskFolder:
    def test_binary_255_masks(self, tmp_path):
        m = np.zeros((12, 10), np.uint8)
        m[2:5, 3:6] = 255
        ds = image_mask_folder_dataset(write_folder(tmp_path / "f", [m, np.zeros_like(m)]))
        assert ds.layout == "folder" and ds.reader == "PILReader" and ds.axcodes == "RA" and ds.spatial_dims == 2
        assert ds.label_scale == 255 and ds.class_names == ("background", "foreground")
        assert ds.median_shape == (10, 12)  # (W, H): the array order of MONAI's PILReader
        assert ds.class_presence(ds.items).tolist() == [[True, True], [True, False]]
        assert ds.unit == "px" and ds.inference_items()[0] == {"image": ds.items[0]["image"], "id": "0"}

    def test_class_index_masks_and_rgb_images(self, tmp_path):
        m = np.array([[0, 1, 2, 2]] * 4, np.uint8)
        ds = segmentation_dataset(write_folder(tmp_path / "f", [m, m], rgb=True))
        assert ds.num_classes == 3 and ds.label_scale == 1 and ds.modalities == ("R", "G", "B")

    def test_values_that_are_neither(self, tmp_path):
        m = np.array([[0, 128, 255, 255]] * 4, np.uint8)
        with pytest.raises(ValueError, match=r"values \[0, 128, 255\] .*neither a binary"):
            image_mask_folder_dataset(write_folder(tmp_path / "f", [m]))
        m = np.array([[0, 1, 1, 1]] * 4, np.uint8)
        with pytest.raises(ValueError, match=r"values \[1\] outside the 1 classes|class_names has"):
            image_mask_folder_dataset(write_folder(tmp_path / "g", [m]), class_names=["background"])

    def test_pairs_and_sizes(self, tmp_path):
        root = write_folder(tmp_path / "f", [np.zeros((4, 4)), np.zeros((4, 4))])
        Image.fromarray(np.zeros((5, 4), np.uint8)).save(root / "mask" / "1.png")
        with pytest.raises(ValueError, match=r"mask .*1.png is 4x5 \(WxH\) but its image 1.png is 4x4"):
            image_mask_folder_dataset(root)
        (root / "mask" / "1.png").unlink()
        with pytest.raises(ValueError, match=r"1 image\(s\) in .*image have no mask .*: 1"):
            image_mask_folder_dataset(root)

    def test_neither_layout(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="is in neither layout: a Medical Segmentation Decathlon folder"):
            segmentation_dataset(tmp_path)


class TestSyntheticVolumes:
    def test_layout_content_and_same_bytes(self, tmp_path, digest):
        a = make_synthetic_volumes(tmp_path / "a", num_cases=2, num_test=1, seed=3)
        b = make_synthetic_volumes(tmp_path / "b", num_cases=2, num_test=1, seed=3)
        assert digest(a) == digest(b)
        assert make_synthetic_volumes(tmp_path / "a", num_cases=2, num_test=1, seed=3) == a  # reused
        ds = decathlon_dataset(a)
        assert ds.class_names == SYNTHETIC_VOLUME_CLASSES and ds.modalities == ("CT",) and len(ds.test_items) == 1
        assert ds.spacing[2] > 2 * ds.spacing[0]  # anisotropic, thick slices
        img = nib.load(ds.items[0]["image"])
        lab = np.asarray(nib.load(ds.items[0]["label"]).dataobj)
        assert img.get_data_dtype() == np.int16 and nib.aff2axcodes(img.affine) == ("L", "P", "S")
        hu = np.asarray(img.dataobj)
        assert hu.min() == -1024 and 30 < np.median(hu[lab == 1]) < 90  # air, and soft-tissue HU in the organ
        assert (lab == 2).sum() > 0 and abs(np.median(hu[lab == 2]) - np.median(hu[lab == 1])) > 5
        with pytest.raises(FileExistsError, match="other parameters"):
            make_synthetic_volumes(tmp_path / "a", num_cases=2, num_test=1, seed=4)

    def test_multimodal_mr(self, tmp_path):
        ds = decathlon_dataset(
            make_synthetic_volumes(tmp_path / "mr", num_cases=1, num_test=0, modalities=("T1", "T2"))
        )
        assert ds.in_channels == 2 and ds.modalities == ("T1", "T2")
        assert nib.load(ds.items[0]["image"]).shape[-1] == 2

    def test_prepare_only_writes_the_default(self, tmp_path):
        user = tmp_path / "mine"
        assert prepare_synthetic_volumes(user, tmp_path / "default", num_cases=1) == str(user)
        assert not (tmp_path / "default").exists() and not user.exists()
        out = prepare_synthetic_volumes(tmp_path / "default", tmp_path / "default", num_cases=1, num_test=0)
        assert (Path(out) / "dataset.json").is_file()
