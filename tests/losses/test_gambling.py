"""Betting map and gambling loss: hand-computed values, budget, smoothing, ignored pixels, gradients."""

import math

import pytest
import torch

from monai_gamble.losses import GamblingLoss, betting_map, class_probabilities, cross_entropy_map
from monai_gamble.networks.nets import Gambler

LN3 = math.log(3.0)


def row(*values: float) -> torch.Tensor:
    """A (1, 1, 1, N) tensor: one image of one row of pixels."""
    return torch.tensor(values, dtype=torch.float64).reshape(1, 1, 1, -1)


@pytest.mark.parametrize(
    "logits, beta, activation, expected",
    [
        # exp: stakes (1, 3), budget 2 -> (0.5, 1.5); beta = 1 smooths to (2, 4) / 6 * 2
        (row(0.0, LN3), 0.0, "exp", [0.5, 1.5]),
        (row(0.0, LN3), 1.0, "exp", [2 / 3, 4 / 3]),
        # sigmoid: stakes (0.5, 0.75) -> (0.8, 1.2); beta = 0.25 -> (0.75, 1.0) / 1.75 * 2
        (row(0.0, LN3), 0.0, "sigmoid", [0.8, 1.2]),
        (row(0.0, LN3), 0.25, "sigmoid", [1.5 / 1.75, 2.0 / 1.75]),
        (row(5.0, 5.0, 5.0), 0.02, "sigmoid", [1.0, 1.0, 1.0]),
    ],
)
def test_betting_map_values(logits, beta, activation, expected):
    w = betting_map(logits, beta=beta, activation=activation)
    assert w.shape == logits.shape
    torch.testing.assert_close(w.flatten(), torch.tensor(expected, dtype=torch.float64))


@pytest.mark.parametrize("activation", ["sigmoid", "exp"])
@pytest.mark.parametrize("shape", [(3, 1, 8, 6), (2, 1, 4, 5, 3)])
def test_budget_is_one_per_image_2d_3d(activation, shape):
    g = torch.randn(shape) * 3
    w = betting_map(g, beta=0.02, activation=activation)
    assert (w >= 0).all()
    torch.testing.assert_close(w.mean(dim=tuple(range(1, g.ndim))), torch.ones(shape[0]))


@pytest.mark.parametrize("activation", ["sigmoid", "exp"])
def test_beta_smooths_the_map_towards_uniform(activation):
    g = torch.randn(2, 1, 16, 16) * 2
    spreads = [betting_map(g, beta=b, activation=activation).std().item() for b in (0.0, 0.02, 0.5, 10.0, 1e6)]
    assert all(a > b for a, b in zip(spreads, spreads[1:], strict=False)), spreads
    assert spreads[-1] < 1e-3


def test_beta_is_not_a_no_op_for_exp():
    """As printed, eq. 6 puts beta inside the exponent, where it cancels; here it does not."""
    g = row(0.0, 1.0, 2.0)
    assert not torch.allclose(betting_map(g, 0.0, "exp"), betting_map(g, 0.5, "exp"))


def test_ignored_pixels_get_no_budget():
    g = row(0.0, LN3, 7.0)
    mask = torch.tensor([True, True, False]).reshape(1, 1, 1, 3)
    w = betting_map(g, beta=0.0, activation="exp", mask=mask)
    torch.testing.assert_close(w.flatten(), torch.tensor([0.5, 1.5, 0.0], dtype=torch.float64))
    empty = betting_map(g, mask=torch.zeros_like(mask))  # an image with no counted pixel
    assert torch.equal(empty, torch.zeros_like(empty))


def test_exp_does_not_overflow():
    w = betting_map(row(1000.0, 0.0, -1000.0), beta=0.02, activation="exp")
    assert torch.isfinite(w).all()
    torch.testing.assert_close(w.flatten(), torch.tensor([3.0, 0.0, 0.0], dtype=torch.float64))


