import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from monai_gamble.losses import (
    CrossEntropyLoss,
    TCEMethod,
    TiltedCrossEntropyLoss,
    TiltLevel,
    cross_entropy_map,
    tilted_loss,
)


def direct_tilted_mean(values, t, weights=None):
    """(1/t) log(sum a exp(t x) / sum a), straight from the definition in float64 (overflows for large t x)."""
    x = np.asarray(values, dtype=np.float64)
    a = np.ones_like(x) if weights is None else np.asarray(weights, dtype=np.float64)
    if t == 0:
        return float((a * x).sum() / a.sum())
    return float(np.log((a * np.exp(t * x)).sum() / a.sum()) / t)


def direct_per_image_and_class(x, y, weight=None, ignore_index=None):
    """Per-image mean CE (image level) and per-(image, class) mean CE, with explicit loops, float64."""
    ce = F.cross_entropy(x.double(), y[:, 0].clamp(0, x.shape[1] - 1), reduction="none").numpy()
    lab = y[:, 0].numpy()
    valid = np.ones_like(lab, dtype=bool) if ignore_index is None else lab != ignore_index
    w = np.ones(x.shape[1]) if weight is None else np.asarray(weight, dtype=np.float64)
    image, image_ok, cls, cls_w = [], [], [], []
    for m in range(x.shape[0]):
        om = np.where(valid[m], w[np.clip(lab[m], 0, x.shape[1] - 1)], 0.0)
        image_ok.append(om.sum() > 0)
        image.append((om * ce[m]).sum() / om.sum() if om.sum() > 0 else 0.0)
        row, row_w = [], []
        for c in range(x.shape[1]):
            sel = valid[m] & (lab[m] == c)
            row.append(ce[m][sel].mean() if sel.any() else 0.0)
            row_w.append(w[c] if sel.any() else 0.0)
        cls.append(row)
        cls_w.append(row_w)
    return np.array(image), np.array(image_ok), np.array(cls), np.array(cls_w)


def direct_loss(x, y, t, level, weight=None, ignore_index=None):
    image, image_ok, cls, cls_w = direct_per_image_and_class(x, y, weight, ignore_index)
    if level == "image":
        return direct_tilted_mean(image[image_ok], t)
    rows = [direct_tilted_mean(cls[m], t, cls_w[m]) for m in range(len(cls)) if cls_w[m].sum() > 0]
    return float(np.mean(rows))


# two images of two pixels; logits (0, ln 3) give p = (1/4, 3/4), logits (0, 0) give (1/2, 1/2)
X2 = torch.tensor([[[[0.0, 0.0]], [[math.log(3), math.log(3)]]], [[[0.0, 0.0]], [[0.0, 0.0]]]])
Y2 = torch.tensor([[[[1, 0]]], [[[1, 1]]]])
L_IMG = [(-math.log(0.75) - math.log(0.25)) / 2, math.log(2)]  # mean CE of each image, by hand


@pytest.mark.parametrize("t", [0.1, 1.0, 5.0, -2.0])
def test_hand_computed_image_level(t):
    expected = math.log((math.exp(t * L_IMG[0]) + math.exp(t * L_IMG[1])) / 2) / t
    assert TiltedCrossEntropyLoss(t, "image")(X2, Y2).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("t", [0.1, 1.0, 5.0, -2.0])
def test_hand_computed_class_level(t):
    # image 0: class 1 at pixel 0 (-ln 3/4), class 0 at pixel 1 (-ln 1/4); image 1: only class 1 (ln 2, ln 2),
    # class 0 absent from image 1, so that image's tilted mean is over class 1 alone: ln 2
    img0 = math.log((math.exp(-t * math.log(0.75)) + math.exp(-t * math.log(0.25))) / 2) / t
    expected = (img0 + math.log(2)) / 2
    assert TiltedCrossEntropyLoss(t, "class")(X2, Y2).item() == pytest.approx(expected, rel=1e-6)
    # class weights (2, 1): image 0's tilted mean is weighted 2:1
    img0_w = math.log((1 * math.exp(-t * math.log(0.75)) + 2 * math.exp(-t * math.log(0.25))) / 3) / t
    got = TiltedCrossEntropyLoss(t, "class", weight=[2.0, 1.0])(X2, Y2).item()
    assert got == pytest.approx((img0_w + math.log(2)) / 2, rel=1e-6)


