"""DICOM radiographs through MONAI's readers: MONOCHROME1/2, rescale, both readers, bad files; CLAHE;
masks from RLE rows on the loaded images (real SIIM-ACR samples where available)."""

import warnings

import numpy as np
import pydicom
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, EnsureChannelFirstd, LoadImage, LoadImaged, SqueezeDimd
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from skimage.exposure import equalize_adapthist

from monai_gamble.data import make_chest_xrays, read_dicom_header, rle_decode, siim_datalist
from monai_gamble.transforms import CLAHE, CLAHEd, InvertMonochrome1, InvertMonochrome1d, RLEToMask, RLEToMaskd

pytestmark = pytest.mark.filterwarnings("ignore:PydicomReader")
SIIM = "chest_xray_siim_pneumothorax/sample_images"


def load(path, reader):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        img = LoadImage(reader=reader, image_only=True, ensure_channel_first=True)(path)
    return img[..., 0] if reader == "ITKReader" else img  # ITK reads a single frame as (1, W, H, 1)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """The same 4 synthetic radiographs written as MONOCHROME1 and as MONOCHROME2, 12-bit with rescale
    (lossless) and 8-bit JPEG."""
    root = tmp_path_factory.mktemp("xr")
    out = {}
    for storage, native in (("native", 1.0), ("jpeg", 0.0)):
        for pi, fraction in (("MONOCHROME1", 1.0), ("MONOCHROME2", 0.0)):
            ds = make_chest_xrays(
                root / f"{storage}_{pi}",
                num_images=4,
                image_size=64,
                monochrome1_fraction=fraction,
                native_fraction=native,
                num_workers=1,
            )
            items = siim_datalist(ds, fractions=(1, 0, 0))["training"]
            assert {i["photometric_interpretation"] for i in items} == {pi}
            out[storage, pi] = [i["image"] for i in items]
    return out


def test_what_monai_readers_do_with_monochrome1_and_rescale(pair):
    # PydicomReader applies the rescale but does not invert MONOCHROME1; ITK (GDCM) does both
    for m1, m2 in zip(pair["native", "MONOCHROME1"], pair["native", "MONOCHROME2"], strict=True):
        h = read_dicom_header(m2)
        stored = pydicom.dcmread(m2).pixel_array.astype(np.float64)
        raw = load(m2, "PydicomReader")
        np.testing.assert_allclose(raw[0].numpy().T, h.rescale_slope * stored + h.rescale_intercept)
        p1, i1, i2 = load(m1, "PydicomReader"), load(m1, "ITKReader"), load(m2, "ITKReader")
        assert not torch.allclose(p1, raw)  # not inverted by pydicom
        torch.testing.assert_close(i1.float(), raw.float())  # inverted by ITK
        torch.testing.assert_close(i2.float(), raw.float())


@pytest.mark.parametrize("reader", ["PydicomReader", "ITKReader"])
def test_invert_monochrome1_makes_every_file_read_as_monochrome2(pair, reader):
    invert = InvertMonochrome1()
    for m1, m2 in zip(pair["native", "MONOCHROME1"], pair["native", "MONOCHROME2"], strict=True):
        a, b = invert(load(m1, reader)), invert(load(m2, reader))
        torch.testing.assert_close(a.float(), b.float())  # lossless storage: exactly the same image
        assert isinstance(a, MetaTensor) and "filename_or_obj" in a.meta
    for m1, m2 in zip(pair["jpeg", "MONOCHROME1"], pair["jpeg", "MONOCHROME2"], strict=True):
        a, b = invert(load(m1, reader)), invert(load(m2, reader))
        assert (a - b).abs().mean() < 2.0  # JPEG of the inverted values: a few grey levels apart


def test_json_metadata_forced_value_and_dictionary_form(pair):
    m1 = pair["native", "MONOCHROME1"][0]
    full = LoadImage(reader="PydicomReader", image_only=True, ensure_channel_first=True, prune_metadata=False)(m1)
    assert full.meta["00280004"]["Value"] == ["MONOCHROME1"]
    expected = InvertMonochrome1()(load(m1, "PydicomReader"))
    torch.testing.assert_close(InvertMonochrome1()(full), expected)
    # forced on a plain tensor: the image's own range
    plain = torch.tensor([[[0.0, 1.0], [3.0, 4.0]]])
    torch.testing.assert_close(InvertMonochrome1("MONOCHROME1")(plain), 4.0 - plain)
    assert InvertMonochrome1("MONOCHROME2")(plain) is plain
    d = InvertMonochrome1d(keys="image")({"image": load(m1, "PydicomReader"), "id": "x"})
    torch.testing.assert_close(d["image"], expected)


def write_dicom(path, array, photometric="MONOCHROME2", samples=1, with_pixels=True):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = array.shape[:2]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = samples, photometric
    if samples > 1:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    if with_pixels:
        ds.PixelData = array.astype(np.uint8).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def test_corrupt_and_non_image_dicoms_are_clear_errors(tmp_path, pair):
    not_dicom = tmp_path / "notes.dcm"
    not_dicom.write_text("not a DICOM file")
    with pytest.raises(ValueError, match=r"notes\.dcm is not a DICOM file"):
        read_dicom_header(not_dicom)
    report = tmp_path / "report.dcm"  # a DICOM without any image (as a structured report)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.Modality = "SR"
    ds.save_as(report, enforce_file_format=True)
    with pytest.raises(ValueError, match=r"report\.dcm holds no image .*Basic Text SR"):
        read_dicom_header(report)
    with pytest.raises(ValueError, match="RGB image with 3 sample"):
        read_dicom_header(write_dicom(tmp_path / "rgb.dcm", np.zeros((4, 4, 3)), "RGB", samples=3))
    with pytest.raises(ValueError, match="no Pixel Data element"):
        read_dicom_header(write_dicom(tmp_path / "empty.dcm", np.zeros((4, 4)), with_pixels=False))
    native = pair["native", "MONOCHROME2"][0]
    data = open(native, "rb").read()
    (tmp_path / "cut_native.dcm").write_bytes(data[:-500])
    with pytest.raises(ValueError, match="the file is truncated"):
        read_dicom_header(tmp_path / "cut_native.dcm")
    jpeg = pair["jpeg", "MONOCHROME2"][0]
    data = open(jpeg, "rb").read()
    (tmp_path / "cut_jpeg.dcm").write_bytes(data[:-200])  # pydicom then reads an empty data set
    with pytest.raises(ValueError, match=r"cut_jpeg\.dcm is truncated or corrupt: no Rows.*End of file"):
        read_dicom_header(tmp_path / "cut_jpeg.dcm")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_dicom_header(tmp_path / "missing.dcm")
    # the transform reads the header of the file it was loaded from, and names it
    with pytest.raises(ValueError, match=r"rgb\.dcm is a RGB image"):
        InvertMonochrome1()(MetaTensor(torch.zeros(1, 4, 4), meta={"filename_or_obj": str(tmp_path / "rgb.dcm")}))
    with pytest.raises(ValueError, match="no DICOM metadata and no file name"):
        InvertMonochrome1()(torch.zeros(1, 4, 4))
    with pytest.raises(ValueError, match="photometric_interpretation must be one of"):
        InvertMonochrome1("RGB")


def test_real_sample_dicoms_decode_alike_with_both_readers(realdata):
    items = siim_datalist(realdata / SIIM, "train-rle-sample.csv", image_dir=None, fractions=(1, 0, 0), decode=True)
    files = [i["image"] for i in items["training"]]
    assert len(files) == 10
    for f in files[:3]:
        h = read_dicom_header(f)
        assert (h.rows, h.columns, h.photometric_interpretation) == (1024, 1024, "MONOCHROME2")
        assert h.transfer_syntax == "1.2.840.10008.1.2.4.50"
        p, i = InvertMonochrome1()(load(f, "PydicomReader")), InvertMonochrome1()(load(f, "ITKReader"))
        assert p.shape == (1, 1024, 1024)
        torch.testing.assert_close(p.float(), i.float())


def test_clahe_matches_scikit_image_per_channel_and_is_transpose_equivariant():
    rng = np.random.default_rng(0)
    img = rng.normal(100, 20, (2, 64, 48)).cumsum(1)  # any range: rescaled per channel first
    out = CLAHE()(torch.as_tensor(img))
    assert out.dtype == torch.float32 and out.shape == (2, 64, 48)
    assert 0 <= out.min() and out.max() <= 1
    for c in range(2):
        scaled = (img[c] - img[c].min()) / (img[c].max() - img[c].min())
        np.testing.assert_allclose(out[c].numpy(), equalize_adapthist(scaled), atol=1e-6)
    swapped = CLAHE()(torch.as_tensor(img).transpose(1, 2))
    torch.testing.assert_close(swapped, out.transpose(1, 2), atol=1e-4, rtol=0)  # up to rounding
    # the local contrast of a low-contrast region grows
    flat = np.full((1, 64, 64), 0.5)
    flat[0, :, :32] += 0.01 * rng.standard_normal((64, 32))
    flat[0, :, 32:] = rng.uniform(0, 1, (64, 32))
    eq = CLAHE()(flat)
    assert isinstance(eq, np.ndarray)
    assert eq[0, :, :32].std() > 3 * (flat[0, :, :32] - flat.min()).std() / (flat.max() - flat.min())
    assert CLAHE()(np.zeros((1, 8, 8))).max() == 0  # a constant image
    meta = MetaTensor(torch.as_tensor(img[:1]), meta={"filename_or_obj": "x.dcm"})
    d = CLAHEd(keys="image", clip_limit=0.02)({"image": meta})
    assert isinstance(d["image"], MetaTensor) and d["image"].meta["filename_or_obj"] == "x.dcm"


def test_clahe_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="clip_limit must be in"):
        CLAHE(clip_limit=0)
    with pytest.raises(ValueError, match="nbins must be at least 2"):
        CLAHE(nbins=1)
    with pytest.raises(ValueError, match="kernel_size must be positive"):
        CLAHE(kernel_size=0)
    with pytest.raises(ValueError, match=r"channel-first image \(C, H, W\)"):
        CLAHE()(np.zeros((8, 8)))
    with pytest.raises(ValueError, match="NaN"):
        CLAHE()(np.full((1, 8, 8), np.nan))


def reference_rle2mask(rle: str, width: int, height: int) -> np.ndarray:
    """The competition's reference decoder, by its description: a flat array filled run by run from
    relative starts, reshaped to (width, height), i.e. the image's transpose."""
    mask = np.zeros(width * height, dtype=np.uint8)
    values = [int(v) for v in rle.split()]
    position = 0
    for start, length in zip(values[0::2], values[1::2], strict=True):
        position += start
        mask[position : position + length] = 255
        position += length
    return mask.reshape(width, height)


