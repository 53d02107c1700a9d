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
