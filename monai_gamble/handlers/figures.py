"""Ignite handlers that draw what the model does and log it to MLflow."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from monai.utils import min_version, optional_import

from ..visualize import plot_segmentation_grid

Events, _ = optional_import("ignite.engine", "0.4.11", min_version, "Events")
if TYPE_CHECKING:
    from ignite.engine import Engine
    from monai.handlers import MLFlowHandler
else:
    Engine, _ = optional_import("ignite.engine", "0.4.11", min_version, "Engine")
    MLFlowHandler = Any

__all__ = ["SegmentationFigureHandler", "log_artifact_to_mlflow"]


def log_artifact_to_mlflow(mlflow_handler: MLFlowHandler | None, path: str | os.PathLike, artifact_path: str) -> bool:
    """Log a file to the run of a MONAI ``MLFlowHandler`` (no-op when it is None or has no run yet).

    Returns:
        Whether the file was logged.
    """
    if mlflow_handler is None or getattr(mlflow_handler, "cur_run", None) is None:
        return False
    mlflow_handler.client.log_artifact(mlflow_handler.cur_run.info.run_id, str(path), artifact_path=artifact_path)
    return True


class SegmentationFigureHandler:
    """After each evaluation epoch, draw the first ``num_images`` images with their ground truth,
    prediction and per-pixel maps (:func:`monai_gamble.visualize.plot_segmentation_grid`), save the
    PNG under ``output_dir`` and log it to the MLflow run of ``mlflow_handler``.

    Attach it to a MONAI evaluator (``SupervisedEvaluator``); each key is looked up in the
    decollated ``engine.state.output``, then in the decollated batch (so a copy of the image made
    before resizing can be drawn at the original resolution). The post-processed ``pred`` is
    one-hot or index; all drawn arrays of one image must have the same spatial size.

    Args:
        output_dir: folder of the PNG files (``<tag>_epoch<NNN>.png``).
        num_images: how many images to draw (the first of the epoch, in loader order).
        image_key: key of the image.
        label_key: key of the ground truth (None to leave it out).
        pred_key: key of the post-processed prediction.
        map_keys: keys of per-pixel maps to draw as heat maps (e.g. ``"prob"``, a betting map).
        map_channel: which channel of a multi-channel map to draw (1: the foreground probability).
        mlflow_handler: the ``MLFlowHandler`` whose run receives the figures (None: files only).
        global_epoch_transform: maps the engine's epoch to the number in the file name, e.g.
            ``lambda e: trainer.state.epoch`` for a validator.
        tag: file-name prefix and MLflow artifact folder.
        transpose: swap the spatial axes for display (PNGs loaded by MONAI's ``PILReader`` are ``(W, H)``).
        id_key: key of a per-image identifier in the batch, for the row titles (optional).
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        num_images: int = 4,
        image_key: str = "image",
        label_key: str | None = "label",
        pred_key: str = "pred",
        map_keys: Sequence[str] = (),
        map_channel: int = 1,
        mlflow_handler: MLFlowHandler | None = None,
        global_epoch_transform: Callable[[int], int] = lambda e: e,
        tag: str = "validation",
        transpose: bool = False,
        id_key: str | None = "id",
    ) -> None:
        if num_images < 1:
            raise ValueError(f"num_images must be at least 1, got {num_images}.")
        self.output_dir = Path(output_dir)
        self.num_images = int(num_images)
        self.image_key, self.label_key, self.pred_key = image_key, label_key, pred_key
        self.map_keys = tuple(map_keys)
        self.map_channel = int(map_channel)
        self.mlflow_handler = mlflow_handler
        self.global_epoch_transform = global_epoch_transform
        self.tag = tag
        self.transpose = transpose
        self.id_key = id_key
        self._items: list[dict[str, Any]] = []
        self.last_figure_path: Path | None = None

    def attach(self, engine: Engine) -> None:
        """Register the collection and drawing events on ``engine``."""
        engine.add_event_handler(Events.EPOCH_STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._draw)

    def _reset(self, engine: Engine) -> None:
        self._items = []

    def _collect(self, engine: Engine) -> None:
        if len(self._items) >= self.num_images:
            return
        outputs, batch = engine.state.output, engine.state.batch
        if isinstance(outputs, dict) or isinstance(batch, dict):
            raise ValueError("SegmentationFigureHandler needs a decollated engine output (decollate=True).")
        for item, source in zip(outputs, batch):
            if len(self._items) >= self.num_images:
                break
            keep = {}
            for key in (self.image_key, self.label_key, self.pred_key, *self.map_keys):
                if key is None:
                    continue
                if key in item:
                    value = item[key]
                elif key in source:
                    value = source[key]
                else:
                    raise KeyError(
                        f"SegmentationFigureHandler: key {key!r} is in neither the engine output ({sorted(item)}) "
                        f"nor the batch ({sorted(source)})."
                    )
                value = torch.as_tensor(value).detach().cpu()
                if key in self.map_keys and value.shape[0] > 1:
                    value = value[self.map_channel : self.map_channel + 1]
                keep[key] = value
            if self.id_key and self.id_key in source:
                keep["_id"] = str(source[self.id_key])
            self._items.append(keep)

    def _draw(self, engine: Engine) -> None:
        if not self._items:
            return
        epoch = self.global_epoch_transform(engine.state.epoch)
        items = self._items
        fig = plot_segmentation_grid(
            images=[i[self.image_key] for i in items],
            labels=[i[self.label_key] for i in items] if self.label_key else None,
            preds=[i[self.pred_key] for i in items],
            maps={k: [i[k] for i in items] for k in self.map_keys},
            titles=[i.get("_id", f"#{n}") for n, i in enumerate(items)],
            transpose=self.transpose,
            suptitle=f"{self.tag}, epoch {epoch}",
        )
        self.output_dir.mkdir(parents=True, exist_ok=True)
        path = self.output_dir / f"{self.tag}_epoch{epoch:03d}.png"
        fig.savefig(path, dpi=90)
        self.last_figure_path = path
        log_artifact_to_mlflow(self.mlflow_handler, path, artifact_path=f"figures/{self.tag}")
