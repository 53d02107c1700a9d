"""SegmenterCriticTrainer with the gambling objective: schedules, fused step, accumulation, AMP, events."""

import copy

import pytest
import torch
from ignite.engine import Events
from monai.engines import SupervisedEvaluator
from monai.engines.utils import IterationEvents
from monai.networks.nets import UNet

from monai_gamble.engines import CriticObjective, GamblingObjective, ObjectiveOutput, SegmenterCriticTrainer
from monai_gamble.handlers import CriticMapHandler
from monai_gamble.networks.nets import Gambler


def make_data(n_batches: int = 4, batch: int = 2, size: int = 16, seed: int = 0) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_batches):
        image = torch.rand(batch, 1, size, size, generator=g)
        out.append({"image": image, "label": (image > 0.5).float()})
    return out


def make_nets(seed: int = 0):
    torch.manual_seed(seed)
    seg = UNet(2, 1, 2, channels=(4, 8, 16), strides=(2, 2), norm="batch")
    gam = Gambler(2, 1, 2, channels=(4, 8, 16))
    return seg, gam


def make_trainer(seg, gam, data, lr: float = 1e-2, opt=torch.optim.SGD, **kwargs) -> SegmenterCriticTrainer:
    kwargs.setdefault("max_epochs", 1)
    return SegmenterCriticTrainer(
        device="cpu",
        train_data_loader=data,
        network=seg,
        optimizer=opt(seg.parameters(), lr=lr),
        critic=gam,
        critic_optimizer=opt(gam.parameters(), lr=lr),
        objective=GamblingObjective(beta=0.02),
        decollate=False,
        **kwargs,
    )


def params(module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in module.parameters()])


def grads(module) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in module.parameters()])


