"""Semi-supervised adversarial segmentation: the correctness target, the objective's losses and their
gradient paths, and the trainer's unsupervised phase (frozen discriminator, cycled loaders,
self-training from an iteration, events, accumulation, bad inputs)."""

import pytest
import torch
import torch.nn.functional as F
from monai.engines.utils import IterationEvents
from monai.networks.nets import PatchDiscriminator
from torch import nn

from monai_gamble.engines import (
    DiscriminatorTarget,
    GamblingObjective,
    ObjectiveOutput,
    SemiSupervisedAdversarialObjective,
    SemiSupervisedAdversarialTrainer,
    SemiSupervisedObjective,
    SemiSupervisedSchedule,
    correctness_target,
    frozen,
)
from monai_gamble.losses import TiltedCrossEntropyLoss
from monai_gamble.networks.nets import FCDiscriminator

torch.set_num_threads(1)
C, S = 4, 32


class MapCritic(nn.Module):
    """A critic whose logits are a fixed map times a learnable scale, plus a tiny dependence on its input."""

    def __init__(self, logit_map: torch.Tensor, coupling: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("logit_map", logit_map)
        self.scale = nn.Parameter(torch.ones(()))
        self.coupling = coupling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * self.logit_map + self.coupling * x[:, -C:].sum(1, keepdim=True)


def _nets(seed: int = 0):
    torch.manual_seed(seed)
    return nn.Conv2d(3, C, 3, padding=1), FCDiscriminator(2, 3 + C, channels=(4, 4, 4, 4))


def _data(n: int, labelled: bool, offset: int = 0):
    g = torch.Generator().manual_seed(n + offset)
    items = []
    for i in range(n):
        item = {"image": torch.rand(3, S, S, generator=g), "index": torch.tensor(i + offset)}
        if labelled:
            item["label"] = torch.randint(0, C, (1, S, S), generator=g)
        items.append(item)
    return items


def _loader(items, batch_size=2):
    return torch.utils.data.DataLoader(items, batch_size=batch_size, shuffle=False)


def _trainer(labelled=6, unlabelled=4, epochs=1, objective=None, nets=None, **kwargs):
    seg, critic = nets or _nets()
    kwargs.setdefault("decollate", False)
    return SemiSupervisedAdversarialTrainer(
        "cpu",
        epochs,
        _loader(_data(labelled, True)),
        _loader(_data(unlabelled, False, offset=100)) if unlabelled is not None else None,
        seg,
        torch.optim.SGD(seg.parameters(), 0.1),
        critic,
        torch.optim.SGD(critic.parameters(), 0.1),
        objective or SemiSupervisedAdversarialObjective(lambda_adv=0.1, lambda_unlabeled=0.1),
        **kwargs,
    )


# --- the correctness target ---------------------------------------------------------------------


def test_correctness_target_is_argmax_equals_label_with_ignored_pixels():
    logits = torch.zeros(1, 3, 2, 2)
    logits[0, 0, 0, 0] = logits[0, 1, 0, 1] = logits[0, 2, 1, 0] = logits[0, 2, 1, 1] = 5.0
    label = torch.tensor([[[[0, 2], [2, 255]]]])
    target, valid = correctness_target(logits, label, ignore_index=255)
    assert target.tolist() == [[[[1.0, 0.0], [1.0, 0.0]]]]
    assert valid.tolist() == [[[[True, True], [True, False]]]]
    # one-hot labels count by their argmax; a sigmoid segmenter by logit > 0
    onehot = F.one_hot(torch.tensor([[[0, 2], [2, 1]]]), 3).permute(0, 3, 1, 2).float()
    assert correctness_target(logits, onehot)[0].tolist() == [[[[1.0, 0.0], [1.0, 0.0]]]]
    binary = torch.tensor([[[[2.0, -1.0], [-3.0, 0.5]]]])
    assert correctness_target(binary, torch.tensor([[[[1, 1], [0, 0]]]]))[0].tolist() == [[[[1.0, 0.0], [1.0, 0.0]]]]


def test_correctness_target_rejects_labels_outside_the_classes():
    with pytest.raises(ValueError, match=r"class indices in \[0, 3\]"):
        correctness_target(torch.zeros(1, 4, 2, 2), torch.full((1, 1, 2, 2), 4))
    with pytest.raises(ValueError, match="does not match the logits"):
        correctness_target(torch.zeros(1, 4, 2, 2), torch.zeros(1, 1, 3, 3))


# --- the objective's losses and gradient paths --------------------------------------------------


def test_critic_loss_is_bce_against_correctness_and_trains_only_the_critic():
    torch.manual_seed(0)
    image, logits = torch.rand(2, 3, S, S), torch.randn(2, C, S, S, requires_grad=True)
    label = torch.randint(0, C, (2, 1, S, S))
    _, critic = _nets()
    obj = SemiSupervisedAdversarialObjective()
    out = obj.critic_loss(critic, image, logits.detach(), label)
    d = critic(torch.cat([image, torch.softmax(logits.detach(), 1)], 1))
    target = (logits.argmax(1, keepdim=True) == label).float()
    assert torch.allclose(out.loss, F.binary_cross_entropy_with_logits(d, target))
    assert 0 < out.terms["correct_fraction"] < 1 and out.maps["correctness_map"].shape == (2, 1, S, S)
    out.loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in critic.parameters())
    assert logits.grad is None


