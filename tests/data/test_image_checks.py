"""Image file checks and the checked PIL reader: each bad file is built in tmp_path."""

from pathlib import Path

import numpy as np
import pytest
from monai.data import PILReader
from monai.transforms import LoadImage, LoadImaged
from PIL import Image

from monai_gamble.data import (
    CheckedPILReader,
    ImageFileInfo,
    IntensityScale,
    check_image_file,
    check_image_files,
    image_folder_datalist,
    pil_to_array,
    tnscui_datalist,
)

READER = "monai_gamble.data.CheckedPILReader"
U16_4000 = np.float32(4000) / np.float32(65535)


def _ramp16(shape=(6, 8), top=4000) -> np.ndarray:
    """uint16 values 0..top, top at the last pixel."""
    a = np.linspace(0, top, num=shape[0] * shape[1]).round().astype(np.uint16).reshape(shape)
    a.flat[-1] = top
    return a


def _grey8(shape=(6, 8), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _palette_png(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A 'P' PNG whose index i shows grey 255 - 3 i: returns (indices, true grey)."""
    indices = np.arange(48, dtype=np.uint8).reshape(6, 8)
    image = Image.fromarray(indices, mode="P")
    image.putpalette([255 - 3 * i if i < 85 else 0 for i in range(256) for _ in range(3)])
    image.save(path)
    return indices, (255 - 3 * indices.astype(np.int32)).astype(np.uint8)


def _truncated_png(path: Path, fraction: float = 0.6) -> None:
    full = path.with_name("full_" + path.name)
    Image.fromarray(_grey8((64, 64))).save(full)
    data = full.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


def _multipage_tiff(path: Path, pages: int = 3) -> None:
    frames = [Image.fromarray(np.full((5, 7), 10 * (k + 1), np.uint8)) for k in range(pages)]
    frames[0].save(path, save_all=True, append_images=frames[1:])


def _load(path: Path, **reader_args) -> np.ndarray:
    """Through LoadImaged as the bundles use it, with the checked reader; back to (H, W[, C])."""
    reader = CheckedPILReader(**reader_args) if reader_args else READER
    out = LoadImaged(keys="image", reader=reader, image_only=True)({"image": str(path)})["image"]
    return np.moveaxis(out.numpy(), 0, 1)


# --- palette -----------------------------------------------------------------------------------


def test_palette_png_reads_grey_values_not_indices(tmp_path):
    path = tmp_path / "palette.png"
    indices, grey = _palette_png(path)
    plain = np.asarray(PILReader().get_data(PILReader().read(str(path)))[0]).T
    assert np.corrcoef(plain.ravel(), grey.ravel())[0, 1] < -0.99  # the bug: indices, inverted
    np.testing.assert_array_equal(_load(path), grey.astype(np.float32))
    with Image.open(path) as im:
        converted = pil_to_array(im)
        assert converted.dtype == np.uint8
        np.testing.assert_array_equal(converted, grey)
        np.testing.assert_array_equal(pil_to_array(im, keep_palette_indices=True), indices)
        np.testing.assert_array_equal(pil_to_array(im, "unit"), grey.astype(np.float32) / np.float32(255))
    info = check_image_file(path)
    assert (info.mode, info.bits, info.channels, info.value_range) == ("P", 8, 1, (0.0, 47.0))


def test_colour_palette_to_luma(tmp_path):
    path = tmp_path / "colour.png"
    image = Image.fromarray(np.array([[0, 1, 2]], np.uint8), mode="P")
    image.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 9))
    image.save(path)
    with Image.open(path) as im:
        np.testing.assert_array_equal(pil_to_array(im), [[76, 150, 29]])  # 0.299, 0.587, 0.114 of 255


# --- 16-bit and float ---------------------------------------------------------------------------


@pytest.mark.parametrize("suffix, kwargs", [(".png", {}), (".tif", {}), (".tif", {"compression": "tiff_lzw"})])
def test_16bit_scaled_by_its_range_not_saturated(tmp_path, suffix, kwargs):
    path = tmp_path / f"u16{suffix}"
    values = _ramp16()
    Image.fromarray(values).save(path, **kwargs)
    unit = _load(path, intensity_scale="unit")
    assert unit.max() == U16_4000
    assert (unit >= 1.0).mean() == 0.0
    np.testing.assert_array_equal(unit, values.astype(np.float32) / np.float32(65535))
    byte = _load(path)  # default scale: 0..255, what the bundles' ScaleIntensityRanged(0, 255) expects
    np.testing.assert_allclose(byte.max(), 4000 / 65535 * 255, rtol=1e-6)
    info = check_image_file(path)
    assert (info.mode, info.bits, info.value_range) == ("I;16", 16, (0.0, 4000.0))


def test_float_tiff_in_unit_range_kept(tmp_path):
    path = tmp_path / "float.tif"
    values = np.array([[0.0, 0.25, 0.5], [0.75, 0.001, 1.0]], np.float32)
    Image.fromarray(values).save(path)
    np.testing.assert_array_equal(_load(path, intensity_scale="unit"), values)
    np.testing.assert_allclose(_load(path), values * 255, rtol=1e-6)
    assert check_image_file(path).mode == "F"


@pytest.mark.parametrize("values", [[[0.0, 2.5]], [[-0.1, 0.5]], [[np.nan, 0.5]]])
def test_float_tiff_outside_unit_range_refused(tmp_path, values):
    path = tmp_path / "float_out.tif"
    Image.fromarray(np.array(values, np.float32)).save(path)
    with pytest.raises(ValueError, match=r"float_out\.tif.*mode 'F'.*not in \[0, 1\]"):
        _load(path)
    with pytest.raises(ValueError, match=r"float_out\.tif"):
        check_image_file(path)


# --- 8-bit and other modes ----------------------------------------------------------------------


@pytest.mark.parametrize("suffix, kwargs", [(".png", {}), (".tif", {"compression": "tiff_lzw"})])
def test_8bit_unchanged(tmp_path, suffix, kwargs):
    path = tmp_path / f"grey{suffix}"
    values = _grey8()
    Image.fromarray(values).save(path, **kwargs)
    np.testing.assert_array_equal(_load(path), values.astype(np.float32))
    plain = LoadImage(reader="PILReader", image_only=True)(str(path)).numpy()
    checked = LoadImage(reader=READER, image_only=True)(str(path)).numpy()
    np.testing.assert_array_equal(checked, plain)
    np.testing.assert_array_equal(_load(path, intensity_scale="unit"), values / np.float32(255))


def test_rgb_and_bilevel(tmp_path):
    rgb = np.stack([_grey8(seed=1), _grey8(seed=2), _grey8(seed=3)], axis=-1)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    np.testing.assert_array_equal(_load(tmp_path / "rgb.png"), rgb.astype(np.float32))
    Image.fromarray(np.array([[True, False, True]])).save(tmp_path / "one.png")
    with Image.open(tmp_path / "one.png") as im:
        assert im.mode == "1"
        np.testing.assert_array_equal(pil_to_array(im), [[255, 0, 255]])
        np.testing.assert_array_equal(pil_to_array(im, IntensityScale.UNIT), [[1.0, 0.0, 1.0]])


def test_unsupported_modes_name_file_and_mode(tmp_path):
    Image.new("CMYK", (4, 3)).save(tmp_path / "cmyk.tif")
    with pytest.raises(ValueError, match=r"cmyk\.tif.*mode 'CMYK'"):
        _load(tmp_path / "cmyk.tif")
    Image.fromarray(np.arange(6, dtype=np.int32).reshape(2, 3) * 100000).save(tmp_path / "int32.tif")
    with pytest.raises(ValueError, match=r"int32\.tif.*mode 'I' with 32 bits"):
        check_image_file(tmp_path / "int32.tif")


# --- multi-page, truncated, corrupt --------------------------------------------------------------


def test_multipage_tiff_refused(tmp_path):
    path = tmp_path / "pages.tif"
    _multipage_tiff(path)
    with pytest.raises(ValueError, match=r"pages\.tif is a multi-page image \(3 pages"):
        check_image_file(path)
    with pytest.raises(ValueError, match=r"pages\.tif is a multi-page image \(3 pages"):
        _load(path)


def test_truncated_png_is_a_value_error(tmp_path):
    path = tmp_path / "cut.png"
    _truncated_png(path)
    with pytest.raises(ValueError, match=r"cut\.png is truncated or corrupt \(PNG.*image file is truncated"):
        check_image_file(path)
    with pytest.raises(ValueError, match=r"cut\.png is truncated or corrupt"):
        _load(path)


def test_not_an_image_and_missing(tmp_path):
    (tmp_path / "text.png").write_text("not a PNG")
    with pytest.raises(ValueError, match=r"cannot read .*text\.png as an image"):
        check_image_file(tmp_path / "text.png")
    with pytest.raises(FileNotFoundError):
        check_image_file(tmp_path / "absent.png")


def test_check_image_files_lists_every_bad_file_in_order(tmp_path):
    Image.fromarray(_grey8()).save(tmp_path / "a.png")
    Image.fromarray(_ramp16()).save(tmp_path / "b.tif")
    infos = check_image_files([tmp_path / "a.png", tmp_path / "b.tif"], num_workers=2)
    assert infos == [
        ImageFileInfo(str(tmp_path / "a.png"), "PNG", "L", 8, 6, 1, 8, infos[0].value_range),
        ImageFileInfo(str(tmp_path / "b.tif"), "TIFF", "I;16", 8, 6, 1, 16, (0.0, 4000.0)),
    ]
    assert check_image_files([]) == []
    _truncated_png(tmp_path / "cut.png")
    _multipage_tiff(tmp_path / "pages.tif")
    bad = [tmp_path / "a.png", tmp_path / "cut.png", tmp_path / "pages.tif", tmp_path / "absent.png"]
    with pytest.raises(ValueError, match=r"3 of 4 image files") as err:
        check_image_files(bad)
    message = str(err.value)
    assert message.index("cut.png") < message.index("pages.tif") < message.index("absent.png does not exist")
    with pytest.raises(ValueError, match="num_workers"):
        check_image_files(bad, num_workers=0)


def test_bad_scale_lists_choices():
    with pytest.raises(ValueError, match="byte"):
        CheckedPILReader(intensity_scale="bytes")


# --- datalists ----------------------------------------------------------------------------------


def test_datalists_check_pixels(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(_grey8()).save(folder / "1.png")
    assert len(image_folder_datalist(folder, check_pixels=True)) == 1
    _truncated_png(tmp_path / "cut.png")
    (folder / "2.png").write_bytes((tmp_path / "cut.png").read_bytes())
    assert len(image_folder_datalist(folder)) == 2  # off by default: headers only
    with pytest.raises(ValueError, match=r"(?s)1 of 2 image files.*2\.png is truncated"):
        image_folder_datalist(folder, check_pixels=True)

    root = tmp_path / "tnscui"
    for sub in ("image", "mask"):
        (root / sub).mkdir(parents=True)
        Image.fromarray(np.zeros((64, 64), np.uint8)).save(root / sub / "1.PNG")
    (root / "image" / "2.PNG").write_bytes((tmp_path / "cut.png").read_bytes())
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(root / "mask" / "2.PNG")
    with pytest.warns(UserWarning, match="not stratified"):
        assert len(tnscui_datalist(root, csv_name=None, split=False)["test"]) == 2
    with (
        pytest.warns(UserWarning, match="not stratified"),
        pytest.raises(ValueError, match=r"(?s)image.2\.PNG is truncated"),
    ):
        tnscui_datalist(root, csv_name=None, split=False, check_pixels=True)


# --- real files ---------------------------------------------------------------------------------


def test_real_png_and_lzw_tiff_read(realdata):
    thyroid = realdata / "ultrasound_thyroid_ddti_tnscui"
    nerve = realdata / "ultrasound_nerve_kaggle" / "train"
    files = [thyroid / "image" / f"{i}.PNG" for i in (1, 10)] + [thyroid / "mask" / f"{i}.PNG" for i in (1, 10)]
    files += [nerve / "1_1.tif", nerve / "1_1_mask.tif"]
    files = [f for f in files if f.is_file()]
    if not files:
        pytest.skip("no real thyroid or nerve files found")
    infos = check_image_files(files)
    assert [i.path for i in infos] == [str(f) for f in files]
    for info in infos:
        assert info.bits == 8 and info.mode in ("L", "RGB", "RGBA", "P", "LA"), info
    for f in files:
        plain = LoadImage(reader="PILReader", image_only=True)(str(f)).numpy()
        checked = LoadImage(reader=READER, image_only=True)(str(f)).numpy()
        if Image.open(f).mode == "P":
            assert checked.shape[:2] == plain.shape[:2]
        else:  # 8-bit files read exactly as MONAI's PILReader reads them
            np.testing.assert_array_equal(checked, plain)
    tiffs = [i for i in infos if i.format == "TIFF"]
    if tiffs:
        with Image.open(tiffs[0].path) as im:
            assert im.info.get("compression") == "tiff_lzw"
        assert (tiffs[0].width, tiffs[0].height) == (580, 420)
