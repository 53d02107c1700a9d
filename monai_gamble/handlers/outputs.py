"""What a bundle run wrote, and where: the summary printed at the end of an evaluation or inference."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from monai.utils import min_version, optional_import

from monai_gamble.utils import tracking_off

Events, _ = optional_import("ignite.engine", "0.4.11", min_version, "Events")
idist, _ = optional_import("ignite", "0.4.11", min_version, "distributed")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", "0.4.11", min_version, "Engine")

__all__ = ["OutputSummary"]


class OutputSummary:
    """Print where a run's outputs are, once it is done (on rank 0)::

        Outputs of gambling_evaluate_20260101_120000 (20 images):
          per-image metrics and summary: /abs/eval/evaluation_test/gambling
          checkpoint: /abs/models/model.pt
          MLflow: sqlite:///abs/eval/mlruns.db (experiment thyroid; browse with: mlflow ui --backend-store-uri ...)

    Attached to an engine (``handler.attach(evaluator)``, as MONAI attaches handlers) it prints at
    ``Events.COMPLETED`` and counts the images of the engine's data loader; called (``summary(engine)``,
    e.g. as the last expression of a config's ``run``, after files written by later steps) it prints then.

    Args:
        title: the run's name, after "Outputs of".
        outputs: ``{what: path}``; each path is printed absolute.
        tracking_uri: the MLflow tracking URI (None: no MLflow line).
        experiment_name: the MLflow experiment.
        num_images: the number of images to report (None: the length of the engine's dataset, if any).

    Example:
        >>> OutputSummary("inference", {"predicted masks": "eval/inference/infer_20260101_120000/predictions"}).attach(evaluator)
    """

    def __init__(
        self,
        title: str,
        outputs: Mapping[str, str | os.PathLike],
        tracking_uri: str | None = None,
        experiment_name: str | None = None,
        num_images: int | None = None,
    ) -> None:
        self.title = str(title)
        self.outputs = dict(outputs)
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self.num_images = num_images
        #: the printed text of the last call
        self.text = ""

    def attach(self, engine: Engine) -> None:
        """Print when ``engine`` completes."""
        engine.add_event_handler(Events.COMPLETED, self)

    def lines(self, engine: Engine | None = None) -> list[str]:
        """The summary's lines."""
        n = self.num_images
        if n is None and engine is not None:
            dataset = getattr(getattr(engine, "data_loader", None), "dataset", None)
            n = len(dataset) if hasattr(dataset, "__len__") else None
        head = f"Outputs of {self.title}" + (f" ({n} images)" if n is not None else "") + ":"
        lines = [head, *(f"  {what}: {os.path.abspath(path)}" for what, path in self.outputs.items())]
        if not tracking_off(self.tracking_uri):
            experiment = f"experiment {self.experiment_name}; " if self.experiment_name else ""
            lines.append(
                f"  MLflow: {self.tracking_uri} ({experiment}browse with: mlflow ui --backend-store-uri "
                f"{self.tracking_uri})"
            )
        return lines

    def __call__(self, engine: Engine | None = None) -> str:
        """Print the summary (on rank 0) and return its text."""
        self.text = "\n".join(self.lines(engine))
        if idist.get_rank() == 0:
            print(self.text, flush=True)
        return self.text