@pytest.mark.parametrize("activation", ["sigmoid", "exp"])
@pytest.mark.parametrize("beta", [0.0, 0.02])
@pytest.mark.parametrize("base", [-1e4, 1e4])
def test_extreme_logits_give_the_exact_map(base, beta, activation):
    """Logits of -1e4 and +1e4 (float64): the exact map, no NaN (exp, beta > 0) and no all-zero map
    (sigmoid, beta = 0, every sigmoid underflowing)."""
    g = row(base, base + LN3).requires_grad_(True)
    w = betting_map(g, beta=beta, activation=activation)
    # exact stakes: a(base), a(base + ln 3) (+ beta); ratios to double precision
    if activation == "exp" and base > 0:
        expected = [0.5, 1.5]  # e^1e4 (1, 3): beta is negligible
    elif activation == "exp":
        expected = [0.5, 1.5] if beta == 0 else [1.0, 1.0]  # e^-1e4 (1, 3), or beta dominating
    elif base > 0:
        expected = [1.0, 1.0]  # both sigmoids are 1
    else:
        expected = [0.5, 1.5] if beta == 0 else [1.0, 1.0]  # sigmoid(g) ~ e^g (1, 3), or beta dominating
    torch.testing.assert_close(w.detach().flatten(), torch.tensor(expected, dtype=torch.float64))
    (grad,) = torch.autograd.grad((w * torch.tensor([1.0, 2.0], dtype=torch.float64).reshape(w.shape)).sum(), g)
    assert torch.isfinite(grad).all()


@pytest.mark.parametrize("activation", ["sigmoid", "exp"])
@pytest.mark.parametrize("beta", [0.0, 0.02])
@pytest.mark.parametrize("value", [-1e4, 1e4])
def test_uniform_extreme_logits_float32(value, beta, activation):
    # the case of the issue: every betting logit of an image far below (or above) the float32 range of exp
    g = torch.full((2, 1, 8, 8), value)
    w = betting_map(g, beta=beta, activation=activation)
    torch.testing.assert_close(w, torch.ones_like(w))


def test_budget():
    g = row(0.0, LN3)
    torch.testing.assert_close(
        betting_map(g, 0.0, "exp", budget=4.0).flatten(), torch.tensor([1.0, 3.0], dtype=torch.float64)
    )
    # the authors' 65536 on a 512x512 crop: a mean weight of 0.25
    w = betting_map(torch.randn(2, 1, 512, 512), budget=65536)
    torch.testing.assert_close(w.sum(dim=(1, 2, 3)), torch.full((2,), 65536.0))
    torch.testing.assert_close(w.mean(dim=(1, 2, 3)), torch.full((2,), 0.25))
    mask = torch.tensor([True, True, False]).reshape(1, 1, 1, 3)
    torch.testing.assert_close(
        betting_map(row(0.0, LN3, 5.0), 0.0, "exp", mask=mask, budget=8.0).flatten(),
        torch.tensor([2.0, 6.0, 0.0], dtype=torch.float64),
    )
    assert torch.equal(betting_map(row(1.0, 2.0), mask=torch.zeros(1, 1, 1, 2), budget=8.0), torch.zeros(1, 1, 1, 2))
    loss = GamblingLoss(beta=0.0, activation="exp", budget=1.0)  # 2 pixels, budget 1: half the mean-1 bet term
    out = loss(row(0.0, LN3).float(), torch.ones(1, 1, 1, 2), row(0.0, LN3).float())
    torch.testing.assert_close(out.betting_map.flatten(), torch.tensor([0.25, 0.75]))
    assert out.bet_ce.item() == pytest.approx((0.25 * math.log(2) + 0.75 * math.log(4 / 3)) / 2, rel=1e-6)


@pytest.mark.parametrize("budget", [0.0, -5.0, float("inf"), float("nan")])
def test_bad_budget(budget):
    with pytest.raises(ValueError, match="budget must be a positive number"):
        betting_map(torch.zeros(1, 1, 4, 4), budget=budget)
    with pytest.raises(ValueError, match="budget must be a positive number"):
        GamblingLoss(budget=budget)


