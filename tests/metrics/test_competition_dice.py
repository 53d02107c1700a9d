"""The challenges' Dice (SIIM-ACR, Kaggle nerve): per image, an empty prediction on an empty image
scores 1. The X-ray and nerve bundles use MONAI's ``DiceMetric(ignore_empty=False)`` for it; this
pins that MONAI keeps that rule, case by case."""

import pytest
import torch
from monai.metrics import DiceMetric


def masks(*pixel_sets, shape=(6, 6)):
    """A batch (B, 1, H, W) with the given foreground pixels per image."""
    out = torch.zeros(len(pixel_sets), 1, *shape)
    for b, pixels in enumerate(pixel_sets):
        for r, c in pixels:
            out[b, 0, r, c] = 1
    return out


@pytest.mark.parametrize(
    "pred, truth, expected",
    [
        ([], [], 1.0),  # both empty: 1
        ([(0, 0)], [], 0.0),  # a prediction on an empty image: 0
        ([], [(2, 2), (2, 3)], 0.0),  # nothing predicted on a positive image: 0
        ([(2, 2), (2, 3)], [(2, 2), (2, 3)], 1.0),  # perfect
        ([(2, 2), (2, 3), (3, 3)], [(2, 2)], 2 * 1 / (3 + 1)),  # 2|X & Y| / (|X| + |Y|)
    ],
)
def test_monai_dice_without_ignore_empty_is_the_challenge_rule(pred, truth, expected):
    got = DiceMetric(include_background=True, ignore_empty=False, reduction="none")(masks(pred), masks(truth))
    assert got.shape == (1, 1)
    assert got.item() == pytest.approx(expected)


def test_the_mean_over_batches_is_the_challenge_score_and_the_default_skips_empty_truths():
    pred = masks([], [(0, 0)], [(1, 1), (1, 2)], [])
    truth = masks([], [], [(1, 1)], [(4, 4)])
    metric = DiceMetric(include_background=True, ignore_empty=False, reduction="mean")
    metric(pred[:2], truth[:2])
    metric(pred[2:], truth[2:])
    assert metric.aggregate().item() == pytest.approx((1 + 0 + 2 / 3 + 0) / 4)
    usual = DiceMetric(include_background=True, reduction="none")(pred, truth)  # ignore_empty=True
    assert torch.isnan(usual[:2]).all()  # the "usual" Dice: positive images only
