"""Transforms that MONAI lacks, each in array (``X``) and dictionary (``Xd``) form."""

from .erosion import (
    ErosionMaskSmoothing,
    ErosionMaskSmoothingD,
    ErosionMaskSmoothingd,
    ErosionMaskSmoothingDict,
)
from .intensity import ToGrayscale, ToGrayscaleD, ToGrayscaled, ToGrayscaleDict
from .post import ClearSmallMask, ClearSmallMaskD, ClearSmallMaskd, ClearSmallMaskDict

__all__ = [
    "ClearSmallMask",
    "ClearSmallMaskD",
    "ClearSmallMaskDict",
    "ClearSmallMaskd",
    "ErosionMaskSmoothing",
    "ErosionMaskSmoothingD",
    "ErosionMaskSmoothingDict",
    "ErosionMaskSmoothingd",
    "ToGrayscale",
    "ToGrayscaleD",
    "ToGrayscaleDict",
    "ToGrayscaled",
]
