"""The workflow helpers that the bundle configs call (monai_gamble.utils)."""

import re

import pytest
import torch

from monai_gamble.utils import (
    checkpoint_path,
    ddp_device_ids,
    default_device,
    default_tracking_uri,
    join_name,
    lr_scheduler,
    timestamped_name,
)


def test_device_and_ddp_device_ids(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert default_device() == torch.device("cpu") and ddp_device_ids("cpu") is None
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert default_device() == torch.device("cuda:3")  # the process's GPU under torchrun
    monkeypatch.delenv("LOCAL_RANK")
    assert default_device() == torch.device("cuda:0")
    assert ddp_device_ids("cuda:1") == [torch.device("cuda:1")]


def test_names_and_paths(tmp_path, monkeypatch):
    assert join_name("evaluation", "test", "asme") == "evaluation_test_asme"
    assert join_name("a", 1, sep=".") == "a.1"
    assert re.fullmatch(r"gambling_train_\d{8}_\d{6}", timestamped_name("gambling", "train"))
    assert checkpoint_path("models", "model") == "models/model.pt"
    assert checkpoint_path("models", "stages/stage2_192x192") == "models/stages/stage2_192x192.pt"
    assert checkpoint_path("models", "model_swa.pt") == "models/model_swa.pt"
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert default_tracking_uri(tmp_path / "eval") == f"sqlite:///{tmp_path}/eval/mlruns.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://host:5000")
    assert default_tracking_uri(tmp_path) == "http://host:5000"


@pytest.mark.parametrize(
    "schedule, after_two_epochs",
    [("cosine", 0.5 * (1 + torch.cos(torch.tensor(torch.pi * 2 / 4))).item()), ("step", 0.25), ("constant", 1.0)],
)
def test_lr_scheduler_by_name(schedule, after_two_epochs):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = lr_scheduler(opt, schedule, max_epochs=4, gamma=0.5)
    for _ in range(2):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(after_two_epochs)
    with pytest.raises(ValueError, match="Unsupported option 'linear'"):
        lr_scheduler(opt, "linear", max_epochs=4)
