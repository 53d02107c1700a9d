"""Transforms that MONAI lacks, each in array (``X``) and dictionary (``Xd``) form."""

from .contrast import CLAHE, CLAHED, CLAHEd, CLAHEDict
from .dicom import InvertMonochrome1, InvertMonochrome1D, InvertMonochrome1d, InvertMonochrome1Dict
from .erosion import (
    ErosionMaskSmoothing,
    ErosionMaskSmoothingD,
    ErosionMaskSmoothingd,
    ErosionMaskSmoothingDict,
)
from .intensity import ToGrayscale, ToGrayscaleD, ToGrayscaled, ToGrayscaleDict
from .io import LoadImageNamedD, LoadImageNamedd, LoadImageNamedDict
from .labels import ToClassIndices, ToClassIndicesD, ToClassIndicesd, ToClassIndicesDict
from .modality import (
    IntensityScaling,
    ScaleIntensityByModality,
    ScaleIntensityByModalityD,
    ScaleIntensityByModalityd,
    ScaleIntensityByModalityDict,
    intensity_scaling_for,
)
from .post import (
    ClearSmallMask,
    ClearSmallMaskD,
    ClearSmallMaskd,
    ClearSmallMaskDict,
    RemoveSmallComponents,
    RemoveSmallComponentsD,
    RemoveSmallComponentsd,
    RemoveSmallComponentsDict,
)
from .rle import RLEToMask, RLEToMaskD, RLEToMaskd, RLEToMaskDict
from .stain import (
    NormalizeHEStainsChannelFirst,
    NormalizeHEStainsChannelFirstD,
    NormalizeHEStainsChannelFirstd,
    NormalizeHEStainsChannelFirstDict,
    RandHEDStainJitter,
    RandHEDStainJitterD,
    RandHEDStainJitterd,
    RandHEDStainJitterDict,
)

__all__ = [
    "LoadImageNamedD",
    "LoadImageNamedDict",
    "LoadImageNamedd",
    "IntensityScaling",
    "ScaleIntensityByModality",
    "ScaleIntensityByModalityD",
    "ScaleIntensityByModalityDict",
    "ScaleIntensityByModalityd",
    "ToClassIndices",
    "ToClassIndicesD",
    "ToClassIndicesDict",
    "ToClassIndicesd",
    "intensity_scaling_for",
    "CLAHE",
    "CLAHED",
    "CLAHEDict",
    "CLAHEd",
    "ClearSmallMask",
    "ClearSmallMaskD",
    "ClearSmallMaskDict",
    "ClearSmallMaskd",
    "ErosionMaskSmoothing",
    "ErosionMaskSmoothingD",
    "ErosionMaskSmoothingDict",
    "ErosionMaskSmoothingd",
    "InvertMonochrome1",
    "InvertMonochrome1D",
    "InvertMonochrome1Dict",
    "InvertMonochrome1d",
    "NormalizeHEStainsChannelFirst",
    "NormalizeHEStainsChannelFirstD",
    "NormalizeHEStainsChannelFirstDict",
    "NormalizeHEStainsChannelFirstd",
    "RandHEDStainJitter",
    "RandHEDStainJitterD",
    "RandHEDStainJitterDict",
    "RandHEDStainJitterd",
    "RemoveSmallComponents",
    "RemoveSmallComponentsD",
    "RemoveSmallComponentsDict",
    "RemoveSmallComponentsd",
    "RLEToMask",
    "RLEToMaskD",
    "RLEToMaskDict",
    "RLEToMaskd",
    "ToGrayscale",
    "ToGrayscaleD",
    "ToGrayscaleDict",
    "ToGrayscaled",
]
