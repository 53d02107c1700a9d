"""Erosion mask smoothing (values on hand-made masks, 2D and 3D, tiny and empty masks, the soft
target reaching MONAI's DiceFocalLoss) and the whole-mask area rule."""

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.losses import DiceFocalLoss
from monai.transforms import RemoveSmallObjects
from scipy import ndimage

from monai_gamble.transforms import ClearSmallMask, ClearSmallMaskd, ErosionMaskSmoothing, ErosionMaskSmoothingd

V = 243 / 255


def square(size: int, lo: int, hi: int, ndim: int = 2) -> torch.Tensor:
    m = torch.zeros((1,) + (size,) * ndim)
    m[(0,) + (slice(lo, hi),) * ndim] = 1
    return m


def test_hand_made_mask_small_kernel():
    # a 5x5 square, eroded once by 3x3: its centre 3x3 is interior (0.5), its outer ring boundary (1)
    out = ErosionMaskSmoothing(kernel_size=3, iterations=1, interior_value=0.5)(square(7, 1, 6))[0]
    expected = torch.zeros(7, 7)
    expected[1:6, 1:6] = 1.0
    expected[2:5, 2:5] = 0.5
    torch.testing.assert_close(out, expected)


def test_hand_made_mask_authors_defaults():
    # 9x9 kernel, 3 iterations = one erosion by a 25x25 box: a 40x40 square keeps its centre 16x16
    out = ErosionMaskSmoothing()(square(64, 10, 50))[0]
    expected = torch.zeros(64, 64)
    expected[10:50, 10:50] = 1.0
    expected[22:38, 22:38] = V
    torch.testing.assert_close(out, expected)
    assert out.dtype == torch.float32


def test_matches_iterated_scipy_erosion_with_the_opencv_border():
    rng = np.random.default_rng(0)
    mask = ndimage.gaussian_filter(rng.random((90, 120)), 8) > 0.5  # blobs, some cut by the border
    mask[:30, :30] = True  # a region touching the corner: the border does not erode it (cv2.erode)
    eroded = ndimage.binary_erosion(mask, structure=np.ones((9, 9)), iterations=3, border_value=1)
    assert eroded.any() and (mask & ~eroded).any()
    out = ErosionMaskSmoothing()(mask[None])
    assert isinstance(out, np.ndarray)  # numpy in, numpy out
    np.testing.assert_allclose(out[0], mask - (1 - V) * eroded, atol=1e-6)
    assert out[0, 0, 0] == pytest.approx(V)  # the corner is interior


def test_3d():
    out = ErosionMaskSmoothing(kernel_size=3, iterations=2, interior_value=0.25)(square(12, 2, 10, ndim=3))[0]
    # an 8^3 cube eroded by a 5^3 box keeps its centre 4^3
    assert (out[4:8, 4:8, 4:8] == 0.25).all()
    assert out.sum().item() == pytest.approx(8**3 - 4**3 + 0.25 * 4**3)
    assert ErosionMaskSmoothing(kernel_size=(3, 3, 1))(square(12, 2, 10, ndim=3)).shape == (1, 12, 12, 12)


def test_tiny_mask_does_not_vanish_and_empty_mask_is_unchanged():
    tiny = square(20, 8, 11)  # 3x3, smaller than the 9x9 kernel
    torch.testing.assert_close(ErosionMaskSmoothing()(tiny), tiny)
    empty = torch.zeros(1, 20, 20)
    torch.testing.assert_close(ErosionMaskSmoothing()(empty), empty)


def test_background_channel_and_metadata():
    m = MetaTensor(square(64, 10, 50), meta={"filename_or_obj": "x.tif"})
    out = ErosionMaskSmoothing(background_channel=True)(m)
    assert isinstance(out, MetaTensor) and out.meta["filename_or_obj"] == "x.tif"
    assert out.shape == (2, 64, 64)
    torch.testing.assert_close(out.sum(0), torch.ones(64, 64))
    assert torch.unique(out[1]).tolist() == pytest.approx([0.0, V, 1.0])


def test_dictionary_form():
    d = ErosionMaskSmoothingd("label", kernel_size=3, iterations=1, interior_value=0.5)(
        {"label": square(7, 1, 6), "image": torch.ones(1, 7, 7)}
    )
    assert d["label"][0, 3, 3] == 0.5 and d["label"][0, 1, 1] == 1.0 and torch.equal(d["image"], torch.ones(1, 7, 7))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"kernel_size": -3}, "kernel_size must be a positive odd integer"),
        ({"kernel_size": 4}, "kernel_size must be a positive odd integer"),
        ({"kernel_size": (3, 0)}, "kernel_size must be a positive odd integer"),
        ({"iterations": 0}, "iterations must be a positive integer"),
        ({"interior_value": 1.5}, "interior_value must be in \\[0, 1\\]"),
    ],
)
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ErosionMaskSmoothing(**kwargs)


def test_bad_masks():
    with pytest.raises(ValueError, match="binary mask .* threshold it first"):
        ErosionMaskSmoothing()(torch.full((1, 8, 8), 255.0))
    with pytest.raises(ValueError, match="background_channel needs a one-channel mask"):
        ErosionMaskSmoothing(background_channel=True)(torch.zeros(2, 8, 8))
    with pytest.raises(ValueError, match="kernel_size \\(3, 3, 3\\) has 3 values for a mask with 2 spatial"):
        ErosionMaskSmoothing(kernel_size=(3, 3, 3))(torch.zeros(1, 8, 8))
    with pytest.raises(ValueError, match="1 to 3 spatial dims"):
        ErosionMaskSmoothing()(torch.zeros(1, 4, 4, 4, 4))


