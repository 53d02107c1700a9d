"""Crash-safe checkpoints and resume: AtomicCheckpointSaver, RNGState, TrainingCheckpoint, and the run
folder helpers of ``monai_gamble.utils``."""

from __future__ import annotations

import io
import json
import multiprocessing as mp
import random
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from ignite.engine import Events
from monai.data import CacheDataset, DataLoader
from monai.engines import SupervisedEvaluator, SupervisedTrainer
from monai.handlers import EarlyStopHandler, LrScheduleHandler, MeanDice, ValidationHandler, from_engine
from monai.networks.nets import UNet
from monai.transforms import Compose, EnsureTyped, RandFlipd, RandGaussianNoised, RandScaleIntensityd
from monai.utils import set_determinism

from monai_gamble.handlers import (
    AtomicCheckpointSaver,
    RNGState,
    StochasticWeightAveraging,
    TrainingCheckpoint,
    randomizable_transforms,
)
from monai_gamble.utils import (
    atomic_save,
    file_lock,
    latest_run,
    new_run_name,
    resume_checkpoint,
    training_run_of,
)


# ---------------------------------------------------------------------- files and run folders
def test_atomic_save_keeps_the_previous_file_when_a_save_fails(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    atomic_save({"a": torch.ones(3)}, path)

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"partial bytes")
        raise RuntimeError("killed during the save")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(RuntimeError, match="killed during the save"):
        atomic_save({"a": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temporary file left behind


def test_new_run_name_never_gives_two_runs_one_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(time, "strftime", lambda fmt: "20260101_120000")
    names = [new_run_name(tmp_path, "gambling", "train") for _ in range(3)]
    assert names == [
        "gambling_train_20260101_120000",
        "gambling_train_20260101_120000_2",
        "gambling_train_20260101_120000_3",
    ]
    assert all((tmp_path / n).is_dir() for n in names)


def test_latest_run_and_resume_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="no run to resume"):
        new_run_name(tmp_path, "x", resume=True)
    (tmp_path / "a").mkdir()
    with pytest.raises(FileNotFoundError, match=r"run folders without one: \['a'\]"):
        latest_run(tmp_path)
    for name in ("old", "new"):
        (tmp_path / name).mkdir()
        atomic_save({}, tmp_path / name / "last.pt")
        time.sleep(0.02)
    assert latest_run(tmp_path).name == "new"
    assert new_run_name(tmp_path, "x", resume=True) == "new"
    assert resume_checkpoint(tmp_path / "new", False) is None
    assert resume_checkpoint(tmp_path / "new", True).endswith("new/last.pt")
    with pytest.raises(FileNotFoundError, match="a/last.pt does not exist"):
        resume_checkpoint(tmp_path / "a", True)


def _hold_lock(path, ready, release):
    with file_lock(path):
        ready.set()
        release.wait(10)


def test_file_lock_excludes_another_process(tmp_path):
    ctx = mp.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold_lock, args=(tmp_path / "x.lock", ready, release))
    proc.start()
    try:
        assert ready.wait(10)
        with pytest.raises(TimeoutError, match="x.lock is still locked"):
            with file_lock(tmp_path / "x.lock", timeout=0.3):
                pass
    finally:
        release.set()
        proc.join(10)
    with file_lock(tmp_path / "x.lock", timeout=5):  # free once the holder is done
        pass


