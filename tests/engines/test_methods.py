"""Every method by name: the loss, objective, critic and trainer it gets, 2D and 3D."""

import numpy as np
import pytest
import torch
from monai.engines import SupervisedTrainer
from monai.networks.nets import UNet

from monai_gamble.data import ClassConditionalBatchSampler
from monai_gamble.engines import (
    SegmentationMethod,
    SegmenterCriticTrainer,
    checkpoint_dict,
    critic_lr_scheduler,
    critic_optimizer,
    loss_metrics,
    method_batch_sampler,
    method_critic,
    method_loss,
    method_objective,
    method_spec,
    output_values,
    segmentation_trainer,
    to_device,
)

CASES = [
    # method, loss class, objective class, critic class, map key
    ("ce", "CrossEntropyLoss", None, None, None),
    ("focal", "FocalLoss", None, None, None),
    ("dice_ce", "DiceCELoss", None, None, None),
    ("tce_image", "TiltedCrossEntropyLoss", None, None, None),
    ("tce_class", "TiltedCrossEntropyLoss", None, None, None),
    ("stochastic_tce", "CrossEntropyLoss", None, None, None),
    ("gambling", None, "GamblingObjective", "Gambler", "betting_map"),
    ("adversarial", None, "AdversarialObjective", "PatchDiscriminator", None),
    ("confidence", None, "ConfidenceObjective", "Gambler", "confidence_map"),  # ConfidenceNetwork is Gambler
    ("segan", None, "SegANObjective", "PatchDiscriminator", None),
]


def _name(x):
    return None if x is None else type(x).__name__


@pytest.mark.parametrize("method, loss, objective, critic, map_key", CASES, ids=[c[0] for c in CASES])
def test_each_method_is_the_package_implementation(method, loss, objective, critic, map_key):
    spec = method_spec(method)
    assert spec.critic == critic and spec.map_key == map_key and spec.has_critic == (critic is not None)
    assert spec.class_sampling == (method == "stochastic_tce")
    assert spec.figure_map_keys() == (("prob",) if map_key is None else ("prob", map_key))
    assert spec.figure_map_keys(critic_map=False) == ("prob",) and spec.critic_map(False) is None
    assert _name(method_loss(method)) == loss
    assert _name(method_objective(method)) == objective
    assert spec.extra_loss_keys == tuple(k for k in spec.loss_keys if k != "loss")
    if method.startswith("tce"):
        assert method_loss(method, tce_t=0.5).level.value == method.split("_")[1]


@pytest.mark.parametrize("method", ["gambling", "adversarial", "confidence", "segan"])
@pytest.mark.parametrize("spatial_dims, size", [(2, 32), (3, 16)])
def test_critic_fits_the_data_and_objective_runs(method, spatial_dims, size):
    in_channels, num_classes = 2, 3
    critic = method_critic(method, spatial_dims, in_channels, num_classes, channels=(4, 8, 16))
    assert critic.__class__.__name__ == method_spec(method).critic
    image = torch.randn(2, in_channels, *([size] * spatial_dims))
    logits = torch.randn(2, num_classes, *([size] * spatial_dims), requires_grad=True)
    label = torch.randint(0, num_classes, (2, 1, *([size] * spatial_dims))).float()
    objective = method_objective(method)
    out = objective.critic_loss(critic, image, logits.detach(), label)
    assert torch.isfinite(out.loss)
    seg = objective.segmenter_loss(critic, image, logits, label)
    seg.loss.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    if objective.map_name is not None:
        assert objective.critic_map(critic, image, logits.detach()).shape == (2, 1, *([size] * spatial_dims))


def test_supervised_methods_have_no_critic():
    for method in ("ce", "focal", "dice_ce", "tce_image", "tce_class", "stochastic_tce"):
        assert method_critic(method, 3, 1, 2) is None and method_objective(method) is None
    assert to_device(None, "cpu") is None and critic_optimizer(None, 1e-3) is None
    assert critic_lr_scheduler(None, 10) is None


def test_unknown_method_lists_the_choices():
    with pytest.raises(ValueError, match="gambling"):
        method_spec("gamble")
    with pytest.raises(ValueError, match="spatial_dims must be 2 or 3"):
        method_critic("gambling", 4, 1, 2)


def test_trainer_and_helpers():
    net = UNet(2, 1, 2, channels=(4, 8), strides=(2,), num_res_units=0)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    data = [{"image": torch.randn(2, 1, 16, 16), "label": torch.randint(0, 2, (2, 1, 16, 16)).float()}]
    sup = segmentation_trainer("cpu", 1, data, net, opt, loss_function=method_loss("ce"))
    assert type(sup) is SupervisedTrainer
    critic = method_critic("gambling", 2, 1, 2, channels=(4, 8))
    c_opt = critic_optimizer(critic, 1e-3)
    assert isinstance(critic_lr_scheduler(c_opt, 5), torch.optim.lr_scheduler.CosineAnnealingLR)
    two = segmentation_trainer(
        "cpu", 1, data, net, opt, critic=critic, critic_optimizer=c_opt, objective=method_objective("gambling"),
        key_train_metric=loss_metrics(["loss"]), additional_metrics=loss_metrics(method_spec("gambling").extra_loss_keys),
    )  # fmt: skip
    assert isinstance(two, SegmenterCriticTrainer)
    two.run()
    assert {"train_loss", "train_critic_loss", "train_ce"} <= set(two.state.metrics)
    values = output_values(("loss", "critic_loss"))(two.state.output)
    assert set(values) == {"loss", "critic_loss"} and all(isinstance(v, float) for v in values.values())
    with pytest.raises(ValueError, match="needs a critic"):
        segmentation_trainer("cpu", 1, data, net, opt, objective=method_objective("gambling"))
    with pytest.raises(ValueError, match="needs a loss_function"):
        segmentation_trainer("cpu", 1, data, net, opt)
    assert checkpoint_dict(model=net, critic=None) == {"model": net}


def test_batch_sampler_only_for_stochastic_tce():
    presence = np.array([[True, True], [True, False], [True, True]])
    assert method_batch_sampler("ce", presence, 2) is None
    calls = []
    assert method_batch_sampler("gambling", lambda: calls.append(1), 2) is None and not calls  # not looked at
    sampler = method_batch_sampler("stochastic_tce", presence, 2, seed=1)
    assert isinstance(sampler, ClassConditionalBatchSampler) and len(list(iter(sampler))) == len(sampler)


def test_the_enum_lists_all_ten():
    assert [m.value for m in SegmentationMethod] == [c[0] for c in CASES]
