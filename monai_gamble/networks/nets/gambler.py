"""The gambler of gambling adversarial networks: a U-Net that bets where the segmenter is wrong."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from monai.networks.layers import Act, Norm
from monai.networks.nets import UNet
from torch import nn

__all__ = ["Gambler"]


class Gambler(nn.Module):
    """Gambler network of Samson et al., "I Bet You Are Wrong: Gambling Adversarial Networks for
    Structured Semantic Segmentation" (ICCV Workshops 2019), as used by Bakhtiariziabari &
    Ghafoorian for thyroid nodules (Fig. 1).

    A MONAI :class:`~monai.networks.nets.UNet` whose input is the image concatenated with the
    segmenter's *soft* prediction (softmax probabilities, or the sigmoid of a one-channel
    segmenter; see :func:`monai_gamble.losses.class_probabilities`), never its argmax and never the
    ground truth: the gambler learns the segmenter's mistake patterns from the image and the
    structure of the prediction alone. Its output is one channel of betting logits at the input
    resolution, turned into a budget-normalised betting map by
    :func:`monai_gamble.losses.betting_map`.

    Args:
        spatial_dims: 2 or 3.
        in_channels: channels of the image.
        pred_channels: channels of the segmenter's prediction (C for a softmax segmenter, 1 for a
            sigmoid one).
        channels: feature channels per level, e.g. ``(16, 32, 64, 128)``; its length is the depth.
        strides: downsampling stride between consecutive levels (``len(channels) - 1`` values,
            default 2 each). Input sizes must be divisible by their product.
        num_res_units: residual units per level (MONAI's UNet).
        act: activation (MONAI's ``Act`` factory name or tuple).
        norm: normalisation (MONAI's ``Norm``), batch norm by default.
        dropout: dropout probability.

    Shapes:
        ``forward(image (B, in_channels, *spatial), prediction (B, pred_channels, *spatial))``
        returns betting logits ``(B, 1, *spatial)``.

    Raises:
        ValueError: for bad sizes of ``channels``/``strides``, and (on call) inputs whose channels,
            batch or spatial sizes do not match, or spatial sizes not divisible by the total stride.

    Example:
        >>> gambler = Gambler(spatial_dims=2, in_channels=1, pred_channels=2, channels=(16, 32, 64, 128))
        >>> bet_logits = gambler(image, torch.softmax(seg_logits, 1))  # (B, 1, H, W)
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        pred_channels: int,
        channels: Sequence[int] = (16, 32, 64, 128),
        strides: Sequence[int] | None = None,
        num_res_units: int = 0,
        act: tuple | str = Act.PRELU,
        norm: tuple | str = Norm.BATCH,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
        if in_channels < 1 or pred_channels < 1:
            raise ValueError(f"in_channels and pred_channels must be positive, got {in_channels}, {pred_channels}.")
        if len(channels) < 2:
            raise ValueError(f"channels needs at least two levels, got {channels}.")
        strides = (2,) * (len(channels) - 1) if strides is None else tuple(strides)
        if len(strides) != len(channels) - 1:
            raise ValueError(f"strides needs len(channels) - 1 = {len(channels) - 1} values, got {strides}.")
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.pred_channels = pred_channels
        self.total_stride = math.prod(int(s) for s in strides)
        self.net = UNet(
            spatial_dims=spatial_dims,
            in_channels=in_channels + pred_channels,
            out_channels=1,
            channels=tuple(channels),
            strides=strides,
            num_res_units=num_res_units,
            act=act,
            norm=norm,
            dropout=dropout,
        )

    def forward(self, image: torch.Tensor, prediction: torch.Tensor) -> torch.Tensor:
        """Betting logits ``(B, 1, *spatial)`` of ``image`` and the segmenter's soft ``prediction``."""
        if image.ndim != self.spatial_dims + 2 or prediction.ndim != self.spatial_dims + 2:
            raise ValueError(
                f"expected {self.spatial_dims}D inputs (B, C, *spatial), got image {tuple(image.shape)} and "
                f"prediction {tuple(prediction.shape)}."
            )
        if image.shape[1] != self.in_channels or prediction.shape[1] != self.pred_channels:
            raise ValueError(
                f"the gambler takes an image of {self.in_channels} channel(s) and a prediction of "
                f"{self.pred_channels}, got {image.shape[1]} and {prediction.shape[1]}."
            )
        if image.shape[0] != prediction.shape[0] or image.shape[2:] != prediction.shape[2:]:
            raise ValueError(
                f"image {tuple(image.shape)} and prediction {tuple(prediction.shape)} differ in batch or spatial size."
            )
        if any(s % self.total_stride for s in image.shape[2:]):
            raise ValueError(
                f"spatial size {tuple(image.shape[2:])} must be divisible by the gambler's total stride "
                f"{self.total_stride}; resize or pad the images, or use fewer levels."
            )
        return self.net(torch.cat([image, prediction.to(image.dtype)], dim=1))
