"""Seeded generators of realistic stand-in datasets, written in the real datasets' own layouts.

No medical dataset can be downloaded at run time and the real ones need licences, so each
workflow ships a generator that writes a synthetic dataset in exactly the layout of the real
one; the same reader (:mod:`monai_gamble.data.datasets`, :mod:`~monai_gamble.data.nerve`,
:mod:`~monai_gamble.data.siim`, :mod:`~monai_gamble.data.pathology`, :mod:`~monai_gamble.data.decathlon`)
then reads both. One module per modality:

- :mod:`.thyroid`: thyroid-nodule ultrasound, TN-SCUI 2020 layout (PNG);
- :mod:`.nerve`: brachial-plexus ultrasound, Kaggle nerve layout (TIFF + RLE CSV);
- :mod:`.xray`: chest radiographs with pneumothorax, SIIM-ACR layout (DICOM + RLE CSV);
- :mod:`.pathology`: H&E-like kidney tiles, podocyte layout (JPEG/PNG + class masks);
- :mod:`.volumes`: 3D organ-and-lesion volumes, Medical Segmentation Decathlon layout (NIfTI);
- :mod:`.multiclass`: in-memory multi-class blobs with a rare class (no files).

The real-data readers never import from here; the class lists both sides need are in
:mod:`monai_gamble.data.classes`.
"""

from .multiclass import MULTICLASS_BLOB_CLASSES, make_multiclass_blobs
from .nerve import make_nerve_ultrasound, nerve_ultrasound_sweep
from .pathology import PATHOLOGY_CLASSES, make_pathology_tiles, pathology_tile_sample
from .thyroid import ThyroidScanLayout, make_thyroid_ultrasound, thyroid_ultrasound_sample
from .volumes import (
    SYNTHETIC_VOLUME_CLASSES,
    make_synthetic_volumes,
    prepare_synthetic_volumes,
    synthetic_volume_sample,
)
from .xray import chest_xray_sample, make_chest_xrays

__all__ = [
    "MULTICLASS_BLOB_CLASSES",
    "PATHOLOGY_CLASSES",
    "SYNTHETIC_VOLUME_CLASSES",
    "ThyroidScanLayout",
    "chest_xray_sample",
    "make_chest_xrays",
    "make_multiclass_blobs",
    "make_nerve_ultrasound",
    "make_pathology_tiles",
    "make_synthetic_volumes",
    "make_thyroid_ultrasound",
    "nerve_ultrasound_sweep",
    "pathology_tile_sample",
    "prepare_synthetic_volumes",
    "synthetic_volume_sample",
    "thyroid_ultrasound_sample",
]