# ---------------------------------------------------------------------- random states
def test_rng_state_restores_every_random_draw():
    transform = Compose([RandFlipd("image", prob=0.5), RandGaussianNoised("image", prob=0.5, std=0.1)])
    transform.set_random_state(seed=3)
    found = randomizable_transforms(transform)
    # the Compose, both dict transforms and the array transform inside RandGaussianNoised
    assert len(found) == 4
    state = RNGState(transform)
    x = {"image": torch.rand(1, 8, 8)}
    snapshot = state.state_dict()
    buffer = io.BytesIO()
    torch.save(snapshot, buffer)
    buffer.seek(0)

    def draws():  # the global NumPy state is what RNGState restores: the legacy API on purpose
        return transform(dict(x))["image"], torch.rand(3), np.random.rand(2), random.random()  # noqa: NPY002

    first = draws()
    state.load_state_dict(torch.load(buffer, weights_only=True))  # tensors and ints only
    again = draws()
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert np.array_equal(first[2], again[2]) and first[3] == again[3]
    with pytest.raises(ValueError, match="2 random transforms, the training pipeline has 4"):
        state.load_state_dict(dict(snapshot, transforms=snapshot["transforms"][:2]))


# ---------------------------------------------------------------------- a small training run
def _workflow(tmp_path: Path, max_epochs: int, resume_from=None, stop_at_epoch=None, run="run"):
    set_determinism(seed=0)
    images = torch.rand(12, 1, 16, 16)
    data = [{"image": im, "label": (im > 0.5).float()} for im in images]
    train_tf = Compose([
        RandFlipd(["image", "label"], prob=0.5, spatial_axis=0),
        RandScaleIntensityd("image", factors=0.2, prob=0.5),
        RandGaussianNoised("image", prob=0.5, std=0.05),
        EnsureTyped(["image", "label"], track_meta=False),
    ])  # fmt: skip
    net = UNet(2, 1, 1, channels=(4, 8), strides=(2,), num_res_units=0)
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.9)
    run_dir = tmp_path / run
    saver = AtomicCheckpointSaver(str(run_dir), {"model": net}, save_key_metric=True, key_metric_filename="model.pt")
    evaluator = SupervisedEvaluator(
        device="cpu",
        val_data_loader=DataLoader(
            CacheDataset(data[:4], EnsureTyped(["image", "label"], track_meta=False)), batch_size=4, num_workers=0
        ),
        network=net,
        postprocessing=lambda d: {**d, "pred": (d["pred"] > 0).float()},
        key_val_metric={"val_dice": MeanDice(output_transform=from_engine(["pred", "label"]))},
        val_handlers=[saver, early_stop := EarlyStopHandler(patience=100, score_function=lambda e: 0.0)],
    )
    stop = []
    if stop_at_epoch is not None:

        def crash(engine):
            if engine.state.epoch == stop_at_epoch:
                raise RuntimeError("simulated crash")

        stop = [type("Crash", (), {"attach": lambda self, e: e.add_event_handler(Events.EPOCH_STARTED, crash)})()]
    swa = StochasticWeightAveraging(net, num_epochs=2, update_bn=False)
    checkpoint = TrainingCheckpoint(
        run_dir, {"model": net}, resume_from=resume_from, publish_dir=tmp_path, handle_signals=False
    )
    trainer = SupervisedTrainer(
        device="cpu",
        max_epochs=max_epochs,
        train_data_loader=DataLoader(CacheDataset(data[4:], train_tf), batch_size=3, shuffle=True, num_workers=0),
        network=net,
        optimizer=opt,
        loss_function=torch.nn.BCEWithLogitsLoss(),
        train_handlers=[LrScheduleHandler(sched, print_lr=False), ValidationHandler(1, evaluator), swa,
                        *stop, checkpoint],
    )  # fmt: skip
    early_stop.set_trainer(trainer)
    return trainer, net, opt, swa, saver


