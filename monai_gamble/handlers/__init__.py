"""Ignite handlers: metric handlers, per-image reports, and figures logged to MLflow."""

from .critic_map import CriticMapHandler
from .figures import SegmentationFigureHandler, log_artifact_to_mlflow
from .metrics import MMCL, BoundaryFScore, ChamferDistance, HausdorffDistance
from .progress import ProgressBar
from .report import MetricsReport, compare_reports, format_summary_table, summarize

__all__ = [
    "MMCL",
    "BoundaryFScore",
    "ChamferDistance",
    "CriticMapHandler",
    "HausdorffDistance",
    "MetricsReport",
    "ProgressBar",
    "SegmentationFigureHandler",
    "compare_reports",
    "format_summary_table",
    "log_artifact_to_mlflow",
    "summarize",
]
