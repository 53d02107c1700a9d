"""Matplotlib figures: segmentations over images, per-pixel maps, comparisons of methods."""

from .comparison import plot_metric_comparison
from .overlays import label_map, plot_segmentation_grid, segmentation_mosaic, to_display

__all__ = ["label_map", "plot_metric_comparison", "plot_segmentation_grid", "segmentation_mosaic", "to_display"]