def test_resumed_run_equals_the_uninterrupted_run_bit_for_bit(tmp_path):
    trainer, net, opt, swa, _ = _workflow(tmp_path / "a", 4)
    trainer.run()
    expected = {k: v.clone() for k, v in net.state_dict().items()}
    expected_swa = {k: v.clone() for k, v in swa.averaged_model.state_dict().items()}

    trainer, *_ = _workflow(tmp_path / "b", 4, stop_at_epoch=3)
    with pytest.raises(RuntimeError, match="simulated crash"):
        trainer.run()
    record = json.loads((tmp_path / "b" / "run" / "run.json").read_text())
    assert record["status"] == "FAILED" and record["epoch"] == 3
    saved = torch.load(tmp_path / "b" / "run" / "last.pt", weights_only=True)
    assert saved["meta"]["epoch"] == 2 and saved["meta"]["status"] == "RUNNING"
    names = set(saved["state"])
    assert {
        "model",
        "trainer",
        "optimizer",
        "LrScheduleHandler_0",
        "rng",
        "StochasticWeightAveraging_0",
        "ValidationHandler_0.EarlyStopHandler_0",
        "ValidationHandler_0_best",
        "ValidationHandler_0.AtomicCheckpointSaver_0",
    } <= names

    trainer, net, opt, swa, saver = _workflow(tmp_path / "b", 4, resume_from=tmp_path / "b" / "run" / "last.pt")
    trainer.run()
    assert trainer.state.epoch == 4 and trainer.state.iteration == 4 * 3
    for k, v in net.state_dict().items():
        assert torch.equal(v, expected[k]), k
    for k, v in swa.averaged_model.state_dict().items():
        assert torch.equal(v, expected_swa[k]), k
    assert swa.averaged_epochs == [3, 4]
    # published: the run's best model and a record of the run it came from
    assert (tmp_path / "b" / "model.pt").read_bytes() == (tmp_path / "b" / "run" / "model.pt").read_bytes()
    assert training_run_of(tmp_path / "b" / "model.pt")["training_run_name"] == "run"
    assert json.loads((tmp_path / "b" / "run" / "run.json").read_text())["status"] == "FINISHED"


def test_resume_keeps_the_best_model_of_the_interrupted_run(tmp_path):
    trainer, _, _, _, saver = _workflow(tmp_path, 2)
    trainer.run()
    best_before = saver._key_metric_checkpoint._saved[0].priority
    model_bytes = (tmp_path / "run" / "model.pt").read_bytes()
    trainer, net, _, _, saver = _workflow(tmp_path, 3, resume_from=tmp_path / "run" / "last.pt")
    with torch.no_grad():  # a resumed run that only gets worse must not replace the best model
        for p in net.parameters():
            p.zero_()
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: [p.data.zero_() for p in net.parameters()])
    trainer.run()
    assert saver._key_metric_checkpoint._saved[0].priority == best_before
    assert (tmp_path / "run" / "model.pt").read_bytes() == model_bytes


def test_resume_errors_name_the_file_and_the_problem(tmp_path):
    trainer, *_ = _workflow(tmp_path, 2)
    trainer.run()
    last = tmp_path / "run" / "last.pt"
    trainer, *_ = _workflow(tmp_path, 2, resume_from=last)
    with pytest.raises(ValueError, match="already trained 2 epochs, max_epochs is 2"):
        trainer.run()
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    trainer, *_ = _workflow(tmp_path, 3, resume_from=empty)
    with pytest.raises(ValueError, match=r"empty.pt is empty \(0 bytes\)"):
        trainer.run()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(last.read_bytes()[:1000])
    trainer, *_ = _workflow(tmp_path, 3, resume_from=truncated)
    with pytest.raises(ValueError, match="truncated.pt could not be read as a checkpoint"):
        trainer.run()
    other = tmp_path / "other.pt"
    state = torch.load(last, weights_only=True)
    state["state"].pop("StochasticWeightAveraging_0")
    torch.save(state, other)
    trainer, *_ = _workflow(tmp_path, 3, resume_from=other)
    with pytest.raises(ValueError, match=r"another configuration: this run has \['StochasticWeightAveraging_0'\]"):
        trainer.run()
    with pytest.raises(FileNotFoundError, match="nope.pt does not exist"):
        TrainingCheckpoint(tmp_path, {"model": torch.nn.Linear(1, 1)}, resume_from=tmp_path / "nope.pt")
    with pytest.raises(ValueError, match="needs save_dict"):
        TrainingCheckpoint(tmp_path, {"critic": None})


