"""ASME and flip TTA: weights on hand-computed similarity matrices, invariance to the order of the
transforms, the inverse mapping of each flip, one batched forward, logits out, and errors."""

import csv
import logging
import math

import pytest
import torch

from monai_gamble.inferers import (
    AdaptiveEnsembleInferer,
    TransformEnsembleInferer,
    asme_weights,
    dice_similarity_matrix,
    make_ensemble_inferer,
)
from monai_gamble.transforms import ClearSmallMask

# Table 1 of Liao, Ng & Hung (image 9.tif of the test set): origin, fliplr, flipud, both
PAPER_A = torch.tensor([[1, 0, 0.52, 0.79], [0, 1, 0, 0], [0.52, 0, 1, 0.65], [0.79, 0, 0.65, 1]])


def test_paper_example():
    # the paper prints the eigenvector [0.5810, 0, 0.5341, 0.6141] and the weights below (a = 100)
    v = torch.linalg.eigh(PAPER_A.double()).eigenvectors[:, -1].abs()
    torch.testing.assert_close(v.float(), torch.tensor([0.5810, 0.0, 0.5341, 0.6141]), atol=1e-4, rtol=0)
    torch.testing.assert_close(asme_weights(PAPER_A), torch.tensor([0.3291, 0.0227, 0.2651, 0.3831]), atol=1e-4, rtol=0)


def test_hand_computed_outlier():
    # members 0 and 1 agree, member 2 agrees with nobody: A has eigenvalues 2, 1, 0; the leading
    # eigenvector is [1, 1, 0] / sqrt(2), so c = [a^(1/sqrt2), a^(1/sqrt2), 1] / (2 a^(1/sqrt2) + 1)
    a = 100.0
    A = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    p = a ** (1 / math.sqrt(2))
    expected = torch.tensor([p, p, 1.0]) / (2 * p + 1)
    torch.testing.assert_close(asme_weights(A, a), expected)
    torch.testing.assert_close(asme_weights(A, 1.0), torch.full((3,), 1 / 3))  # a = 1: uniform


def test_two_members_and_repeated_top_eigenvalue_give_equal_weights():
    torch.testing.assert_close(asme_weights(torch.tensor([[1.0, 0.3], [0.3, 1.0]])), torch.tensor([0.5, 0.5]))
    # A = I: every vector is an eigenvector of the top eigenvalue; the weights must not be arbitrary
    torch.testing.assert_close(asme_weights(torch.eye(4)), torch.full((4,), 0.25))
    # two equal blocks: the top eigenspace is 2D; both blocks get the same weights
    A = torch.block_diag(torch.ones(2, 2), torch.ones(2, 2))
    torch.testing.assert_close(asme_weights(A), torch.full((4,), 0.25))


def test_weights_follow_a_permutation_of_the_members():
    g = torch.Generator().manual_seed(0)
    mats = [torch.eye(5), torch.block_diag(torch.ones(2, 2), torch.ones(3, 3)), PAPER_A]
    for _ in range(20):
        x = torch.rand(5, 5, generator=g)
        mats.append(((x + x.T) / 2).fill_diagonal_(1.0))
    for A in mats:
        n = A.shape[0]
        perm = torch.randperm(n, generator=g)
        torch.testing.assert_close(asme_weights(A[perm][:, perm]), asme_weights(A)[perm])


def test_batched_and_stable():
    A = torch.stack([PAPER_A, torch.eye(4)])
    w = asme_weights(A, a=1e300)  # a ** v overflows float64; the softmax form does not
    assert w.shape == (2, 4) and torch.isfinite(w).all()
    torch.testing.assert_close(w.sum(1), torch.ones(2))
    assert w[0].argmax() == 3 and w[0, 1].item() < 1e-30


@pytest.mark.parametrize(
    "matrix, a, match",
    [
        (torch.ones(2, 3), 100.0, "must be \\(N, N\\) or \\(B, N, N\\)"),
        (torch.tensor([[1.0, 0.2], [0.4, 1.0]]), 100.0, "must be symmetric"),
        (torch.tensor([[1.0, -0.2], [-0.2, 1.0]]), 100.0, "must be non-negative"),
        (torch.tensor([[1.0, float("nan")], [float("nan"), 1.0]]), 100.0, "NaN or infinite"),
        (torch.eye(2), 0.0, "a must be a positive number"),
    ],
)
def test_bad_similarity_matrices(matrix, a, match):
    with pytest.raises(ValueError, match=match):
        asme_weights(matrix, a)


