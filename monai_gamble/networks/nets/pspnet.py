"""PSPNet on MONAI's encoders."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.blocks import Convolution
from monai.networks.layers import Act, Conv, Norm, Pool
from monai.networks.nets.resnet import ResNetEncoder
from torch import nn

from ..utils import _linear_resize
from .encoders import _input_size_guard, _trim_efficientnet, build_encoder, dilate_resnet_encoder, encoder_channels

__all__ = ["PSPNet", "PyramidPooling"]


class PyramidPooling(nn.Module):
    """The pyramid pooling module of PSPNet (Zhao et al., "Pyramid Scene Parsing Network", CVPR 2017):
    for each bin size b, average-pool the features to b x b (x b), reduce them to ``in_channels / 4``
    channels with a 1x1 convolution, upsample them back; concatenate with the input.

    The bin of size 1 has no normalisation (one value per channel and image: batch norm fails in
    training at batch size 1); it has a bias instead. The other bins use ``norm``.

    Args:
        spatial_dims: 1, 2 or 3.
        in_channels: input channels.
        bins: pooled sizes (1, 2, 3, 6).
        reduction_channels: channels of each pooled branch (default ``in_channels // len(bins)``).
        norm: normalisation (MONAI ``Norm``).
        act: activation (MONAI ``Act``).

    Shapes:
        ``(B, C, *spatial) -> (B, C + len(bins) * reduction_channels, *spatial)``.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        bins: Sequence[int] = (1, 2, 3, 6),
        reduction_channels: int | None = None,
        norm: tuple | str = Norm.BATCH,
        act: tuple | str = Act.RELU,
    ) -> None:
        super().__init__()
        if not bins or any(int(b) < 1 for b in bins):
            raise ValueError(f"bins must be positive sizes, got {bins}.")
        reduced = reduction_channels or max(in_channels // len(bins), 1)
        self.out_channels = in_channels + len(bins) * reduced
        self.stages = nn.ModuleList(
            nn.Sequential(
                Pool[Pool.ADAPTIVEAVG, spatial_dims](int(b)),
                Convolution(
                    spatial_dims,
                    in_channels,
                    reduced,
                    kernel_size=1,
                    norm=None if b == 1 else norm,
                    act=act,
                    bias=b == 1,
                ),
            )
            for b in bins
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [x]
        for stage in self.stages:
            outs.append(_linear_resize(stage(x), x.shape[2:]))
        return torch.cat(outs, dim=1)


class PSPNet(nn.Module):
    """PSPNet (Zhao et al., "Pyramid Scene Parsing Network", CVPR 2017) as a decoder on an encoder
    of MONAI's ``FlexibleUNet`` registry.

    Pyramid pooling (:class:`PyramidPooling`, bins 1, 2, 3, 6) on the stride-8 features, a 3x3
    fusion convolution (``fusion_channels``, 512), dropout, a 1x1 classifier, and an upsampling to
    the input's exact size. On ResNet encoders the stride-8 features are the deepest ones, their
    last two stages dilated (rates 2 and 4) as in the paper; on EfficientNet encoders the encoder's
    own stride-8 output is used and its deeper blocks are removed (neither computed nor left
    without gradient).

    Input sizes: any (down to 8 per dimension with efficientnet-b0, whose padding is fixed; smaller
    raises a ``ValueError`` that says so); the logits are resized to the input's exact size (65 x
    97 in, 65 x 97 out).
    Batch size 1: in eval any size works; in training the bin of size 1 has no batch norm (see
    :class:`PyramidPooling`), so batch size 1 trains unless the stride-8 features are 1 x 1 (an
    input of at most 8 in every dimension for ResNet, under 16 for EfficientNet, whose padding
    rounds down), which raises a ``ValueError`` that says so.

    TorchScript: ``torch.jit.script`` compiles the network (what ``monai.bundle ckpt_export`` does), for
    any input size; a compiled network raises the encoder's own error for a too small input.

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels.
        out_channels: output channels (classes; logits).
        backbone: a name of MONAI's encoder registry, e.g. ``"resnet50"``, ``"efficientnet-b0"``.
        pretrained: load the encoder's pretrained weights, downloaded by MONAI: MedicalNet for ResNet
            (3D, ``in_channels=1`` only), ImageNet for EfficientNet (2D only; see
            :func:`~monai_gamble.networks.nets.build_encoder`).
        bins: pooled sizes of the pyramid.
        fusion_channels: channels of the 3x3 convolution after the pyramid (512).
        norm: normalisation of the decoder (MONAI ``Norm``), batch norm by default; the encoder keeps
            MONAI's (batch norm).
        act: activation of the decoder (MONAI ``Act``), ReLU by default.
        dropout: dropout before the classifier (0.1).

    Shapes:
        ``(B, in_channels, *spatial) -> (B, out_channels, *spatial)``.

    Raises:
        ValueError: for an unknown backbone, ``spatial_dims`` other than 2 or 3, non-positive
            channels or bad bins; in training at batch size 1, for an input whose stride-8 features
            have a single value per channel.

    Example:
        >>> net = PSPNet(spatial_dims=2, in_channels=1, out_channels=2, backbone="resnet34")
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
        bins: Sequence[int] = (1, 2, 3, 6),
        fusion_channels: int = 512,
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
        channels = encoder_channels(backbone)
        self.dilated = isinstance(encoder, ResNetEncoder)
        self.encoder = dilate_resnet_encoder(encoder, 8) if self.dilated else _trim_efficientnet(encoder, 3)
        feature_channels = channels[-1] if self.dilated else channels[2]
        self.pyramid = PyramidPooling(spatial_dims, feature_channels, bins, norm=norm, act=act)
        self.fuse = Convolution(
            spatial_dims,
            self.pyramid.out_channels,
            fusion_channels,
            kernel_size=3,
            norm=norm,
            act=act,
            dropout=dropout,
            bias=False,
        )
        self.classifier = Conv[Conv.CONV, spatial_dims](fusion_channels, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_scripting():
            return self._logits(x)
        return self._guarded_logits(x)

    @torch.jit.unused
    def _guarded_logits(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`_logits` with the errors of too small inputs explained (Python only: TorchScript has
        no context managers, so a scripted network raises the encoder's own errors)."""
        with _input_size_guard(x, 8, self.training):
            return self._logits(x)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        f = self.encoder(x)[-1]  # stride 8: dilated ResNet, or trimmed EfficientNet
        return _linear_resize(self.classifier(self.fuse(self.pyramid(f))), x.shape[2:])