def test_segmenter_gets_adversarial_gradient_through_the_softmax_not_the_critic_weights():
    torch.manual_seed(0)
    image, label = torch.rand(2, 3, S, S), torch.randint(0, C, (2, 1, S, S))
    _, critic = _nets()
    # a supervised loss that is zero: only the adversarial term is left, through D(x, softmax)
    obj = SemiSupervisedAdversarialObjective(lambda_adv=1.0, loss=lambda x, y: 0.0 * x.sum())
    logits = torch.randn(2, C, S, S, requires_grad=True)
    out = obj.segmenter_loss(frozen(critic), image, logits, label)
    out.loss.backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0  # an argmax input would give none
    assert all(p.grad is None for p in critic.parameters())
    assert torch.allclose(out.loss, out.terms["adv"])
    # not adversarial: the supervised loss alone (cross-entropy by default), no critic needed
    ce_only = SemiSupervisedAdversarialObjective().segmenter_loss(None, image, logits, label, adversarial=False)
    assert torch.allclose(ce_only.loss, F.cross_entropy(logits, label[:, 0]))


def test_tce_as_the_supervised_loss_and_ignored_pixels():
    torch.manual_seed(0)
    image, logits = torch.rand(2, 3, S, S), torch.randn(2, C, S, S)
    label = torch.randint(0, C, (2, 1, S, S))
    label[:, :, :4] = 255
    tce = TiltedCrossEntropyLoss(t=1.0, level="class", ignore_index=255)
    obj = SemiSupervisedAdversarialObjective(loss=tce, lambda_adv=0.0, ignore_index=255)
    assert torch.allclose(obj.segmenter_loss(None, image, logits, label).loss, tce(logits, label))
    # ignored pixels count in neither BCE: changing the critic's output there changes nothing
    critic = MapCritic(torch.zeros(1, 1, S, S), coupling=0.0)
    base = SemiSupervisedAdversarialObjective(ignore_index=255).critic_loss(critic, image, logits, label).loss
    critic.logit_map[..., :4, :] = 50.0
    assert torch.allclose(
        SemiSupervisedAdversarialObjective(ignore_index=255).critic_loss(critic, image, logits, label).loss, base
    )


def test_patch_discriminator_logits_are_upsampled_to_the_prediction():
    torch.manual_seed(0)
    patch = PatchDiscriminator(spatial_dims=2, channels=4, in_channels=3 + C, num_layers_d=2)
    obj = SemiSupervisedAdversarialObjective()
    image, logits = torch.rand(2, 3, S, S), torch.randn(2, C, S, S)
    assert obj.critic_map(patch, image, logits).shape == (2, 1, S, S)
    assert torch.isfinite(obj.critic_loss(patch, image, logits, torch.randint(0, C, (2, 1, S, S))).loss)


