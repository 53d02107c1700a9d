"""Matplotlib figures: segmentations over images, per-pixel maps, tables of metrics."""

from .overlays import label_map, plot_segmentation_grid, segmentation_mosaic, to_display

__all__ = ["label_map", "plot_segmentation_grid", "segmentation_mosaic", "to_display"]
