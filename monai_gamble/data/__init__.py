"""Datasets: generators of realistic synthetic data and datalists of the real layouts."""

from .datasets import SPLIT_NAMES, image_folder_datalist, read_csv_rows, split_datalist, tnscui_datalist
from .samplers import ClassConditionalBatchSampler, class_presence
from .synthetic import make_thyroid_ultrasound, thyroid_ultrasound_sample
from .synthetic_multiclass import MULTICLASS_BLOB_CLASSES, make_multiclass_blobs

__all__ = [
    "MULTICLASS_BLOB_CLASSES",
    "SPLIT_NAMES",
    "ClassConditionalBatchSampler",
    "class_presence",
    "image_folder_datalist",
    "make_multiclass_blobs",
    "make_thyroid_ultrasound",
    "read_csv_rows",
    "split_datalist",
    "thyroid_ultrasound_sample",
    "tnscui_datalist",
]