@pytest.mark.parametrize("level", ["image", "class"])
@pytest.mark.parametrize("spatial", [(5, 6), (3, 4, 5)])
@pytest.mark.parametrize("t", [-1.0, 0.3, 2.0])
def test_matches_direct_formula(level, spatial, t):
    torch.manual_seed(0)
    x = torch.randn(3, 4, *spatial) * 2
    y = torch.randint(0, 4, (3, 1, *spatial))
    y[1][y[1] == 2] = 0  # class 2 absent from image 1
    y[2, 0, 0] = 9  # ignored pixel
    w = [0.5, 1.0, 2.0, 1.5]
    got = TiltedCrossEntropyLoss(t, level, weight=w, ignore_index=9)(x, y).item()
    assert got == pytest.approx(direct_loss(x, y, t, level, weight=w, ignore_index=9), rel=1e-5, abs=1e-6)
    got = TiltedCrossEntropyLoss(t, level)(x, y.clamp(max=3)).item()
    assert got == pytest.approx(direct_loss(x, y.clamp(max=3), t, level), rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("level", ["image", "class"])
def test_one_hot_and_index_labels_agree(level):
    torch.manual_seed(1)
    x = torch.randn(2, 3, 6, 6)
    y = torch.randint(0, 3, (2, 1, 6, 6))
    onehot = F.one_hot(y[:, 0], 3).permute(0, 3, 1, 2).float()
    loss = TiltedCrossEntropyLoss(0.7, level, weight=[1.0, 2.0, 0.5])
    torch.testing.assert_close(loss(x, onehot), loss(x, y))
    torch.testing.assert_close(loss(x, y[:, 0]), loss(x, y))  # (B, *spatial) labels


@pytest.mark.parametrize("level", ["image", "class"])
def test_one_sigmoid_channel_equals_two_channel_softmax(level):
    torch.manual_seed(2)
    x = torch.randn(3, 1, 5, 5)
    y = torch.randint(0, 2, (3, 1, 5, 5))
    two = torch.cat([torch.zeros_like(x), x], 1)
    loss = TiltedCrossEntropyLoss(1.5, level)
    torch.testing.assert_close(loss(x, y.float()), loss(two, y))


def test_t_zero_is_cross_entropy_and_small_t_tends_to_it():
    torch.manual_seed(3)
    x = torch.randn(4, 3, 8, 8)
    y = torch.randint(0, 3, (4, 1, 8, 8))
    ce = CrossEntropyLoss()(x, y)
    torch.testing.assert_close(TiltedCrossEntropyLoss(0.0, "image")(x, y), ce)
    per_image, _, _, _ = direct_per_image_and_class(x, y)
    for t in (1e-3, 1e-6, -1e-6):  # TERM: mean + t Var / 2 + O(t^2)
        expected = per_image.mean() + t * per_image.var() / 2
        assert TiltedCrossEntropyLoss(t, "image")(x, y).item() == pytest.approx(expected, abs=1e-6)
    # class level at t = 0: the mean over images of the mean over present classes of the class means
    class_mean = direct_loss(x, y, 0.0, "class")
    assert TiltedCrossEntropyLoss(0.0, "class")(x, y).item() == pytest.approx(class_mean, rel=1e-6)
    assert TiltedCrossEntropyLoss(1e-7, "class")(x, y).item() == pytest.approx(class_mean, rel=1e-5)
    assert class_mean != pytest.approx(ce.item(), rel=1e-3)  # the two levels differ at t = 0


def test_large_t_approaches_the_max_and_negative_t_the_min():
    torch.manual_seed(4)
    x = torch.randn(5, 3, 6, 6) * 3
    y = torch.randint(0, 3, (5, 1, 6, 6))
    per_image, _, per_class, present = direct_per_image_and_class(x, y)
    for t in (100.0, 1e4):
        got = TiltedCrossEntropyLoss(t, "image")(x, y).item()
        # (1/t) log mean exp(t L) lies in [max L - log(M)/t, max L]
        assert per_image.max() - math.log(5) / t - 1e-5 <= got <= per_image.max() + 1e-5
        got = TiltedCrossEntropyLoss(t, "class")(x, y).item()
        worst = np.mean([per_class[m][present[m] > 0].max() for m in range(5)])
        assert got == pytest.approx(worst, abs=math.log(3) / t + 1e-5)
    got = TiltedCrossEntropyLoss(-1e4, "image")(x, y).item()
    assert got == pytest.approx(per_image.min(), abs=math.log(5) / 1e4 + 1e-5)


def test_no_overflow_for_large_t_times_loss():
    # per-image losses of about 1000 nats, t = 10: t * L = 1e4, where exp overflows even in float64
    x = torch.zeros(3, 2, 2, 2)
    x[:, 0] = torch.tensor([1000.0, 1001.0, 999.0]).reshape(3, 1, 1)
    y = torch.ones(3, 1, 2, 2, dtype=torch.long)
    x.requires_grad_(True)
    t = 10.0
    with np.errstate(over="ignore"):
        assert math.isinf(direct_tilted_mean([1000.0, 1001.0, 999.0], t))  # the direct formula fails
    for level in ("image", "class"):
        loss = TiltedCrossEntropyLoss(t, level)(x, y)
        assert torch.isfinite(loss)
        expected = 1001.0 + math.log(np.exp(t * np.array([-1.0, 0.0, -2.0])).mean()) / t
        if level == "class":  # one class per image: the mean over images of the image losses
            expected = 1000.0
        assert loss.item() == pytest.approx(expected, rel=1e-6)
        (grad,) = torch.autograd.grad(loss, x)
        assert torch.isfinite(grad).all()


def per_item_gradients(x, losses):
    return [torch.autograd.grad(v, x, retain_graph=True)[0] for v in losses]


@pytest.mark.parametrize("t", [0.5, 3.0, -1.0])
def test_gradient_is_the_tilted_average_of_gradients_image_level(t):
    """TERM, Lemma 1: grad (1/t) log mean exp(t L_m) = sum_m softmax(t L)_m grad L_m."""
    torch.manual_seed(5)
    x = torch.randn(4, 3, 5, 5, requires_grad=True)
    y = torch.randint(0, 3, (4, 1, 5, 5))
    loss_fn = TiltedCrossEntropyLoss(t, "image")
    (grad,) = torch.autograd.grad(loss_fn(x, y), x)
    per_image, _ = loss_fn.per_image_losses(x, y)
    grads = per_item_gradients(x, per_image)
    w = torch.softmax(t * per_image.detach(), 0)
    expected = sum(wi * g for wi, g in zip(w, grads))
    torch.testing.assert_close(grad, expected, rtol=1e-5, atol=1e-7)


def test_gradient_is_the_tilted_average_of_gradients_class_level():
    torch.manual_seed(6)
    t = 2.0
    x = torch.randn(3, 4, 5, 5, requires_grad=True)
    y = torch.randint(0, 4, (3, 1, 5, 5))
    y[0][y[0] == 3] = 1  # class 3 absent from image 0
    loss_fn = TiltedCrossEntropyLoss(t, "class")
    (grad,) = torch.autograd.grad(loss_fn(x, y), x)
    per_class, present = loss_fn.per_image_losses(x, y)
    expected = torch.zeros_like(x)
    for m in range(3):
        logits = t * per_class[m].detach() + torch.log(present[m])
        w = torch.softmax(logits, 0)
        for c in range(4):
            if present[m, c] > 0:
                (g,) = torch.autograd.grad(per_class[m, c], x, retain_graph=True)
                expected += w[c] * g / 3
    torch.testing.assert_close(grad, expected, rtol=1e-5, atol=1e-7)


def test_absent_and_ignored():
    torch.manual_seed(7)
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    y = torch.randint(0, 3, (2, 1, 4, 4))
    y_ign = y.clone()
    y_ign[1] = 255  # image 1 has no counted pixel: it contributes nothing
    for level in ("image", "class"):
        loss_fn = TiltedCrossEntropyLoss(1.0, level, ignore_index=255)
        torch.testing.assert_close(loss_fn(x, y_ign), loss_fn(x[:1], y[:1]))
    # nothing counted at all: 0, with a zero gradient, not NaN
    for level in ("image", "class"):
        loss = TiltedCrossEntropyLoss(1.0, level, ignore_index=255)(x, torch.full_like(y, 255))
        assert loss.item() == 0.0
        (g,) = torch.autograd.grad(loss, x)
        assert torch.all(g == 0)
    # a class present in no image changes nothing at class level (it is left out, not counted as 0)
    y3 = y.clone()
    x4 = torch.cat([x.detach(), torch.randn(2, 1, 4, 4)], 1)  # a 4th channel, class 3 never labelled
    a = TiltedCrossEntropyLoss(1.0, "class")(x4, y3).item()
    image, _, cls, cls_w = direct_per_image_and_class(x4, y3)
    assert a == pytest.approx(np.mean([direct_tilted_mean(cls[m], 1.0, cls_w[m]) for m in range(2)]), rel=1e-6)
    assert cls_w[:, 3].sum() == 0


def test_factory_by_name():
    assert isinstance(tilted_loss("stochastic_tce"), CrossEntropyLoss)
    assert isinstance(tilted_loss("ce"), CrossEntropyLoss) and tilted_loss("ce", ignore_index=255).ignore_index == 255
    loss = tilted_loss("tce_image", t=0.1, weight=[1.0, 2.0], ignore_index=255)
    assert isinstance(loss, TiltedCrossEntropyLoss) and loss.level == TiltLevel.IMAGE and loss.t == 0.1
    assert loss.ignore_index == 255 and loss.class_weight.tolist() == [1.0, 2.0]
    assert tilted_loss(TCEMethod.TCE_CLASS, t=1).level == TiltLevel.CLASS
    with pytest.raises(ValueError, match="tce_image"):
        tilted_loss("tce_pixel")
    with pytest.raises(ValueError, match="finite"):
        tilted_loss("stochastic_tce", t=float("nan"))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"t": float("nan")}, "t must be a finite number"),
        ({"t": float("inf")}, "t must be a finite number"),
        ({"t": "big"}, "t must be a finite number"),
        ({"level": "foo"}, "Unsupported option 'foo', Available options are"),
        ({"weight": [1.0, -1.0, 1.0]}, "non-negative"),
    ],
)
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TiltedCrossEntropyLoss(**kwargs)


