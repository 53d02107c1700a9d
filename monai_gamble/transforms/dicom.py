"""DICOM radiograph conventions that MONAI's readers leave to the user (array and dictionary forms).

What MONAI 1.6's DICOM readers do with a radiograph (checked in ``tests/transforms/test_dicom.py``):

=================================  ========================  ===========================
                                   ``PydicomReader``         ``ITKReader`` (GDCM)
=================================  ========================  ===========================
Rescale Slope / Intercept          applied (float32)         applied (float32)
MONOCHROME1 (bright = air)         **not inverted**          inverted to MONOCHROME2
Photometric Interpretation in      no (pruned metadata)      yes, ``meta["0028|0004"]``
the metadata
array of a single-frame file       ``(W, H)`` (swap_ij)      ``(W, H, 1)``
=================================  ========================  ===========================

:class:`InvertMonochrome1` makes both give the same MONOCHROME2 image (bright = dense).
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping
from typing import Any

import torch
from monai.config import KeysCollection
from monai.config.type_definitions import NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_tensor

from ..data.dicom import read_dicom_header

__all__ = ["InvertMonochrome1", "InvertMonochrome1D", "InvertMonochrome1Dict", "InvertMonochrome1d"]

_ITK_PHOTOMETRIC = "0028|0004"
_JSON_PHOTOMETRIC = "00280004"
_GREY = ("MONOCHROME1", "MONOCHROME2")


def _json_value(meta: Mapping[str, Any], tag: str, default: Any = None) -> Any:
    """A value of pydicom's JSON-style metadata (``PydicomReader(prune_metadata=False)``)."""
    element = meta.get(tag)
    if isinstance(element, Mapping) and element.get("Value"):
        return element["Value"][0]
    return default


