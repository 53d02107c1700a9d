"""Tags on the MLflow run of a MONAI ``MLFlowHandler``: what an evaluation read (the training run's id and
name, the checkpoint), so that a result can be traced back to the run that trained it."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from monai.utils import min_version, optional_import

Events, _ = optional_import("ignite.engine", "0.4.11", min_version, "Events")
idist, _ = optional_import("ignite", "0.4.11", min_version, "distributed")

logger = logging.getLogger(__name__)

__all__ = ["MLflowTags"]

#: MLflow's limit on the length of a tag value
MAX_TAG_LENGTH = 8000


class MLflowTags:
    """Set ``tags`` on the run of ``mlflow_handler`` once it has started (rank 0 only).

    Values are converted with ``str``; None values are skipped; a value longer than MLflow's limit
    (8000 characters) is cut there and ends with ``"... (truncated)"``.

    Args:
        mlflow_handler: the engine's ``monai.handlers.MLFlowHandler``.
        tags: ``{name: value}``, e.g. :func:`monai_gamble.utils.training_run_of` of the checkpoint read.

    Example:
        >>> MLflowTags(mlflow_handler, {"training_run_id": "3f2a..."}).attach(evaluator)
    """

    def __init__(self, mlflow_handler: Any, tags: Mapping[str, Any]) -> None:
        self.mlflow_handler = mlflow_handler
        self.tags = {str(k): v for k, v in dict(tags).items() if v is not None}
        self._tagged: str | None = None

    def attach(self, engine: Any) -> None:
        """Tag when the engine starts (and at its first epoch, if MLflow's handler starts later)."""
        engine.add_event_handler(Events.STARTED, self)
        engine.add_event_handler(Events.EPOCH_STARTED, self)

    @staticmethod
    def _value(value: Any) -> str:
        text = str(value)
        return text if len(text) <= MAX_TAG_LENGTH else text[: MAX_TAG_LENGTH - 16] + "... (truncated)"

    def __call__(self, engine: Any = None) -> None:
        """Set the tags on the current run, once per run."""
        run = getattr(self.mlflow_handler, "cur_run", None)
        if run is None or self._tagged == run.info.run_id or idist.get_rank() > 0:
            return
        for name, value in self.tags.items():
            self.mlflow_handler.client.set_tag(run.info.run_id, name, self._value(value))
        self._tagged = run.info.run_id
