"""Matplotlib figures: segmentations over images, per-pixel maps, comparisons of methods."""

from .comparison import plot_metric_comparison
from .overlays import label_map, plot_segmentation_grid, segmentation_mosaic, to_display
from .volumes import PLANES, orthogonal_slices, plot_volume_slices, slice_centre

__all__ = [
    "PLANES",
    "orthogonal_slices",
    "plot_volume_slices",
    "slice_centre",
    "label_map",
    "plot_metric_comparison",
    "plot_segmentation_grid",
    "segmentation_mosaic",
    "to_display",
]
