import math

import pytest
import torch
import torch.nn.functional as F

from monai_gamble.losses import CrossEntropyLoss, cross_entropy_map


def test_hand_computed_two_pixels():
    # logits (0, ln 3): p = (1/4, 3/4); label 1 -> -ln(3/4); label 0 -> -ln(1/4)
    x = torch.tensor([[[[0.0, 0.0]], [[math.log(3), math.log(3)]]]])
    y = torch.tensor([[[[1, 0]]]])
    ce, omega = cross_entropy_map(x, y)
    torch.testing.assert_close(ce, torch.tensor([[[-math.log(0.75), -math.log(0.25)]]]))
    assert omega.tolist() == [[[1.0, 1.0]]]
    assert CrossEntropyLoss()(x, y).item() == pytest.approx(-(math.log(0.75) + math.log(0.25)) / 2)
    # class weights: weighted mean sum(w_y l) / sum(w_y)
    w = [2.0, 1.0]
    expected = (1.0 * -math.log(0.75) + 2.0 * -math.log(0.25)) / 3.0
    assert CrossEntropyLoss(weight=w)(x, y).item() == pytest.approx(expected)


@pytest.mark.parametrize("spatial", [(5, 6), (3, 4, 5)])
def test_matches_torch_multiclass(spatial):
    torch.manual_seed(0)
    x = torch.randn(2, 3, *spatial)
    y = torch.randint(0, 3, (2, 1, *spatial))
    y[0, 0, 0] = 7  # ignored
    w = torch.tensor([0.3, 1.0, 2.5])
    ours = CrossEntropyLoss(weight=w, ignore_index=7)(x, y)
    ref = F.cross_entropy(x, y[:, 0], weight=w, ignore_index=7)
    torch.testing.assert_close(ours, ref)
    ours_sum = CrossEntropyLoss(weight=w, ignore_index=7, reduction="sum")(x, y)
    torch.testing.assert_close(ours_sum, F.cross_entropy(x, y[:, 0], weight=w, ignore_index=7, reduction="sum"))
    none = CrossEntropyLoss(reduction="none")(x, y.clamp(max=2))
    assert none.shape == (2, 1, *spatial)


def test_one_hot_target_equals_index_target():
    torch.manual_seed(1)
    x = torch.randn(2, 4, 6, 6)
    y = torch.randint(0, 4, (2, 1, 6, 6))
    onehot = F.one_hot(y[:, 0], 4).permute(0, 3, 1, 2).float()
    w = [1.0, 2.0, 0.5, 1.5]
    torch.testing.assert_close(CrossEntropyLoss(weight=w)(x, onehot), CrossEntropyLoss(weight=w)(x, y))


def test_soft_targets_reach_the_loss():
    x = torch.zeros(1, 2, 1, 1)  # p = (0.5, 0.5)
    t = torch.tensor([0.2, 0.8]).reshape(1, 2, 1, 1)
    assert CrossEntropyLoss()(x, t).item() == pytest.approx(math.log(2))
    x = torch.tensor([0.0, math.log(4)]).reshape(1, 2, 1, 1)  # p = (0.2, 0.8)
    expected = -(0.2 * math.log(0.2) + 0.8 * math.log(0.8))
    assert CrossEntropyLoss()(x, t).item() == pytest.approx(expected)


def test_binary_one_channel():
    torch.manual_seed(2)
    x = torch.randn(3, 1, 8, 8)
    y = torch.randint(0, 2, (3, 1, 8, 8)).float()
    torch.testing.assert_close(CrossEntropyLoss()(x, y), F.binary_cross_entropy_with_logits(x, y))
    # binary equals the two-channel softmax with logits (0, x)
    two = torch.cat([torch.zeros_like(x), x], 1)
    torch.testing.assert_close(CrossEntropyLoss()(x, y), CrossEntropyLoss()(two, y.long()))
    w = [0.5, 3.0]
    torch.testing.assert_close(CrossEntropyLoss(weight=w)(x, y), CrossEntropyLoss(weight=w)(two, y.long()))
    y_ign = y.clone()
    y_ign[0] = 255
    torch.testing.assert_close(
        CrossEntropyLoss(ignore_index=255)(x, y_ign), F.binary_cross_entropy_with_logits(x[1:], y[1:])
    )


def test_gradient_and_large_logits():
    x = torch.tensor([[[[1000.0]], [[-1000.0]]]], requires_grad=True)
    loss = CrossEntropyLoss()(x, torch.tensor([[[[1]]]]))
    assert torch.isfinite(loss) and loss.item() == pytest.approx(2000.0)
    loss.backward()
    torch.testing.assert_close(x.grad, torch.tensor([[[[1.0]], [[-1.0]]]]))


def test_all_pixels_ignored_gives_zero_not_nan():
    x = torch.randn(1, 2, 3, 3, requires_grad=True)
    loss = CrossEntropyLoss(ignore_index=9)(x, torch.full((1, 1, 3, 3), 9))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.all(x.grad == 0)


@pytest.mark.parametrize(
    "x, y, kwargs, match",
    [
        (torch.randn(1, 2, 4, 4), torch.full((1, 1, 4, 4), 255), {}, r"class indices in \[0, 1\]"),
        (torch.randn(1, 1, 4, 4), torch.full((1, 1, 4, 4), 255.0), {}, "map \\{0, 255\\}"),
        (torch.randn(1, 2, 4, 4), torch.zeros(1, 1, 4, 5), {}, "does not match"),
        (torch.randn(1, 2, 4, 4), torch.zeros(2, 1, 4, 4), {}, "does not match"),
        (torch.randn(1, 3, 4, 4), torch.zeros(1, 2, 4, 4), {}, "3 channels"),
        (torch.randn(1, 2, 4, 4), torch.full((1, 1, 4, 4), 0.5), {}, "whole numbers"),
        (torch.randn(1, 2, 4, 4), torch.zeros(1, 1, 4, 4), {"weight": [1.0]}, "one value per class"),
        (torch.randn(1, 2, 4, 4), torch.zeros(1, 1, 4, 4), {"weight": [1.0, -1.0]}, "non-negative"),
        (torch.randn(4, 2), torch.zeros(4, 1), {}, "logits of shape"),
        # a one-hot x 255 target gave a loss of 489 before this check
        (
            torch.randn(1, 2, 4, 4),
            255.0 * torch.eye(2)[torch.randint(0, 2, (1, 4, 4))].permute(0, 3, 1, 2),
            {},
            r"probability targets must lie in \[0, 1\], found \[0, 255\]",
        ),
        (torch.randn(1, 2, 4, 4), torch.full((1, 2, 4, 4), -0.5), {}, "must lie in"),
        (torch.randn(1, 2, 4, 4), torch.full((1, 2, 4, 4), float("nan")), {}, "must lie in"),
        (torch.full((1, 2, 4, 4), float("nan")), torch.zeros(1, 1, 4, 4), {}, "NaN or inf"),
        (torch.tensor([float("inf"), 0.0]).reshape(1, 1, 2, 1), torch.zeros(1, 1, 2, 1), {}, "NaN or inf"),
    ],
)
def test_bad_inputs(x, y, kwargs, match):
    with pytest.raises(ValueError, match=match):
        CrossEntropyLoss(**kwargs)(x, y)


def test_bad_reduction():
    with pytest.raises(ValueError, match="mean"):
        CrossEntropyLoss(reduction="avg")
