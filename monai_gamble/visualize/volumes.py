"""Figures of 3D segmentations: axial, coronal and sagittal slices with overlays and per-voxel maps.

Each volume becomes three rows of :func:`monai_gamble.visualize.plot_segmentation_grid` (image,
ground truth, prediction, maps), one per anatomical plane through a point of interest, resampled
to square display pixels from the voxel spacing (a 5 mm slice is drawn five times taller than a
1 mm pixel). Arrays are expected in RAS axis order (MONAI's ``Orientationd(axcodes="RAS")``) and are
drawn in the radiological convention: the patient's right on the left of axial and coronal views,
anterior at the top of axial views and on the left of sagittal views, superior at the top.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from scipy import ndimage

from .overlays import plot_segmentation_grid

__all__ = ["PLANES", "orthogonal_slices", "plot_volume_slices", "slice_centre"]

#: the planes, with the array axis each one fixes (RAS order: 0 right, 1 anterior, 2 superior)
PLANES = {"axial": 2, "coronal": 1, "sagittal": 0}


def _numpy(x: Any) -> np.ndarray:
    return x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=float)


def _index_map(x: Any) -> np.ndarray:
    """``(1, *spatial)`` class indices from a one-hot / probability ``(C, ...)`` or index ``(1, ...)`` array."""
    a = _numpy(x)
    return a if a.shape[0] == 1 else a.argmax(0)[None].astype(float)


def slice_centre(label: Any | None, shape: Sequence[int]) -> tuple[int, ...]:
    """The voxel the three planes go through: the centre of mass of the smallest foreground class
    present in ``label`` (a lesion rather than its organ), else the middle of the volume.

    Args:
        label: a one-hot ``(C, X, Y, Z)`` or index ``(1, X, Y, Z)`` label (or prediction), or None.
        shape: the spatial shape.
    """
    middle = tuple(int(s) // 2 for s in shape)
    if label is None:
        return middle
    idx = _index_map(label)[0]
    values, counts = np.unique(idx[idx > 0], return_counts=True)
    if values.size == 0:
        return middle
    centre = ndimage.center_of_mass(idx == values[np.argmin(counts)])
    return tuple(int(np.clip(round(c), 0, s - 1)) for c, s in zip(centre, shape, strict=True))


def _display(plane: np.ndarray) -> np.ndarray:
    """``(C, a, b)`` plane of a RAS volume to display rows and columns (radiological convention)."""
    return np.flip(np.swapaxes(plane, 1, 2), axis=(1, 2))


def orthogonal_slices(
    volume: Any,
    centre: Sequence[int],
    spacing: Sequence[float] | None = None,
    order: int = 1,
) -> dict[str, np.ndarray]:
    """The axial, coronal and sagittal slices ``(C, rows, cols)`` of a channel-first RAS volume
    ``(C, X, Y, Z)`` through ``centre``, oriented for display and resampled to square pixels.

    Args:
        volume: the channel-first volume.
        centre: the voxel ``(x, y, z)`` the planes go through.
        spacing: the voxel spacing ``(sx, sy, sz)`` (None: isotropic).
        order: the interpolation order of the resampling (0 for labels).

    Raises:
        ValueError: for a volume that is not ``(C, X, Y, Z)``.
    """
    a = _numpy(volume)
    if a.ndim != 4:
        raise ValueError(f"expected a channel-first 3D volume (C, X, Y, Z), got shape {a.shape}.")
    sp = np.ones(3) if spacing is None else np.asarray(spacing, dtype=float)[:3]
    out = {}
    for name, axis in PLANES.items():
        plane = np.take(a, int(centre[axis]), axis=axis + 1)  # (C, u, v) with u < v the remaining axes
        kept = [d for d in range(3) if d != axis]
        shown = _display(plane)  # rows: the second kept axis, columns: the first
        zoom = (1.0, sp[kept[1]] / sp.min(), sp[kept[0]] / sp.min())
        out[name] = ndimage.zoom(shown, zoom, order=order, mode="nearest", grid_mode=True)
    return out


def plot_volume_slices(
    images: Sequence[Any],
    labels: Sequence[Any] | None = None,
    preds: Sequence[Any] | Mapping[str, Sequence[Any]] | None = None,
    maps: Mapping[str, Sequence[Any]] | None = None,
    spacings: Sequence[Sequence[float] | None] | None = None,
    titles: Sequence[str] | None = None,
    suptitle: str | None = None,
    image_channel: int = 0,
    map_ranges: Mapping[str, tuple[float, float]] | None = None,
    panel_size: float = 2.2,
) -> Figure:
    """A grid with three rows per volume (axial, coronal, sagittal slices through the centre of its
    smallest labelled structure, :func:`slice_centre`) and the columns of
    :func:`~monai_gamble.visualize.plot_segmentation_grid`: the image, the ground truth's contour, the
    prediction over the image, and one heat map per entry of ``maps`` (class probabilities, a
    gambler's betting map, a confidence map).

    Args:
        images: channel-first RAS volumes ``(M, X, Y, Z)``; channel ``image_channel`` is drawn.
        labels: ground truths (one-hot or index), or None.
        preds: predictions (one-hot or index), or named sequences of them, or None.
        maps: named per-voxel maps ``(1, X, Y, Z)`` (or multi-channel: channel 1 is drawn).
        spacings: each volume's voxel spacing (None: isotropic).
        titles: one name per volume (the plane is added).
        suptitle: the figure title.
        image_channel: which image channel (modality) to draw.
        map_ranges: fixed colour ranges per map name (see ``plot_segmentation_grid``).
        panel_size: size of one panel in inches.

    Returns:
        A ``matplotlib.figure.Figure``.

    Raises:
        ValueError: for no volume, sequences of other lengths, or arrays that are not ``(C, X, Y, Z)``.
    """
    n = len(images)
    if n == 0:
        raise ValueError("no volume to plot.")
    named_preds = dict(preds) if isinstance(preds, Mapping) else ({"prediction": preds} if preds is not None else {})
    maps = dict(maps or {})
    for name, seq in {"labels": labels, "spacings": spacings, **named_preds, **maps}.items():
        if seq is not None and len(seq) != n:
            raise ValueError(f"{name} has {len(seq)} entries for {n} volumes.")
    rows_img, rows_lab, rows_titles = [], [], []
    rows_pred: dict[str, list[np.ndarray]] = {k: [] for k in named_preds}
    rows_map: dict[str, list[np.ndarray]] = {k: [] for k in maps}
    for i in range(n):
        img = _numpy(images[i])
        if img.ndim != 4:
            raise ValueError(f"image {i} has shape {img.shape}: expected (C, X, Y, Z).")
        img = img[image_channel : image_channel + 1]
        spacing = spacings[i] if spacings is not None else None
        ref = labels[i] if labels is not None else next((seq[i] for seq in named_preds.values()), None)
        centre = slice_centre(ref, img.shape[1:])
        per_plane = {"image": orthogonal_slices(img, centre, spacing, order=1)}
        if labels is not None:
            per_plane["label"] = orthogonal_slices(_index_map(labels[i]), centre, spacing, order=0)
        for k, seq in named_preds.items():
            per_plane[f"pred:{k}"] = orthogonal_slices(_index_map(seq[i]), centre, spacing, order=0)
        for k, seq in maps.items():
            m = _numpy(seq[i])
            per_plane[f"map:{k}"] = orthogonal_slices(m[1:2] if m.shape[0] > 1 else m, centre, spacing, order=1)
        title = titles[i] if titles is not None else f"#{i}"
        for plane, axis in PLANES.items():
            rows_img.append(per_plane["image"][plane])
            if labels is not None:
                rows_lab.append(per_plane["label"][plane])
            for k in named_preds:
                rows_pred[k].append(per_plane[f"pred:{k}"][plane])
            for k in maps:
                rows_map[k].append(per_plane[f"map:{k}"][plane])
            rows_titles.append(f"{title} {plane} {'xyz'[axis]}={centre[axis]}")
    return plot_segmentation_grid(
        images=rows_img,
        labels=rows_lab if labels is not None else None,
        preds=rows_pred if isinstance(preds, Mapping) else (rows_pred.get("prediction") if preds is not None else None),
        maps=rows_map,
        titles=rows_titles,
        suptitle=suptitle,
        map_ranges=map_ranges,
        panel_size=panel_size,
    )
