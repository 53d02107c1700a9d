"""The weights that an ensemble inferer gave its members, per image: written, printed and logged."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monai.data import decollate_batch
from monai.utils import min_version, optional_import

from .figures import log_artifact_to_mlflow

Events, _ = optional_import("ignite.engine", "0.4.11", min_version, "Events")
if TYPE_CHECKING:
    from ignite.engine import Engine
    from monai.handlers import MLFlowHandler
else:
    Engine, _ = optional_import("ignite.engine", "0.4.11", min_version, "Engine")
    MLFlowHandler = Any

__all__ = ["EnsembleWeightsReport"]


class EnsembleWeightsReport:
    """At the end of an evaluation or inference with an ensemble inferer
    (:class:`~monai_gamble.inferers.TransformEnsembleInferer`, :class:`~monai_gamble.inferers.AdaptiveEnsembleInferer`),
    write the weights of every image (``inferer.save_weights``: a CSV, one row per image, ``id`` and one
    column per member), print their means, and log the CSV and the means (metrics
    ``ensemble_weight_<member>``) to the MLflow run of ``mlflow_handler``.

    The image IDs are collected from the batches (``id_key`` of each decollated item, else the index),
    in the order the inferer saw them; the inferer's record is reset when the engine starts.

    Args:
        inferer: the ensemble inferer of the engine.
        path: the CSV.
        mlflow_handler: the ``MLFlowHandler`` of the run (None: files and print only); its run must still
            be open at ``Events.COMPLETED`` (``close_on_complete=False``).
        id_key: the key of the image ID in the decollated batch.
        name: what to call the ensemble in the printed line (e.g. ``"asme"``).

    Attributes:
        means: the mean weight of each member after the last run.
    """

    def __init__(
        self,
        inferer: Any,
        path: str | os.PathLike,
        mlflow_handler: MLFlowHandler | None = None,
        id_key: str = "id",
        name: str | None = None,
    ) -> None:
        if not callable(getattr(inferer, "save_weights", None)):
            raise TypeError(f"{type(inferer).__name__} records no ensemble weights (it has no save_weights).")
        self.inferer = inferer
        self.path = Path(path)
        self.mlflow_handler = mlflow_handler
        self.id_key = id_key
        self.name = name
        self.means: dict[str, float] = {}
        self._ids: list[str] = []

    def attach(self, engine: Engine) -> None:
        """Reset at the start, collect the IDs every iteration, write at the end."""
        engine.add_event_handler(Events.STARTED, self._started)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.COMPLETED, self)

    def _started(self, engine: Engine) -> None:
        self._ids = []
        if callable(getattr(self.inferer, "reset", None)):
            self.inferer.reset()

    def _collect(self, engine: Engine) -> None:
        batch = engine.state.batch
        items = decollate_batch(batch) if isinstance(batch, dict) else batch
        for item in items:
            self._ids.append(str(item.get(self.id_key, len(self._ids))))

    def __call__(self, engine: Engine) -> dict[str, float]:
        """Write, print and log the weights; returns their means."""
        self.means = self.inferer.save_weights(self.path, ids=self._ids)
        label = f" ({self.name})" if self.name else ""
        print(f"Mean ensemble weights{label}: " + ", ".join(f"{k} {v:.4f}" for k, v in self.means.items()), flush=True)
        if log_artifact_to_mlflow(self.mlflow_handler, self.path, "evaluation"):
            run_id = self.mlflow_handler.cur_run.info.run_id  # type: ignore[union-attr]
            for k, v in self.means.items():
                self.mlflow_handler.client.log_metric(run_id, f"ensemble_weight_{k}", v)  # type: ignore[union-attr]
        return self.means