def test_fused_step_gives_the_two_pass_gradients():
    seg, gam = make_nets()
    data = make_data(1)
    two = make_trainer(copy.deepcopy(seg), copy.deepcopy(gam), data, lr=0.0)  # lr 0: same weights in both passes
    fused = make_trainer(copy.deepcopy(seg), copy.deepcopy(gam), data, lr=0.0, fused=True)
    two.run()
    fused.run()
    for name in ("loss", "gambler_loss", "ce", "bet_ce"):
        torch.testing.assert_close(two.state.output[name], fused.state.output[name])
    torch.testing.assert_close(grads(fused.network), grads(two.network), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(grads(fused.critic), grads(two.critic), rtol=1e-4, atol=1e-6)
    assert grads(fused.critic).abs().sum() > 0 and grads(fused.network).abs().sum() > 0


def test_fused_matches_two_pass_with_accumulation():
    seg, gam = make_nets(1)
    data = make_data(2)
    two = make_trainer(copy.deepcopy(seg), copy.deepcopy(gam), data, lr=0.0, accumulation_steps=2)
    fused = make_trainer(copy.deepcopy(seg), copy.deepcopy(gam), data, lr=0.0, accumulation_steps=2, fused=True)
    two.run()
    fused.run()
    torch.testing.assert_close(grads(fused.critic), grads(two.critic), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(grads(fused.network), grads(two.network), rtol=1e-4, atol=1e-6)


def test_output_keys_and_model_completed_last():
    seg, gam = make_nets()
    trainer = make_trainer(seg, gam, make_data(2))
    seen = []

    @trainer.on(IterationEvents.MODEL_COMPLETED)
    def check(engine):
        seen.append(set(engine.state.output))

    @trainer.on(IterationEvents.FORWARD_COMPLETED)
    def forward(engine):
        seen.append("forward")

    trainer.run()
    assert seen[0] == "forward"
    keys = seen[1]
    assert {"image", "label", "pred", "loss", "seg_loss", "critic_loss", "gambler_loss", "betting_map", "ce"} <= keys
    assert trainer.optimizer is not None and trainer.state.output["loss"].requires_grad is False
    assert trainer.state.output["betting_map"].shape == (2, 1, 16, 16)


def test_critic_warmup_and_blocks_schedule():
    seg, gam = make_nets()
    trainer = make_trainer(seg, gam, make_data(8), critic_warmup_iterations=2, alternation="blocks",
                           segmenter_iterations=2, critic_iterations=1)  # fmt: skip
    assert [trainer.schedule(i) for i in range(1, 9)] == [
        (False, True), (False, True),  # warm-up: critic only
        (True, False), (True, False), (False, True),  # blocks of 2 segmenter / 1 critic
        (True, False), (True, False), (False, True),
    ]  # fmt: skip
    changed = []

    @trainer.on(Events.ITERATION_STARTED)
    def before(engine):
        engine._before = (params(engine.network), params(engine.critic))

    @trainer.on(Events.ITERATION_COMPLETED)
    def after(engine):
        s0, c0 = engine._before
        changed.append((not torch.equal(s0, params(engine.network)), not torch.equal(c0, params(engine.critic))))

    trainer.run()
    assert changed == [trainer.schedule(i) for i in range(1, 9)]


def test_iteration_alternation_updates_both():
    trainer = make_trainer(*make_nets(), make_data(1))
    assert trainer.schedule(1) == (True, True)


def test_ce_only_epochs_use_plain_cross_entropy():
    seg, gam = make_nets()
    losses = []
    trainer = make_trainer(seg, gam, make_data(2), max_epochs=2, ce_only_epochs=1)

    @trainer.on(Events.ITERATION_COMPLETED)
    def record(engine):
        out = engine.state.output
        losses.append((engine.state.epoch, float(out["loss"]), float(out["ce"]), "bet_ce" in out))

    trainer.run()
    for epoch, loss, ce, has_bet in losses:
        if epoch == 1:
            assert loss == pytest.approx(ce) and not has_bet
        else:
            assert has_bet and loss > ce  # lambda_ce * CE + lambda_bet * bet-weighted CE


@pytest.mark.parametrize("fused", [False, True])
def test_accumulation_steps_and_epoch_end_flush(fused):
    seg, gam = make_nets()
    trainer = make_trainer(seg, gam, make_data(5), accumulation_steps=2, fused=fused)
    steps = {"seg": 0, "critic": 0}
    for key, opt in (("seg", trainer.optimizer), ("critic", trainer.critic_optimizer)):
        original = opt.step

        def counted(*a, key=key, original=original, **k):
            steps[key] += 1
            return original(*a, **k)

        opt.step = counted
    trainer.run()
    assert steps == {"seg": 3, "critic": 3}  # after iterations 2, 4 and the flush at 5


def test_amp_on_cpu_runs_with_a_scaler_per_network():
    seg, gam = make_nets()
    trainer = make_trainer(seg, gam, make_data(2), amp=True, opt=torch.optim.Adam, lr=1e-3)
    trainer.run()
    assert trainer.scaler is not None and trainer.critic_scaler is not None
    assert trainer.scaler is not trainer.critic_scaler
    assert torch.isfinite(trainer.state.output["loss"]) and torch.isfinite(trainer.state.output["gambler_loss"])


def test_gambling_training_reduces_the_loss():
    torch.manual_seed(0)
    data = make_data(4, batch=4, size=32)
    seg, gam = make_nets()
    trainer = make_trainer(seg, gam, data, max_epochs=15, opt=torch.optim.Adam, lr=1e-2, fused=True)
    ce = []
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: ce.append(float(e.state.output["ce"])))
    trainer.run()
    assert ce[-1] < 0.5 * ce[0], ce


def test_critic_map_handler_on_an_evaluator():
    seg, gam = make_nets()
    objective = GamblingObjective()
    evaluator = SupervisedEvaluator("cpu", make_data(2), seg, val_handlers=[CriticMapHandler(gam, objective)])
    gam.train()
    evaluator.run()
    out = evaluator.state.output  # decollated: one dict per image
    assert len(out) == 2 and out[0]["betting_map"].shape == (1, 16, 16)
    assert out[0]["betting_map"].mean().item() == pytest.approx(1.0, rel=1e-5)
    assert gam.training  # the critic's mode is restored


class _NoFuse(CriticObjective):
    def critic_loss(self, critic, image, logits, label):
        return ObjectiveOutput(critic(image, logits).mean())

    def segmenter_loss(self, critic, image, logits, label, adversarial=True):
        return ObjectiveOutput(logits.mean())


def test_bad_options():
    seg, gam = make_nets()
    data = make_data(1)
    with pytest.raises(ValueError, match="cannot fuse"):
        SegmenterCriticTrainer("cpu", 1, data, seg, torch.optim.SGD(seg.parameters(), 0.1), gam,
                               torch.optim.SGD(gam.parameters(), 0.1), _NoFuse(), fused=True)  # fmt: skip
    with pytest.raises(ValueError, match="blocks"):
        make_trainer(seg, gam, data, alternation="bloks")
    with pytest.raises(ValueError, match="at least 1"):
        make_trainer(seg, gam, data, alternation="blocks", critic_iterations=0)
    with pytest.raises(ValueError, match="non-negative"):
        make_trainer(seg, gam, data, critic_warmup_iterations=-1)
    with pytest.raises(TypeError, match="CriticObjective"):
        SegmenterCriticTrainer("cpu", 1, data, seg, torch.optim.SGD(seg.parameters(), 0.1), gam,
                               torch.optim.SGD(gam.parameters(), 0.1), torch.nn.CrossEntropyLoss())  # fmt: skip


def test_mismatched_critic_input_is_a_clear_error():
    seg, _ = make_nets()
    gam = Gambler(2, 1, 3, channels=(4, 8))  # built for a 3-class segmenter
    trainer = make_trainer(seg, gam, make_data(1))
    with pytest.raises(ValueError, match="prediction of 3"):
        trainer.run()


def test_run_skips_only_what_monai_trainer_run_does():
    """SegmenterCriticTrainer.run replaces MONAI's Trainer.run (its CUDA-only scaler) and calls
    Workflow.run itself: this pins that Trainer.run does nothing else, so that a MONAI release
    that adds to it fails here instead of being skipped without notice."""
    import ast
    import inspect
    import textwrap

    from monai.engines.trainer import Trainer

    (func,) = ast.parse(textwrap.dedent(inspect.getsource(Trainer.run))).body
    body = [n for n in func.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
    assert len(body) == 2, ast.unparse(func)
    assert isinstance(body[0], ast.Assign) and ast.unparse(body[0].targets[0]) == "self.scaler"
    assert ast.unparse(body[1]) == "super().run()"


def test_loss_function_is_the_objective_and_refuses_a_plain_loss():
    seg, gam = make_nets()
    trainer = make_trainer(seg, gam, make_data(1))
    assert trainer.loss_function is trainer.objective
    other = GamblingObjective(beta=0.5)
    trainer.loss_function = other  # e.g. a ProgressiveResizing stage
    assert trainer.objective is other
    with pytest.raises(TypeError, match="must be a CriticObjective, got CrossEntropyLoss"):
        trainer.loss_function = torch.nn.CrossEntropyLoss()
    fused = make_trainer(*make_nets(), make_data(1), fused=True)
    with pytest.raises(ValueError, match="cannot fuse"):
        fused.objective = _NoFuse()


def test_progressive_resizing_stage_sets_the_objective_or_refuses_a_loss():
    from monai_gamble.handlers import ProgressiveResizing

    seg, gam = make_nets()
    data = torch.utils.data.DataLoader(
        [{"image": d["image"][0], "label": d["label"][0]} for d in make_data(2)], batch_size=2
    )
    second = GamblingObjective(beta=0.5)
    trainer = make_trainer(seg, gam, data, max_epochs=2)
    ProgressiveResizing(
        [{"epochs": 1, "spatial_size": 16}, {"epochs": 1, "spatial_size": 16, "loss_function": second}]
    ).attach(trainer)
    seen = []
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: seen.append(e.objective))
    trainer.run()
    assert seen[0] is not second and seen[1] is second
    trainer = make_trainer(*make_nets(), data, max_epochs=2)
    ProgressiveResizing(
        [{"epochs": 1, "spatial_size": 16}, {"epochs": 1, "spatial_size": 16, "loss_function": torch.nn.BCELoss()}]
    ).attach(trainer)
    with pytest.raises(TypeError, match="would ignore a plain loss"):
        trainer.run()


class _CountingPhase(SegmenterCriticTrainer):
    """Two extra segmenter passes per iteration through the hook (a plain CE on the same batch)."""

    def extra_segmenter_passes(self, engine):
        return 2

    def extra_phases(self, engine):
        for _ in range(2):
            with engine.autocast(engine):
                logits = engine.network(engine.state.output["image"])
                loss = torch.nn.functional.cross_entropy(logits, engine.state.output["label"][:, 0].long())
            engine.segmenter_backward(engine, loss)
        engine.state.output["extra"] = loss.detach()


def test_extra_phases_hook_runs_before_model_completed_and_counts_for_accumulation():
    seg, gam = make_nets()
    data = make_data(3)
    trainer = _CountingPhase("cpu", 1, data, seg, torch.optim.SGD(seg.parameters(), 0.01), gam,
                             torch.optim.SGD(gam.parameters(), 0.01), GamblingObjective(), decollate=False,
                             accumulation_steps=3)  # fmt: skip
    steps = []
    original = trainer.optimizer.step
    trainer.optimizer.step = lambda *a, **k: steps.append(trainer.state.iteration) or original(*a, **k)
    fired = []
    trainer.add_event_handler(IterationEvents.MODEL_COMPLETED, lambda e: fired.append("extra" in e.state.output))
    trainer.run()
    assert fired == [True, True, True]
    # three segmenter passes per iteration (one supervised, two extra), accumulated by 3: one step each
    assert steps == [1, 2, 3]
