"""The fully convolutional discriminator of adversarial semi-supervised segmentation."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.layers import Conv
from torch import nn

from ..utils import linear_resize

__all__ = ["FCDiscriminator"]


class FCDiscriminator(nn.Module):
    """Fully convolutional discriminator of Hung et al., "Adversarial Learning for Semi-Supervised
    Semantic Segmentation" (BMVC 2018), in any number of spatial dimensions.

    Five convolutions of kernel 4, stride 2 and padding 1 with ``channels`` = (64, 128, 256, 512)
    feature maps and a last one to one channel, each but the last followed by a LeakyReLU of slope
    0.2, and no normalisation, as in the authors' ``FCDiscriminator``; the logits, at 1/32 of the
    input size, are upsampled (bilinear / trilinear) to the input size, so the output is one logit
    per pixel. In Lalwani's semi-supervised DeepLabV3+ (and
    :class:`monai_gamble.engines.SemiSupervisedAdversarialObjective`) it sees the image
    concatenated with the segmenter's softmax and tells, per pixel, whether the prediction is
    correct; in Hung et al. it sees the softmax alone and tells prediction from ground truth.

    Args:
        spatial_dims: 1, 2 or 3.
        in_channels: input channels (image channels + classes when it sees both).
        channels: feature channels of the first four convolutions (the fifth gives 1).
        negative_slope: slope of the LeakyReLU.
        upsample: resize the logits to the input size (False: return them at 1/32).

    Shapes:
        ``(B, in_channels, *spatial) -> (B, 1, *spatial)`` logits (``upsample=True``); every
        spatial size must be at least 32 (five halvings).

    Raises:
        ValueError: for ``spatial_dims`` outside 1-3, a non-positive ``in_channels`` or channel count,
            and (on call) an input of the wrong number of dimensions or channels, or smaller than 32.

    Example:
        >>> d = FCDiscriminator(spatial_dims=2, in_channels=3 + 4)
        >>> d(torch.cat([image, torch.softmax(logits, 1)], 1)).shape  # (B, 1, H, W)
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        channels: Sequence[int] = (64, 128, 256, 512),
        negative_slope: float = 0.2,
        upsample: bool = True,
    ) -> None:
        super().__init__()
        if spatial_dims not in (1, 2, 3):
            raise ValueError(f"spatial_dims must be 1, 2 or 3, got {spatial_dims}.")
        channels = tuple(int(c) for c in channels)
        if int(in_channels) < 1 or not channels or min(channels) < 1:
            raise ValueError(f"in_channels and channels must be positive, got {in_channels} and {channels}.")
        conv = Conv[Conv.CONV, spatial_dims]
        layers: list[nn.Module] = []
        prev = int(in_channels)
        for c in channels:
            layers += [conv(prev, c, kernel_size=4, stride=2, padding=1), nn.LeakyReLU(negative_slope, inplace=True)]
            prev = c
        layers.append(conv(prev, 1, kernel_size=4, stride=2, padding=1))
        self.net = nn.Sequential(*layers)
        self.spatial_dims = spatial_dims
        self.in_channels = int(in_channels)
        self.upsample = bool(upsample)
        self.min_size = 2 ** (len(channels) + 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Per-pixel logits ``(B, 1, *spatial)`` of ``x`` ``(B, in_channels, *spatial)``."""
        if x.ndim != self.spatial_dims + 2 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected input (B, {self.in_channels}, *spatial) with {self.spatial_dims} spatial dims, "
                f"got {tuple(x.shape)}."
            )
        if min(x.shape[2:]) < self.min_size:
            raise ValueError(
                f"spatial size {tuple(x.shape[2:])} is too small: the discriminator halves it "
                f"{len(self.net) // 2 + 1} times, so every side must be at least {self.min_size}."
            )
        y = self.net(x)
        if not self.upsample:
            return y
        return linear_resize(y, x.shape[2:])