def test_rle_to_mask_lies_on_the_image_as_monai_loads_it():
    rng = np.random.default_rng(0)
    hw = rng.random((5, 7)) < 0.4  # an (H, W) mask as the image is seen
    from monai_gamble.data import rle_encode

    rle = rle_encode(hw, "siim")
    wh = RLEToMask("siim")(rle, spatial_shape=(7, 5))  # MONAI's (W, H)
    assert wh.shape == (1, 7, 5) and wh.dtype == torch.float32
    np.testing.assert_array_equal(wh[0].numpy() > 0, hw.T)
    np.testing.assert_array_equal(wh[0].numpy() > 0, reference_rle2mask(rle, 7, 5) > 0)
    hw_out = RLEToMask("siim", transpose=False)(rle, spatial_shape=(5, 7))
    np.testing.assert_array_equal(hw_out[0].numpy() > 0, hw)
    # several rows are united
    rows = [rle_encode(hw[:, :3], "siim"), "-1"]
    part = np.zeros_like(hw)
    part[:, :3] = hw[:, :3]
    # encode the left part at full width, with a second region
    left = np.zeros_like(hw)
    left[:, :3] = hw[:, :3]
    right = hw & ~left
    rows = [rle_encode(left, "siim"), rle_encode(right, "siim"), "-1"]
    united = RLEToMask("siim")(rows, spatial_shape=(7, 5))
    np.testing.assert_array_equal(united[0].numpy() > 0, hw.T)
    kaggle = RLEToMask("kaggle", dtype=torch.uint8)(rle_encode(hw), spatial_shape=(7, 5))
    assert kaggle.dtype == torch.uint8
    np.testing.assert_array_equal(kaggle[0].numpy() > 0, hw.T)


