"""An Ignite handler that draws 3D segmentations as axial, coronal and sagittal slices (2D ones as
they are) and logs the figure to MLflow."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from monai.utils import min_version, optional_import

from ..visualize import plot_segmentation_grid, plot_volume_slices
from .figures import log_artifact_to_mlflow
from .segmentation_metrics import spacing_from_affine

Events, _ = optional_import("ignite.engine", "0.4.11", min_version, "Events")
nib, _ = optional_import("nibabel")
if TYPE_CHECKING:
    from ignite.engine import Engine
    from monai.handlers import MLFlowHandler
else:
    Engine, _ = optional_import("ignite.engine", "0.4.11", min_version, "Engine")
    MLFlowHandler = Any

__all__ = ["VolumeFigureHandler"]


def _ras_transform(affine: Any) -> np.ndarray | None:
    """The nibabel orientation transform of a 3D affine to RAS (None if it is RAS already or absent)."""
    if affine is None:
        return None
    a = np.asarray(affine.detach().cpu() if isinstance(affine, torch.Tensor) else affine, dtype=float)
    a = a[-1] if a.ndim == 3 else a
    ornt = nib.orientations.io_orientation(a)
    transform = nib.orientations.ornt_transform(ornt, nib.orientations.axcodes2ornt("RAS"))
    identity = np.array([[0, 1], [1, 1], [2, 1]], dtype=float)
    return None if np.array_equal(transform, identity) else transform


def _reorient(volume: torch.Tensor, transform: np.ndarray | None) -> torch.Tensor:
    """A channel-first volume ``(C, X, Y, Z)`` reoriented by a nibabel orientation transform."""
    if transform is None:
        return volume
    channels = [nib.orientations.apply_orientation(c.numpy(), transform) for c in volume]
    return torch.from_numpy(np.ascontiguousarray(np.stack(channels)))


class VolumeFigureHandler:
    """After each evaluation epoch, draw the first ``num_images`` cases: for 3D volumes three rows
    each (axial, coronal, sagittal through the smallest labelled structure,
    :func:`monai_gamble.visualize.plot_volume_slices`), for 2D images one row
    (:func:`monai_gamble.visualize.plot_segmentation_grid`); save ``<tag>_epoch<NNN>.png`` under
    ``output_dir`` and log it to the MLflow run of ``mlflow_handler``.

    Attach it to a MONAI evaluator with ``decollate=True``; each key is looked up in the decollated
    output, then in the batch. The voxel spacing (for square display pixels) is read from the image's
    ``MetaTensor`` affine when it has one, and 3D arrays are reoriented to RAS by that affine for the
    display (the label, prediction and maps must lie on the image's grid: at the original resolution,
    draw a copy of the image made before ``Orientationd`` / ``Spacingd`` with the inverted prediction).

    Args:
        output_dir: folder of the PNG files.
        num_images: how many cases to draw (the first of the epoch, in loader order).
        image_key: key of the image (channel ``image_channel`` is drawn).
        label_key: key of the ground truth (None to leave it out).
        pred_key: key of the post-processed prediction (one-hot or index).
        map_keys: keys of per-voxel maps drawn as heat maps (``"prob"``, ``"betting_map"``, ...).
        map_channel: which channel of a multi-channel map to draw (1: the first foreground class).
        mlflow_handler: the ``MLFlowHandler`` whose run receives the figures (None: files only).
        global_epoch_transform: maps the engine's epoch to the number in the file name.
        tag: file-name prefix and MLflow artifact folder.
        id_key: key of a per-case identifier in the batch, for the row titles.
        image_channel: the image channel (modality) to draw.

    Raises:
        ValueError: for ``num_images`` below 1; on an epoch, for a batch that is not decollated.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        num_images: int = 2,
        image_key: str = "image",
        label_key: str | None = "label",
        pred_key: str = "pred",
        map_keys: Sequence[str] = (),
        map_channel: int = 1,
        mlflow_handler: MLFlowHandler | None = None,
        global_epoch_transform: Callable[[int], int] = lambda e: e,
        tag: str = "validation",
        id_key: str | None = "id",
        image_channel: int = 0,
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
        self.id_key = id_key
        self.image_channel = int(image_channel)
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
            raise ValueError("VolumeFigureHandler needs a decollated engine output (decollate=True).")
        for item, source in zip(outputs, batch, strict=False):
            if len(self._items) >= self.num_images:
                break
            keep: dict[str, Any] = {}
            transform = None
            for key in (self.image_key, self.label_key, self.pred_key, *self.map_keys):
                if key is None:
                    continue
                value = item[key] if key in item else source.get(key)
                if value is None:
                    raise KeyError(
                        f"VolumeFigureHandler: key {key!r} is in neither the engine output ({sorted(item)}) nor "
                        f"the batch ({sorted(source)})."
                    )
                if key == self.image_key:
                    affine = getattr(value, "affine", None)
                    spacing = spacing_from_affine([value])[0] if affine is not None else None
                    if affine is not None and value.ndim == 4:
                        transform = _ras_transform(affine)
                        if transform is not None and spacing is not None:
                            spacing = tuple(spacing[int(np.flatnonzero(transform[:, 0] == k)[0])] for k in range(3))
                    keep["_spacing"] = spacing
                value = torch.as_tensor(value).detach().cpu().float()
                if value.ndim == 4:
                    value = _reorient(value.as_subclass(torch.Tensor), transform)
                if key in self.map_keys and value.shape[0] > 1:
                    value = value[self.map_channel : self.map_channel + 1]
                keep[key] = value
            keep["_id"] = str(source[self.id_key]) if self.id_key and self.id_key in source else f"#{len(self._items)}"
            self._items.append(keep)

    def _draw(self, engine: Engine) -> None:
        if not self._items:
            return
        epoch = self.global_epoch_transform(engine.state.epoch)
        items = self._items
        labels = [i[self.label_key] for i in items] if self.label_key else None
        maps = {k: [i[k] for i in items] for k in self.map_keys}
        suptitle = f"{self.tag}, epoch {epoch}"
        if items[0][self.image_key].ndim == 4:
            fig = plot_volume_slices(
                images=[i[self.image_key] for i in items],
                labels=labels,
                preds=[i[self.pred_key] for i in items],
                maps=maps,
                spacings=[i["_spacing"] for i in items],
                titles=[i["_id"] for i in items],
                suptitle=suptitle,
                image_channel=self.image_channel,
            )
        else:
            fig = plot_segmentation_grid(
                images=[i[self.image_key][self.image_channel : self.image_channel + 1] for i in items],
                labels=labels,
                preds=[i[self.pred_key] for i in items],
                maps=maps,
                titles=[i["_id"] for i in items],
                transpose=True,  # MONAI's PILReader loads (W, H)
                suptitle=suptitle,
            )
        self.output_dir.mkdir(parents=True, exist_ok=True)
        path = self.output_dir / f"{self.tag}_epoch{epoch:03d}.png"
        fig.savefig(path, dpi=90)
        self.last_figure_path = path
        log_artifact_to_mlflow(self.mlflow_handler, path, artifact_path=f"figures/{self.tag}")
