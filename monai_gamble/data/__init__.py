"""Datasets: generators of realistic synthetic data and datalists of the real layouts."""

from .datasets import (
    DDTI_HALF_SCAN_OFFSET,
    SPLIT_NAMES,
    TNSCUIGrouping,
    count_items,
    ddti_scan_group,
    evaluation_datalist,
    evaluation_name,
    image_folder_datalist,
    is_ddti_layout,
    limit_training,
    read_csv_rows,
    split_datalist,
    tnscui_datalist,
)
from .decathlon import (
    SegmentationDataset,
    SegmentationLayout,
    decathlon_dataset,
    image_mask_folder_dataset,
    segmentation_dataset,
)
from .image_checks import (
    CheckedPILReader,
    ImageFileInfo,
    IntensityScale,
    check_image_file,
    check_image_files,
    decode_single_page,
    open_image,
    pil_to_array,
)
from .loaders import training_dataloader
from .nerve import find_conflicting_duplicates, nerve_datalist, nerve_test_datalist
from .pathology import MONUSAC_CLASSES, SARDER_GLOMERULI_CLASSES, PathologyLayout, pathology_datalist
from .preparation import input_folder, prepare_dataset, synthetic_dataset_dir
from .rle import RLEFormat, masks_to_rle_csv, rle_decode, rle_encode, rle_union
from .samplers import ClassConditionalBatchSampler, class_presence
from .siim import (
    DicomHeader,
    MissingPolicy,
    SIIMMatch,
    match_siim_files,
    read_dicom_header,
    read_siim_csv,
    siim_datalist,
    siim_test_datalist,
)
from .synthetic import make_thyroid_ultrasound, thyroid_ultrasound_sample
from .synthetic_multiclass import MULTICLASS_BLOB_CLASSES, make_multiclass_blobs
from .synthetic_nerve import make_nerve_ultrasound, nerve_ultrasound_sweep
from .synthetic_pathology import PATHOLOGY_CLASSES, make_pathology_tiles, pathology_tile_sample
from .synthetic_volumes import (
    SYNTHETIC_VOLUME_CLASSES,
    make_synthetic_volumes,
    prepare_synthetic_volumes,
    synthetic_volume_sample,
)
from .synthetic_xray import chest_xray_sample, make_chest_xrays

__all__ = [
    "CheckedPILReader",
    "ImageFileInfo",
    "IntensityScale",
    "check_image_file",
    "check_image_files",
    "decode_single_page",
    "open_image",
    "pil_to_array",
    "count_items",
    "input_folder",
    "prepare_dataset",
    "synthetic_dataset_dir",
    "SYNTHETIC_VOLUME_CLASSES",
    "SegmentationDataset",
    "SegmentationLayout",
    "decathlon_dataset",
    "image_mask_folder_dataset",
    "make_synthetic_volumes",
    "prepare_synthetic_volumes",
    "segmentation_dataset",
    "synthetic_volume_sample",
    "training_dataloader",
    "DDTI_HALF_SCAN_OFFSET",
    "TNSCUIGrouping",
    "ddti_scan_group",
    "evaluation_datalist",
    "evaluation_name",
    "is_ddti_layout",
    "limit_training",
    "MONUSAC_CLASSES",
    "MULTICLASS_BLOB_CLASSES",
    "PATHOLOGY_CLASSES",
    "SARDER_GLOMERULI_CLASSES",
    "SPLIT_NAMES",
    "ClassConditionalBatchSampler",
    "DicomHeader",
    "MissingPolicy",
    "PathologyLayout",
    "RLEFormat",
    "SIIMMatch",
    "chest_xray_sample",
    "class_presence",
    "find_conflicting_duplicates",
    "image_folder_datalist",
    "make_chest_xrays",
    "make_multiclass_blobs",
    "make_nerve_ultrasound",
    "make_pathology_tiles",
    "make_thyroid_ultrasound",
    "masks_to_rle_csv",
    "match_siim_files",
    "nerve_datalist",
    "nerve_test_datalist",
    "nerve_ultrasound_sweep",
    "pathology_datalist",
    "pathology_tile_sample",
    "read_csv_rows",
    "read_dicom_header",
    "read_siim_csv",
    "rle_decode",
    "rle_encode",
    "rle_union",
    "siim_datalist",
    "siim_test_datalist",
    "split_datalist",
    "thyroid_ultrasound_sample",
    "tnscui_datalist",
]