def test_unlabeled_loss_adversarial_term_reaches_the_segmenter_only():
    torch.manual_seed(0)
    image, logits = torch.rand(2, 3, S, S), torch.randn(2, C, S, S, requires_grad=True)
    _, critic = _nets()
    obj = SemiSupervisedAdversarialObjective(lambda_unlabeled=0.5)
    out = obj.unlabeled_loss(frozen(critic), image, logits)
    d = critic(torch.cat([image, torch.softmax(logits, 1)], 1))
    assert torch.allclose(out.loss, 0.5 * F.binary_cross_entropy_with_logits(d, torch.ones_like(d)))
    out.loss.backward()
    assert logits.grad.abs().sum() > 0 and all(p.grad is None for p in critic.parameters())
    assert out.terms["self_training"] == 0 and out.terms["pseudo_label_fraction"] == 0


@pytest.mark.parametrize("threshold", [0.3, 0.6, 0.9])
def test_self_training_uses_argmax_pseudo_labels_where_the_critic_is_confident(threshold):
    torch.manual_seed(0)
    image, logits = torch.rand(1, 3, S, S), torch.randn(1, C, S, S, requires_grad=True)
    logit_map = torch.logit(torch.linspace(0.01, 0.99, S * S)).reshape(1, 1, S, S)
    critic = MapCritic(logit_map, coupling=0.0)
    obj = SemiSupervisedAdversarialObjective(lambda_unlabeled=0.0, lambda_semi=2.0, semi_threshold=threshold)
    out = obj.unlabeled_loss(frozen(critic), image, logits, adversarial=False, self_training=True)
    trusted = torch.sigmoid(logit_map)[0, 0] > threshold
    ce = F.cross_entropy(logits, logits.argmax(1), reduction="none")[0]
    assert torch.isclose(out.terms["pseudo_label_fraction"], trusted.float().mean())
    assert torch.allclose(out.terms["self_training"], ce[trusted].mean())
    assert torch.allclose(out.loss, 2.0 * ce[trusted].mean())
    out.loss.backward()
    assert (logits.grad[0, :, ~trusted] == 0).all() and logits.grad[0, :, trusted].abs().sum() > 0
    assert critic.scale.grad is None  # the mask carries no gradient into the critic


def test_defaults():
    obj = SemiSupervisedAdversarialObjective()
    assert obj.semi_threshold == 0.9  # a correctness discriminator's "right with probability > 0.9"
    assert obj.discriminator_target == DiscriminatorTarget.CORRECTNESS and obj.map_name == "correctness_map"
    assert obj.schedule == SemiSupervisedSchedule.INTERLEAVED and obj.labeled_stage_epochs is None


def test_real_fake_critic_loss_is_hungs_and_trains_only_the_critic():
    torch.manual_seed(0)
    image, logits = torch.rand(2, 3, S, S), torch.randn(2, C, S, S, requires_grad=True)
    label = torch.randint(0, C, (2, 1, S, S))
    label[0, 0, :4] = 255  # ignored pixels count in neither BCE
    _, critic = _nets()
    obj = SemiSupervisedAdversarialObjective(discriminator_target="real_fake", semi_threshold=0.2, ignore_index=255)
    assert obj.map_name == "confidence_map"
    out = obj.critic_loss(critic, image, logits.detach(), label)
    valid = (label != 255).float()
    onehot = F.one_hot(label[:, 0].clamp_max(C - 1), C).permute(0, 3, 1, 2).float() * valid
    d_real = critic(torch.cat([image, onehot], 1))
    d_fake = critic(torch.cat([image, torch.softmax(logits.detach(), 1)], 1))

    def masked(d, t):
        return (
            F.binary_cross_entropy_with_logits(d, torch.full_like(d, t), reduction="none") * valid
        ).sum() / valid.sum()

    torch.testing.assert_close(out.terms["d_real"], masked(d_real, 1.0))
    torch.testing.assert_close(out.terms["d_fake"], masked(d_fake, 0.0))
    torch.testing.assert_close(out.loss, 0.5 * (masked(d_real, 1.0) + masked(d_fake, 0.0)))
    torch.testing.assert_close(out.maps["confidence_map"], torch.sigmoid(d_fake))
    assert 0 < out.terms["correct_fraction"] < 1
    out.loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in critic.parameters())
    assert logits.grad is None
    # the segmenter's and unlabelled losses are the same as with the correctness target
    corr = SemiSupervisedAdversarialObjective(ignore_index=255)
    a = obj.segmenter_loss(frozen(critic), image, logits, label).loss
    b = corr.segmenter_loss(frozen(critic), image, logits, label).loss
    torch.testing.assert_close(a, b)


