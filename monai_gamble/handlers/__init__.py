"""Ignite handlers: metric handlers, per-image reports, and figures logged to MLflow."""

from .checkpoint import (
    AtomicCheckpointSaver,
    CheckedCheckpointLoader,
    RNGState,
    TrainingCheckpoint,
    check_checkpoint_file,
    randomizable_transforms,
)
from .critic_map import CriticMapHandler
from .ensemble_weights import EnsembleWeightsReport
from .fairness import ClassFairness
from .figures import SegmentationFigureHandler, log_artifact_to_mlflow
from .metrics import MMCL, BoundaryFScore, ChamferDistance, HausdorffDistance, shared_boundary_cache
from .outputs import OutputSummary
from .per_class import PerClassMetrics
from .progress import ProgressBar, RunEstimate
from .progressive import ProgressiveResizing, ResizeStage, describe_stages, total_epochs
from .report import MetricsReport, compare_reports, format_summary_table, summarize
from .segmentation_metrics import (
    SegmentationMetric,
    SegmentationMetricHandler,
    metric_display_names,
    segmentation_metric_handlers,
    spacing_from_affine,
)
from .stochastic_tce import StochasticTCEHandler
from .swa import StochasticWeightAveraging
from .tracking import MLflowRun, MLflowTags
from .volume_figures import VolumeFigureHandler

__all__ = [
    "CheckedCheckpointLoader",
    "check_checkpoint_file",
    "MLflowRun",
    "MLflowTags",
    "RunEstimate",
    "AtomicCheckpointSaver",
    "RNGState",
    "TrainingCheckpoint",
    "randomizable_transforms",
    "SegmentationMetric",
    "SegmentationMetricHandler",
    "VolumeFigureHandler",
    "metric_display_names",
    "segmentation_metric_handlers",
    "spacing_from_affine",
    "MMCL",
    "BoundaryFScore",
    "ChamferDistance",
    "ClassFairness",
    "CriticMapHandler",
    "EnsembleWeightsReport",
    "HausdorffDistance",
    "MetricsReport",
    "OutputSummary",
    "PerClassMetrics",
    "ProgressBar",
    "ProgressiveResizing",
    "ResizeStage",
    "SegmentationFigureHandler",
    "StochasticTCEHandler",
    "StochasticWeightAveraging",
    "compare_reports",
    "describe_stages",
    "format_summary_table",
    "log_artifact_to_mlflow",
    "shared_boundary_cache",
    "summarize",
    "total_epochs",
]
