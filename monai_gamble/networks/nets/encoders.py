"""MONAI's encoder registry (the backbones of ``FlexibleUNet``) as feature extractors for decoders."""

from __future__ import annotations

import functools
from typing import Any

from monai.networks.nets.flexible_unet import FLEXUNET_BACKBONE
from monai.networks.nets.resnet import ResNetEncoder
from torch import nn

__all__ = ["build_encoder", "dilate_resnet_encoder", "encoder_channels", "encoder_names"]


def encoder_names() -> list[str]:
    """Names of the registered encoders (``"resnet10"`` ... ``"resnet200"``, ``"efficientnet-b0"`` ...)."""
    return sorted(FLEXUNET_BACKBONE.register_dict)


def encoder_channels(backbone: str) -> tuple[int, ...]:
    """Channels of the encoder's five outputs, at strides 2, 4, 8, 16 and 32."""
    return tuple(FLEXUNET_BACKBONE.register_dict[backbone]["feature_channel"])


def build_encoder(backbone: str, spatial_dims: int, in_channels: int, pretrained: bool = False) -> nn.Module:
    """An encoder of MONAI's ``FlexibleUNet`` registry whose forward returns five feature maps at
    strides 2, 4, 8, 16 and 32.

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
    return entry["type"](**params)


def _dilate_stage(stage: nn.Module, previous: int, dilation: int) -> None:
    """Replace a ResNet stage's stride by dilation (as torchvision's ``replace_stride_with_dilation``):
    its strided convolutions get stride 1; the 3x3 convolutions of its first block keep the previous
    dilation, those of the other blocks get ``dilation``; paddings follow, so sizes are kept."""
    for i, block in enumerate(stage.children()):
        d = previous if i == 0 else dilation
        shortcut = getattr(block, "downsample", None)
        if isinstance(shortcut, functools.partial) and "stride" in shortcut.keywords:  # MONAI's shortcut "A"
            block.downsample = functools.partial(shortcut.func, *shortcut.args, **{**shortcut.keywords, "stride": 1})
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
    if output_stride == 16:
        _dilate_stage(encoder.layer4, 1, 2)
    else:
        _dilate_stage(encoder.layer3, 1, 2)
        _dilate_stage(encoder.layer4, 2, 4)
    return encoder
