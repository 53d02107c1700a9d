"""MONAI's encoder registry (the backbones of ``FlexibleUNet``) as feature extractors for decoders."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

import torch
from monai.networks.layers import Pool
from monai.networks.nets.efficientnet import EfficientNetBNFeatures
from monai.networks.nets.flexible_unet import FLEXUNET_BACKBONE
from monai.networks.nets.resnet import ResNetEncoder
from torch import nn

__all__ = ["ZeroPadShortcut", "build_encoder", "dilate_resnet_encoder", "encoder_channels", "encoder_names"]


def encoder_names() -> list[str]:
    """Names of the registered encoders (``"resnet10"`` ... ``"resnet200"``, ``"efficientnet-b0"`` ...)."""
    return sorted(FLEXUNET_BACKBONE.register_dict)


def encoder_channels(backbone: str) -> tuple[int, ...]:
    """Channels of the encoder's five outputs, at strides 2, 4, 8, 16 and 32."""
    return tuple(FLEXUNET_BACKBONE.register_dict[backbone]["feature_channel"])


def build_encoder(backbone: str, spatial_dims: int, in_channels: int, pretrained: bool = False) -> nn.Module:
    """An encoder of MONAI's ``FlexibleUNet`` registry whose forward returns five feature maps at
    strides 2, 4, 8, 16 and 32, built as ``FlexibleUNet`` builds it (the registry's parameters with
    ``spatial_dims``, ``in_channels`` and ``pretrained`` replaced).

    ``pretrained`` is passed to MONAI, which downloads the weights: MedicalNet weights for ResNet
    encoders (3D with ``in_channels=1`` only; MONAI raises otherwise), ImageNet weights for
    EfficientNet encoders (2D only; MONAI ignores the flag in 3D, and leaves the stem random when
    ``in_channels != 3``).

    EfficientNet encoders lose their classification head (``_conv_head``, ``_bn1``, ``_fc``), which
    their feature forward never uses: every parameter then gets a gradient, so DDP needs no
    ``find_unused_parameters``. The weights are loaded (by MONAI) before the head is removed.

    Raises:
        ValueError: for an unknown backbone name (listing the known ones).
    """
    if backbone not in FLEXUNET_BACKBONE.register_dict:
        raise ValueError(f"unknown backbone {backbone!r}; MONAI's encoders are {encoder_names()}.")
    entry = FLEXUNET_BACKBONE.register_dict[backbone]
    params: dict[str, Any] = {
        **entry["parameter"],
        "spatial_dims": spatial_dims,
        "in_channels": in_channels,
        "pretrained": pretrained,
    }
    encoder = entry["type"](**params)
    if isinstance(encoder, EfficientNetBNFeatures):
        for name in ("_conv_head", "_conv_head_padding", "_bn1", "_avg_pooling", "_dropout", "_fc"):
            if hasattr(encoder, name):
                delattr(encoder, name)
    if isinstance(encoder, ResNetEncoder):
        _shortcuts_as_modules(encoder)
    return encoder


