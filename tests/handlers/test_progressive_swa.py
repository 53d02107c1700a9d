"""Progressive resizing (batch shape, batch size, accumulation, loss and cache change between epochs)
and stochastic weight averaging (the average of the epochs' weights, BatchNorm statistics) on a real
MONAI SupervisedTrainer."""

import copy

import numpy as np
import pytest
import torch
from ignite.engine import Events
from monai.data import CacheDataset, DataLoader
from monai.engines import SupervisedTrainer
from monai.handlers import CheckpointLoader
from monai.transforms import Compose, EnsureTyped, RandFlipd, Resized

from monai_gamble.handlers import ProgressiveResizing, ResizeStage, StochasticWeightAveraging


def make_data(n=8, size=40):
    rng = np.random.default_rng(0)
    return [
        {
            "image": rng.random((1, size, size)).astype(np.float32),
            "label": (rng.random((1, size, size)) > 0.5).astype(np.float32),
        }
        for _ in range(n)
    ]


class CountingOptimizer(torch.optim.SGD):
    """SGD that counts its steps."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.steps = 0

    def step(self, closure=None):
        self.steps += 1
        return super().step(closure)


def build(stages, cached=True, max_epochs=4, net=None):
    resize = Resized(["image", "label"], spatial_size=(16, 16), mode=["bilinear", "nearest"])
    transform = Compose(
        [resize, EnsureTyped(["image", "label"], track_meta=False), RandFlipd(["image", "label"], prob=0.5)]
    )
    data = make_data()
    dataset = CacheDataset(data, transform, cache_rate=1.0, progress=False) if cached else data
    if not cached:
        from monai.data import Dataset

        dataset = Dataset(data, transform)
    loader = DataLoader(dataset, batch_size=4, shuffle=False)
    net = net or torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.Conv2d(4, 1, 1)
    )
    opt = CountingOptimizer(net.parameters(), lr=0.01)
    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=max_epochs,
        train_data_loader=loader,
        network=net,
        optimizer=opt,
        loss_function=torch.nn.BCEWithLogitsLoss(),
    )
    handler = ProgressiveResizing(stages, transforms=[resize], datasets=[dataset])
    handler.attach(trainer)
    return trainer, handler, dataset, opt, net


def test_progressive_resizing_changes_batches_between_epochs(tmp_path):
    focal = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(2.0))
    stages = [
        {"epochs": 2, "spatial_size": [16, 16], "batch_size": 4},
        {"epochs": 1, "spatial_size": 24, "batch_size": 2, "accumulation_steps": 3},
        {"epochs": 1, "spatial_size": [32, 32], "batch_size": 1, "accumulation_steps": 2, "loss_function": focal},
    ]
    trainer, handler, dataset, opt, net = build(stages)
    handler.save_dir, handler.save_dict = tmp_path, {"model": net}
    shapes, steps, losses = {}, {}, {}

    @trainer.on(Events.ITERATION_COMPLETED)
    def record(engine):
        shapes.setdefault(engine.state.epoch, set()).add(tuple(engine.state.output[0]["image"].shape))
        shapes[engine.state.epoch].add(("batch", len(engine.state.output)))
        losses[engine.state.epoch] = engine.loss_function

    @trainer.on(Events.EPOCH_COMPLETED)
    def count(engine):
        steps[engine.state.epoch] = opt.steps - sum(steps.values())
        assert engine.state.iteration == engine.state.epoch * engine.state.epoch_length

    trainer.run()
    assert shapes[1] == shapes[2] == {(1, 16, 16), ("batch", 4)}
    assert shapes[3] == {(1, 24, 24), ("batch", 2)}
    assert shapes[4] == {(1, 32, 32), ("batch", 1)}
    # 8 images: 2 steps of batch 4; 4 batches of 2 accumulated by 3 -> steps after 3 and at the epoch's
    # end (the flush); 8 batches of 1 accumulated by 2 -> 4 steps
    assert steps == {1: 2, 2: 2, 3: 2, 4: 4}
    assert losses[3] is not focal and losses[4] is focal
    assert tuple(dataset._cache[0]["image"].shape) == (1, 32, 32)  # re-cached at the new size
    assert [h[:2] for h in handler.history] == [(1, 0), (3, 1), (4, 2)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stage0_16x16.pt", "stage1_24.pt", "stage2_32x32.pt"]
    # Ignite's Checkpoint saves a single object as its state dict (as MONAI's CheckpointSaver does) ...
    saved = torch.load(tmp_path / "stage2_32x32.pt", weights_only=True)
    torch.testing.assert_close(saved["0.weight"], net[0].weight)
    # ... which MONAI's CheckpointLoader (Ignite's Checkpoint.load_objects) reads into {"model": net}
    other = copy.deepcopy(net)
    torch.nn.init.zeros_(other[0].weight)
    CheckpointLoader(str(tmp_path / "stage2_32x32.pt"), {"model": other})(trainer)
    torch.testing.assert_close(other[0].weight, net[0].weight)


def test_resizing_without_a_cache_and_after_the_last_stage():
    stages = [{"epochs": 1, "spatial_size": [16, 16]}, {"epochs": 1, "spatial_size": [24, 24]}]
    trainer, handler, _, _, _ = build(stages, cached=False, max_epochs=3)
    sizes = {}
    trainer.add_event_handler(
        Events.ITERATION_COMPLETED, lambda e: sizes.setdefault(e.state.epoch, tuple(e.state.output[0]["image"].shape))
    )
    trainer.run()
    assert sizes == {1: (1, 16, 16), 2: (1, 24, 24), 3: (1, 24, 24)}  # epochs past the schedule stay in the last stage
    assert handler.stage_of(1) == 0 and handler.stage_of(2) == 1 and handler.stage_of(99) == 1


def test_stage_errors_are_clear():
    with pytest.raises(ValueError, match="at least one stage"):
        ProgressiveResizing([])
    with pytest.raises(ValueError, match=r"stage 0: unknown key\(s\) \['size'\]"):
        ResizeStage(0, {"epochs": 1, "size": 3})
    with pytest.raises(ValueError, match="stage 1 has no 'spatial_size'"):
        ProgressiveResizing([{"epochs": 1, "spatial_size": 8}, {"epochs": 2}])
    with pytest.raises(ValueError, match="stage 0: epochs must be a positive integer"):
        ResizeStage(0, {"epochs": 0, "spatial_size": 8})
    with pytest.raises(ValueError, match="stage 0: spatial_size must be positive integers"):
        ResizeStage(0, {"epochs": 1, "spatial_size": [8, -1]})
    with pytest.raises(ValueError, match="loss_function must be callable"):
        ResizeStage(0, {"epochs": 1, "spatial_size": 8, "loss_function": "focal"})
    with pytest.raises(ValueError, match="has no spatial_size to set"):
        ProgressiveResizing([{"epochs": 1, "spatial_size": 8}], transforms=[RandFlipd("image")])
    with pytest.raises(ValueError, match="save_dir needs save_dict"):
        ProgressiveResizing([{"epochs": 1, "spatial_size": 8}], save_dir="x")


def test_swa_averages_the_last_epochs_and_recomputes_batch_norm(tmp_path):
    torch.manual_seed(0)
    stages = [{"epochs": 4, "spatial_size": [16, 16]}]
    trainer, _, dataset, _, net = build(stages, max_epochs=4)
    fixed = [{"image": torch.rand(4, 1, 16, 16)} for _ in range(3)]  # the batches of the BatchNorm pass
    swa = StochasticWeightAveraging(net, num_epochs=3, loader=fixed, save_path=tmp_path / "swa.pt")
    swa.attach(trainer)
    snapshots = []
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: snapshots.append(copy.deepcopy(net.state_dict())))
    trainer.run()
    assert swa.averaged_epochs == [2, 3, 4]
    averaged = swa.averaged_model.module
    for name in ("0.weight", "0.bias", "2.weight"):
        expected = torch.stack([s[name] for s in snapshots[1:]]).mean(0)
        torch.testing.assert_close(dict(averaged.named_parameters())[name], expected)
    # BatchNorm statistics of the averaged weights: the mean and variance of its conv output over the
    # loader's batches (a cumulative average over batches: update_bn's momentum None)
    means, variances = [], []
    with torch.no_grad():
        for batch in fixed:
            features = averaged[0](batch["image"])
            means.append(features.mean((0, 2, 3)))
            variances.append(features.var((0, 2, 3), unbiased=True))
    torch.testing.assert_close(averaged[1].running_mean, torch.stack(means).mean(0), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(averaged[1].running_var, torch.stack(variances).mean(0), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(averaged[1].running_mean, net[1].running_mean)
    state = torch.load(tmp_path / "swa.pt", weights_only=True)
    assert set(state) == set(net.state_dict())
    torch.testing.assert_close(state["1.running_mean"], averaged[1].running_mean)


def test_swa_copies_to_the_network_and_averages_buffers_without_batch_norm_pass():
    torch.manual_seed(1)
    trainer, _, _, _, net = build([{"epochs": 2, "spatial_size": [16, 16]}], max_epochs=2)
    swa = StochasticWeightAveraging(net, num_epochs=5, update_bn=False, copy_to_network=True)
    swa.attach(trainer)
    buffers = []
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: buffers.append(net[1].running_mean.clone()))
    trainer.run()
    assert swa.averaged_epochs == [1, 2]  # fewer epochs than num_epochs: all of them
    torch.testing.assert_close(swa.averaged_model.module[1].running_mean, torch.stack(buffers).mean(0))
    torch.testing.assert_close(net[0].weight, swa.averaged_model.module[0].weight)  # copied back
    with pytest.raises(ValueError, match="num_epochs must be at least 1"):
        StochasticWeightAveraging(net, num_epochs=0)
