"""Datasets: generators of realistic synthetic data and datalists of the real layouts."""

from .datasets import SPLIT_NAMES, image_folder_datalist, read_csv_rows, split_datalist, tnscui_datalist
from .nerve import find_conflicting_duplicates, nerve_datalist, nerve_test_datalist
from .rle import RLEFormat, masks_to_rle_csv, rle_decode, rle_encode
from .samplers import ClassConditionalBatchSampler, class_presence
from .synthetic import make_thyroid_ultrasound, thyroid_ultrasound_sample
from .synthetic_multiclass import MULTICLASS_BLOB_CLASSES, make_multiclass_blobs
from .synthetic_nerve import make_nerve_ultrasound, nerve_ultrasound_sweep

__all__ = [
    "MULTICLASS_BLOB_CLASSES",
    "SPLIT_NAMES",
    "ClassConditionalBatchSampler",
    "RLEFormat",
    "class_presence",
    "find_conflicting_duplicates",
    "image_folder_datalist",
    "make_multiclass_blobs",
    "make_nerve_ultrasound",
    "make_thyroid_ultrasound",
    "masks_to_rle_csv",
    "nerve_datalist",
    "nerve_test_datalist",
    "nerve_ultrasound_sweep",
    "read_csv_rows",
    "rle_decode",
    "rle_encode",
    "split_datalist",
    "thyroid_ultrasound_sample",
    "tnscui_datalist",
]