class ZeroPadShortcut(nn.Module):
    """The shortcut "A" of MONAI's ResNet (its ``_downsample_basic_block``, the shortcut of the
    ResNet 10/18/34 encoders of ``FlexibleUNet``'s registry) as a module: a 1x1 average pooling with
    ``stride`` (a subsampling), the result detached from the graph as MONAI does it (``.data``), and
    zero channels appended up to ``planes``. MONAI stores it as a ``functools.partial``, which
    TorchScript cannot compile; as a module the encoder is scriptable. It has no parameters or
    buffers, so state dicts are unchanged.

    Args:
        planes: output channels (at least the input's).
        stride: the subsampling stride.
        spatial_dims: 1, 2 or 3.

    Shapes:
        ``(B, C, *spatial) -> (B, planes, *ceil(spatial / stride))``.
    """

    def __init__(self, planes: int, stride: int, spatial_dims: int) -> None:
        super().__init__()
        self.planes = int(planes)
        self.stride = int(stride)
        self.spatial_dims = int(spatial_dims)
        self.pool = Pool[Pool.AVG, self.spatial_dims](kernel_size=1, stride=self.stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.pool(x)
        size = list(out.shape)
        size[1] = self.planes - size[1]
        zeros = torch.zeros(size, dtype=out.dtype, device=out.device)
        return torch.cat([out.detach(), zeros], dim=1)


def _shortcuts_as_modules(encoder: nn.Module) -> None:
    """Replace the ``functools.partial`` shortcuts "A" of a MONAI ResNet's blocks by
    :class:`ZeroPadShortcut` modules with the same planes, stride and dimensions."""
    for block in encoder.modules():
        shortcut = getattr(block, "downsample", None)
        if isinstance(shortcut, functools.partial):
            kw = shortcut.keywords
            block.downsample = ZeroPadShortcut(kw["planes"], kw.get("stride", 1), kw.get("spatial_dims", 3))


def _trim_efficientnet(encoder: nn.Module, num_features: int) -> nn.Module:
    """Keep the blocks of a MONAI EfficientNet encoder up to its ``num_features``-th output (3: the
    stride-8 features are the last output), so that deeper blocks are neither computed nor left
    without gradient. Block names are kept, so the loaded weights stay where they are."""
    stacks = [i for i in encoder.extract_stacks if i > 0][: num_features - (0 in encoder.extract_stacks)]
    encoder.extract_stacks = [i for i in encoder.extract_stacks if i == 0] + stacks
    encoder._blocks = encoder._blocks[: stacks[-1]]
    return encoder


@contextlib.contextmanager
def _input_size_guard(x: torch.Tensor, deepest_stride: int, training: bool) -> Iterator[None]:
    """Turn the errors of inputs too small for the encoder into errors that say what to do:

    - in training at batch size 1, batch norm's "Expected more than 1 value per channel" (the
      stride-``deepest_stride`` features are 1 x 1);
    - in any mode, "Kernel size can't be greater than actual input size" from EfficientNet encoders,
      whose "same" padding is fixed for their nominal image size (b0 needs every spatial size to be
      at least 32 when its stride-32 features are used, 8 when only the stride-8 ones are).
    """
    try:
        yield
    except ValueError as e:
        if not (training and x.shape[0] == 1 and "more than 1 value per channel" in str(e)):
            raise
        raise ValueError(
            f"an input of spatial size {tuple(x.shape[2:])} is too small to train at batch size 1: its "
            f"features at stride {deepest_stride} have a single value per channel, which batch norm "
            f"cannot normalise in training. Use a batch of 2 or more, make one spatial size at least "
            f"{2 * deepest_stride}, or call eval()."
        ) from e
    except RuntimeError as e:
        if "Kernel size can't be greater than actual input size" not in str(e):
            raise
        raise ValueError(
            f"an input of spatial size {tuple(x.shape[2:])} is too small for this EfficientNet encoder "
            f"(its padding is fixed for its nominal image size): make every spatial size at least "
            f"{deepest_stride}, e.g. with monai.transforms.SpatialPad."
        ) from e


def _dilate_stage(stage: nn.Module, previous: int, dilation: int) -> None:
    """Replace a ResNet stage's stride by dilation (as torchvision's ``replace_stride_with_dilation``):
    its strided convolutions get stride 1; the 3x3 convolutions of its first block keep the previous
    dilation, those of the other blocks get ``dilation``; paddings follow, so sizes are kept."""
    for i, block in enumerate(stage.children()):
        d = previous if i == 0 else dilation
        shortcut = getattr(block, "downsample", None)
        if isinstance(shortcut, ZeroPadShortcut):  # MONAI's shortcut "A"
            block.downsample = ZeroPadShortcut(shortcut.planes, 1, shortcut.spatial_dims)
        for m in block.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
                m.stride = (1,) * len(m.stride)
                if any(k > 1 for k in m.kernel_size):
                    m.dilation = (d,) * len(m.kernel_size)
                    m.padding = tuple(d * (k // 2) for k in m.kernel_size)


def dilate_resnet_encoder(encoder: nn.Module, output_stride: int) -> nn.Module:
    """Make a MONAI ``ResNetEncoder`` produce its deepest features at ``output_stride`` (32, 16 or 8)
    instead of 32, by replacing the strides of its last stages with dilation (DeepLab's atrous
    convolution; Chen et al. 2017). The outputs of the dilated stages keep the previous resolution.

    Raises:
        ValueError: for another encoder type or output stride.
    """
    if output_stride not in (8, 16, 32):
        raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}.")
    if output_stride == 32:
        return encoder
    if not isinstance(encoder, ResNetEncoder):
        raise ValueError(
            f"an output stride of {output_stride} needs a ResNet backbone (its last stages are dilated); "
            f"{type(encoder).__name__} supports only 32."
        )
    _shortcuts_as_modules(encoder)
    if output_stride == 16:
        _dilate_stage(encoder.layer4, 1, 2)
    else:
        _dilate_stage(encoder.layer3, 1, 2)
        _dilate_stage(encoder.layer4, 2, 4)
    return encoder
