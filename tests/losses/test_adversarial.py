"""Loss terms of the adversarial baselines: values on small tensors, gradient flow, bad inputs."""

import math

import pytest
import torch

from monai_gamble.losses import (
    adversarial_bce,
    confidence_weighted_cross_entropy,
    cross_entropy_map,
    masked_critic_input,
    multiscale_l1,
    target_probabilities,
)

LN2 = math.log(2.0)


def test_adversarial_bce_values_and_lists():
    zeros = torch.zeros(2, 1, 3, 3)
    assert adversarial_bce(zeros, real=True).item() == pytest.approx(LN2)
    assert adversarial_bce(zeros, real=False).item() == pytest.approx(LN2)
    logit = torch.tensor([[math.log(3.0)]])  # sigma = 0.75
    assert adversarial_bce(logit, real=True).item() == pytest.approx(-math.log(0.75))
    assert adversarial_bce(logit, real=False).item() == pytest.approx(-math.log(0.25))
    # a PatchDiscriminator returns every layer: the last is the logits
    assert adversarial_bce([torch.randn(1, 8, 4, 4), logit], real=True).item() == pytest.approx(-math.log(0.75))
    with pytest.raises(ValueError, match="empty list"):
        adversarial_bce([], real=True)


def test_target_probabilities():
    logits = torch.zeros(1, 3, 2, 2)
    label = torch.tensor([[[[0, 2], [1, 255]]]])
    onehot, valid = target_probabilities(label, logits, ignore_index=255)
    expected = torch.tensor([[[1, 0], [0, 0]], [[0, 0], [1, 0]], [[0, 1], [0, 0]]], dtype=torch.float32)[None]
    torch.testing.assert_close(onehot, expected)
    assert valid.tolist() == [[[[True, True], [True, False]]]]
    same, _ = target_probabilities(expected, logits)  # one-hot passes through
    assert same is not None and torch.equal(same, expected)
    binary, _ = target_probabilities(torch.tensor([[[1.0, 0.0]]]), torch.zeros(1, 1, 1, 2))  # (B, *spatial)
    assert binary.tolist() == [[[[1.0, 0.0]]]]


@pytest.mark.parametrize(
    "label, logits, match",
    [
        (torch.full((1, 1, 2, 2), 3), torch.zeros(1, 3, 2, 2), r"class indices in \[0, 2\]"),
        (torch.full((1, 1, 2, 2), 255.0), torch.zeros(1, 1, 2, 2), r"\{0, 255\}"),
        (torch.zeros(1, 1, 2, 3), torch.zeros(1, 3, 2, 2), "does not match"),
        (torch.zeros(1, 2, 2, 2), torch.zeros(1, 3, 2, 2), "2 channels"),
    ],
)
def test_target_probabilities_bad_labels(label, logits, match):
    with pytest.raises(ValueError, match=match):
        target_probabilities(label, logits)


def test_confidence_weighted_cross_entropy_values():
    # two pixels of one binary image, logits 0: CE ln 2 each; confidences (0.5, 0): weights (0.25, 1)
    logits = torch.zeros(1, 2, 1, 2)
    label = torch.zeros(1, 1, 1, 2, dtype=torch.long)
    confidence = torch.tensor([0.5, 0.0]).reshape(1, 1, 1, 2)
    loss = confidence_weighted_cross_entropy(logits, label, confidence, gamma=2.0)
    assert loss.item() == pytest.approx((0.25 * LN2 + LN2) / 2)
    # no confidence: plain CE; full confidence: nothing to learn
    ce = cross_entropy_map(logits, label)[0].mean()
    assert confidence_weighted_cross_entropy(logits, label, torch.zeros_like(confidence)).item() == pytest.approx(
        ce.item()
    )
    assert confidence_weighted_cross_entropy(logits, label, torch.ones_like(confidence)).item() == 0.0


def test_confidence_weight_is_per_pixel_and_detached():
    torch.manual_seed(0)
    logits = torch.randn(2, 2, 4, 4, requires_grad=True)
    label = torch.randint(0, 2, (2, 1, 4, 4))
    conf_logits = torch.randn(2, 1, 4, 4, requires_grad=True)
    loss = confidence_weighted_cross_entropy(logits, label, torch.sigmoid(conf_logits), gamma=2.0)
    g_logits, g_conf = torch.autograd.grad(loss, (logits, conf_logits), allow_unused=True)
    assert g_conf is None  # an attention weight, not a path into the confidence network
    ce, _ = cross_entropy_map(logits, label)
    w = (1 - torch.sigmoid(conf_logits).detach()[:, 0]) ** 2
    (g_direct,) = torch.autograd.grad((w * ce).mean(), logits)
    torch.testing.assert_close(g_logits, g_direct)
    # a per-pixel weight differs from the authors' scalar factor on the averaged loss
    scalar = w.mean() * ce.mean()
    assert not math.isclose(loss.item(), scalar.item(), rel_tol=1e-3)


def test_confidence_weighted_cross_entropy_bad_inputs():
    logits, label = torch.zeros(1, 2, 2, 2), torch.zeros(1, 1, 2, 2, dtype=torch.long)
    with pytest.raises(ValueError, match="shape"):
        confidence_weighted_cross_entropy(logits, label, torch.zeros(1, 2, 2, 2))
    with pytest.raises(ValueError, match="sigmoid"):
        confidence_weighted_cross_entropy(logits, label, torch.full((1, 1, 2, 2), 3.0))
    with pytest.raises(ValueError, match="gamma"):
        confidence_weighted_cross_entropy(logits, label, torch.zeros(1, 1, 2, 2), gamma=-1)


def test_masked_critic_input():
    image = torch.arange(2 * 2 * 3, dtype=torch.float32).reshape(1, 2, 2, 3)  # two image channels
    probs = torch.softmax(torch.randn(1, 3, 2, 3), 1)
    x = masked_critic_input(image, probs)
    assert x.shape == (1, 4, 2, 3)  # 2 foreground classes x 2 image channels
    torch.testing.assert_close(x[:, 0], image[:, 0] * probs[:, 1])
    torch.testing.assert_close(x[:, 3], image[:, 1] * probs[:, 2])
    sig = torch.rand(1, 1, 2, 3)
    torch.testing.assert_close(masked_critic_input(image, sig), image * sig)
    with pytest.raises(ValueError, match="differ"):
        masked_critic_input(image, torch.rand(1, 1, 2, 2))


def test_multiscale_l1():
    a = [torch.zeros(1, 1, 2, 2), torch.zeros(1, 4, 1, 1)]
    b = [torch.ones(1, 1, 2, 2), torch.full((1, 4, 1, 1), 3.0)]
    assert multiscale_l1(a, b).item() == pytest.approx((1 + 3) / 2)  # the mean over layers of the mean |a - b|
    with pytest.raises(ValueError, match="same non-zero number"):
        multiscale_l1(a, b[:1])
    with pytest.raises(ValueError, match="layer 1"):
        multiscale_l1(a, [b[0], torch.ones(1, 2, 1, 1)])
