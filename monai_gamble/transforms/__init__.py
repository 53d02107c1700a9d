"""Transforms that MONAI lacks, each in array (``X``) and dictionary (``Xd``) form."""

from .intensity import ToGrayscale, ToGrayscaleD, ToGrayscaled, ToGrayscaleDict

__all__ = ["ToGrayscale", "ToGrayscaleD", "ToGrayscaleDict", "ToGrayscaled"]