def test_dice_similarity_matrix():
    masks = torch.zeros(3, 1, 1, 4, 4, dtype=torch.bool)  # (N, B, K, H, W)
    masks[0, 0, 0, :2, :2] = True  # 4 px
    masks[1, 0, 0, :2, :] = True  # 8 px, 4 shared with member 0
    expected = torch.tensor([[1.0, 8 / 12, 0.0], [8 / 12, 1.0, 0.0], [0.0, 0.0, 1.0]])  # member 2 is empty
    torch.testing.assert_close(dice_similarity_matrix(masks)[0], expected)
    empty = torch.zeros(2, 1, 1, 4, 4)
    torch.testing.assert_close(dice_similarity_matrix(empty)[0], torch.ones(2, 2))  # empty on empty agrees


class PositionNet(torch.nn.Module):
    """A network that is not flip-equivariant: logits = input * ramp along both axes (2 channels)."""

    def __init__(self, h: int, w: int) -> None:
        super().__init__()
        ramp = torch.linspace(-2, 2, h)[:, None] + torch.linspace(0, 3, w)[None, :]
        self.register_buffer("ramp", ramp)
        self.batch_sizes: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.batch_sizes.append(x.shape[0])
        fg = x[:, :1] * self.ramp
        return torch.cat([-fg, fg], dim=1)


@pytest.mark.parametrize("axes", [(), (0,), (1,), (0, 1)])
def test_inverse_mapping_of_each_flip(axes):
    torch.manual_seed(0)
    x = torch.rand(2, 1, 6, 5)
    net = PositionNet(6, 5)
    out = TransformEnsembleInferer(transforms=[axes], return_logits=False)(x, net)
    dims = [a + 2 for a in axes]
    flip = (lambda t: torch.flip(t, dims)) if dims else (lambda t: t)
    torch.testing.assert_close(out, torch.softmax(flip(net(flip(x))), dim=1))
    if axes:  # without mapping back, the result would differ (the network is not equivariant)
        assert not torch.allclose(out, torch.softmax(net(flip(x)), dim=1))


def test_one_batched_forward_mean_and_logits():
    torch.manual_seed(0)
    x = torch.rand(3, 1, 6, 5)
    net = PositionNet(6, 5)
    inferer = TransformEnsembleInferer()
    logits = inferer(x, net)
    assert net.batch_sizes == [12]  # four copies of a batch of 3 in one forward
    members = [torch.softmax(torch.flip(net(torch.flip(x, d)), d) if d else net(x), 1) for d in ([], [2], [3], [2, 3])]
    torch.testing.assert_close(torch.softmax(logits, 1), torch.stack(members).mean(0))
    torch.testing.assert_close(inferer.last_weights, torch.full((3, 4), 0.25))
    assert inferer.last_similarity.shape == (3, 4, 4) and inferer.names == ["identity", "flip_0", "flip_1", "flip_0_1"]


