"""The bundles' networks compile with ``torch.jit.script`` (what ``monai.bundle ckpt_export`` does by
default) and the compiled network computes what the eager one computes, at any input size, in eval and
in training; MONAI's ResNet shortcut "A" as a module is the same computation (values and gradients)."""

import functools
import io

import pytest
import torch
from monai.networks.nets import BasicUNetPlusPlus
from monai.networks.nets.resnet import ResNetEncoder

from monai_gamble.networks.nets import ASPP, DeepLabV3Plus, PSPNet, PyramidPooling, UNetPlusPlus
from monai_gamble.networks.nets.encoders import ZeroPadShortcut, build_encoder, dilate_resnet_encoder
from monai_gamble.networks.utils import _linear_resize, linear_interpolation_mode, linear_resize

TOL = {"atol": 1e-5, "rtol": 1e-5}

NETWORKS = {
    "unetplusplus": lambda: UNetPlusPlus(spatial_dims=2, in_channels=1, out_channels=1, features=(4, 4, 8, 8, 16, 4)),
    "deeplab_resnet34_os16": lambda: DeepLabV3Plus(
        spatial_dims=2, in_channels=3, out_channels=4, backbone="resnet34", aspp_channels=16, decoder_channels=16
    ),
    "deeplab_resnet18_os8": lambda: DeepLabV3Plus(
        spatial_dims=2, in_channels=1, out_channels=2, backbone="resnet18", output_stride=8, aspp_channels=16
    ),
    "deeplab_efficientnet_b0": lambda: DeepLabV3Plus(
        spatial_dims=2, in_channels=1, out_channels=2, backbone="efficientnet-b0", aspp_channels=16
    ),
    "pspnet_resnet34": lambda: PSPNet(spatial_dims=2, in_channels=1, out_channels=2, fusion_channels=16),
    "pspnet_efficientnet_b0": lambda: PSPNet(
        spatial_dims=2, in_channels=1, out_channels=2, backbone="efficientnet-b0", fusion_channels=16
    ),
    "deeplab_resnet10_3d": lambda: DeepLabV3Plus(
        spatial_dims=3, in_channels=1, out_channels=2, backbone="resnet10", aspp_channels=8, decoder_channels=8
    ),
}


def _input(name: str, net: torch.nn.Module, batch: int = 2) -> torch.Tensor:
    """A random input of the network: 2D 64 x 48 (UNet++: divisible by 16) or an odd 65 x 97; 3D 33 x 40 x 36."""
    channels = 3 if name == "deeplab_resnet34_os16" else 1
    if name.endswith("_3d"):
        return torch.rand(batch, channels, 33, 40, 36)
    return torch.rand(batch, channels, *((64, 48) if name == "unetplusplus" else (65, 97)))


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_scripted_network_equals_eager_in_eval_after_save_and_load(name):
    torch.manual_seed(0)
    net = NETWORKS[name]().eval()
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(net), buffer)
    buffer.seek(0)
    scripted = torch.jit.load(buffer)
    x = _input(name, net)
    with torch.no_grad():
        expected = net(x)
        out = scripted(x)
    assert out.shape == (x.shape[0], expected.shape[1], *x.shape[2:])
    torch.testing.assert_close(out, expected, **TOL)
    if name != "unetplusplus":  # another size through the same compiled graph: nothing was fixed at compile time
        y = torch.rand(1, x.shape[1], *(s + 7 for s in x.shape[2:]))
        with torch.no_grad():
            torch.testing.assert_close(scripted(y), net(y), **TOL)


@pytest.mark.parametrize("name", ["deeplab_resnet34_os16", "pspnet_resnet34"])
def test_scripted_network_equals_eager_in_training(name):
    torch.manual_seed(0)
    net = NETWORKS[name]()
    for m in net.modules():  # dropout off, batch norm in training mode
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    scripted = torch.jit.script(net)
    x = _input(name, net)
    torch.testing.assert_close(scripted.train()(x), net.train()(x), **TOL)


