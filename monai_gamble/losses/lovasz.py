"""The Lovasz hinge: a convex surrogate of the Jaccard (IoU) loss for binary segmentation.

Berman, Rannen Triki & Blaschko, "The Lovasz-Softmax loss: A tractable surrogate for the
optimization of the intersection-over-union measure in neural networks", CVPR 2018. MONAI has Dice,
Tversky and focal losses, but no Lovasz loss.
"""

from __future__ import annotations

import torch
from monai.utils import LossReduction, look_up_option
from torch.nn.modules.loss import _Loss

__all__ = ["LovaszHingeLoss", "lovasz_grad", "lovasz_hinge"]


def lovasz_grad(gt_sorted: torch.Tensor) -> torch.Tensor:
    """The gradient of the Lovasz extension of the Jaccard loss at errors sorted in decreasing order.

    For ground truth :math:`y \\in \\{0, 1\\}^P` permuted by the decreasing order :math:`\\pi` of the
    errors, :math:`G = \\sum_i y_i` and the first k pixels :math:`\\{\\pi_1..\\pi_k\\}` counted as
    mispredicted, the Jaccard loss of that set is

    .. math::
        \\Delta_J(k) = 1 - \\frac{G - \\sum_{i \\le k} y_{\\pi_i}}{G + \\sum_{i \\le k} (1 - y_{\\pi_i})},
        \\qquad g_k = \\Delta_J(k) - \\Delta_J(k - 1), \\quad \\Delta_J(0) = 0

    (Berman et al. 2018, eq. 8-9). With :math:`G = 0` every non-empty set has loss 1, so
    :math:`g = (1, 0, \\dots, 0)`. Computed with cumulative sums, for any number of rows at once.

    Args:
        gt_sorted: ``(..., P)`` ground truth in {0, 1} (any float or bool dtype), each row permuted
            by its errors' decreasing order.

    Returns:
        ``(..., P)`` float tensor :math:`g`; each row sums to :math:`\\Delta_J(P)`.
    """
    gt = gt_sorted if gt_sorted.is_floating_point() else gt_sorted.float()
    total = gt.sum(-1, keepdim=True)
    intersection = total - gt.cumsum(-1)
    union = total + (1 - gt).cumsum(-1)
    jaccard = 1 - intersection / union  # union >= 1 for k >= 1
    return torch.cat([jaccard[..., :1], jaccard[..., 1:] - jaccard[..., :-1]], dim=-1)


def lovasz_hinge(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The Lovasz hinge of each row of a batch of binary problems (Berman et al. 2018, eq. 10).

    With signs :math:`s_i = 2 y_i - 1`, hinge errors :math:`m_i = \\max(1 - s_i F_i, 0)` of the logits
    :math:`F` and :math:`\\pi` the decreasing order of :math:`m`,

    .. math:: \\overline{\\Delta_J}(m) = \\sum_{i=1}^{P} m_{\\pi_i}\\, g_i(m),

    the Lovasz extension of the Jaccard loss :math:`\\Delta_J` (:func:`lovasz_grad`), piecewise
    linear and convex in :math:`m`; it equals :math:`\\Delta_J` of the mispredicted set when the
    errors are 0 or 1. All rows are sorted and summed at once (``torch.sort`` along the last axis).

    Args:
        logits: ``(N, P)`` logits of N independent binary problems of P pixels.
        labels: ``(N, P)`` ground truth in {0, 1}.

    Returns:
        ``(N,)`` losses.
    """
    labels = labels.to(logits.dtype if logits.is_floating_point() else torch.float32)
    errors = 1 - logits * (2 * labels - 1)
    errors_sorted, order = torch.sort(errors, dim=-1, descending=True)
    grad = lovasz_grad(torch.gather(labels, -1, order))
    return (torch.relu(errors_sorted) * grad).sum(-1)


class LovaszHingeLoss(_Loss):
    """Lovasz hinge loss for binary (sigmoid) segmentation, per image by default (Berman et al. 2018).

    Each channel is an independent binary problem (one sigmoid channel for SIIM-ACR's pneumothorax).
    With ``per_image=True`` the loss :func:`lovasz_hinge` is computed for every image and channel and
    then reduced, which optimises the mean of the images' IoU (the paper's "per-image" variant, and
    closer to a per-image competition metric); with ``per_image=False`` the pixels of the whole batch
    form one problem per channel (the dataset IoU). An image without foreground has the loss of its
    largest hinge error, so predicting nothing on it is rewarded, as the per-image Jaccard wants.

    Args:
        per_image: one problem per image and channel (True) or per channel over the batch (False).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``(B, C)`` per image, ``(C,)`` otherwise).

    Raises:
        ValueError: for an unknown reduction, logits and labels of different shapes, fewer than three
            dimensions, or labels other than 0 and 1.

    Example:
        >>> loss = LovaszHingeLoss()
        >>> loss(torch.randn(2, 1, 32, 32, requires_grad=True), torch.randint(0, 2, (2, 1, 32, 32)))
    """

    def __init__(self, per_image: bool = True, reduction: LossReduction | str = LossReduction.MEAN) -> None:
        super().__init__(reduction=look_up_option(reduction, LossReduction).value)
        self.per_image = bool(per_image)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """
        Args:
            input: logits ``(B, C, *spatial)``.
            target: binary labels ``(B, C, *spatial)`` (0/1 or bool).

        Returns:
            The reduced loss, or ``(B, C)`` / ``(C,)`` with ``reduction="none"``.
        """
        if input.ndim < 3:
            raise ValueError(f"input must be logits (B, C, *spatial), got shape {tuple(input.shape)}.")
        if target.shape != input.shape:
            raise ValueError(
                f"target {tuple(target.shape)} and input {tuple(input.shape)} must have the same shape (B, C, *spatial)."
            )
        if target.dtype != torch.bool and not ((target == 0) | (target == 1)).all():
            raise ValueError("target must be binary (0 and 1); threshold soft or {0, 255} labels first.")
        b, c = input.shape[:2]
        if self.per_image:
            losses = lovasz_hinge(input.reshape(b * c, -1), target.reshape(b * c, -1)).reshape(b, c)
        else:
            logits = input.reshape(b, c, -1).transpose(0, 1).reshape(c, -1)
            labels = target.reshape(b, c, -1).transpose(0, 1).reshape(c, -1)
            losses = lovasz_hinge(logits, labels)
        if self.reduction == LossReduction.MEAN.value:
            return losses.mean()
        if self.reduction == LossReduction.SUM.value:
            return losses.sum()
        return losses
