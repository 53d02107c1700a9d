"""Calibration of segmentation probabilities."""

from __future__ import annotations

from typing import Any

import torch
from monai.utils import MetricReduction

from .utils import ReducedCumulativeMetric, check_probabilities

__all__ = ["MMCLMetric", "compute_mmcl"]


def compute_mmcl(probabilities: Any) -> torch.Tensor:
    """Mean maximum class likelihood (MMCL) of each image, Table 4 of Bakhtiariziabari & Ghafoorian
    (gambling nets for thyroid nodule segmentation): the probability of the most likely class,
    averaged over the pixels,

    .. math::
        \\mathrm{MMCL}(p) = \\frac{1}{|\\Omega|}\\sum_{j\\in\\Omega}\\max_c p_{c,j}.

    It measures how confident a model is, whatever its correctness: 1 for hard 0/1 outputs, 1/C for
    uniform ones. Adversarial training that pushes predictions to look like one-hot labels raises it.

    Args:
        probabilities: softmax probabilities ``(B, C, *spatial)`` with C >= 2, or one sigmoid channel
            ``(B, 1, *spatial)``, whose class probabilities are ``(1 - p, p)``.

    Returns:
        ``(B, 1)`` tensor of per-image MMCL values in [1/C, 1].

    Raises:
        ValueError: for NaN or infinite values, values outside [0, 1] (logits), or C >= 2 channels
            that do not sum to 1.
    """
    p = check_probabilities(probabilities)
    top = torch.maximum(p, 1 - p)[:, 0] if p.shape[1] == 1 else p.max(dim=1).values
    return top.reshape(top.shape[0], -1).mean(dim=1, keepdim=True)


class MMCLMetric(ReducedCumulativeMetric):
    """Cumulative MMCL (see :func:`compute_mmcl`): ``metric(y_pred=probabilities)`` per batch, then
    :meth:`aggregate`. The reference ``y`` is accepted and ignored, so the metric fits the same
    ``(y_pred, y)`` output transforms as the others.

    Args:
        reduction: MONAI ``MetricReduction`` applied by :meth:`aggregate`.
        get_not_nans: whether :meth:`aggregate` also returns the count of not-NaN values.
    """

    def __init__(self, reduction: MetricReduction | str = MetricReduction.MEAN, get_not_nans: bool = False) -> None:
        super().__init__(reduction, get_not_nans)

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor | None = None, **kwargs: Any) -> torch.Tensor:  # type: ignore[override]
        return compute_mmcl(y_pred)
