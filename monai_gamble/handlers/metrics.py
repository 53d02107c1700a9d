"""Ignite metric handlers of the metrics in :mod:`monai_gamble.metrics`, used like MONAI's ``MeanDice``."""

from __future__ import annotations

from collections.abc import Callable

from monai.handlers import IgniteMetricHandler
from monai.utils import MetricReduction

from ..metrics import BoundaryFScoreMetric, ChamferDistanceMetric, HausdorffDistanceMetric, MMCLMetric

__all__ = ["MMCL", "BoundaryFScore", "ChamferDistance", "HausdorffDistance"]


class BoundaryFScore(IgniteMetricHandler):
    """BF-score averaged over batch, classes and iterations (see :func:`monai_gamble.metrics.compute_bf_score`).

    Args:
        include_background: whether to score the first channel.
        tolerance: matching tolerance (None: 0.75% of the image diagonal).
        reduction: MONAI ``MetricReduction``.
        output_transform: extracts ``(y_pred, y)`` from ``engine.state.output``.
        save_details: keep per-image values in ``engine.state.metric_details``.
    """

    def __init__(
        self,
        include_background: bool = False,
        tolerance: float | None = None,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        output_transform: Callable = lambda x: x,
        save_details: bool = True,
    ) -> None:
        metric_fn = BoundaryFScoreMetric(
            include_background=include_background, tolerance=tolerance, reduction=reduction
        )
        super().__init__(metric_fn=metric_fn, output_transform=output_transform, save_details=save_details)


class ChamferDistance(IgniteMetricHandler):
    """Chamfer distance averaged over batch, classes and iterations (see
    :func:`monai_gamble.metrics.compute_chamfer_distance`); ``inf`` if any prediction missed an object."""

    def __init__(
        self,
        include_background: bool = False,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        output_transform: Callable = lambda x: x,
        save_details: bool = True,
    ) -> None:
        metric_fn = ChamferDistanceMetric(include_background=include_background, reduction=reduction)
        super().__init__(metric_fn=metric_fn, output_transform=output_transform, save_details=save_details)


class HausdorffDistance(IgniteMetricHandler):
    """MONAI's Hausdorff distance handler with the empty-mask cases of :mod:`monai_gamble.metrics`.

    Args:
        include_background: whether to score the first channel.
        distance_metric: ``"euclidean"``, ``"chessboard"`` or ``"taxicab"``.
        percentile: a percentile (0-100) of the distances instead of the maximum.
        directed: only the distances from the prediction to the reference.
        reduction: MONAI ``MetricReduction``.
        output_transform: extracts ``(y_pred, y)`` from ``engine.state.output``.
        save_details: keep per-image values in ``engine.state.metric_details``.
    """

    def __init__(
        self,
        include_background: bool = False,
        distance_metric: str = "euclidean",
        percentile: float | None = None,
        directed: bool = False,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        output_transform: Callable = lambda x: x,
        save_details: bool = True,
    ) -> None:
        metric_fn = HausdorffDistanceMetric(
            include_background=include_background,
            distance_metric=distance_metric,
            percentile=percentile,
            directed=directed,
            reduction=reduction,
        )
        super().__init__(metric_fn=metric_fn, output_transform=output_transform, save_details=save_details)


class MMCL(IgniteMetricHandler):
    """Mean maximum class likelihood (see :func:`monai_gamble.metrics.compute_mmcl`).

    ``output_transform`` must give ``(probabilities, anything)``, e.g.
    ``monai.handlers.from_engine(["prob", "label"])`` with ``prob`` the softmax output.
    """

    def __init__(
        self,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        output_transform: Callable = lambda x: x,
        save_details: bool = True,
    ) -> None:
        super().__init__(
            metric_fn=MMCLMetric(reduction=reduction), output_transform=output_transform, save_details=save_details
        )