def test_betting_map_gradient():
    g = torch.randn(2, 1, 3, 4, dtype=torch.float64, requires_grad=True)
    for activation in ("sigmoid", "exp"):
        assert torch.autograd.gradcheck(lambda x, a=activation: betting_map(x, 0.1, a), (g,))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"beta": -0.1}, "beta must be a finite non-negative"),
        ({"beta": float("nan")}, "beta must be a finite non-negative"),
        ({"activation": "softplus"}, "softplus"),
    ],
)
def test_betting_map_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        betting_map(torch.zeros(1, 1, 4, 4), **kwargs)


def test_betting_map_bad_shapes():
    with pytest.raises(ValueError, match=r"\(B, 1, \*spatial\)"):
        betting_map(torch.zeros(1, 2, 4, 4))
    with pytest.raises(ValueError, match="does not match"):
        betting_map(torch.zeros(1, 1, 4, 4), mask=torch.ones(1, 1, 4, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="floating-point"):
        betting_map(torch.zeros(1, 1, 4, 4, dtype=torch.long))
    for bad in (float("nan"), float("inf"), -float("inf")):
        logits = torch.zeros(1, 1, 4, 4)
        logits[0, 0, 1, 2] = bad
        with pytest.raises(ValueError, match="NaN or inf"):
            betting_map(logits)


def test_gambling_loss_hand_computed_binary():
    # one sigmoid channel, logits (0, ln 3), both pixels foreground: CE (ln 2, ln 4/3)
    logits = row(0.0, LN3).float()
    label = torch.ones_like(logits)
    bet = row(0.0, LN3).float()  # exp map (0.5, 1.5)
    out = GamblingLoss(lambda_ce=0.5, lambda_bet=2.0, beta=0.0, activation="exp")(logits, label, bet)
    ce = (math.log(2) + math.log(4 / 3)) / 2
    bet_ce = (0.5 * math.log(2) + 1.5 * math.log(4 / 3)) / 2
    assert out.ce.item() == pytest.approx(ce, rel=1e-6)
    assert out.bet_ce.item() == pytest.approx(bet_ce, rel=1e-6)
    assert out.seg_loss.item() == pytest.approx(0.5 * ce + 2.0 * bet_ce, rel=1e-6)
    assert out.gambler_loss.item() == pytest.approx(-bet_ce, rel=1e-6)
    torch.testing.assert_close(out.betting_map.flatten(), torch.tensor([0.5, 1.5]))


def test_uniform_bets_give_plain_cross_entropy_multiclass_weights_ignore():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 5, 4)
    label = torch.randint(0, 3, (2, 1, 5, 4))
    label[0, 0, 0] = 255  # ignored
    weight = [0.2, 1.0, 3.0]
    loss = GamblingLoss(lambda_ce=0.0, lambda_bet=1.0, weight=weight, ignore_index=255)
    out = loss(logits, label, torch.zeros(2, 1, 5, 4))  # sigmoid(0) everywhere: uniform bets
    valid = label[:, 0] != 255
    expected = torch.nn.functional.cross_entropy(
        logits, label[:, 0].masked_fill(~valid, 0), weight=torch.tensor(weight), reduction="none"
    )
    w_pix = torch.tensor(weight)[label[:, 0].masked_fill(~valid, 0)] * valid
    torch.testing.assert_close(out.ce, (expected * valid).sum() / w_pix.sum())
    torch.testing.assert_close(out.bet_ce, out.ce)
    assert (out.betting_map[0, 0, 0] == 0).all()  # no budget on ignored pixels
    torch.testing.assert_close(out.betting_map.sum(dim=(1, 2, 3)), valid.sum(dim=(1, 2)).float())


def test_bet_weighted_ce_matches_direct_formula_3d():
    torch.manual_seed(1)
    logits = torch.randn(2, 4, 3, 4, 5)
    label = torch.randint(0, 4, (2, 1, 3, 4, 5))
    bet = torch.randn(2, 1, 3, 4, 5)
    out = GamblingLoss(beta=0.1, activation="sigmoid")(logits, label, bet)
    ce = torch.nn.functional.cross_entropy(logits, label[:, 0], reduction="none")
    stake = torch.sigmoid(bet[:, 0]) + 0.1
    w = stake / stake.sum(dim=(1, 2, 3), keepdim=True) * 60
    torch.testing.assert_close(out.bet_ce, (w * ce).mean())
    torch.testing.assert_close(out.seg_loss, ce.mean() + (w * ce).mean())


