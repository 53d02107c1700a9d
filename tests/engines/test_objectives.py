"""The baseline objectives: which network gets gradient from which loss, critic inputs, and a few
iterations of each in SegmenterCriticTrainer."""

import math

import pytest
import torch
from monai.networks.nets import PatchDiscriminator, UNet

from monai_gamble.engines import (
    AdversarialObjective,
    ConfidenceObjective,
    GamblingObjective,
    SegANObjective,
    SegmenterCriticTrainer,
    frozen,
)
from monai_gamble.handlers import CriticMapHandler
from monai_gamble.losses import CrossEntropyLoss
from monai_gamble.networks.nets import ConfidenceNetwork, Gambler


def batch(b: int = 2, size: int = 16, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(b, 1, size, size, generator=g)
    return image, (image > 0.5).long()


def discriminator(in_channels: int) -> PatchDiscriminator:
    return PatchDiscriminator(spatial_dims=2, channels=8, in_channels=in_channels, num_layers_d=2)


CASES = {
    "adversarial": (lambda: AdversarialObjective(lambda_adv=0.5), lambda: discriminator(3)),
    "confidence": (lambda: ConfidenceObjective(), lambda: ConfidenceNetwork(2, 1, 2, channels=(4, 8))),
    "segan": (lambda: SegANObjective(clip=None), lambda: discriminator(1)),
    "gambling": (lambda: GamblingObjective(), lambda: Gambler(2, 1, 2, channels=(4, 8))),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradient_flow(name):
    make_objective, make_critic = CASES[name]
    objective, critic = make_objective(), make_critic()
    image, label = batch()
    logits = torch.randn(2, 2, 16, 16, requires_grad=True)
    # the critic's loss, from the detached prediction: gradient for the critic only
    c = objective.critic_loss(critic, image, logits.detach(), label)
    c.loss.backward()
    assert all(p.grad is not None for p in critic.parameters() if p.requires_grad)
    assert logits.grad is None
    critic.zero_grad()
    # the segmenter's loss through the frozen critic: gradient for the segmenter only ...
    s = objective.segmenter_loss(frozen(critic), image, logits, label)
    s.loss.backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    assert all(p.grad is None for p in critic.parameters())
    # ... and some of it comes through the critic (the adversarial path)
    (g_full,) = torch.autograd.grad(objective.segmenter_loss(frozen(critic), image, logits, label).loss, logits)
    supervised = objective.segmenter_loss(frozen(critic), image, logits, label, adversarial=False).loss
    (g_sup,) = torch.autograd.grad(supervised, logits)
    assert not torch.allclose(g_full, g_sup)


def test_adversarial_values_and_critic_inputs():
    image, label = batch()
    seen = []

    def critic(x):
        seen.append(x)
        return torch.zeros(x.shape[0], 1, 4, 4)  # sigma = 0.5 everywhere

    logits = torch.randn(2, 2, 16, 16)
    objective = AdversarialObjective(lambda_adv=0.01)
    assert objective.critic_loss(critic, image, logits, label).loss.item() == pytest.approx(math.log(2))
    real, fake = seen[0], seen[1]
    assert real.shape == fake.shape == (2, 3, 16, 16)  # image + 2 class channels
    torch.testing.assert_close(real[:, 1:], torch.cat([1 - label, label], 1).float())  # one-hot label
    torch.testing.assert_close(fake[:, 1:], torch.softmax(logits, 1))  # softmax, not argmax
    seg = objective.segmenter_loss(critic, image, logits, label).loss
    assert seg.item() == pytest.approx(CrossEntropyLoss()(logits, label).item() + 0.01 * math.log(2), rel=1e-6)


def test_confidence_map_and_weighting():
    image, label = batch()
    objective = ConfidenceObjective(lambda_adv=0.0, gamma=2.0)

    def sure(image, label_map):  # a critic that is certain everything is real: nothing left to learn
        return torch.full((label_map.shape[0], 1, *label_map.shape[2:]), 50.0)

    out = objective.segmenter_loss(sure, image, torch.randn(2, 2, 16, 16), label)
    assert out.loss.item() == pytest.approx(0.0, abs=1e-12)
    assert out.maps["confidence_map"].shape == (2, 1, 16, 16)
    m = objective.critic_map(sure, image, torch.randn(2, 2, 16, 16))
    assert torch.allclose(m, torch.ones_like(m))


def test_segan_critic_loss_is_minus_the_feature_distance_and_weights_are_clipped():
    image, label = batch()
    critic = discriminator(1)
    objective = SegANObjective(clip=0.05)
    logits = torch.randn(2, 2, 16, 16)
    c = objective.critic_loss(critic, image, logits, label)
    assert c.loss.item() == pytest.approx(-c.terms["mae"].item()) and c.terms["mae"] > 0
    objective.after_critic_step(critic)
    assert max(p.abs().max().item() for p in critic.parameters()) <= 0.05 + 1e-7


def test_objective_bad_options():
    with pytest.raises(ValueError, match="lambda_adv"):
        AdversarialObjective(lambda_adv=-1)
    with pytest.raises(ValueError, match="gamma"):
        ConfidenceObjective(gamma=-2)
    with pytest.raises(ValueError, match="clip"):
        SegANObjective(clip=0)
    with pytest.raises(ValueError, match="either"):
        GamblingObjective(loss=GamblingObjective().loss, beta=0.1)


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_objective_trains_in_the_engine(name):
    make_objective, make_critic = CASES[name]
    torch.manual_seed(0)
    seg = UNet(2, 1, 2, channels=(4, 8, 16), strides=(2, 2), norm="batch")
    critic = make_critic()
    data = [dict(zip(("image", "label"), batch(seed=i), strict=True)) for i in range(3)]
    objective = make_objective()
    trainer = SegmenterCriticTrainer(
        "cpu", 2, data, seg, torch.optim.Adam(seg.parameters(), 1e-3), critic,
        torch.optim.Adam(critic.parameters(), 1e-3), objective, decollate=False,
    )  # fmt: skip
    before = [p.detach().clone() for p in critic.parameters()]
    trainer.run()
    out = trainer.state.output
    assert torch.isfinite(out["loss"]) and torch.isfinite(out["critic_loss"])
    assert f"{objective.critic_name}_loss" in out
    assert any(not torch.equal(a, b) for a, b in zip(before, critic.parameters(), strict=True))
    if objective.map_name is not None:  # the betting and confidence maps are exposed the same way
        assert out[objective.map_name].shape == (2, 1, 16, 16)
        handler = CriticMapHandler(critic, objective)
        image, _ = batch()

        class State:
            output = {"image": image, "pred": seg(image)}

        class Engine:
            state = State()

        handler(Engine())
        assert Engine.state.output[objective.map_name].shape == (2, 1, 16, 16)


def test_segan_clips_inside_the_engine():
    torch.manual_seed(0)
    seg = UNet(2, 1, 2, channels=(4, 8, 16), strides=(2, 2), norm="batch")
    critic = discriminator(1)
    data = [dict(zip(("image", "label"), batch(seed=i), strict=True)) for i in range(2)]
    trainer = SegmenterCriticTrainer(
        "cpu", 1, data, seg, torch.optim.Adam(seg.parameters(), 1e-2), critic,
        torch.optim.Adam(critic.parameters(), 1e-1), SegANObjective(clip=0.05), decollate=False,
    )  # fmt: skip
    trainer.run()
    assert max(p.abs().max().item() for p in critic.parameters()) <= 0.05 + 1e-7


def test_call_critic_feeds_pairs_concatenations_and_masked_images():
    from monai_gamble.engines import CriticInput, call_critic
    from monai_gamble.losses import masked_critic_input

    image, p = torch.rand(2, 1, 16, 16), torch.softmax(torch.randn(2, 3, 16, 16), 1)
    calls = []

    def critic(*args):
        calls.append([a.shape[1] for a in args])
        return [torch.zeros(2, 1, 4, 4), torch.ones(2, 1, 8, 8)]  # a PatchGAN: every layer, coarse logits

    out = call_critic(critic, image, p, "concatenate", size=(16, 16))
    assert calls[-1] == [4] and out.shape == (2, 1, 16, 16) and torch.equal(out, torch.ones(2, 1, 16, 16))
    assert call_critic(critic, image, p, CriticInput.PAIR).shape == (2, 1, 8, 8) and calls[-1] == [1, 3]
    (x,), outs = call_critic(critic, image, p, "masked", all_outputs=True, with_input=True)
    assert torch.equal(x, masked_critic_input(image, p)) and len(outs) == 2 and calls[-1] == [2]
    with pytest.raises(ValueError, match="Unsupported option 'glued'"):
        call_critic(critic, image, p, "glued")
    with pytest.raises(ValueError, match="empty list"):
        call_critic(lambda *a: [], image, p)


@pytest.mark.parametrize("name", sorted(CASES))
def test_not_adversarial_yet_is_the_supervised_loss_alone(name):
    from monai_gamble.engines import supervised_only

    make_objective, _ = CASES[name]
    image, label = batch()
    logits = torch.randn(2, 2, 16, 16)
    out = make_objective().segmenter_loss(None, image, logits, label, adversarial=False)  # no critic needed
    (term,) = out.terms
    assert torch.equal(out.terms[term], out.loss) and not out.maps
    assert supervised_only(out.loss, term).terms.keys() == out.terms.keys()


def test_semi_supervised_objective_is_importable_from_both_modules_and_abstract():
    from monai_gamble.engines import objectives, semi_supervised

    assert semi_supervised.SemiSupervisedAdversarialObjective is objectives.SemiSupervisedAdversarialObjective
    assert issubclass(objectives.SemiSupervisedAdversarialObjective, objectives.SemiSupervisedObjective)
    with pytest.raises(TypeError, match="abstract"):
        objectives.SemiSupervisedObjective()


def test_with_critic_map_adds_the_map_only_with_a_critic():
    from monai_gamble.engines import with_critic_map

    assert with_critic_map(["prob"], GamblingObjective(), object()) == ["prob", "betting_map"]
    assert with_critic_map(["prob"], GamblingObjective(), None) == ["prob"]
    assert with_critic_map(["pred"], AdversarialObjective(), object()) == ["pred"]  # no map
