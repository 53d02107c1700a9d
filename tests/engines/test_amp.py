"""AMP on a CPU (bfloat16 autocast): every bundle's trainer from its ``train.json``, and the package's
:class:`~monai_gamble.engines.AmpSupervisedTrainer` (MONAI's ``SupervisedTrainer`` autocasts on CUDA only)."""

from __future__ import annotations

import contextlib
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from monai.engines import SupervisedTrainer
from monai.networks.nets import UNet

from monai_gamble.engines import AmpSupervisedTrainer, method_loss, segmentation_trainer

REPO = Path(__file__).resolve().parents[2]
BF16 = {"amp": True, "train#trainer#amp_kwargs": {"dtype": "$torch.bfloat16"}}
# every bundle trains 2 iterations of one epoch, without validation, tracking, progress bar or figures
QUIET = {"device": "$torch.device('cpu')", "is_not_rank0": True, "tracking_uri": None, "val_interval": 1000,
         "train#trainer#epoch_length": 2}  # fmt: skip
# the bundles' tests' tiny settings (tests/bundles/test_*_bundle.py), as benchmarks/gpu_check.py runs them,
# for one epoch (of 2 iterations for the pathology bundle, whose epoch is its own key)
sys.path.insert(0, str(REPO / "benchmarks"))
from gpu_check import TINY_TRAIN  # noqa: E402

TINY = {name: {**values, "max_epochs": 1} for name, values in TINY_TRAIN.items()}
TINY["pathology_semisupervised_adversarial"]["epoch_length"] = 2


def bundle_trainer(name: str, tmp_path: Path, overrides: dict):
    """The trainer of ``bundles/<name>/configs/train.json`` parsed with ``overrides``, in a copy of the
    bundle's configs under ``tmp_path`` (its synthetic data, checkpoints and logs go there)."""
    root = tmp_path / name
    shutil.copytree(REPO / "bundles" / name / "configs", root / "configs")
    parser = ConfigParser()
    parser.read_config(str(root / "configs" / "train.json"))
    parser.update({"bundle_root": str(root), **overrides})
    with warnings.catch_warnings(), contextlib.chdir(root):
        warnings.simplefilter("ignore")
        return parser.get_parsed_content("train#trainer")


def record_dtypes(module: torch.nn.Module) -> list[torch.dtype]:
    """The output dtypes of every convolution of ``module`` (a forward hook each), appended as they run."""
    seen: list[torch.dtype] = []
    for m in module.modules():
        if isinstance(m, torch.nn.modules.conv._ConvNd):
            m.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    return seen


def weights(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten().float().clone() for p in module.parameters()])


def trainer_loss(trainer) -> float:
    out = trainer.state.output
    return float(torch.as_tensor((out[0] if isinstance(out, list) else out)["loss"]).detach())


@pytest.mark.parametrize("name", sorted(TINY))
def test_every_bundle_trains_under_bfloat16_autocast_on_cpu(name, tmp_path):
    overrides = {**QUIET, **TINY[name], **BF16}
    trainer = bundle_trainer(name, tmp_path, overrides)
    assert trainer.amp and trainer.amp_kwargs == {"dtype": torch.bfloat16}
    nets = {"segmenter": trainer.network}
    if getattr(trainer, "critic", None) is not None:
        nets["critic"] = trainer.critic
    seen = {k: record_dtypes(net) for k, net in nets.items()}
    before = {k: weights(net) for k, net in nets.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.run()
    assert trainer.state.iteration == 2
    assert np.isfinite(trainer_loss(trainer))
    assert trainer.scaler is not None and trainer.scaler._device == "cpu"
    for k, net in nets.items():
        assert torch.bfloat16 in seen[k], (k, set(seen[k]))  # autocast was on
        assert not torch.equal(before[k], weights(net)), f"the {k}'s weights did not change"
        assert all(p.dtype == torch.float32 for p in net.parameters())  # the weights stay in float32


def tiny_data(n: int = 3) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    images = [torch.rand(2, 1, 16, 16, generator=g) for _ in range(n)]
    return [{"image": x, "label": (x > 0.5).float()} for x in images]


def tiny_net() -> UNet:
    torch.manual_seed(0)
    return UNet(2, 1, 2, channels=(4, 8), strides=(2,), num_res_units=0)


def test_monai_supervised_trainer_ignores_cpu_amp():
    """Why AmpSupervisedTrainer exists: MONAI 1.6.1 autocasts with ``torch.autocast("cuda")``, so on a
    CPU ``amp=True`` trains in float32. When a MONAI release fixes this, this test fails: the bundles'
    configs (nerve, X-ray, thyroid ``train_ce.json``, pathology ``train_supervised.json``) can then name
    MONAI's ``SupervisedTrainer`` again."""
    net = tiny_net()
    seen = record_dtypes(net)
    trainer = SupervisedTrainer(
        "cpu", 1, tiny_data(), net, torch.optim.SGD(net.parameters(), 0.1), method_loss("ce"), amp=True,
        amp_kwargs={"dtype": torch.bfloat16},
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the CUDA-only GradScaler and autocast warn that CUDA is not there
        trainer.run()
    assert set(seen) == {torch.float32}


@pytest.mark.parametrize("acc", [1, 2])
def test_amp_supervised_trainer_autocasts_on_cpu_and_steps_as_monai(acc):
    net = tiny_net()
    seen = record_dtypes(net)
    opt = torch.optim.SGD(net.parameters(), 0.1)
    steps: list[int] = []
    opt.register_step_post_hook(lambda *_: steps.append(1))
    before = weights(net)
    trainer = AmpSupervisedTrainer(
        "cpu", 2, tiny_data(3), net, opt, method_loss("ce"), amp=True, amp_kwargs={"dtype": torch.bfloat16},
        accumulation_steps=acc, decollate=False,
    )  # fmt: skip
    trainer.run()
    assert set(seen) == {torch.bfloat16} and isinstance(trainer.scaler, torch.amp.GradScaler)
    assert trainer.scaler._device == "cpu"
    assert np.isfinite(trainer_loss(trainer)) and not torch.equal(before, weights(net))
    # MONAI's schedule: a step every `acc` iterations and at the end of each 3-iteration epoch
    assert len(steps) == (6 if acc == 1 else 4)


def test_amp_supervised_trainer_without_amp_is_monai_exactly():
    results = []
    for cls in (SupervisedTrainer, AmpSupervisedTrainer):
        net = tiny_net()
        trainer = cls("cpu", 2, tiny_data(3), net, torch.optim.SGD(net.parameters(), 0.1), method_loss("ce"),
                      accumulation_steps=2)  # fmt: skip
        trainer.run()
        results.append(weights(net))
    assert torch.equal(*results)


def test_segmentation_trainer_picks_the_cpu_amp_trainer_only_where_needed():
    net = tiny_net()
    opt = torch.optim.SGD(net.parameters(), 0.1)
    make = lambda **kw: segmentation_trainer("cpu", 1, tiny_data(1), net, opt, loss_function=method_loss("ce"), **kw)  # noqa: E731
    assert type(make(amp=True, amp_kwargs={"dtype": torch.bfloat16})) is AmpSupervisedTrainer
    assert type(make()) is SupervisedTrainer and type(make(amp=False)) is SupervisedTrainer
