"""The per-image Dice of segmentation challenges in which an empty prediction on an empty image scores 1.

SIIM-ACR Pneumothorax Segmentation (Kaggle, 2019) and Kaggle's Ultrasound Nerve Segmentation (2016)
score a submission by the mean over test images of each image's Dice, defined for every case:

=======================================  =========================
ground truth / prediction                score of the image
=======================================  =========================
both empty                               1
one empty, the other not                 0
both non-empty                           :math:`2|X \\cap Y| / (|X| + |Y|)`
=======================================  =========================

Most test images of both challenges are empty (79% for SIIM-ACR), so this rule rewards saying
"nothing" where there is nothing as much as it rewards outlining what is there. MONAI's
``DiceMetric(ignore_empty=False)`` agrees with it for one channel; its default
(``ignore_empty=True``) gives NaN for an empty ground truth and skips those images, which is the
"usual" Dice on positive images only.
"""

from __future__ import annotations

from typing import Any

import torch
from monai.metrics import CumulativeIterationMetric
from monai.metrics.utils import do_metric_reduction, ignore_background
from monai.utils import MetricReduction

from .utils import check_binary_pair

__all__ = ["CompetitionDiceMetric", "compute_competition_dice"]


def compute_competition_dice(y_pred: Any, y: Any, include_background: bool = True) -> torch.Tensor:
    """Dice of each image and channel, 1 when prediction and ground truth are both empty.

    .. math::

        D(X, Y) = \\begin{cases} 1 & |X| + |Y| = 0 \\\\
        \\dfrac{2\\,|X \\cap Y|}{|X| + |Y|} & \\text{otherwise} \\end{cases}

    (the metric of SIIM-ACR Pneumothorax Segmentation, whose mean over test images is the score).

    Args:
        y_pred: binarised prediction ``(B, C, *spatial)`` (0/1 or bool), e.g. a thresholded sigmoid.
        y: binarised ground truth, same shape.
        include_background: score the first channel (keep True for one sigmoid channel; False drops
            channel 0 of one-hot input).

    Returns:
        ``(B, C)`` float32 (``(B, C - 1)`` without the background), values in [0, 1].

    Raises:
        ValueError: for shapes that differ, fewer than two or more than three spatial dimensions, NaN, or
            values other than 0 and 1 (with a hint to threshold first).

    Example:
        >>> empty = torch.zeros(1, 1, 4, 4)
        >>> compute_competition_dice(empty, empty)
        tensor([[1.]])
    """
    p, g = check_binary_pair(y_pred, y)
    if not include_background:
        p, g = ignore_background(p, g)
    p = p.reshape(*p.shape[:2], -1).float()
    g = g.reshape(*g.shape[:2], -1).float()
    intersection = (p * g).sum(-1)
    total = p.sum(-1) + g.sum(-1)
    return torch.where(total > 0, 2 * intersection / total.clamp_min(1), torch.ones_like(total))


class CompetitionDiceMetric(CumulativeIterationMetric):
    """Cumulative per-image competition Dice (:func:`compute_competition_dice`): call it with
    ``(y_pred, y)`` per batch, then :meth:`aggregate` (the mean is the challenge's score).

    Use it in a bundle as MONAI's ``DiceMetric``, through ``monai.handlers.IgniteMetricHandler``.

    Args:
        include_background: score the first channel.
        reduction: MONAI ``MetricReduction`` applied by :meth:`aggregate`.
        get_not_nans: whether :meth:`aggregate` also returns the count of not-NaN values.
    """

    def __init__(
        self,
        include_background: bool = True,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        get_not_nans: bool = False,
    ) -> None:
        super().__init__()
        self.include_background = include_background
        self.reduction = reduction
        self.get_not_nans = get_not_nans

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor | None = None, **kwargs: Any) -> torch.Tensor:  # type: ignore[override]
        if y is None:
            raise ValueError("CompetitionDiceMetric needs the ground truth y.")
        return compute_competition_dice(y_pred, y, self.include_background)

    def aggregate(
        self, reduction: MetricReduction | str | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Reduce the buffered ``(N, C)`` values with ``reduction``."""
        data = self.get_buffer()
        if not isinstance(data, torch.Tensor):
            raise ValueError(f"the data to aggregate must be a PyTorch Tensor, got {type(data)}.")
        f, not_nans = do_metric_reduction(data, reduction or self.reduction)
        return (f, not_nans) if self.get_not_nans else f