def test_rle_to_mask_errors_name_the_problem():
    with pytest.raises(ValueError, match="runs past the end"):
        RLEToMask()("10 10", spatial_shape=(4, 4))
    with pytest.raises(ValueError, match="larger than the 16 pixels"):
        RLEToMask()("10 100", spatial_shape=(4, 4))
    with pytest.raises(ValueError, match="odd number"):
        RLEToMask()("1 2 3", spatial_shape=(4, 4))
    with pytest.raises(ValueError, match="two sizes"):
        RLEToMask()("-1", spatial_shape=(4, 4, 4))
    with pytest.raises(TypeError, match="RLE string or a sequence"):
        RLEToMask()(5, spatial_shape=(4, 4))
    with pytest.raises(ValueError, match="image 1.2.3"):
        RLEToMaskd("label")({"image": torch.zeros(1, 4, 4), "label": "1 -2", "id": "1.2.3"})
    with pytest.raises(KeyError, match="reference image 'image'"):
        RLEToMaskd("label")({"label": "-1"})


def test_real_masks_lie_on_dark_pleural_air(realdata):
    """The real rows decoded on the real images as MONAI loads them: the masks cover darker (air)
    pixels than the same masks transposed would, the check that the orientation is right."""
    items = siim_datalist(realdata / SIIM, "train-rle-sample.csv", image_dir=None, fractions=(1, 0, 0))["training"]
    load_d = Compose(
        [
            LoadImaged("image", reader="PydicomReader", image_only=True),
            EnsureChannelFirstd("image"),
            InvertMonochrome1d("image"),
            RLEToMaskd("label", ref_key="image", format="siim"),
        ]
    )
    darker = []
    for item in (i for i in items if i["positive"]):
        out = load_d(dict(item))
        image, mask = out["image"][0].numpy(), out["label"][0].numpy() > 0
        assert isinstance(out["label"], MetaTensor) and out["label"].meta["filename_or_obj"] == item["image"]
        np.testing.assert_array_equal(mask, rle_decode(item["label"], (1024, 1024), "siim").T)
        darker.append(image[mask].mean() < image[mask.T].mean())
    assert len(darker) == 5 and sum(darker) == 5


def test_itk_reader_path_with_squeeze(pair):
    f = pair["native", "MONOCHROME1"][0]
    item = {"image": f, "label": "-1", "id": "x"}
    pipeline = Compose(
        [
            LoadImaged("image", reader="ITKReader", image_only=True),
            EnsureChannelFirstd("image"),
            SqueezeDimd("image", dim=-1),
            InvertMonochrome1d("image"),
            RLEToMaskd("label"),
        ]
    )
    out = pipeline(item)
    assert out["image"].shape == (1, 64, 64) and out["label"].shape == (1, 64, 64)
    torch.testing.assert_close(out["image"].float(), InvertMonochrome1()(load(f, "PydicomReader")).float())
