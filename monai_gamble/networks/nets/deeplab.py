"""DeepLabV3+ on MONAI's encoders."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.blocks import Convolution
from monai.networks.layers import Act, Conv, Norm, Pool
from monai.networks.layers.utils import get_act_layer
from monai.networks.nets.resnet import ResNetEncoder
from torch import nn

from ..utils import _linear_resize
from .encoders import _input_size_guard, build_encoder, dilate_resnet_encoder, encoder_channels

__all__ = ["ASPP", "DeepLabV3Plus"]


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling with an image-pooling branch (Chen et al., "Rethinking Atrous
    Convolution for Semantic Image Segmentation", 2017): a 1x1 convolution, one 3x3 convolution per
    atrous rate, and the global average of the features (1x1 convolution, broadcast back),
    concatenated and projected to ``out_channels``.

    The image-pooling branch has no normalisation: its input is one value per channel and image, on
    which batch norm fails in training at batch size 1 and is meaningless at small batches; it has a
    bias instead (and ``act``). The other branches use ``norm``.

    Args:
        spatial_dims: 1, 2 or 3.
        in_channels: input channels.
        out_channels: channels of every branch and of the output.
        rates: atrous rates of the 3x3 branches.
        norm: normalisation (MONAI ``Norm`` name or tuple).
        act: activation (MONAI ``Act`` name or tuple).
        dropout: dropout after the projection.

    Shapes:
        ``(B, in_channels, *spatial) -> (B, out_channels, *spatial)``.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int = 256,
        rates: Sequence[int] = (6, 12, 18),
        norm: tuple | str = Norm.BATCH,
        act: tuple | str = Act.RELU,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        conv = Conv[Conv.CONV, spatial_dims]
        self.branches = nn.ModuleList(
            [Convolution(spatial_dims, in_channels, out_channels, kernel_size=1, norm=norm, act=act, bias=False)]
            + [
                Convolution(
                    spatial_dims, in_channels, out_channels, kernel_size=3, dilation=r, norm=norm, act=act, bias=False
                )
                for r in rates
            ]
        )
        self.pool = nn.Sequential(
            Pool[Pool.ADAPTIVEAVG, spatial_dims](1), conv(in_channels, out_channels, kernel_size=1), get_act_layer(act)
        )
        self.project = Convolution(
            spatial_dims,
            out_channels * (len(rates) + 2),
            out_channels,
            kernel_size=1,
            norm=norm,
            act=act,
            dropout=dropout,
            bias=False,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs: list[torch.Tensor] = []
        for branch in self.branches:
            outs.append(branch(x))
        outs.append(self.pool(x).expand_as(outs[0]))  # the image-pooling branch, broadcast back
        return self.project(torch.cat(outs, dim=1))


class DeepLabV3Plus(nn.Module):
    """DeepLabV3+ (Chen et al., "Encoder-Decoder with Atrous Separable Convolution for Semantic
    Image Segmentation", ECCV 2018) as a decoder on an encoder of MONAI's ``FlexibleUNet`` registry
    (ResNet 10-200, EfficientNet b0-b8, l2).

    The encoder's deepest features (at ``output_stride``) go through :class:`ASPP` with atrous
    rates scaled to that stride (``(6, 12, 18) * 16 / output_stride``: (12, 24, 36) at 8, (6, 12,
    18) at 16, (3, 6, 9) at 32); the result is upsampled to the stride-4 features, which are
    projected to ``low_level_channels`` (48); both are concatenated and fused by two 3x3
    convolutions, classified by a 1x1 convolution, and upsampled (x4, to the input's exact size).

    MONAI's encoders downsample by 32. A stride of 16 or 8 (the paper's) is reached on ResNet
    encoders by replacing the strides of the last stages with dilation
    (:func:`monai_gamble.networks.nets.encoders.dilate_resnet_encoder`); EfficientNet encoders work
    at 32 only (their "same" padding is fixed for their nominal image size, so their strides cannot
    be replaced by dilation; taking their stride-16 output instead would leave the last stage
    unused). Inputs of any size work: the encoder rounds sizes not divisible by its strides, the
    ASPP output is resized to the stride-4 features, and the logits to the input's exact size (a
    65 x 97 input gives 65 x 97 logits); sizes divisible by 32 avoid the rounding. EfficientNet
    encoders (MONAI's, as in ``FlexibleUNet``) need every spatial size to be at least about 32
    (efficientnet-b0: 32); smaller inputs raise a ``ValueError`` that says so.

    Batch size 1: in eval any size works. In training the image-pooling branch has no batch norm
    (see :class:`ASPP`), so batch size 1 trains as long as the deepest features have more than one
    value per channel (an input larger than ``output_stride`` in one dimension for ResNet, about
    twice that for EfficientNet); smaller inputs raise a ``ValueError`` that says so (MONAI's
    encoders use batch norm throughout).

    TorchScript: ``torch.jit.script`` compiles the network (what ``monai.bundle ckpt_export`` does), for
    any input size; a compiled network raises the encoder's own error for a too small input.

    Args:
        spatial_dims: 2 or 3 (3D with ResNet encoders and EfficientNet, as MONAI allows).
        in_channels: input channels.
        out_channels: output channels (classes; logits).
        backbone: a name of MONAI's encoder registry, e.g. ``"resnet34"``, ``"efficientnet-b0"``.
        pretrained: load the encoder's pretrained weights, downloaded by MONAI: MedicalNet for ResNet
            (3D, ``in_channels=1`` only), ImageNet for EfficientNet (2D only; see
            :func:`~monai_gamble.networks.nets.build_encoder`).
        output_stride: 8, 16 or 32; default 16 for ResNet encoders, 32 for the others.
        atrous_rates: ASPP rates; default scaled to ``output_stride`` as above.
        aspp_channels: channels of the ASPP branches and output (256).
        low_level_channels: channels of the projected stride-4 features (48).
        decoder_channels: channels of the fusion convolutions (256).
        norm: normalisation of the decoder (MONAI ``Norm``), batch norm by default; the encoder keeps
            MONAI's (batch norm).
        act: activation of the decoder (MONAI ``Act``), ReLU by default.
        dropout: dropout after ASPP's projection and before the classifier.

    Shapes:
        ``(B, in_channels, *spatial) -> (B, out_channels, *spatial)``.

    Raises:
        ValueError: for an unknown backbone, ``spatial_dims`` other than 2 or 3, a non-positive
            ``out_channels``, or an output stride the encoder cannot give; in training at batch size 1,
            for an input so small that the deepest features have a single value per channel; for an
            input smaller than an EfficientNet encoder accepts.

    Example:
        >>> net = DeepLabV3Plus(spatial_dims=2, in_channels=1, out_channels=2, backbone="resnet34")
        >>> net(torch.rand(2, 1, 256, 256)).shape
        torch.Size([2, 2, 256, 256])
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        backbone: str = "resnet34",
        pretrained: bool = False,
        output_stride: int | None = None,
        atrous_rates: Sequence[int] | None = None,
        aspp_channels: int = 256,
        low_level_channels: int = 48,
        decoder_channels: int = 256,
        norm: tuple | str = Norm.BATCH,
        act: tuple | str = Act.RELU,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
        if in_channels < 1 or out_channels < 1:
            raise ValueError(f"in_channels and out_channels must be positive, got {in_channels}, {out_channels}.")
        encoder = build_encoder(backbone, spatial_dims, in_channels, pretrained)
        if output_stride is None:
            output_stride = 16 if isinstance(encoder, ResNetEncoder) else 32
        self.encoder = dilate_resnet_encoder(encoder, output_stride)
        self.output_stride = output_stride
        self.atrous_rates = tuple(atrous_rates or (r * 16 // output_stride for r in (6, 12, 18)))
        channels = encoder_channels(backbone)
        self.aspp = ASPP(spatial_dims, channels[-1], aspp_channels, self.atrous_rates, norm, act, dropout)
        self.low_level = Convolution(
            spatial_dims, channels[1], low_level_channels, kernel_size=1, norm=norm, act=act, bias=False
        )
        self.fuse = nn.Sequential(
            Convolution(
                spatial_dims,
                aspp_channels + low_level_channels,
                decoder_channels,
                kernel_size=3,
                norm=norm,
                act=act,
                bias=False,
            ),
            Convolution(
                spatial_dims,
                decoder_channels,
                decoder_channels,
                kernel_size=3,
                norm=norm,
                act=act,
                dropout=dropout,
                bias=False,
            ),
        )
        self.classifier = Conv[Conv.CONV, spatial_dims](decoder_channels, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_scripting():
            return self._logits(x)
        return self._guarded_logits(x)

    @torch.jit.unused
    def _guarded_logits(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`_logits` with the errors of too small inputs explained (Python only: TorchScript has
        no context managers, so a scripted network raises the encoder's own errors)."""
        with _input_size_guard(x, self.output_stride, self.training):
            return self._logits(x)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        features = self.encoder(x)
        high = self.aspp(features[-1])
        low = self.low_level(features[1])
        y = self.fuse(torch.cat([_linear_resize(high, low.shape[2:]), low], dim=1))
        return _linear_resize(self.classifier(y), x.shape[2:])
