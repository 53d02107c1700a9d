import pytest
import torch

from monai_gamble.metrics import MMCLMetric, compute_mmcl


def test_hand_computed_softmax():
    p = torch.tensor([[[[0.9, 0.6]], [[0.1, 0.4]]]])  # (B=1, C=2, 1, 2): max probs 0.9 and 0.6
    assert compute_mmcl(p).item() == pytest.approx(0.75)


def test_one_sigmoid_channel():
    p = torch.tensor([[[[0.2, 0.5, 0.95]]]])  # classes (1-p, p): max 0.8, 0.5, 0.95
    assert compute_mmcl(p).item() == pytest.approx((0.8 + 0.5 + 0.95) / 3)


def test_per_image_then_mean_and_3d():
    p = torch.zeros(2, 3, 2, 2, 2)
    p[0, 0] = 1.0  # hard: 1
    p[1] = 1 / 3  # uniform: 1/3
    out = compute_mmcl(p)
    assert out.shape == (2, 1)
    assert out[:, 0].tolist() == pytest.approx([1.0, 1 / 3])
    m = MMCLMetric()
    m(p)
    m(p[:1], None)
    assert m.aggregate().item() == pytest.approx((1 + 1 / 3 + 1) / 3)


@pytest.mark.parametrize(
    "bad, match",
    [
        (torch.randn(1, 2, 4, 4) * 3, "logits|sum to 1|\\[0, 1\\]"),
        (torch.full((1, 2, 4, 4), 0.3), "sum to 1"),
        (torch.full((1, 2, 4, 4), float("nan")), "NaN"),
        (torch.ones(4), "shape"),
    ],
)
def test_bad_inputs(bad, match):
    with pytest.raises(ValueError, match=match):
        compute_mmcl(bad)