def test_scripted_unetplusplus_gives_the_deep_supervision_list_in_training():
    torch.manual_seed(0)
    net = UNetPlusPlus(
        spatial_dims=2, in_channels=1, out_channels=2, features=(4, 4, 8, 8, 16, 4), deep_supervision=True
    )
    reference = BasicUNetPlusPlus(
        spatial_dims=2, in_channels=1, out_channels=2, features=(4, 4, 8, 8, 16, 4), deep_supervision=True
    )
    reference.load_state_dict(net.state_dict())
    scripted = torch.jit.script(net)
    x = torch.rand(2, 1, 32, 32)
    outs = scripted.train()(x)
    expected = reference.train()(x)
    assert isinstance(outs, list) and len(outs) == 4
    for out, ref in zip(outs, expected):
        torch.testing.assert_close(out, ref, **TOL)
    torch.testing.assert_close(scripted.eval()(x), reference.eval()(x)[-1], **TOL)


def test_scripted_network_raises_the_encoders_error_for_a_too_small_input():
    """The explained errors of too small inputs are Python-only; the compiled network still refuses."""
    net = DeepLabV3Plus(spatial_dims=2, in_channels=1, out_channels=2, backbone="efficientnet-b0").eval()
    with pytest.raises(ValueError, match="too small for this EfficientNet encoder"):
        net(torch.rand(1, 1, 16, 16))
    with pytest.raises(RuntimeError, match="Kernel size can.t be greater than actual input size"):
        torch.jit.script(net)(torch.rand(1, 1, 16, 16))


def test_aspp_and_pyramid_pooling_script():
    x = torch.rand(2, 8, 9, 11)
    for module in (ASPP(2, 8, 4, rates=(1, 2)).eval(), PyramidPooling(2, 8).eval()):
        torch.testing.assert_close(torch.jit.script(module)(x), module(x), **TOL)


@pytest.mark.parametrize("backbone, count", [("resnet10", 0), ("resnet18", 3), ("resnet34", 3), ("resnet50", 0)])
def test_resnet_encoders_have_shortcut_modules_instead_of_partials(backbone, count):
    """ResNet 18 and 34 use MONAI's shortcut "A" (10 and 50 a convolution, "B")."""
    encoder = build_encoder(backbone, spatial_dims=2, in_channels=1)
    blocks = [m for m in encoder.modules() if hasattr(m, "downsample")]
    assert not any(isinstance(b.downsample, functools.partial) for b in blocks)
    shortcuts = [b.downsample for b in blocks if isinstance(b.downsample, ZeroPadShortcut)]
    assert [(s.planes, s.stride) for s in shortcuts] == [(128, 2), (256, 2), (512, 2)][: len(shortcuts)]
    assert len(shortcuts) == count


def test_zero_pad_shortcut_is_monais_shortcut_a_in_values_and_gradients():
    encoder = ResNetEncoder.__new__(ResNetEncoder)  # only for its _downsample_basic_block method
    reference = functools.partial(encoder._downsample_basic_block, planes=6, stride=2, spatial_dims=2)
    shortcut = ZeroPadShortcut(planes=6, stride=2, spatial_dims=2)
    x = torch.rand(2, 4, 7, 8, requires_grad=True)
    out = shortcut(x)
    assert out.shape == (2, 6, 4, 4)
    torch.testing.assert_close(out, reference(x), rtol=0, atol=0)
    torch.testing.assert_close(out[:, :4], x[:, :, ::2, ::2].detach(), rtol=0, atol=0)
    assert not out.requires_grad  # detached, as MONAI's ``.data``
    torch.testing.assert_close(torch.jit.script(shortcut)(x), out, rtol=0, atol=0)


def test_dilated_stage_shortcut_keeps_its_planes_with_stride_one():
    encoder = dilate_resnet_encoder(build_encoder("resnet34", 2, 1), 8)
    shortcuts = [m for m in encoder.modules() if isinstance(m, ZeroPadShortcut)]
    assert [(s.planes, s.stride) for s in shortcuts] == [(128, 2), (256, 1), (512, 1)]
    features = encoder(torch.rand(1, 1, 64, 64))
    assert [tuple(f.shape[2:]) for f in features] == [(32, 32), (16, 16), (8, 8), (8, 8), (8, 8)]


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_scriptable_resize_is_linear_resize(dims):
    x = torch.rand(2, 3, *([5] * dims))
    size = [7, 4, 6][:dims]
    torch.testing.assert_close(_linear_resize(x, size), linear_resize(x, size), rtol=0, atol=0)
    torch.testing.assert_close(
        torch.jit.script(_linear_resize)(x, size),
        torch.nn.functional.interpolate(x, size=size, mode=linear_interpolation_mode(dims).value, align_corners=False),
        rtol=0,
        atol=0,
    )
    assert _linear_resize(x, [5] * dims) is x
