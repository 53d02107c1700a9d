"""The Lovasz hinge against a brute-force evaluation of the Lovasz extension, with gradients."""

import itertools

import numpy as np
import pytest
import torch

from monai_gamble.losses import LovaszHingeLoss, lovasz_grad, lovasz_hinge


def jaccard_loss_of_set(mispredicted: np.ndarray, labels: np.ndarray) -> float:
    """Delta_J(M) = |M| / |{y = 1} union M| (Berman et al. 2018, eq. 5), 0 for the empty set."""
    if not mispredicted.any():
        return 0.0
    return mispredicted.sum() / np.logical_or(labels > 0, mispredicted).sum()


def lovasz_extension_by_level_sets(errors: np.ndarray, labels: np.ndarray) -> float:
    """The Lovasz extension of a set function F with F(empty) = 0 at m >= 0, by its level sets:
    sum_k (v_k - v_{k+1}) F({i : m_i >= v_k}) over the distinct values v_1 > v_2 > ... > 0."""
    m = np.maximum(errors, 0)
    levels = np.unique(m[m > 0])[::-1]
    total = 0.0
    for k, v in enumerate(levels):
        nxt = levels[k + 1] if k + 1 < len(levels) else 0.0
        total += (v - nxt) * jaccard_loss_of_set(m >= v, labels)
    return total


def lovasz_grad_brute_force(gt_sorted: np.ndarray) -> np.ndarray:
    p = len(gt_sorted)
    values = [0.0]
    for k in range(1, p + 1):
        mis = np.zeros(p, dtype=bool)
        mis[:k] = True
        values.append(jaccard_loss_of_set(mis, gt_sorted))
    return np.diff(values)


@pytest.mark.parametrize("gt", [[1, 0, 1, 1, 0], [0, 0, 0, 0], [1, 1, 1], [0, 1], [1]])
def test_lovasz_grad_is_the_jaccard_increment(gt):
    gt = np.array(gt, dtype=float)
    np.testing.assert_allclose(lovasz_grad(torch.tensor(gt)).numpy(), lovasz_grad_brute_force(gt), atol=1e-6)


def test_hinge_equals_the_lovasz_extension_on_random_small_problems():
    rng = np.random.default_rng(0)
    for _ in range(40):
        p = int(rng.integers(1, 9))
        logits = rng.normal(0, 1.5, p)
        labels = (rng.random(p) < 0.5).astype(float)
        errors = 1 - logits * (2 * labels - 1)
        expected = lovasz_extension_by_level_sets(errors, labels)
        got = lovasz_hinge(torch.tensor(logits)[None], torch.tensor(labels)[None])[0].item()
        assert got == pytest.approx(expected, abs=1e-9)


def test_hinge_is_the_jaccard_loss_when_errors_are_zero_or_one():
    # logits of +-1 on the right side give error 0, logits of 0 give error 1: the mispredicted set
    for bits in itertools.product([0, 1], repeat=4):
        labels = np.array([1, 1, 0, 0], dtype=float)
        wrong = np.array(bits, dtype=bool)
        logits = np.where(wrong, 0.0, 2 * labels - 1)
        got = lovasz_hinge(torch.tensor(logits)[None], torch.tensor(labels)[None])[0].item()
        assert got == pytest.approx(jaccard_loss_of_set(wrong, labels))


def test_per_image_rows_are_independent_and_vectorised():
    torch.manual_seed(0)
    logits, labels = torch.randn(5, 30, dtype=torch.float64), (torch.rand(5, 30) < 0.3).double()
    labels[2] = 0  # an image without foreground
    batched = lovasz_hinge(logits, labels)
    one_by_one = torch.stack([lovasz_hinge(logits[i : i + 1], labels[i : i + 1])[0] for i in range(5)])
    torch.testing.assert_close(batched, one_by_one)
    # an empty image's loss is its largest hinge error (every non-empty set has Jaccard loss 1)
    assert batched[2].item() == pytest.approx(torch.relu(1 + logits[2]).max().item())


def test_gradients_match_finite_differences():
    torch.manual_seed(1)
    logits = torch.randn(2, 1, 4, 4, dtype=torch.float64, requires_grad=True)
    labels = (torch.rand(2, 1, 4, 4) < 0.4).double()
    loss = LovaszHingeLoss(per_image=True)
    assert torch.autograd.gradcheck(lambda x: loss(x, labels), (logits,), eps=1e-6, atol=1e-5)
    loss(logits, labels).backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_module_reductions_and_batch_mode():
    torch.manual_seed(2)
    x, y = torch.randn(3, 2, 8, 8), (torch.rand(3, 2, 8, 8) < 0.3).float()
    per = LovaszHingeLoss(reduction="none")(x, y)
    assert per.shape == (3, 2)
    expected = lovasz_hinge(x.reshape(6, -1), y.reshape(6, -1)).reshape(3, 2)
    torch.testing.assert_close(per, expected)
    assert LovaszHingeLoss()(x, y).item() == pytest.approx(per.mean().item(), rel=1e-6)
    assert LovaszHingeLoss(reduction="sum")(x, y).item() == pytest.approx(per.sum().item(), rel=1e-6)
    whole = LovaszHingeLoss(per_image=False, reduction="none")(x, y)
    assert whole.shape == (2,)
    pooled_x = x.transpose(0, 1).reshape(2, -1)
    pooled_y = y.transpose(0, 1).reshape(2, -1)
    torch.testing.assert_close(whole, lovasz_hinge(pooled_x, pooled_y))


def test_a_perfect_margin_prediction_has_zero_loss():
    y = (torch.rand(2, 1, 6, 6) < 0.5).float()
    assert LovaszHingeLoss()(4 * (2 * y - 1), y).item() == 0.0


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="same shape"):
        LovaszHingeLoss()(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5))
    with pytest.raises(ValueError, match="binary"):
        LovaszHingeLoss()(torch.zeros(1, 1, 4, 4), torch.full((1, 1, 4, 4), 255.0))
    with pytest.raises(ValueError, match=r"\(B, C, \*spatial\)"):
        LovaszHingeLoss()(torch.zeros(4, 4), torch.zeros(4, 4))
    with pytest.raises(ValueError, match="not a valid value"):
        LovaszHingeLoss(reduction="median")