@pytest.mark.parametrize("level", ["image", "class"])
def test_bad_inputs(level):
    x = torch.randn(1, 3, 4, 4)
    with pytest.raises(ValueError, match=r"class indices in \[0, 2\]"):
        TiltedCrossEntropyLoss(1.0, level)(x, torch.full((1, 1, 4, 4), 3))
    with pytest.raises(ValueError, match=r"class indices in \[0, 2\]"):
        TiltedCrossEntropyLoss(1.0, level)(x, torch.full((1, 1, 4, 4), -1))
    with pytest.raises(ValueError, match="one value per class"):
        TiltedCrossEntropyLoss(1.0, level, weight=[1.0, 1.0])(x, torch.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match="does not match"):
        TiltedCrossEntropyLoss(1.0, level)(x, torch.zeros(1, 1, 4, 5))


def test_real_pathology_masks_class_losses(realdata):
    """Class-level TCE on the MoNuSAC masks (5 classes): a 'model' that knows every class but
    neutrophils (label 3, only in A9K0_3) has its class-level loss dominated by that class."""
    folder = realdata / "pathology_monusac_sample" / "class_masks"
    mask = np.array(Image.open(folder / "A9K0_3.png"))  # read with PIL explicitly
    y = torch.from_numpy(mask.astype(np.int64))[None, None]
    logits = 4.0 * F.one_hot(y[:, 0].clamp(max=4), 5).permute(0, 3, 1, 2).float()
    logits[:, 0][y[:, 0] == 3] = 4.0  # neutrophil pixels: background as likely as neutrophil
    logits[:, 3][y[:, 0] == 3] = 4.0
    loss_fn = TiltedCrossEntropyLoss(1.0, "class")
    per_class, present = loss_fn.per_image_losses(logits, y)
    counts = np.bincount(mask.ravel(), minlength=5)
    assert present[0].tolist() == (counts > 0).astype(float).tolist() == [1.0, 0.0, 0.0, 1.0, 0.0]
    known = -math.log(math.exp(4) / (math.exp(4) + 4))  # a correct pixel: logit 4 against four 0s
    confused = -math.log(math.exp(4) / (2 * math.exp(4) + 3))
    assert per_class[0, 0].item() == pytest.approx(known, rel=1e-5)
    assert per_class[0, 3].item() == pytest.approx(confused, rel=1e-5)
    expected = direct_tilted_mean([known, confused], 1.0)
    assert loss_fn(logits, y).item() == pytest.approx(expected, rel=1e-5)
    # pixel-averaged CE barely sees the 2617 neutrophil pixels among 91945; the class level weighs them half
    ce = CrossEntropyLoss()(logits, y).item()
    assert ce == pytest.approx((counts[0] * known + counts[3] * confused) / counts.sum(), rel=1e-5)
    assert expected > 2 * ce
    # the per-pixel map agrees
    pixel_ce, _ = cross_entropy_map(logits, y)
    assert pixel_ce[0][y[0, 0] == 3].mean().item() == pytest.approx(confused, rel=1e-5)
