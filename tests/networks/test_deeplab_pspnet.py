"""DeepLabV3+ and PSPNet on MONAI's encoders: shapes, strides, batch size 1, gradients, bad options."""

import pytest
import torch

from monai_gamble.networks.nets import (
    ASPP,
    DeepLabV3Plus,
    PSPNet,
    PyramidPooling,
    build_encoder,
    dilate_resnet_encoder,
    encoder_names,
)

NETS = [DeepLabV3Plus, PSPNet]


@pytest.mark.parametrize("cls", NETS)
@pytest.mark.parametrize("backbone", ["resnet18", "efficientnet-b0"])
@pytest.mark.parametrize("shape", [(2, 1, 64, 64), (1, 1, 65, 97)])
def test_output_is_input_sized_2d(cls, backbone, shape):
    net = cls(spatial_dims=2, in_channels=1, out_channels=3, backbone=backbone)
    assert net(torch.rand(shape)).shape == (shape[0], 3, *shape[2:])  # train mode, batch 1 included


@pytest.mark.parametrize("cls", NETS)
def test_3d_with_a_resnet_encoder(cls):
    net = cls(spatial_dims=3, in_channels=2, out_channels=2, backbone="resnet10").eval()
    with torch.no_grad():
        assert net(torch.rand(1, 2, 32, 32, 32)).shape == (1, 2, 32, 32, 32)


@pytest.mark.parametrize("cls", NETS)
def test_batch_size_one_in_eval_and_train(cls):
    net = cls(2, 1, 2, backbone="resnet18")
    x = torch.rand(1, 1, 64, 64)
    net.train()
    net(x).sum().backward()  # the 1x1 pooled branches have no batch norm
    net.eval()
    with torch.no_grad():
        assert torch.isfinite(net(x)).all()


@pytest.mark.parametrize(
    "output_stride, rates, deepest", [(8, (12, 24, 36), 8), (16, (6, 12, 18), 4), (32, (3, 6, 9), 2)]
)
def test_atrous_rates_follow_the_output_stride(output_stride, rates, deepest):
    net = DeepLabV3Plus(2, 1, 2, backbone="resnet18", output_stride=output_stride)
    assert net.atrous_rates == rates
    assert [b.conv.dilation[0] for b in net.aspp.branches[1:]] == list(rates)
    features = net.encoder(torch.rand(1, 1, 64, 64))
    assert features[-1].shape[-1] == deepest and features[1].shape[-1] == 16  # stride-4 features unchanged


def test_defaults_and_pspnet_stride_8():
    assert DeepLabV3Plus(2, 1, 2, backbone="resnet34").output_stride == 16
    assert DeepLabV3Plus(2, 1, 2, backbone="efficientnet-b0").output_stride == 32
    net = PSPNet(2, 1, 2, backbone="resnet34")
    assert net.encoder(torch.rand(1, 1, 64, 64))[-1].shape[-2:] == (8, 8)  # bins pool the stride-8 features
    assert [s[0].output_size for s in net.pyramid.stages] == [1, 2, 3, 6]


def test_dilation_keeps_the_weights_compatible():
    plain = build_encoder("resnet50", 2, 1)
    dilated = dilate_resnet_encoder(build_encoder("resnet50", 2, 1), 8)
    assert {k: v.shape for k, v in plain.state_dict().items()} == {k: v.shape for k, v in dilated.state_dict().items()}
    dilated.load_state_dict(plain.state_dict())  # pretrained weights load into the dilated encoder


@pytest.mark.parametrize("cls", NETS)
def test_gradient_reaches_the_first_encoder_layer(cls):
    net = cls(2, 1, 2, backbone="resnet18")
    net(torch.rand(2, 1, 64, 64)).mean().backward()
    first = next(p for n, p in net.encoder.named_parameters() if "conv1" in n)
    assert first.grad is not None and first.grad.abs().sum() > 0


def test_blocks():
    assert ASPP(2, 8, 16, rates=(1, 2))(torch.rand(1, 8, 5, 7)).shape == (1, 16, 5, 7)
    pp = PyramidPooling(2, 8, bins=(1, 2))
    assert pp(torch.rand(1, 8, 6, 6)).shape == (1, pp.out_channels, 6, 6) and pp.out_channels == 16


@pytest.mark.parametrize("cls", NETS)
def test_bad_options(cls):
    with pytest.raises(ValueError, match="unknown backbone 'resnet19'"):
        cls(2, 1, 2, backbone="resnet19")
    with pytest.raises(ValueError, match="spatial_dims must be 2 or 3"):
        cls(4, 1, 2)
    with pytest.raises(ValueError, match="must be positive"):
        cls(2, 1, 0)
    assert "efficientnet-b0" in encoder_names()


def test_bad_strides():
    with pytest.raises(ValueError, match="needs a ResNet backbone"):
        DeepLabV3Plus(2, 1, 2, backbone="efficientnet-b0", output_stride=16)
    with pytest.raises(ValueError, match="8, 16 or 32"):
        DeepLabV3Plus(2, 1, 2, backbone="resnet18", output_stride=4)
    with pytest.raises(ValueError, match="bins"):
        PyramidPooling(2, 8, bins=(0, 2))
