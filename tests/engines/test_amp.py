"""AMP on a CPU (bfloat16 autocast): every bundle's trainer from its ``train.json``, and the package's
:class:`~monai_gamble.engines.AmpSupervisedTrainer` (MONAI's ``SupervisedTrainer`` autocasts on CUDA only)."""

from __future__ import annotations

import contextlib
import shutil
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
# the bundles' tests' tiny settings (tests/bundles/test_*_bundle.py)
TINY = {
    "thyroid_ultrasound_gambling": {
        "synthetic_num_images": 12, "image_size": [64, 64], "network_def#channels": [4, 8, 16, 32, 64],
        "network_def#num_res_units": 0, "critic_def#channels": [4, 8, 16, 32], "batch_size": 4, "max_epochs": 1,
    },
    "nerve_ultrasound_ems": {
        "synthetic_num_subjects": 4, "synthetic_images_per_subject": 4, "synthetic_num_test_images": 2,
        "image_size": [64, 64], "backbone": "efficientnet-b0", "network_def#decoder_channels": [32, 16, 16, 8, 8],
        "batch_size": 4, "max_epochs": 1,
    },
    "pathology_semisupervised_adversarial": {
        "synthetic_num_labelled": 10, "synthetic_num_unlabelled": 4, "synthetic_tile_size": 64, "image_size": [64, 64],
        "backbone": "resnet10", "aspp_channels": 8, "decoder_channels": 8, "critic_channels": [4, 4, 4, 4],
        "batch_size": 2, "max_epochs": 1, "epoch_length": 2,
    },
    "xray_pneumothorax": {
        "synthetic_num_images": 12, "synthetic_image_size": 64, "synthetic_num_test_images": 2,
        "synthetic_positive_fraction": 0.5, "features": [4, 4, 8, 8, 16, 4], "swa_epochs": 0,
        # a stage without a batch size keeps the loader (and the 2-iteration epoch): ProgressiveResizing
        # rebuilds it, and sets the epoch length to its length, for a stage that names one
        "stages": [{"epochs": 1, "spatial_size": [32, 32]}], "train#dataloader#batch_size": 4,
    },
    "generic_segmentation": {
        "synthetic_num_cases": 6, "synthetic_num_test": 2, "pixdim": [6.0, 6.0, 6.0],
        "network_def#channels": [4, 8, 16, 32], "network_def#strides": [2, 2, 2], "network_def#num_res_units": 0,
        "critic_channels": [4, 8, 16], "split_fractions": [0.5, 0.17, 0.33], "num_samples": 1, "max_epochs": 1,
    },
}  # fmt: skip
# MONAI's SupervisedTrainer (nerve, X-ray) autocasts on CUDA only: on a CPU these bundles need the package's
# trainer, a config change (train#trainer#_target_) not made here (see AmpSupervisedTrainer)
CPU_AMP_TARGET = {
    name: "monai_gamble.engines.AmpSupervisedTrainer" for name in ("nerve_ultrasound_ems", "xray_pneumothorax")
}


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
    if name in CPU_AMP_TARGET:
        overrides["train#trainer#_target_"] = CPU_AMP_TARGET[name]
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
    CPU ``amp=True`` trains in float32. When a MONAI release fixes this, this test fails: the nerve and
    X-ray bundles' ``SupervisedTrainer`` then needs no replacement for CPU AMP."""
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