def test_objective_bad_options():
    with pytest.raises(ValueError, match="lambda_adv must be a non-negative"):
        SemiSupervisedAdversarialObjective(lambda_adv=-1)
    with pytest.raises(ValueError, match="lambda_semi must be a non-negative"):
        SemiSupervisedAdversarialObjective(lambda_semi=float("nan"))
    with pytest.raises(ValueError, match=r"semi_threshold must lie in \(0, 1\)"):
        SemiSupervisedAdversarialObjective(semi_threshold=1.0)
    with pytest.raises(ValueError, match="either a supervised loss or class weights"):
        SemiSupervisedAdversarialObjective(loss=nn.CrossEntropyLoss(), weight=[1, 2, 3, 4])
    with pytest.raises(ValueError, match="Unsupported option 'fake'"):
        SemiSupervisedAdversarialObjective(discriminator_target="fake")
    with pytest.raises(ValueError, match="Unsupported option 'staged'"):
        SemiSupervisedAdversarialObjective(schedule="staged")
    with pytest.raises(ValueError, match="needs labeled_stage_epochs >= 1"):
        SemiSupervisedAdversarialObjective(schedule="two_stage")
    with pytest.raises(ValueError, match="only used with schedule='two_stage'"):
        SemiSupervisedAdversarialObjective(labeled_stage_epochs=3)
    obj = SemiSupervisedAdversarialObjective()
    two_channels = MapCritic(torch.zeros(1, 2, S, S), coupling=0.0)
    with pytest.raises(ValueError, match="one channel of logits"):
        obj.critic_map(two_channels, torch.rand(1, 3, S, S), torch.randn(1, C, S, S))


# --- the trainer ---------------------------------------------------------------------------------


class StepSpy:
    """Records, at every optimizer step, the phase and the gradients and weights of both networks."""

    def __init__(self, trainer):
        self.records = []
        for name, opt in (("segmenter", trainer.optimizer), ("critic", trainer.critic_optimizer)):
            self._wrap(trainer, name, opt)

    def _wrap(self, trainer, name, opt):
        orig = opt.step

        def step(*args, **kwargs):
            grads = {
                net: [None if p.grad is None else p.grad.clone() for p in getattr(trainer, attr).parameters()]
                for net, attr in (("segmenter", "network"), ("critic", "critic"))
            }
            result = orig(*args, **kwargs)
            weights = {net: [p.detach().clone() for p in getattr(trainer, attr).parameters()] for net, attr in
                       (("segmenter", "network"), ("critic", "critic"))}  # fmt: skip
            self.records.append({"opt": name, "grads": grads, "weights": weights, "it": trainer.state.iteration})
            return result

        opt.step = step


