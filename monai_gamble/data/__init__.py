"""Datasets: generators of realistic synthetic data and datalists of the real layouts."""

from .datasets import SPLIT_NAMES, image_folder_datalist, read_csv_rows, split_datalist, tnscui_datalist
from .synthetic import make_thyroid_ultrasound, thyroid_ultrasound_sample

__all__ = [
    "SPLIT_NAMES",
    "image_folder_datalist",
    "make_thyroid_ultrasound",
    "read_csv_rows",
    "split_datalist",
    "thyroid_ultrasound_sample",
    "tnscui_datalist",
]