def test_gradients_of_the_two_losses():
    torch.manual_seed(2)
    logits = torch.randn(2, 2, 6, 6, requires_grad=True)
    bet = torch.randn(2, 1, 6, 6, requires_grad=True)
    label = torch.randint(0, 2, (2, 1, 6, 6))
    out = GamblingLoss()(logits, label, bet)
    g_logits, g_bet = torch.autograd.grad(out.gambler_loss, (logits, bet), allow_unused=True, retain_graph=True)
    assert g_logits is None  # the gambler's loss does not train the segmenter
    assert g_bet.abs().sum() > 0
    # the gambler's gradient is minus the bet term's: the two players pull opposite ways
    (g_bet_seg,) = torch.autograd.grad(out.seg_loss, bet)
    torch.testing.assert_close(g_bet, -g_bet_seg)


def test_segmenter_gets_gradient_through_the_gamblers_input():
    """Path B of Fig. 1: through the betting map, with the gambler's weights frozen."""
    torch.manual_seed(3)
    image = torch.rand(2, 1, 16, 16)
    label = (image > 0.5).long()
    logits = torch.randn(2, 2, 16, 16, requires_grad=True)
    gambler = Gambler(2, 1, 2, channels=(4, 8))
    for p in gambler.parameters():
        p.requires_grad_(False)
    loss = GamblingLoss(lambda_ce=0.0, lambda_bet=1.0)

    (g_both,) = torch.autograd.grad(loss(logits, label, gambler(image, class_probabilities(logits))).seg_loss, logits)
    (g_path_a,) = torch.autograd.grad(
        loss(logits, label, gambler(image, class_probabilities(logits).detach())).seg_loss, logits
    )
    assert not torch.allclose(g_both, g_path_a)  # path B adds gradient
    # path A alone is the bet-weighted CE's gradient with the map held fixed
    w = loss(logits, label, gambler(image, class_probabilities(logits).detach())).betting_map.detach()
    ce, _ = cross_entropy_map(logits, label)
    (g_direct,) = torch.autograd.grad((w[:, 0] * ce).mean(), logits)
    torch.testing.assert_close(g_path_a, g_direct)


def test_class_probabilities():
    x = torch.randn(2, 3, 4, 4)
    torch.testing.assert_close(class_probabilities(x), torch.softmax(x, 1))
    torch.testing.assert_close(class_probabilities(x[:, :1]), torch.sigmoid(x[:, :1]))
    with pytest.raises(ValueError, match="B, C"):
        class_probabilities(torch.zeros(4, 4))


@pytest.mark.parametrize(
    "bet_shape, label_shape, match",
    [
        ((2, 2, 4, 4), (2, 1, 4, 4), "bet_logits must have shape"),
        ((2, 1, 4, 5), (2, 1, 4, 4), "same spatial size"),
        ((1, 1, 4, 4), (2, 1, 4, 4), "bet_logits must have shape"),
        ((2, 1, 4, 4), (2, 1, 4, 3), "does not match input"),
    ],
)
def test_gambling_loss_bad_shapes(bet_shape, label_shape, match):
    with pytest.raises(ValueError, match=match):
        GamblingLoss()(torch.zeros(2, 2, 4, 4), torch.zeros(label_shape, dtype=torch.long), torch.zeros(bet_shape))


def test_gambling_loss_bad_options_and_labels():
    with pytest.raises(ValueError, match="beta must be"):
        GamblingLoss(beta=-1)
    with pytest.raises(ValueError, match="lambda_bet must be"):
        GamblingLoss(lambda_bet=float("inf"))
    with pytest.raises(ValueError, match="exp"):
        GamblingLoss(activation="softmax")
    with pytest.raises(ValueError, match=r"\{0, 255\}"):  # a raw mask as the target of a sigmoid segmenter
        GamblingLoss()(torch.zeros(1, 1, 4, 4), torch.full((1, 1, 4, 4), 255.0), torch.zeros(1, 1, 4, 4))
