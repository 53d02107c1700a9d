"""PSPNet beyond tests/networks/test_deeplab_pspnet.py: 3D EfficientNet, the EfficientNet encoder
trimmed at stride 8, the bundle-style forward, batch size 1 in training (works, or a clear error),
every parameter trained."""

import pytest
import torch

from monai_gamble.networks.nets import PSPNet


def test_3d_efficientnet_output_is_input_sized():
    net = PSPNet(spatial_dims=3, in_channels=1, out_channels=2, backbone="efficientnet-b0").eval()
    with torch.no_grad():
        assert net(torch.rand(1, 1, 32, 33, 40)).shape == (1, 2, 32, 33, 40)


def test_bundle_style_forward_and_the_trimmed_efficientnet():
    net = PSPNet(spatial_dims=2, in_channels=1, out_channels=2, backbone="efficientnet-b0").eval()
    with torch.no_grad():
        y = net(torch.rand(1, 1, 64, 64, dtype=torch.float32))
        features = net.encoder(torch.rand(1, 1, 64, 64))
    assert y.shape == (1, 2, 64, 64) and y.dtype == torch.float32 and torch.isfinite(y).all()
    assert [f.shape[-1] for f in features] == [32, 16, 8] and features[-1].shape[1] == 40  # stops at stride 8
    keys = net.encoder.state_dict()  # block names kept (pretrained weights stay where MONAI put them)
    assert any(k.startswith("_blocks.2.") for k in keys) and not any(k.startswith("_blocks.3.") for k in keys)
    with torch.no_grad(), pytest.raises(ValueError, match="too small for this EfficientNet encoder.*at least 8"):
        net(torch.rand(1, 1, 7, 64))


@pytest.mark.parametrize(
    "backbone, first, too_small, large_enough",
    [("resnet10", "conv1.weight", 8, 9), ("efficientnet-b0", "_conv_stem.weight", 15, 16)],
)
def test_batch_size_one_training_and_gradients(backbone, first, too_small, large_enough):
    net = PSPNet(2, 1, 2, backbone=backbone).train()
    net(torch.rand(1, 1, large_enough, large_enough)).mean().backward()  # batch 1 trains
    assert net.encoder.get_parameter(first).grad.abs().sum() > 0
    assert [n for n, p in net.named_parameters() if p.grad is None] == []
    with pytest.raises(ValueError, match="too small to train at batch size 1.*batch of 2 or more"):
        net(torch.rand(1, 1, too_small, too_small))
    with torch.no_grad():
        assert net.eval()(torch.rand(1, 1, too_small, too_small)).shape == (1, 2, too_small, too_small)


def test_pyramid_bin_1_has_no_batch_norm():
    net = PSPNet(2, 1, 2, backbone="resnet10")
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in net.pyramid.stages[0].modules())
    assert any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in net.pyramid.stages[1].modules())
