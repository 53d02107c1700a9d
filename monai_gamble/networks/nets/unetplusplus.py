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
    ``monai.losses.DeepSupervisionLoss``). Arguments are those of ``BasicUNetPlusPlus``; the
    modules, and so the state dict, are the same.

    The forward computes the same nodes as ``BasicUNetPlusPlus.forward`` without calling it (a
    ``super().forward`` call cannot be compiled by TorchScript), so ``torch.jit.script`` works and
    ``monai.bundle ckpt_export`` exports the network; the heads of :math:`x^{0,1} .. x^{0,3}` are
    computed only when they are returned.

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
        x_0_0 = self.conv_0_0(x)
        x_1_0 = self.conv_1_0(x_0_0)
        x_0_1 = self.upcat_0_1(x_1_0, x_0_0)

        x_2_0 = self.conv_2_0(x_1_0)
        x_1_1 = self.upcat_1_1(x_2_0, x_1_0)
        x_0_2 = self.upcat_0_2(x_1_1, torch.cat([x_0_0, x_0_1], dim=1))

        x_3_0 = self.conv_3_0(x_2_0)
        x_2_1 = self.upcat_2_1(x_3_0, x_2_0)
        x_1_2 = self.upcat_1_2(x_2_1, torch.cat([x_1_0, x_1_1], dim=1))
        x_0_3 = self.upcat_0_3(x_1_2, torch.cat([x_0_0, x_0_1, x_0_2], dim=1))

        x_4_0 = self.conv_4_0(x_3_0)
        x_3_1 = self.upcat_3_1(x_4_0, x_3_0)
        x_2_2 = self.upcat_2_2(x_3_1, torch.cat([x_2_0, x_2_1], dim=1))
        x_1_3 = self.upcat_1_3(x_2_2, torch.cat([x_1_0, x_1_1, x_1_2], dim=1))
        x_0_4 = self.upcat_0_4(x_1_3, torch.cat([x_0_0, x_0_1, x_0_2, x_0_3], dim=1))

        last = self.final_conv_0_4(x_0_4)
        if self.deep_supervision and self.training:
            return [self.final_conv_0_1(x_0_1), self.final_conv_0_2(x_0_2), self.final_conv_0_3(x_0_3), last]
        return last