def test_soft_targets_reach_dice_focal_loss():
    """With to_onehot_y=False the two-channel soft target [1 - S, S] reaches MONAI's DiceFocalLoss: a
    prediction that is exactly the hard mask has no loss against the hard target but the soft Dice
    loss of the formula against the soft one. With to_onehot_y=True MONAI casts a one-channel target
    to long and the interior value 0.953 becomes background."""
    hard = square(64, 10, 50)  # |M| = 1,600; interior |E| = 16 * 16; boundary band |B| = |M| - |E|
    soft = ErosionMaskSmoothing(background_channel=True)(hard)[None]  # (1, 2, 64, 64)
    hard2 = torch.cat([1 - hard, hard])[None]
    loss = DiceFocalLoss(softmax=True, to_onehot_y=False)
    confident = 20.0 * (2 * hard2 - 1)  # softmax probabilities 0 and 1 up to 1e-17; focal terms ~1e-16
    assert loss(confident, hard2).item() == pytest.approx(0.0, abs=1e-6)
    m, e = 1600, 256
    bg = 64 * 64 - m
    s_fg = (m - e) + V * e  # sum of the soft foreground target = sum(p * t) where p is the hard mask
    dice_fg = 1 - 2 * s_fg / (m + s_fg)
    dice_bg = 1 - 2 * bg / (2 * bg + (1 - V) * e)
    assert loss(confident, soft).item() == pytest.approx((dice_fg + dice_bg) / 2, rel=1e-4)
    assert (dice_fg + dice_bg) / 2 > 1e-3
    # the gradients differ too, for random logits
    torch.manual_seed(0)
    logits = torch.randn(1, 2, 64, 64, requires_grad=True)
    (g_soft,) = torch.autograd.grad(loss(logits, soft), logits)
    (g_hard,) = torch.autograd.grad(loss(logits, hard2), logits)
    assert not torch.allclose(g_soft, g_hard, rtol=0, atol=1e-7)
    # the trap: a one-channel soft target with to_onehot_y=True trains the interior as background
    trap = DiceFocalLoss(softmax=True, to_onehot_y=True)
    one_channel = soft[:, 1:]
    boundary_only = (one_channel == 1).float()
    assert trap(logits, one_channel).item() == pytest.approx(trap(logits, boundary_only).item())
    assert trap(logits, one_channel).item() != pytest.approx(trap(logits, hard[None]).item())


@pytest.mark.filterwarnings("ignore:Parameter `min_size` is deprecated")  # MONAI 1.6 calls skimage's old argument
def test_area_rule_counts_the_whole_mask():
    pred = torch.zeros(1, 100, 100)
    pred[0, 5:35, 5:35] = 1  # two pieces of 900 px each: 1,800 px in all
    pred[0, 60:90, 60:90] = 1
    kept = ClearSmallMask(area_threshold=1500)(pred)
    assert torch.equal(kept, pred)  # total 1,800 > 1,500: kept whole, although each piece is smaller
    per_component = RemoveSmallObjects(min_size=1501)(pred)
    assert per_component.sum() == 0  # MONAI's per-component rule removes both pieces
    assert ClearSmallMask(area_threshold=1800)(pred).sum() == 0  # at most the threshold: cleared
    assert torch.equal(ClearSmallMask(area_threshold=1799)(pred), pred)


def test_area_rule_one_hot_scaling_numpy_3d_and_dictionary():
    onehot = torch.zeros(2, 10, 10)
    onehot[0] = 1
    onehot[0, :2, :3], onehot[1, :2, :3] = 0, 1  # 6 foreground pixels
    cleared = ClearSmallMask(area_threshold=6)(onehot)
    assert torch.equal(cleared[0], torch.ones(10, 10)) and cleared[1].sum() == 0  # moved to the background
    # 2,500 px at 580x420 is 625 px at 290x210: 6 px <= 6 * 100 / 400 ... scaled by the area ratio
    assert ClearSmallMask(area_threshold=24, reference_shape=(20, 20)).threshold_for((10, 10)) == 6.0
    assert ClearSmallMask(area_threshold=24, reference_shape=(20, 20))(onehot)[1].sum() == 0
    assert ClearSmallMask(area_threshold=23, reference_shape=(20, 20))(onehot)[1].sum() == 6
    vol = np.zeros((1, 8, 8, 8), dtype=np.uint8)
    vol[0, :2, :2, :2] = 1
    out = ClearSmallMask(area_threshold=8)(vol)
    assert isinstance(out, np.ndarray) and out.sum() == 0
    d = ClearSmallMaskd("pred", area_threshold=8)({"pred": torch.as_tensor(vol), "label": torch.as_tensor(vol)})
    assert d["pred"].sum() == 0 and d["label"].sum() == 8


def test_area_rule_bad_inputs():
    with pytest.raises(ValueError, match="area_threshold must be a non-negative number"):
        ClearSmallMask(area_threshold=-1)
    with pytest.raises(ValueError, match="reference_shape must be positive sizes"):
        ClearSmallMask(reference_shape=(580, 0))
    with pytest.raises(ValueError, match="must be binary one-hot"):
        ClearSmallMask()(torch.rand(2, 8, 8))
    with pytest.raises(ValueError, match="reference_shape \\(580, 420\\) has 2 dimensions, the input 3"):
        ClearSmallMask(reference_shape=(580, 420))(torch.zeros(1, 4, 4, 4))
