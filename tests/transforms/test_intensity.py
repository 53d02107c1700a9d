import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_gamble.transforms import ToGrayscale, ToGrayscaled


def test_rgb_to_luma_uint8_matches_pil():
    from PIL import Image

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    expected = np.asarray(Image.fromarray(rgb).convert("L"))
    out = ToGrayscale()(np.moveaxis(rgb, -1, 0))
    assert out.dtype == np.uint8 and out.shape == (1, 5, 7)
    assert np.abs(out[0].astype(int) - expected.astype(int)).max() <= 1  # PIL rounds in fixed point


def test_float_metatensor_keeps_meta_and_values():
    x = MetaTensor(torch.tensor([1.0, 0.5, 0.0]).reshape(3, 1, 1), meta={"filename_or_obj": "a.png"})
    y = ToGrayscale()(x)
    assert isinstance(y, MetaTensor) and y.meta["filename_or_obj"] == "a.png"
    assert y.item() == pytest.approx(0.299 + 0.5 * 0.587)


@pytest.mark.parametrize("c, expected_first", [(1, True), (2, True), (4, False)])
def test_channel_counts(c, expected_first):
    x = torch.rand(c, 3, 3, 2)  # 3D works too
    y = ToGrayscale()(x)
    assert y.shape == (1, 3, 3, 2)
    if expected_first:
        torch.testing.assert_close(y, x[:1])
    else:
        torch.testing.assert_close(y, ToGrayscale()(x[:3]))


def test_dict_version_and_bad_channels():
    d = ToGrayscaled(keys=["image", "label"])({"image": torch.rand(3, 4, 4), "label": torch.ones(1, 4, 4)})
    assert d["image"].shape == (1, 4, 4) and d["label"].shape == (1, 4, 4)
    with pytest.raises(ValueError, match="1 to 4 channels"):
        ToGrayscale()(torch.rand(5, 4, 4))
    with pytest.raises(ValueError, match="three numbers"):
        ToGrayscale(weights=(1.0, 0.0))