def test_each_phase_updates_what_it_should():
    trainer = _trainer(labelled=2, unlabelled=2)
    spy = StepSpy(trainer)
    trainer.run()
    # one iteration: critic step, segmenter step (labelled), segmenter step (unlabelled), in that order
    assert [r["opt"] for r in spy.records] == ["critic", "segmenter", "segmenter"]
    critic_step, sup_step, unsup_step = spy.records
    critic_weights = critic_step["weights"]["critic"]
    # the segmenter's steps leave the critic's weights and gradients untouched (frozen critic)
    for later in (sup_step, unsup_step):
        assert all(torch.equal(a, b) for a, b in zip(critic_weights, later["weights"]["critic"]))
        assert all(torch.equal(a, b) for a, b in zip(critic_step["grads"]["critic"], later["grads"]["critic"]))
    assert all(torch.equal(a, b) for a, b in zip(critic_weights, [p.detach() for p in trainer.critic.parameters()]))
    # the unsupervised step has a gradient of its own for the segmenter
    assert all(g is not None and g.abs().sum() > 0 for g in unsup_step["grads"]["segmenter"])
    assert any(not torch.equal(a, b) for a, b in zip(sup_step["grads"]["segmenter"], unsup_step["grads"]["segmenter"]))
    out = trainer.state.output
    assert out["unlabeled_adv"] > 0 and torch.isclose(out["unlabeled_loss"], 0.1 * out["unlabeled_adv"])


def test_unsupervised_gradient_is_that_of_the_adversarial_term_through_frozen_critic():
    trainer = _trainer(labelled=2, unlabelled=2)
    spy = StepSpy(trainer)
    trainer.run()
    unsup = spy.records[2]
    # recompute by hand: segmenter weights after its supervised step, critic weights after its step
    seg2, critic2 = _nets()
    with torch.no_grad():
        for p, w in zip(seg2.parameters(), spy.records[1]["weights"]["segmenter"]):
            p.copy_(w)
        for p, w in zip(critic2.parameters(), spy.records[0]["weights"]["critic"]):
            p.copy_(w)
    x = torch.stack([d["image"] for d in _data(2, False, offset=100)])
    logits = seg2(x)
    d = critic2(torch.cat([x, torch.softmax(logits, 1)], 1))
    (0.1 * F.binary_cross_entropy_with_logits(d, torch.ones_like(d))).backward()
    for got, p in zip(unsup["grads"]["segmenter"], seg2.parameters()):
        assert torch.allclose(got, p.grad, atol=1e-6)


def test_no_unsupervised_step_when_its_weight_and_self_training_are_off_or_unlabeled_batches_is_zero():
    obj = SemiSupervisedAdversarialObjective(lambda_adv=0.1, lambda_unlabeled=0.0)
    trainer = _trainer(labelled=2, unlabelled=2, objective=obj)
    spy = StepSpy(trainer)
    trainer.run()
    assert [r["opt"] for r in spy.records] == ["critic", "segmenter"]
    trainer = _trainer(labelled=2, unlabelled=None, unlabeled_batches=0)
    spy = StepSpy(trainer)
    trainer.run()
    assert [r["opt"] for r in spy.records] == ["critic", "segmenter"]
    assert trainer.state.output["unlabeled_loss"] == 0 and "pseudo_label_fraction" in trainer.state.output


@pytest.mark.parametrize(
    "n_unlabelled, expected", [(4, [100, 102, 100, 100, 102, 100]), (10, [100, 102, 104, 100, 102, 104])]
)
def test_loaders_of_different_lengths_cycle_the_unlabelled_one(n_unlabelled, expected):
    """Within an epoch the unlabelled loader restarts when it runs out; every epoch starts a new pass
    (so that an epoch's unlabelled batches do not depend on the epochs before it: a resumed run draws
    the same)."""
    trainer = _trainer(labelled=6, unlabelled=n_unlabelled, epochs=2)
    seen = []
    orig = trainer.next_unlabeled_batch

    def spy():
        batch = orig()
        seen.append(int(batch["index"][0]))
        return batch

    trainer.next_unlabeled_batch = spy
    trainer.run()
    assert trainer.state.epoch_length == 3 and trainer.state.iteration == 6  # the labelled loader sets the epoch
    assert seen == expected


