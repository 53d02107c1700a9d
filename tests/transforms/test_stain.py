"""HED stain jitter (Tellez et al.): the optical-density maths, types and metadata, the dictionary form, bad inputs."""

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from PIL import Image
from skimage.color import hed_from_rgb, rgb_from_hed

from monai_gamble.transforms import RandHEDStainJitter, RandHEDStainJitterd


def _tile(realdata=None) -> np.ndarray:
    if realdata is not None:
        path = sorted((realdata / "pathology_glomeruli_sarder_frozen" / "slides_patch").glob("*.png"))[0]
        return np.asarray(Image.open(path), dtype=np.float32).transpose(2, 0, 1) / 255.0
    rng = np.random.default_rng(0)
    return rng.uniform(0.2, 1.0, size=(3, 16, 16)).astype(np.float32)


def test_matches_deconvolve_jitter_recompose_by_hand():
    img = _tile()
    t = RandHEDStainJitter(prob=1.0, sigma=(0.1, 0.2, 0.0), bias=0.05)
    t.set_random_state(3)
    out = t(img)
    alpha, beta = t._alpha, t._beta
    assert alpha[2] == 1.0 and not np.allclose(alpha[:2], 1.0)
    od = -np.log(img.reshape(3, -1).T.astype(np.float64))  # (N, 3) rows, as skimage writes it
    conc = od @ hed_from_rgb
    expected = np.exp(-((conc * alpha + beta) @ rgb_from_hed)).clip(0, 1).T.reshape(img.shape)
    assert out.dtype == img.dtype and np.allclose(out, expected, atol=1e-5)


def test_identity_without_jitter_and_with_prob_zero():
    img = _tile()
    assert np.allclose(RandHEDStainJitter(prob=1.0, sigma=0.0, bias=0.0)(img), img, atol=1e-5)
    assert RandHEDStainJitter(prob=0.0, sigma=0.5)(img) is img


def test_keeps_type_range_and_metadata(realdata):
    img = MetaTensor(torch.as_tensor(_tile(realdata)), meta={"filename_or_obj": "tile.png"})
    t = RandHEDStainJitter(prob=1.0, sigma=0.2, bias=0.2)
    t.set_random_state(0)
    out = t(img)
    assert isinstance(out, MetaTensor) and out.meta["filename_or_obj"] == "tile.png"
    assert out.shape == img.shape and 0 <= out.min() and out.max() <= 1
    assert (out - img).abs().mean() > 0.005  # the colours change
    u8 = (img.numpy() * 255).round().astype(np.uint8)
    t.set_random_state(0)
    out8 = RandHEDStainJitter(prob=1.0, sigma=0.2, bias=0.2, max_value=255)
    out8.set_random_state(0)
    j8 = out8(u8)
    assert j8.dtype == np.uint8 and np.abs(j8.astype(float) / 255 - out.numpy()).max() < 0.01


def test_dictionary_form_uses_one_draw_per_sample_and_is_seeded():
    img = _tile()
    d = RandHEDStainJitterd(keys=["image", "copy"], prob=1.0, sigma=0.2, bias=0.1)
    d.set_random_state(5)
    out = d({"image": img, "copy": img.copy(), "label": np.zeros((1, 16, 16))})
    assert np.array_equal(out["image"], out["copy"]) and not np.allclose(out["image"], img)
    d2 = RandHEDStainJitterd(keys="image", prob=1.0, sigma=0.2, bias=0.1).set_random_state(5)
    assert np.array_equal(d2({"image": img})["image"], out["image"])
    assert RandHEDStainJitterd(keys="image", prob=0.0)({"image": img})["image"] is img


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"sigma must be one or three finite non-negative numbers and below 1"):
        RandHEDStainJitter(sigma=1.0)
    with pytest.raises(ValueError, match="bias must be one or three"):
        RandHEDStainJitter(bias=-0.1)
    with pytest.raises(ValueError, match="max_value must be a positive number"):
        RandHEDStainJitter(max_value=0)
    with pytest.raises(ValueError, match=r"needs an RGB image \(3, \*spatial\), got shape \(1, 8, 8\)"):
        RandHEDStainJitter(prob=1.0)(np.ones((1, 8, 8), dtype=np.float32))
