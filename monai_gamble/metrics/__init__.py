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
from .fairness import (
    FAIRNESS_KEYS,
    ClassFairnessMetric,
    compute_class_intersection_union,
    fairness_summary,
    format_fairness_table,
)

__all__ = [
    "FAIRNESS_KEYS",
    "BoundaryFScoreMetric",
    "ChamferDistanceMetric",
    "ClassFairnessMetric",
    "HausdorffDistanceMetric",
    "MMCLMetric",
    "compute_bf_score",
    "compute_chamfer_distance",
    "compute_class_intersection_union",
    "compute_hausdorff_distance",
    "compute_mmcl",
    "fairness_summary",
    "format_fairness_table",
]