def test_unlabelled_sampler_gets_an_epoch_unique_to_each_pass():
    from monai_gamble.engines.semi_supervised import UNLABELED_PASS_STRIDE

    trainer = _trainer(labelled=6, unlabelled=4, epochs=2)
    calls = []

    class Sampler(torch.utils.data.SequentialSampler):
        def set_epoch(self, epoch):
            calls.append(epoch)

    loader = trainer.unlabeled_data_loader
    trainer.unlabeled_data_loader = torch.utils.data.DataLoader(
        loader.dataset, batch_size=loader.batch_size, sampler=Sampler(loader.dataset), collate_fn=loader.collate_fn
    )
    trainer.run()  # 3 iterations per epoch, 2 unlabelled batches per pass: passes 0, 1 in each epoch
    s = UNLABELED_PASS_STRIDE
    assert calls == [s, s + 1, 2 * s, 2 * s + 1]


def test_model_completed_fires_once_after_the_unsupervised_phase():
    trainer = _trainer(labelled=4, unlabelled=2)
    fired = []
    trainer.add_event_handler(
        IterationEvents.MODEL_COMPLETED, lambda e: fired.append("unlabeled_adv" in e.state.output and e.state.iteration)
    )
    trainer.run()
    assert fired == [1, 2]


def test_self_training_starts_at_the_given_iteration_and_ratio_of_unlabelled_batches():
    obj = SemiSupervisedAdversarialObjective(lambda_unlabeled=0.0, lambda_semi=1.0, semi_threshold=0.01)
    trainer = _trainer(labelled=8, unlabelled=4, objective=obj, self_training_start_iteration=3, unlabeled_batches=2)
    fractions = []
    trainer.add_event_handler(
        IterationEvents.MODEL_COMPLETED, lambda e: fractions.append(float(e.state.output["pseudo_label_fraction"]))
    )
    spy = StepSpy(trainer)
    trainer.run()
    assert fractions[:2] == [0.0, 0.0] and all(f > 0.5 for f in fractions[2:])
    # iterations 1-2: critic + labelled step only (the phase is skipped); 3-4: two unlabelled steps each
    assert [r["opt"] for r in spy.records if r["it"] == 1] == ["critic", "segmenter"]
    assert [r["opt"] for r in spy.records if r["it"] == 3] == ["critic", "segmenter", "segmenter", "segmenter"]


def test_ce_only_epochs_and_critic_warmup_skip_or_freeze_the_unsupervised_step():
    trainer = _trainer(labelled=2, unlabelled=2, epochs=2, ce_only_epochs=1)
    spy = StepSpy(trainer)
    losses = []
    trainer.add_event_handler(
        IterationEvents.MODEL_COMPLETED, lambda e: losses.append(float(e.state.output["unlabeled_loss"]))
    )
    trainer.run()
    assert losses[0] == 0 and losses[1] > 0
    assert [r["opt"] for r in spy.records] == ["critic", "segmenter", "critic", "segmenter", "segmenter"]
    # during the critic's warm-up the segmenter is not updated: the unlabelled loss is computed without a step
    trainer = _trainer(labelled=2, unlabelled=2, critic_warmup_iterations=1)
    spy = StepSpy(trainer)
    trainer.run()
    assert [r["opt"] for r in spy.records] == ["critic"] and trainer.state.output["unlabeled_loss"] > 0


def test_accumulation_sums_both_phases_into_one_step():
    trainer = _trainer(labelled=4, unlabelled=2, accumulation_steps=2)
    spy = StepSpy(trainer)
    trainer.run()
    assert [r["opt"] for r in spy.records].count("segmenter") == 2  # one per iteration, not two