def test_other_ranks_ignore_the_state_of_rank_0_only_handlers(tmp_path, monkeypatch):
    """Under torchrun rank 0 writes last.pt with the state of handlers only it runs (best-model savers);
    another rank resumes without them, and still refuses a checkpoint that lacks one of its own objects."""
    from monai_gamble.handlers import checkpoint as module

    trainer, *_ = _workflow(tmp_path, 2)
    trainer.run()
    last = tmp_path / "run" / "last.pt"
    extra = tmp_path / "extra.pt"
    state = torch.load(last, weights_only=True)
    state["state"]["RankZeroSaver_0"] = {"saved": []}  # a handler that only rank 0 runs
    torch.save(state, extra)
    trainer, *_ = _workflow(tmp_path, 3, resume_from=extra)
    with pytest.raises(ValueError, match=r"the checkpoint has \['RankZeroSaver_0'\]"):
        trainer.run()  # rank 0: the same handlers, or another configuration
    monkeypatch.setattr(module.idist, "get_rank", lambda: 1)
    trainer, *_ = _workflow(tmp_path, 3, resume_from=extra)
    trainer.run()
    assert trainer.state.epoch == 3
    state["state"].pop("StochasticWeightAveraging_0")
    torch.save(state, extra)
    trainer, *_ = _workflow(tmp_path, 3, resume_from=extra)
    with pytest.raises(ValueError, match=r"this run has \['StochasticWeightAveraging_0'\]"):
        trainer.run()


def test_atomic_checkpoint_saver_replaces_by_rename(tmp_path):
    net = torch.nn.Linear(2, 1)
    saver = AtomicCheckpointSaver(str(tmp_path), {"model": net}, save_key_metric=True, key_metric_filename="model.pt")
    handler = saver._key_metric_checkpoint.save_handler
    assert handler._atomic and handler.filename == "model.pt"
    handler({"model": {"w": torch.ones(1)}}, "ignored.pt")
    inode = (tmp_path / "model.pt").stat().st_ino
    handler.remove("model.pt")  # the fixed file is replaced by the next save, never removed first
    assert (tmp_path / "model.pt").stat().st_ino == inode
    handler({"model": {"w": torch.zeros(1)}}, "ignored.pt")
    assert torch.equal(torch.load(tmp_path / "model.pt", weights_only=True)["model"]["w"], torch.zeros(1))
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]
    assert saver.state_dict() == {"key_metric": saver._key_metric_checkpoint.state_dict()}


def test_checked_checkpoint_loader_names_a_bad_file(tmp_path):
    from monai_gamble.handlers import CheckedCheckpointLoader, check_checkpoint_file

    net = torch.nn.Linear(2, 1)
    good = tmp_path / "model.pt"
    torch.save({"model": net.state_dict()}, good)
    assert check_checkpoint_file(good) == good
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "cut.pt").write_bytes(good.read_bytes()[:200])
    (tmp_path / "text.pt").write_text("not a checkpoint")
    torch.save({"model": torch.nn.Linear(3, 1).state_dict()}, tmp_path / "other.pt")
    cases = {
        "missing.pt": (FileNotFoundError, r"checkpoint .*missing.pt does not exist. Train a model first"),
        "empty.pt": (ValueError, r"checkpoint .*empty.pt is empty \(0 bytes\)"),
        "cut.pt": (ValueError, r"checkpoint .*cut.pt is truncated or damaged"),
        "text.pt": (ValueError, r"text.pt is not a PyTorch checkpoint"),
        "other.pt": (ValueError, r"(?s)checkpoint .*other.pt could not be loaded: .*size mismatch"),
    }
    from ignite.engine import Engine

    engine = Engine(lambda e, b: None)
    for name, (error, match) in cases.items():
        loader = CheckedCheckpointLoader(str(tmp_path / name), {"model": net})
        with pytest.raises(error, match=match):
            loader(engine)
    CheckedCheckpointLoader(str(good), {"model": net})(engine)