class CornerNet(torch.nn.Module):
    """Segments bright pixels (flip-equivariant), except that it predicts nothing when the pixel at
    [0, 0] is bright: only the copy flipped along the first axis of an image bright at [H-1, 0] fails."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fg = 10 * (x[:, :1] - 0.5)
        fg = torch.where(x[:, :1, :1, :1] > 0.5, torch.full_like(fg, -10.0), fg)
        return torch.cat([-fg, fg], dim=1)


def test_asme_downweights_the_outlier_and_ignores_the_order_of_the_transforms():
    x = torch.zeros(1, 1, 8, 8)
    x[0, 0, 2:7, 0:4] = 1.0  # an object touching the left border
    x[0, 0, 7, 0] = 1.0  # bright at [H-1, 0]: the flip_0 copy has it at [0, 0]
    asme = AdaptiveEnsembleInferer(return_logits=False)
    blend = asme(x, CornerNet())
    # similarities: flip_0 predicts nothing (Dice 0 with the three others, which agree: Dice 1)
    expected_a = torch.ones(4, 4)
    expected_a[1, :] = expected_a[:, 1] = 0.0
    expected_a[1, 1] = 1.0
    torch.testing.assert_close(asme.last_similarity[0], expected_a)
    p = 100 ** (1 / math.sqrt(3))  # leading eigenvector [1, 0, 1, 1] / sqrt(3)
    torch.testing.assert_close(asme.last_weights[0], torch.tensor([p, 1.0, p, p]) / (3 * p + 1))
    mean = TransformEnsembleInferer(return_logits=False)(x, CornerNet())
    inside = x[0, 0] > 0.5
    assert (blend[0, 1][inside] > mean[0, 1][inside]).all()  # closer to the consensus than the mean
    # another order of the same transforms: the same blend, the weights permuted with the transforms
    order = [(0, 1), (1,), (), (0,)]
    permuted = AdaptiveEnsembleInferer(transforms=order, return_logits=False)
    torch.testing.assert_close(permuted(x, CornerNet()), blend)
    torch.testing.assert_close(permuted.last_weights[0], asme.last_weights[0][[3, 2, 0, 1]])


def test_sigmoid_callables_callback_and_logging(caplog, tmp_path):
    torch.manual_seed(0)
    x = torch.rand(2, 1, 6, 6)
    net = torch.nn.Conv2d(1, 1, 3, padding=1).eval()
    rot = (lambda t: torch.rot90(t, 1, (2, 3)), lambda t: torch.rot90(t, -1, (2, 3)))
    seen = []
    inferer = AdaptiveEnsembleInferer(
        transforms=[(), rot], activation="sigmoid", callback=lambda w, s: seen.append((w, s)), blend="probabilities"
    )
    with torch.no_grad(), caplog.at_level(logging.DEBUG, logger="monai_gamble.inferers.asme"):
        logits = inferer(x, net)
        inferer(x, net)
    probs = [torch.sigmoid(net(x)), torch.sigmoid(torch.rot90(net(torch.rot90(x, 1, (2, 3))), -1, (2, 3)))]
    w = inferer.last_weights
    expected = w[:, 0, None, None, None] * probs[0] + w[:, 1, None, None, None] * probs[1]
    torch.testing.assert_close(torch.sigmoid(logits), expected, atol=1e-5, rtol=1e-5)
    assert len(seen) == 2 and seen[0][0].shape == (2, 2) and seen[0][1].shape == (2, 2, 2)
    assert "AdaptiveEnsembleInferer weights {'identity':" in caplog.text
    means = inferer.save_weights(tmp_path / "w.csv", ids=["a", "b", "c", "d"])
    rows = list(csv.reader(open(tmp_path / "w.csv")))
    assert rows[0] == ["id", "identity", "transform_1"] and [r[0] for r in rows[1:]] == ["a", "b", "c", "d"]
    assert sum(means.values()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="3 ids for 4 recorded images"):
        inferer.save_weights(tmp_path / "w.csv", ids=["a", "b", "c"])
    inferer.reset()
    with pytest.raises(ValueError, match="no weights recorded"):
        inferer.save_weights(tmp_path / "w.csv")


def test_bad_inferer_arguments():
    with pytest.raises(ValueError, match="at least one transform"):
        TransformEnsembleInferer(transforms=[])
    with pytest.raises(ValueError, match="must be a sequence of spatial axes to flip or a \\(forward, inverse\\)"):
        TransformEnsembleInferer(transforms=["lr"])
    with pytest.raises(ValueError, match="distinct non-negative integers"):
        TransformEnsembleInferer(transforms=[(0, 0)])
    with pytest.raises(ValueError, match="Unsupported option 'relu'"):
        TransformEnsembleInferer(activation="relu")
    with pytest.raises(ValueError, match="a must be a positive number"):
        AdaptiveEnsembleInferer(a=-1)
    with pytest.raises(ValueError, match="names has 1 entries for 4 transforms"):
        AdaptiveEnsembleInferer(names=["x"])
    rot = (lambda t: torch.rot90(t, 1, (2, 3)), lambda t: torch.rot90(t, -1, (2, 3)))
    with pytest.raises(ValueError, match="transform_1 changes the input's shape \\(1, 1, 6, 5\\) to \\(1, 1, 5, 6\\)"):
        TransformEnsembleInferer(transforms=[(), rot])(torch.rand(1, 1, 6, 5), PositionNet(6, 5))
    with pytest.raises(ValueError, match="must return one tensor"):
        TransformEnsembleInferer()(torch.rand(1, 1, 6, 5), lambda x: (x, x))


class MarginNet(torch.nn.Module):
    """Two-channel logits whose foreground margin is ``margins[k]`` for an input of constant value k
    (the ensemble's member k sees its input shifted by k)."""

    def __init__(self, margins) -> None:
        super().__init__()
        self.margins = torch.tensor(margins, dtype=torch.float32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.margins[x[:, 0].round().long()]  # (B, H, W)
        return torch.stack([torch.zeros_like(m), m], dim=1)


def shifted_members(n):
    """n members: member k adds k to the input (a constant 0 image), the inverse is the identity."""
    return [(lambda t, k=k: t + k, lambda t: t) for k in range(n)]


MARGINS = (6.0, -1.0, -1.0, -1.0)


@pytest.mark.parametrize("make", [TransformEnsembleInferer, lambda **kw: AdaptiveEnsembleInferer(a=1.0, **kw)])
def test_the_issue_example_logits_against_probabilities(make):
    """Foreground margins (6, -1, -1, -1) with equal weights: foreground when the logits are blended
    (mean margin 0.75), background when the probabilities are (mean p = 0.451)."""
    x = torch.zeros(1, 1, 3, 3)
    net = MarginNet(MARGINS)
    on_logits = make(transforms=shifted_members(4), blend="logits", return_logits=False)
    on_probs = make(transforms=shifted_members(4), blend="probabilities", return_logits=False)
    p_logits, p_probs = on_logits(x, net), on_probs(x, net)
    torch.testing.assert_close(on_logits.last_weights, torch.full((1, 4), 0.25))  # equal weights (a = 1 for ASME)
    mean_p = sum(1 / (1 + math.exp(-m)) for m in MARGINS) / 4
    assert mean_p == pytest.approx(0.451, abs=5e-4)
    torch.testing.assert_close(p_probs[0, 1], torch.full((3, 3), mean_p))
    torch.testing.assert_close(p_logits[0, 1], torch.full((3, 3), 1 / (1 + math.exp(-0.75))))
    assert (p_logits.argmax(1) == 1).all() and (p_probs.argmax(1) == 0).all()
    # in logit space, the logits blend returns the blended logits themselves: margin 0.75
    logits = make(transforms=shifted_members(4), blend="logits")(x, net)
    torch.testing.assert_close(logits[0, 1] - logits[0, 0], torch.full((3, 3), 0.75))


def test_blend_defaults():
    assert TransformEnsembleInferer().blend == "probabilities"  # flip TTA: the mean of the probabilities
    assert AdaptiveEnsembleInferer().blend == "logits"  # ASME: the paper's formula on the network's outputs
    assert make_ensemble_inferer("mean").blend == "logits" and make_ensemble_inferer("asme").blend == "logits"


def test_make_ensemble_inferer():
    assert make_ensemble_inferer("none").num_transforms == 1
    mean = make_ensemble_inferer("mean", transforms=[[], [0]], blend="probabilities")
    assert type(mean) is TransformEnsembleInferer and mean.num_transforms == 2 and mean.blend == "probabilities"
    asme = make_ensemble_inferer("asme", a=10.0, activation="sigmoid")
    assert isinstance(asme, AdaptiveEnsembleInferer) and asme.a == 10.0 and asme.activation == "sigmoid"
    with pytest.raises(ValueError, match="'median' is not a valid value"):
        make_ensemble_inferer("median")


class AreaNet(torch.nn.Module):
    """Member k (input shifted by k) has the foreground margin ``fg`` on the first ``size`` pixels of
    the flattened 4x4 image and ``bg`` elsewhere, ``specs[k] = (size, fg, bg)``."""

    def __init__(self, specs) -> None:
        super().__init__()
        self.specs = [(s, 4.0, -4.0) if isinstance(s, int) else s for s in specs]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.empty(x.shape[0], 16)
        for i, k in enumerate(x[:, 0, 0, 0].round().long().tolist()):
            size, fg, bg = self.specs[k]
            out[i] = bg
            out[i, :size] = fg
        fg = out.reshape(-1, 1, 4, 4)
        return torch.cat([torch.zeros_like(fg), fg], dim=1)


def test_area_rule_clears_a_small_blend():
    """Members with 10, 10, 10 and 0 foreground pixels (margins +-4); the blends have 10 px (ASME
    follows the three that agree; the uniform mean margin is 2 on the 10 px)."""
    x = torch.zeros(1, 1, 4, 4)
    net = AreaNet([10, 10, 10, 0])
    kept = AdaptiveEnsembleInferer(transforms=shifted_members(4), area_rule=ClearSmallMask(6), area_rule_on="uniform")
    out = kept(x, net)
    assert kept.last_cleared.tolist() == [False] and (out.argmax(1) == 1).sum() == 10
    # threshold 10: cleared on either rule, the output is background everywhere (finite logits)
    for on in ("uniform", "ensemble"):
        for blend in ("logits", "probabilities"):
            inferer = AdaptiveEnsembleInferer(
                transforms=shifted_members(4), blend=blend, area_rule=ClearSmallMask(10), area_rule_on=on
            )
            out = inferer(x, net)
            assert inferer.last_cleared.tolist() == [True] and torch.isfinite(out).all()
            assert (torch.softmax(out, 1)[:, 0] > 0.999).all()
            inferer.return_logits = False
            assert torch.equal(inferer(x, net), torch.stack([torch.ones(4, 4), torch.zeros(4, 4)])[None])


def test_area_rule_uniform_differs_from_ensemble():
    """Two members agree on 8 px with a small margin (+1; -10 elsewhere), a third predicts nothing
    with margin -10. ASME weights the two (Dice 1 between them, 0 with the third): c = (p, p, 1) /
    (2p + 1), p = 100^(1/sqrt 2), so its blended margin on the 8 px is (2p - 10) / (2p + 1) > 0: 8 px.
    The uniform blend's is (1 + 1 - 10) / 3 < 0: empty. With a threshold of 5 px the authors' rule
    (``uniform``) clears the image, the ``ensemble`` rule keeps the ASME blend's 8 px."""
    x = torch.zeros(1, 1, 4, 4)
    net = AreaNet([(8, 1.0, -10.0), (8, 1.0, -10.0), (0, 0.0, -10.0)])
    p = 100 ** (1 / math.sqrt(2))
    outs = {}
    for on in ("ensemble", "uniform"):
        inferer = AdaptiveEnsembleInferer(transforms=shifted_members(3), area_rule=ClearSmallMask(5), area_rule_on=on)
        outs[on] = inferer(x, net)
        torch.testing.assert_close(inferer.last_weights[0], torch.tensor([p, p, 1.0]) / (2 * p + 1))
        assert inferer.last_cleared.tolist() == [on == "uniform"]
    margin = outs["ensemble"][0, 1] - outs["ensemble"][0, 0]
    torch.testing.assert_close(margin.flatten()[:8], torch.full((8,), (2 * p - 10) / (2 * p + 1)))
    assert (outs["ensemble"].argmax(1) == 1).sum() == 8 and (outs["uniform"].argmax(1) == 0).all()


def test_make_ensemble_inferer_area_rule_on_is_moot_without_a_rule():
    assert make_ensemble_inferer("asme", area_rule_on="uniform").area_rule_on == "ensemble"
    assert make_ensemble_inferer("mean", area_rule=ClearSmallMask(5), area_rule_on="uniform").area_rule_on == "uniform"
    with pytest.raises(ValueError, match="'uniformly' is not a valid value"):
        make_ensemble_inferer("asme", area_rule_on="uniformly")


def test_area_rule_errors_and_scaling():
    with pytest.raises(ValueError, match="area_rule_on='uniform' needs an area_rule"):
        AdaptiveEnsembleInferer(area_rule_on="uniform")
    with pytest.raises(ValueError, match="Unsupported option 'median'"):
        TransformEnsembleInferer(area_rule=ClearSmallMask(5), area_rule_on="median")
    with pytest.raises(ValueError, match="must be a monai_gamble.transforms.ClearSmallMask"):
        TransformEnsembleInferer(area_rule=5)
    with pytest.raises(ValueError, match="Unsupported option 'mean'"):
        TransformEnsembleInferer(blend="mean")
    # the threshold is scaled from the reference shape: 10 px at 8x8 is 2.5 px at 4x4
    x = torch.zeros(1, 1, 4, 4)
    inferer = TransformEnsembleInferer(transforms=[()], area_rule=ClearSmallMask(10, reference_shape=(8, 8)))
    inferer(x, AreaNet([3]))
    assert inferer.last_cleared.tolist() == [False]
    inferer(x, AreaNet([2]))
    assert inferer.last_cleared.tolist() == [True]
