"""Segmentation metrics that MONAI lacks: boundary (BF-score, Chamfer), calibration (MMCL), and
MONAI's Hausdorff distance with a defined value for every empty-mask case."""

from .boundary import (
    BoundaryFScoreMetric,
    ChamferDistanceMetric,
    HausdorffDistanceMetric,
    compute_bf_score,
    compute_chamfer_distance,
    compute_hausdorff_distance,
)
from .calibration import MMCLMetric, compute_mmcl

__all__ = [
    "BoundaryFScoreMetric",
    "ChamferDistanceMetric",
    "HausdorffDistanceMetric",
    "MMCLMetric",
    "compute_bf_score",
    "compute_chamfer_distance",
    "compute_hausdorff_distance",
    "compute_mmcl",
]
