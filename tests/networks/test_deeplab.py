"""DeepLabV3Plus beyond tests/networks/test_deeplab_pspnet.py: 3D EfficientNet, the bundle-style
forward, batch size 1 in training (works, or a clear error), every parameter trained, inputs too
small for EfficientNet, the ``pretrained`` flag reaching MONAI's encoder."""

import pytest
import torch

from monai_gamble.networks.nets import ASPP, DeepLabV3Plus


def test_3d_efficientnet_output_is_input_sized():
    net = DeepLabV3Plus(spatial_dims=3, in_channels=1, out_channels=2, backbone="efficientnet-b0").eval()
    with torch.no_grad():
        assert net(torch.rand(1, 1, 32, 33, 40)).shape == (1, 2, 32, 33, 40)


def test_bundle_style_forward():
    # what MONAI's verify_net_in_out does: eval, no grad, a (1, 1, H, W) float32 input
    net = DeepLabV3Plus(spatial_dims=2, in_channels=1, out_channels=2, backbone="resnet10").eval()
    with torch.no_grad():
        y = net(torch.rand(1, 1, 64, 64, dtype=torch.float32))
    assert y.shape == (1, 2, 64, 64) and y.dtype == torch.float32 and torch.isfinite(y).all()


@pytest.mark.parametrize(
    "backbone, first, too_small, large_enough",
    [("resnet10", "conv1.weight", 16, 17), ("efficientnet-b0", "_conv_stem.weight", 48, 64)],
)
def test_batch_size_one_training_and_gradients(backbone, first, too_small, large_enough):
    net = DeepLabV3Plus(2, 1, 2, backbone=backbone).train()
    net(torch.rand(1, 1, large_enough, large_enough)).mean().backward()  # batch 1 trains
    assert net.encoder.get_parameter(first).grad.abs().sum() > 0  # the gradient reaches the first layer
    assert [n for n, p in net.named_parameters() if p.grad is None] == []  # DDP needs no find_unused_parameters
    with pytest.raises(ValueError, match="too small to train at batch size 1.*batch of 2 or more"):
        net(torch.rand(1, 1, too_small, too_small))
    with torch.no_grad():
        assert net.eval()(torch.rand(1, 1, too_small, too_small)).shape == (1, 2, too_small, too_small)


def test_input_too_small_for_efficientnet():
    net = DeepLabV3Plus(2, 1, 2, backbone="efficientnet-b0").eval()
    with torch.no_grad(), pytest.raises(ValueError, match="too small for this EfficientNet encoder.*at least 32"):
        net(torch.rand(1, 1, 31, 64))


def test_pretrained_reaches_the_encoder():
    # MONAI's MedicalNet weights exist for 3D, 1-channel ResNets only: it refuses (before any download)
    with pytest.raises(ValueError, match="only available for in_channels=1 and spatial_dims=3"):
        DeepLabV3Plus(2, 1, 2, backbone="resnet10", pretrained=True)


def test_aspp_pooling_branch_has_no_batch_norm_and_the_given_activation():
    aspp = ASPP(2, 8, 16, rates=(1, 2), act="prelu").train()
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in aspp.pool.modules())
    assert isinstance(aspp.pool[-1], torch.nn.PReLU)
    assert aspp(torch.rand(1, 8, 3, 3)).shape == (1, 16, 3, 3)  # batch 1, training
