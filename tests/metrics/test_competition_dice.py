"""The competition Dice: per image, an empty prediction on an empty image scores 1."""

import pytest
import torch
from monai.metrics import DiceMetric

from monai_gamble.metrics import CompetitionDiceMetric, compute_competition_dice


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
def test_the_rule_case_by_case(pred, truth, expected):
    got = compute_competition_dice(masks(pred), masks(truth))
    assert got.shape == (1, 1)
    assert got.item() == pytest.approx(expected)


def test_batch_mean_is_the_challenge_score_and_matches_monai_without_ignore_empty():
    pred = masks([], [(0, 0)], [(1, 1), (1, 2)], [])
    truth = masks([], [], [(1, 1)], [(4, 4)])
    per_image = compute_competition_dice(pred, truth)
    torch.testing.assert_close(per_image[:, 0], torch.tensor([1.0, 0.0, 2 / 3, 0.0]))
    monai = DiceMetric(include_background=True, ignore_empty=False, reduction="none")(pred, truth)
    torch.testing.assert_close(per_image, monai.float())
    # MONAI's default (ignore_empty=True) skips the two empty ground truths: the "usual" Dice
    usual = DiceMetric(include_background=True, reduction="none")(pred, truth)
    assert torch.isnan(usual[:2]).all()
    metric = CompetitionDiceMetric()
    metric(pred[:2], truth[:2])
    metric(pred[2:], truth[2:])
    assert metric.aggregate().item() == pytest.approx((1 + 0 + 2 / 3 + 0) / 4)


def test_one_hot_input_without_background_and_bool_input():
    truth = masks([(1, 1)], [])
    pred = masks([(1, 1)], [])
    one_hot_pred, one_hot_truth = torch.cat([1 - pred, pred], 1), torch.cat([1 - truth, truth], 1)
    got = compute_competition_dice(one_hot_pred, one_hot_truth, include_background=False)
    torch.testing.assert_close(got, torch.tensor([[1.0], [1.0]]))
    torch.testing.assert_close(compute_competition_dice(pred.bool(), truth.bool()), torch.tensor([[1.0], [1.0]]))


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="same shape"):
        compute_competition_dice(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5))
    with pytest.raises(ValueError, match="binarised"):
        compute_competition_dice(torch.full((1, 1, 4, 4), 0.7), torch.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match="NaN"):
        compute_competition_dice(torch.full((1, 1, 4, 4), float("nan")), torch.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match="needs the ground truth"):
        CompetitionDiceMetric()(torch.zeros(1, 1, 4, 4))
