"""Ignite handlers: metric handlers, per-image reports, and figures logged to MLflow."""

from .figures import SegmentationFigureHandler, log_artifact_to_mlflow
from .metrics import MMCL, BoundaryFScore, ChamferDistance, HausdorffDistance
from .progress import ProgressBar
from .report import MetricsReport, format_summary_table, summarize

__all__ = [
    "MMCL",
    "BoundaryFScore",
    "ChamferDistance",
    "HausdorffDistance",
    "MetricsReport",
    "ProgressBar",
    "SegmentationFigureHandler",
    "format_summary_table",
    "log_artifact_to_mlflow",
    "summarize",
]