class InvertMonochrome1(Transform):
    """Invert a MONOCHROME1 radiograph (bright = air) so that it reads as MONOCHROME2 (bright = dense).

    DICOM's Photometric Interpretation (0028,0004) ``MONOCHROME1`` means that the lowest value is
    displayed white; most computed radiography (CR) and some DX images are stored that way. With
    stored values :math:`x \\in [x_{min}, x_{max}]` (:math:`[0, 2^b - 1]` for ``BitsStored`` b,
    unsigned) and the modality rescale :math:`v = s x + c` (``RescaleSlope`` s, ``RescaleIntercept``
    c), which MONAI's readers apply, the inverted image is the rescaled value of the inverted stored
    value:

    .. math:: v' = s\\,(x_{min} + x_{max} - x) + c = s\\,(x_{min} + x_{max}) + 2c - v,

    the same as reading a MONOCHROME2 file with the inverted pixels (what GDCM does, and so MONAI's
    ``ITKReader``). MONOCHROME2 images pass through unchanged.

    Where the Photometric Interpretation comes from, in this order:

    1. the ``photometric_interpretation`` argument (with the stored range from the file header when
       the image has a ``filename_or_obj``, else from the image's own minimum and maximum);
    2. ITK-style metadata (``"0028|0004"``, from ``LoadImage(reader="ITKReader")``): GDCM has
       already inverted MONOCHROME1, so nothing is done;
    3. pydicom JSON-style metadata (``"00280004"``, from ``PydicomReader(prune_metadata=False)``);
    4. the header of the file ``meta["filename_or_obj"]`` (``PydicomReader``'s default pruned
       metadata), read with :func:`monai_gamble.data.read_dicom_header` (header only, fast).

    Args:
        photometric_interpretation: force ``"MONOCHROME1"`` or ``"MONOCHROME2"`` for every image, or
            None to read it per image as above.

    Raises:
        ValueError: for a photometric interpretation that is not MONOCHROME1/2 (a colour image), or
            an image without metadata or file name when none is given; and, naming the file, for a
            file whose header cannot be read (see :func:`~monai_gamble.data.read_dicom_header`).

    Example:
        >>> load = LoadImage(reader="PydicomReader", image_only=True, ensure_channel_first=True)
        >>> image = InvertMonochrome1()(load("radiograph.dcm"))  # bright = dense whatever the file says
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, photometric_interpretation: str | None = None) -> None:
        if photometric_interpretation is not None:
            photometric_interpretation = str(photometric_interpretation).strip().upper()
            if photometric_interpretation not in _GREY:
                raise ValueError(
                    f"photometric_interpretation must be one of {_GREY} or None, got {photometric_interpretation!r}."
                )
        self.photometric_interpretation = photometric_interpretation

    @staticmethod
    def _source(img: NdarrayOrTensor) -> str | None:
        meta = img.meta if isinstance(img, MetaTensor) else {}
        name = meta.get("filename_or_obj")
        return str(name) if isinstance(name, (str, os.PathLike)) and str(name) else None

    def inversion_sum(self, img: NdarrayOrTensor, photometric_interpretation: str | None = None) -> float | None:
        """:math:`s (x_{min} + x_{max}) + 2c` of ``img`` if it must be inverted, else None.

        Raises:
            ValueError: as the class.
        """
        meta: Mapping[str, Any] = img.meta if isinstance(img, MetaTensor) else {}
        forced = photometric_interpretation or self.photometric_interpretation
        if forced is None and _ITK_PHOTOMETRIC in meta:
            pi = str(meta[_ITK_PHOTOMETRIC]).strip().upper()
            if pi not in _GREY:
                raise ValueError(f"{self._source(img)}: photometric interpretation {pi}; expected {_GREY}.")
            return None  # GDCM converts MONOCHROME1 to MONOCHROME2 on reading
        if forced is None and _json_value(meta, _JSON_PHOTOMETRIC) is not None:
            pi = str(_json_value(meta, _JSON_PHOTOMETRIC)).strip().upper()
            if pi not in _GREY:
                raise ValueError(f"{self._source(img)}: photometric interpretation {pi}; expected {_GREY}.")
            if pi == "MONOCHROME2":
                return None
            bits = int(_json_value(meta, "00280101", 16))
            signed = int(_json_value(meta, "00280103", 0))
            slope = float(_json_value(meta, "00281053", 1.0))
            intercept = float(_json_value(meta, "00281052", 0.0))
            lo_hi = -1 if signed else 2**bits - 1
            return slope * lo_hi + 2 * intercept
        source = self._source(img)
        if forced is None and source is None:
            raise ValueError(
                "InvertMonochrome1: the image has no DICOM metadata and no file name; load it with MONAI's "
                "LoadImage (PydicomReader or ITKReader) or pass photometric_interpretation."
            )
        if forced == "MONOCHROME2":
            return None
        header = read_dicom_header(source, check_pixels=False) if source is not None else None
        pi = forced or header.photometric_interpretation  # type: ignore[union-attr]
        if pi == "MONOCHROME2":
            return None
        if header is None:  # forced MONOCHROME1 without a file: the image's own range
            t = convert_to_tensor(img, track_meta=False)
            return float(t.min() + t.max())
        lo, hi = header.stored_range
        return header.rescale_slope * (lo + hi) + 2 * header.rescale_intercept

    def __call__(self, img: NdarrayOrTensor, photometric_interpretation: str | None = None) -> NdarrayOrTensor:
        """
        Args:
            img: a radiograph as loaded by MONAI's ``LoadImage`` (a ``MetaTensor``), any shape.
            photometric_interpretation: overrides the constructor's for this call.

        Returns:
            ``img`` unchanged (MONOCHROME2, or read by ITK), or inverted as float32, metadata kept.
        """
        total = self.inversion_sum(img, photometric_interpretation)
        if total is None:
            return img
        t = convert_to_tensor(img, track_meta=False, dtype=torch.float32)
        out, *_ = convert_to_dst_type(total - t, img, dtype=torch.float32)
        return out


class InvertMonochrome1d(MapTransform):
    """Dictionary form of :class:`InvertMonochrome1`.

    Args:
        keys: keys of the radiographs.
        photometric_interpretation: force it for every image, or None to read it per image.
        allow_missing_keys: do not raise if a key is missing.
    """

    backend = InvertMonochrome1.backend

    def __init__(
        self, keys: KeysCollection, photometric_interpretation: str | None = None, allow_missing_keys: bool = False
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.inverter = InvertMonochrome1(photometric_interpretation)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.inverter(d[key])
        return d


InvertMonochrome1D = InvertMonochrome1Dict = InvertMonochrome1d
