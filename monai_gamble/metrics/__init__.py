"""Segmentation metrics that MONAI lacks: boundary (BF-score, Chamfer, and MONAI's Hausdorff, HD95
and ASSD from the same single boundary pass, with a defined value for every empty-mask case),
calibration (MMCL) and fairness."""

from .boundary import (
    BoundaryDistanceCache,
    BoundaryDistances,
    BoundaryFScoreMetric,
    BoundaryMetric,
    ChamferDistanceMetric,
    DistanceMetric,
    HausdorffDistanceMetric,
    compute_bf_score,
    compute_boundary_distances,
    compute_boundary_metrics,
    compute_chamfer_distance,
    compute_hausdorff_distance,
    mask_boundary,
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
    "BoundaryDistanceCache",
    "BoundaryDistances",
    "BoundaryFScoreMetric",
    "BoundaryMetric",
    "ChamferDistanceMetric",
    "ClassFairnessMetric",
    "DistanceMetric",
    "HausdorffDistanceMetric",
    "MMCLMetric",
    "compute_bf_score",
    "compute_boundary_distances",
    "compute_boundary_metrics",
    "compute_chamfer_distance",
    "compute_class_intersection_union",
    "compute_hausdorff_distance",
    "compute_mmcl",
    "fairness_summary",
    "format_fairness_table",
    "mask_boundary",
]
