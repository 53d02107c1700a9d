"""LoadImageNamedd: a file that cannot be read or decoded is named in the error, on real files cut or
corrupted the way users' files are."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from monai_gamble.transforms import LoadImageNamedd


def test_a_good_png_loads_as_with_monai(tmp_path):
    from monai.transforms import LoadImaged

    Image.fromarray(np.arange(64 * 48, dtype=np.uint8).reshape(48, 64)).save(tmp_path / "a.png")
    data = {"image": str(tmp_path / "a.png")}
    ours = LoadImageNamedd("image", reader="PILReader", image_only=True)(dict(data))["image"]
    theirs = LoadImaged("image", reader="PILReader", image_only=True)(dict(data))["image"]
    assert torch.equal(torch.as_tensor(ours), torch.as_tensor(theirs))


def test_a_truncated_png_is_named(tmp_path):
    Image.fromarray((np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8)).save(tmp_path / "a.png")
    data = (tmp_path / "a.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: int(0.6 * len(data))])
    with pytest.raises(
        ValueError, match=r"cannot load the image file .*cut.png \(PILReader\): OSError: image file is truncated"
    ):
        LoadImageNamedd(["image"], reader="PILReader", image_only=True)({"image": str(tmp_path / "cut.png")})


def test_only_the_failing_file_is_named_when_the_reader_names_it(tmp_path):
    from monai_gamble.data import CheckedPILReader

    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "mask.png")
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(tmp_path / "a.png")
    data = (tmp_path / "a.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: int(0.6 * len(data))])
    load = LoadImageNamedd(["image", "label"], reader=CheckedPILReader(), image_only=True)
    with pytest.raises(ValueError, match=r"^cannot load the image file \S*cut.png \(CheckedPILReader\)") as info:
        load({"image": str(tmp_path / "cut.png"), "label": str(tmp_path / "mask.png")})
    assert "mask.png" not in str(info.value)


def test_nan_or_inf_in_a_float_image_is_refused_with_its_file(tmp_path):
    import nibabel as nib

    volume = np.zeros((6, 5, 4), np.float32)
    volume[1, 2, 3], volume[0, 0, 0] = np.nan, np.inf
    nib.save(nib.Nifti1Image(volume, np.eye(4)), tmp_path / "ct.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((6, 5, 4), np.float32), np.eye(4)), tmp_path / "ok.nii.gz")
    load = LoadImageNamedd(["image"], reader="NibabelReader", image_only=True)
    with pytest.raises(ValueError, match=r"the image file \S*ct.nii.gz holds 2 NaN or infinite value\(s\) of 120"):
        load({"image": str(tmp_path / "ct.nii.gz")})
    assert float(load({"image": str(tmp_path / "ok.nii.gz")})["image"].abs().sum()) == 0.0
    unchecked = LoadImageNamedd(["image"], reader="NibabelReader", image_only=True, check_finite=False)
    assert int(torch.isnan(unchecked({"image": str(tmp_path / "ct.nii.gz")})["image"]).sum()) == 1


def _siim_dicom(realdata):
    files = sorted((realdata / "chest_xray_siim_pneumothorax").rglob("*.dcm"))
    if not files:
        pytest.skip("no SIIM DICOM sample")
    return files[0]


def test_a_real_dicom_with_a_broken_jpeg_stream_or_wrong_rows_is_named(tmp_path, realdata):
    import pydicom

    src = _siim_dicom(realdata)
    raw = bytearray(src.read_bytes())
    middle = len(raw) // 2
    raw[middle : middle + 2000] = bytes([0x00, 0xFF] * 1000)  # a broken JPEG stream
    (tmp_path / "broken.dcm").write_bytes(bytes(raw))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(src)
        ds.Rows = int(ds.Rows) * 2  # Rows inconsistent with the pixel data
        ds.save_as(tmp_path / "rows.dcm")
        load = LoadImageNamedd("image", reader="PydicomReader", image_only=True)
        assert load({"image": str(src)})["image"].shape == (int(ds.Columns), int(ds.Rows) // 2)
        for name in ("broken.dcm", "rows.dcm"):
            with pytest.raises(ValueError, match=rf"cannot load the image file .*{name} \(PydicomReader\)"):
                load({"image": str(tmp_path / name)})
