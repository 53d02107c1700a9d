"""MONAI's UNet++ with a tensor output, so that it fits MONAI's inferers, evaluators and bundle checks."""

from __future__ import annotations

import torch
from monai.networks.nets import BasicUNetPlusPlus

__all__ = ["UNetPlusPlus"]


class UNetPlusPlus(BasicUNetPlusPlus):
    """UNet++ (Zhou et al., "UNet++: A Nested U-Net Architecture for Medical Image Segmentation",
    DLMIA 2018) as MONAI's ``BasicUNetPlusPlus``, returning a tensor.

    The nested decoder computes nodes :math:`x^{i,j}` (depth i, j-th node of its level) from the
    upsampled deeper node and all earlier nodes of the same level,

    .. math:: x^{i,j} = \\mathcal{H}\\big([x^{i,0}, \\dots, x^{i,j-1}, \\mathcal{U}(x^{i+1,j-1})]\\big),

    so every level is re-used by the dense skip pathways; the heads on :math:`x^{0,1} .. x^{0,4}`
    give the deep-supervision outputs. ``BasicUNetPlusPlus.forward`` always returns a list (one
    element without deep supervision), which MONAI's ``SimpleInferer``, ``SupervisedEvaluator``
    post-processing and ``verify_net_in_out`` do not take. This subclass returns the last output
    :math:`x^{0,4}`'s head ``(B, out_channels, *spatial)``, except in training mode with
    ``deep_supervision=True``, where it returns the list of the four heads' outputs (for
    ``monai.losses.DeepSupervisionLoss``). Arguments are those of ``BasicUNetPlusPlus``.

    Example:
        >>> net = UNetPlusPlus(spatial_dims=2, in_channels=1, out_channels=1, features=(8, 8, 16, 32, 64, 8))
        >>> net(torch.zeros(2, 1, 64, 64)).shape
        torch.Size([2, 1, 64, 64])
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:  # type: ignore[override]
        """
        Args:
            x: ``(B, in_channels, *spatial)``, each spatial size divisible by 16.

        Returns:
            ``(B, out_channels, *spatial)`` logits, or in training with deep supervision the list of
            the four heads' logits (shallowest first).
        """
        outputs = super().forward(x)
        if self.deep_supervision and self.training:
            return outputs
        return outputs[-1]
