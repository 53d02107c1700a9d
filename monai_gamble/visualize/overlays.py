"""Figures of segmentations: image, ground truth, prediction and per-pixel maps side by side.

The panels are composed into one RGB mosaic with NumPy (overlays by alpha blending, contours as
boundary pixels) and drawn with a single ``imshow``: a grid of 4 x 4 panels costs about a tenth
of a second, where one matplotlib ``Axes`` per panel costs several, which matters for a figure
drawn after every validation. Figures are built with ``matplotlib.figure.Figure`` (no ``pyplot``
state, no GUI backend), so they work headless and display inline in notebooks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.figure import Figure
from scipy import ndimage

__all__ = ["label_map", "plot_segmentation_grid", "segmentation_mosaic", "to_display"]

_GT_COLOUR = np.array([0.2, 1.0, 0.2])  # contour of the ground truth
_PRED_COLOURS = np.array([[1.0, 0.25, 0.1], [0.2, 0.6, 1.0], [1.0, 0.85, 0.1], [0.9, 0.3, 0.9], [0.3, 0.9, 0.9]])


def to_display(x: Any, transpose: bool = False) -> np.ndarray:
    """A channel-first array ``(C, *spatial)`` as a 2D float array for display.

    Multi-channel arrays are reduced with ``argmax`` (one-hot or probabilities); 3D volumes show
    their middle slice along the last axis. ``transpose`` swaps the two spatial axes (MONAI's
    ``PILReader`` loads PNGs as ``(W, H)``).
    """
    a = x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=float)
    if a.ndim == 4:
        a = a[..., a.shape[-1] // 2]
    if a.ndim == 3:
        a = a[0] if a.shape[0] == 1 else a.argmax(0).astype(float)
    if a.ndim != 2:
        raise ValueError(f"expected a channel-first 2D or 3D array, got shape {a.shape}.")
    return a.T if transpose else a


def label_map(x: Any, transpose: bool = False) -> np.ndarray:
    """An integer label map from a one-hot ``(C, ...)`` or index ``(1, ...)`` array (see :func:`to_display`)."""
    return np.rint(to_display(x, transpose)).astype(int)


def _grey(img: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(img, (0.5, 99.5)) if img.size else (0.0, 1.0)
    g = np.clip((img - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(img)
    return np.repeat(g[..., None], 3, axis=-1)


def _boundary(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def _overlay(rgb: np.ndarray, labels: np.ndarray | None, contour: np.ndarray | None) -> np.ndarray:
    out = rgb.copy()
    if labels is not None:
        for k in np.unique(labels[labels > 0]):
            sel = labels == k
            out[sel] = 0.55 * out[sel] + 0.45 * _PRED_COLOURS[(k - 1) % len(_PRED_COLOURS)]
    if contour is not None:
        for k in np.unique(contour[contour > 0]):
            out[_boundary(contour == k)] = _GT_COLOUR
    return out


def _heat(m: np.ndarray, value_range: tuple[float, float] | None) -> tuple[np.ndarray, tuple[float, float]]:
    lo, hi = value_range if value_range is not None else (float(m.min()), float(m.max()))
    scaled = np.clip((m - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(m)
    return colormaps["magma"](scaled)[..., :3], (lo, hi)


def segmentation_mosaic(
    images: Sequence[Any],
    labels: Sequence[Any] | None = None,
    preds: Sequence[Any] | Mapping[str, Sequence[Any]] | None = None,
    maps: Mapping[str, Sequence[Any]] | None = None,
    transpose: bool = False,
    map_ranges: Mapping[str, tuple[float, float]] | None = None,
    gap: int = 4,
) -> tuple[np.ndarray, list[str], list[list[str]]]:
    """The RGB mosaic drawn by :func:`plot_segmentation_grid`, with its column names and per-panel notes.

    Returns:
        ``(mosaic, columns, notes)``: an ``(H, W, 3)`` float array in [0, 1], the column names, and
        for each row the value range of each heat map.
    """
    n = len(images)
    if n == 0:
        raise ValueError("no image to plot.")
    maps = dict(maps or {})
    named_preds = dict(preds) if isinstance(preds, Mapping) else ({"prediction": preds} if preds is not None else {})
    checks = {"labels": labels, **{f"preds[{k!r}]": v for k, v in named_preds.items()}}
    for name, seq in {**checks, **{f"maps[{k!r}]": v for k, v in maps.items()}}.items():
        if seq is not None and len(seq) != n:
            raise ValueError(f"{name} has {len(seq)} entries for {n} images.")
    columns = ["image"] + (["ground truth"] if labels is not None else []) + list(named_preds) + list(maps)
    rows: list[list[np.ndarray]] = []
    notes: list[list[str]] = []
    for i in range(n):
        img = _grey(to_display(images[i], transpose))
        gt = label_map(labels[i], transpose) if labels is not None else None
        panels = [img]
        if gt is not None:
            panels.append(_overlay(img, None, gt))
        for seq in named_preds.values():
            panels.append(_overlay(img, label_map(seq[i], transpose), gt))
        row_notes = []
        for name, seq in maps.items():
            m = to_display(seq[i], transpose)
            rng = (map_ranges or {}).get(name)
            if rng is None and m.size and m.min() >= 0 and m.max() <= 1:
                rng = (0.0, 1.0)
            heat, used = _heat(m, rng)
            panels.append(heat)
            row_notes.append(f"{name}: [{used[0]:.3g}, {used[1]:.3g}]")
        rows.append(panels)
        notes.append(row_notes)
    cell_h = max(p.shape[0] for r in rows for p in r)
    cell_w = max(p.shape[1] for r in rows for p in r)
    mosaic = np.ones((n * (cell_h + gap) - gap, len(columns) * (cell_w + gap) - gap, 3))
    for i, panels in enumerate(rows):
        for j, p in enumerate(panels):
            y, x = i * (cell_h + gap), j * (cell_w + gap)
            mosaic[y : y + p.shape[0], x : x + p.shape[1]] = p
    return mosaic, columns, notes


def plot_segmentation_grid(
    images: Sequence[Any],
    labels: Sequence[Any] | None = None,
    preds: Sequence[Any] | Mapping[str, Sequence[Any]] | None = None,
    maps: Mapping[str, Sequence[Any]] | None = None,
    titles: Sequence[str] | None = None,
    transpose: bool = False,
    suptitle: str | None = None,
    map_ranges: Mapping[str, tuple[float, float]] | None = None,
    panel_size: float = 2.2,
) -> Figure:
    """A grid with one row per image: the image, the ground truth's contour over it, the prediction
    over it (filled, with the ground-truth contour), and one heat map per entry of ``maps`` (e.g.
    class probabilities, a gambler's betting map, a discriminator's confidence map).

    Args:
        images: channel-first images ``(C, H, W)`` (or 3D, middle slice shown).
        labels: ground truths, one-hot or index, or None.
        preds: predictions, one-hot or index, or None; or named sequences of predictions
            (``{"gambling": [...], "confidence": [...]}``), one column each.
        maps: named per-pixel maps ``(1, H, W)`` drawn with the ``magma`` colour map.
        titles: one label per row (e.g. the image ID).
        transpose: swap the spatial axes for display (PNG loaded by MONAI's ``PILReader``).
        suptitle: the figure title.
        map_ranges: fixed ``(low, high)`` colour range per map name; by default [0, 1] for maps
            within it (probabilities), else each panel's own min and max (written under the row).
        panel_size: size of one panel in inches.

    Returns:
        A ``matplotlib.figure.Figure``; save it with ``fig.savefig`` or log it with ``mlflow.log_figure``.
    """
    mosaic, columns, notes = segmentation_mosaic(images, labels, preds, maps, transpose, map_ranges)
    n, ncol = len(images), len(columns)
    top, left, bottom = 0.3 + (0.3 if suptitle else 0.0), 0.3, 0.05
    ax_w = panel_size * ncol
    ax_h = ax_w * mosaic.shape[0] / mosaic.shape[1]
    w, h = left + ax_w, top + ax_h + bottom
    fig = Figure(figsize=(w, h))
    ax = fig.add_axes((left / w, bottom / h, ax_w / w, ax_h / h))
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_axis_off()
    col_w, row_h = ax_w / ncol, ax_h / n  # inches
    for j, name in enumerate(columns):
        fig.text((left + col_w * (j + 0.5)) / w, (bottom + ax_h + 0.05) / h, name, ha="center", va="bottom", fontsize=9)
    first_map = ncol - len(notes[0]) if notes else ncol
    for i in range(n):
        y_mid = (bottom + ax_h - (i + 0.5) * row_h) / h
        fig.text(
            0.5 * left / w, y_mid, titles[i] if titles else f"#{i}", rotation=90, ha="center", va="center", fontsize=8
        )
        for k, note in enumerate(notes[i]):  # the colour range of each heat map, inside its panel
            x = (left + col_w * (first_map + k + 0.5)) / w
            fig.text(
                x,
                (bottom + ax_h - (i + 1) * row_h + 0.06) / h,
                note.split(": ")[1],
                ha="center",
                va="bottom",
                fontsize=6,
                color="white",
            )
    if suptitle:
        fig.text(0.5, 1 - 0.06 / h, suptitle, ha="center", va="top", fontsize=10)
    return fig