def test_two_stage_schedule():
    """The report's schedule: 2 epochs on labelled batches only (critic and segmenter steps), then
    2 epochs on unlabelled batches only (segmenter steps through the frozen critic, never stepped)."""
    obj = SemiSupervisedAdversarialObjective(
        lambda_adv=0.1, lambda_unlabeled=0.1, schedule="two_stage", labeled_stage_epochs=2
    )
    trainer = _trainer(labelled=4, unlabelled=4, epochs=4, objective=obj, unlabeled_batches=2)
    spy = StepSpy(trainer)
    drawn = []
    orig = trainer.next_unlabeled_batch
    trainer.next_unlabeled_batch = lambda: drawn.append(trainer.state.iteration) or orig()
    stages = []
    trainer.add_event_handler(IterationEvents.MODEL_COMPLETED, lambda e: stages.append(e.stage(e.state.iteration)))
    trainer.run()
    assert stages == ["labeled"] * 4 + ["unlabeled"] * 4  # 2 iterations per epoch
    by_it = {it: [r["opt"] for r in spy.records if r["it"] == it] for it in range(1, 9)}
    assert all(by_it[it] == ["critic", "segmenter"] for it in range(1, 5))
    assert all(by_it[it] == ["segmenter", "segmenter"] for it in range(5, 9))  # 2 unlabelled batches each
    assert drawn == [5, 5, 6, 6, 7, 7, 8, 8]  # no unlabelled batch in the labelled stage
    # the critic is not trained in the unlabelled stage: its weights stay as after its last step
    last_critic = [r for r in spy.records if r["opt"] == "critic"][-1]["weights"]["critic"]
    assert all(torch.equal(a, b.detach()) for a, b in zip(last_critic, trainer.critic.parameters()))
    out = trainer.state.output
    assert out["unlabeled_adv"] > 0 and {"loss", "critic_loss", "correct_fraction"} <= set(out)
    # with accumulation over the two unlabelled batches: one segmenter step per unlabelled-stage iteration
    obj2 = SemiSupervisedAdversarialObjective(lambda_unlabeled=0.1, schedule="two_stage", labeled_stage_epochs=1)
    trainer = _trainer(labelled=4, unlabelled=4, epochs=2, objective=obj2, unlabeled_batches=2, accumulation_steps=2)
    spy = StepSpy(trainer)
    trainer.run()
    assert [r["opt"] for r in spy.records if r["it"] > 2] == ["segmenter", "segmenter"]


def test_two_stage_bad_inputs():
    obj = SemiSupervisedAdversarialObjective(schedule="two_stage", labeled_stage_epochs=2)
    with pytest.raises(ValueError, match="unlabelled stage would not run"):
        _trainer(epochs=2, objective=obj)
    with pytest.raises(ValueError, match="unlabelled stage would not run"):
        _trainer(epochs=3, objective=obj, unlabelled=None, unlabeled_batches=0)


def test_trainer_bad_inputs():
    with pytest.raises(ValueError, match="unlabelled data loader is empty"):
        _trainer(unlabelled=0)
    with pytest.raises(ValueError, match="unlabeled_data_loader is None"):
        _trainer(unlabelled=None)
    with pytest.raises(ValueError, match="must be non-negative"):
        _trainer(unlabeled_batches=-1)
    with pytest.raises(TypeError, match="has no unlabeled_loss"):
        _trainer(objective=GamblingObjective())
    with pytest.raises(ValueError, match="cannot fuse"):
        _trainer(fused=True)


class _ConstantUnlabeled(SemiSupervisedObjective):
    """A semi-supervised objective of its own: CE on labelled batches, the mean logit on unlabelled ones."""

    unlabeled_terms = ("mean_logit",)

    def critic_loss(self, critic, image, logits, label):
        return SemiSupervisedAdversarialObjective().critic_loss(critic, image, logits, label)

    def segmenter_loss(self, critic, image, logits, label, adversarial=True):
        return SemiSupervisedAdversarialObjective().segmenter_loss(critic, image, logits, label, adversarial)

    def unlabeled_loss(self, critic, image, logits, adversarial=True, self_training=False):
        m = logits.mean()
        return ObjectiveOutput(m, terms={"mean_logit": m.detach()})


def test_any_semi_supervised_objective_runs_through_the_base_class():
    trainer = _trainer(labelled=2, unlabelled=2, objective=_ConstantUnlabeled())
    spy = StepSpy(trainer)
    trainer.run()
    assert [r["opt"] for r in spy.records] == ["critic", "segmenter", "segmenter"]
    assert torch.equal(trainer.state.output["unlabeled_loss"], trainer.state.output["mean_logit"])
