"""Ignite metric handlers of the metrics in :mod:`monai_gamble.metrics`, used like MONAI's ``MeanDice``."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

from monai.handlers import IgniteMetricHandler
from monai.utils import MetricReduction, min_version, optional_import

from ..metrics import (
    BoundaryDistanceCache,
    BoundaryFScoreMetric,
    ChamferDistanceMetric,
    DistanceMetric,
    HausdorffDistanceMetric,
    MMCLMetric,
)

Events, _ = optional_import("ignite.engine", "0.4.11", min_version, "Events")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", "0.4.11", min_version, "Engine")

__all__ = ["MMCL", "BoundaryFScore", "ChamferDistance", "HausdorffDistance", "shared_boundary_cache"]

_ENGINE_CACHES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def shared_boundary_cache(engine: Engine) -> BoundaryDistanceCache:
    """The :class:`~monai_gamble.metrics.BoundaryDistanceCache` of ``engine``: one per engine, shared
    by every boundary handler attached to it without a ``cache`` of its own, so that the BF-score,
    Chamfer and Hausdorff handlers of an evaluator extract the boundaries and query the distances once
    per batch (the cache is held weakly: it goes with the engine, and it is cleared at the end of
    every epoch, so that it does not keep the last batch alive)."""
    cache = _ENGINE_CACHES.get(engine)
    if cache is None:
        cache = _ENGINE_CACHES[engine] = BoundaryDistanceCache()
        engine.add_event_handler(Events.EPOCH_COMPLETED, lambda _: cache.clear())
    return cache


class _BoundaryHandler(IgniteMetricHandler):
    """A boundary metric handler: on :meth:`attach`, a metric without a cache gets the engine's
    shared one (:func:`shared_boundary_cache`)."""

    def attach(self, engine: Engine, name: str) -> None:  # type: ignore[override]
        """Attach as MONAI's ``IgniteMetricHandler`` and share the engine's boundary cache."""
        super().attach(engine, name)
        if self.metric_fn.cache is None:  # type: ignore[attr-defined]
            self.metric_fn.cache = shared_boundary_cache(engine)  # type: ignore[attr-defined]


class BoundaryFScore(_BoundaryHandler):
    """BF-score averaged over batch, classes and iterations (see :func:`monai_gamble.metrics.compute_bf_score`).

    The boundary handlers of one engine compute the boundary distances once per batch (see
    :func:`shared_boundary_cache`).

    Args:
        include_background: whether to score the first channel.
        tolerance: matching tolerance (None: 0.75% of the image diagonal).
        reduction: MONAI ``MetricReduction``.
        output_transform: extracts ``(y_pred, y)`` from ``engine.state.output``.
        save_details: keep per-image values in ``engine.state.metric_details``.
        cache: a :class:`~monai_gamble.metrics.BoundaryDistanceCache`; None: the engine's shared one.
    """

    def __init__(
        self,
        include_background: bool = False,
        tolerance: float | None = None,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        output_transform: Callable = lambda x: x,
        save_details: bool = True,
        cache: BoundaryDistanceCache | None = None,
    ) -> None:
        metric_fn = BoundaryFScoreMetric(
            include_background=include_background, tolerance=tolerance, reduction=reduction, cache=cache
        )
        super().__init__(metric_fn=metric_fn, output_transform=output_transform, save_details=save_details)


class ChamferDistance(_BoundaryHandler):
    """Chamfer distance averaged over batch, classes and iterations (see
    :func:`monai_gamble.metrics.compute_chamfer_distance`); ``inf`` if any prediction missed an object.

    Args:
        include_background: whether to score the first channel.
        reduction: MONAI ``MetricReduction``.
        output_transform: extracts ``(y_pred, y)`` from ``engine.state.output``.
        save_details: keep per-image values in ``engine.state.metric_details``.
        cache: a :class:`~monai_gamble.metrics.BoundaryDistanceCache`; None: the engine's shared one.
    """

    def __init__(
        self,
        include_background: bool = False,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        output_transform: Callable = lambda x: x,
        save_details: bool = True,
        cache: BoundaryDistanceCache | None = None,
    ) -> None:
        metric_fn = ChamferDistanceMetric(include_background=include_background, reduction=reduction, cache=cache)
        super().__init__(metric_fn=metric_fn, output_transform=output_transform, save_details=save_details)


class HausdorffDistance(_BoundaryHandler):
    """MONAI's Hausdorff distance handler with the empty-mask cases of :mod:`monai_gamble.metrics`
    (``percentile=95``: HD95).

    Args:
        include_background: whether to score the first channel.
        distance_metric: ``"euclidean"``, ``"chessboard"`` or ``"taxicab"``.
        percentile: a percentile (0-100) of the distances instead of the maximum.
        directed: only the distances from the prediction to the reference.
        reduction: MONAI ``MetricReduction``.
        output_transform: extracts ``(y_pred, y)`` from ``engine.state.output``.
        save_details: keep per-image values in ``engine.state.metric_details``.
        ignore_index: a class index (or sentinel) to ignore, as MONAI's (see
            :class:`~monai_gamble.metrics.HausdorffDistanceMetric`).
        cache: a :class:`~monai_gamble.metrics.BoundaryDistanceCache`; None: the engine's shared one.
    """

    def __init__(
        self,
        include_background: bool = False,
        distance_metric: DistanceMetric | str = DistanceMetric.EUCLIDEAN,
        percentile: float | None = None,
        directed: bool = False,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        output_transform: Callable = lambda x: x,
        save_details: bool = True,
        ignore_index: int | None = None,
        cache: BoundaryDistanceCache | None = None,
    ) -> None:
        metric_fn = HausdorffDistanceMetric(
            include_background=include_background,
            distance_metric=distance_metric,
            percentile=percentile,
            directed=directed,
            reduction=reduction,
            ignore_index=ignore_index,
            cache=cache,
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
