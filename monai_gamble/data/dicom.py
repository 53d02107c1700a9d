"""Reading and checking the header of a single-frame grayscale radiograph in DICOM (:func:`read_dicom_header`):
used by the SIIM-ACR datalists (:mod:`monai_gamble.data.siim`) and the DICOM transforms
(:mod:`monai_gamble.transforms.dicom`)."""

from __future__ import annotations

import dataclasses
import os
import re
import warnings
from pathlib import Path
from typing import Any

__all__ = ["DicomHeader", "read_dicom_header"]

_GREY = ("MONOCHROME1", "MONOCHROME2")
_AGE = re.compile(r"^\s*(\d{1,3})\s*([DWMY]?)\s*$", re.IGNORECASE)
_AGE_UNIT_YEARS = {"": 1.0, "Y": 1.0, "M": 1 / 12, "W": 7 / 365.25, "D": 1 / 365.25}


@dataclasses.dataclass(frozen=True)
class DicomHeader:
    """What the SIIM workflow needs from a radiograph's DICOM header (:func:`read_dicom_header`).

    Attributes:
        path: the file.
        sop_instance_uid: (0008,0018), the competition's ImageId.
        rows: (0028,0010), the image height.
        columns: (0028,0011), the image width.
        photometric_interpretation: (0028,0004), ``MONOCHROME1`` (bright = air) or ``MONOCHROME2``.
        bits_stored: (0028,0101).
        pixel_representation: (0028,0103), 0 unsigned, 1 signed.
        rescale_slope: (0028,1053), 1 when absent.
        rescale_intercept: (0028,1052), 0 when absent.
        modality: (0008,0060), e.g. ``CR`` or ``DX``.
        sex: (0010,0040), ``M``, ``F``, ``O`` or ``""``.
        age: (0010,1010) in whole years (``038Y`` and the competition's non-standard ``38``), -1 when absent.
        transfer_syntax: (0002,0010), e.g. ``1.2.840.10008.1.2.4.50`` (JPEG Baseline).
    """

    path: str
    sop_instance_uid: str
    rows: int
    columns: int
    photometric_interpretation: str
    bits_stored: int
    pixel_representation: int
    rescale_slope: float
    rescale_intercept: float
    modality: str
    sex: str
    age: int
    transfer_syntax: str

    @property
    def stored_range(self) -> tuple[int, int]:
        """The smallest and largest stored pixel value, ``(0, 2^b - 1)`` or ``(-2^(b-1), 2^(b-1) - 1)``."""
        b = self.bits_stored
        return (-(2 ** (b - 1)), 2 ** (b - 1) - 1) if self.pixel_representation else (0, 2**b - 1)


def _age_in_years(value: Any) -> int:
    m = _AGE.match(str(value or ""))
    if not m:
        return -1
    return int(int(m.group(1)) * _AGE_UNIT_YEARS[m.group(2).upper()])


def read_dicom_header(path: str | os.PathLike, check_pixels: bool = True, decode: bool = False) -> DicomHeader:
    """Read and check the header of a single-frame grayscale radiograph in DICOM.

    Checks that the file is DICOM (with the ``DICM`` preamble), that it holds an image (a Pixel Data
    element; a structured report or a presentation state does not), one sample per pixel with a
    ``MONOCHROME1`` or ``MONOCHROME2`` photometric interpretation, one frame, and, with
    ``check_pixels``, that the pixel data are complete (a truncated file loses its encapsulated
    Pixel Data element in pydicom, or holds fewer bytes than ``Rows x Columns x BitsAllocated / 8``).

    JPEG Baseline files (the SIIM-ACR images: transfer syntax 1.2.840.10008.1.2.4.50) are decoded by
    pydicom 3 with Pillow. JPEG Lossless, JPEG-LS and 12-bit JPEG need ``pylibjpeg`` with
    ``pylibjpeg-libjpeg`` or ``python-gdcm``; ``decode=True`` reports such a missing handler here,
    with pydicom's message, instead of in the middle of training.

    Args:
        path: the DICOM file.
        check_pixels: read the whole file and check that its pixel data are complete (otherwise only
            the header is read, which is faster).
        decode: also decode the pixels (slow: the whole image).

    Returns:
        The :class:`DicomHeader`.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: naming the file, for a file that is not DICOM, a DICOM without an image, a colour or
            multi-frame image, truncated pixel data, or pixels that cannot be decoded.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"DICOM file {path} does not exist.")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ds = pydicom.dcmread(path, stop_before_pixels=not (check_pixels or decode))
    except InvalidDicomError as e:
        raise ValueError(f"{path} is not a DICOM file ({e}).") from None
    except Exception as e:  # pydicom raises many kinds of errors on corrupt files
        raise ValueError(f"cannot read DICOM file {path}: {type(e).__name__}: {e}") from e
    missing = [k for k in ("Rows", "Columns", "PhotometricInterpretation") if k not in ds]
    sop_class = getattr(getattr(ds, "SOPClassUID", None), "name", "")
    why = "; ".join(str(w.message) for w in caught)
    if missing and why:  # pydicom drops the data set it could not finish reading
        raise ValueError(f"{path} is truncated or corrupt: no {', '.join(missing)} could be read ({why}).")
    if missing:
        raise ValueError(
            f"{path} holds no image (no {', '.join(missing)}; SOP class {sop_class or 'unknown'}): "
            "a radiograph needs Rows, Columns, Photometric Interpretation and Pixel Data."
        )
    pi = str(ds.PhotometricInterpretation).strip().upper()
    samples = int(getattr(ds, "SamplesPerPixel", 1))
    if pi not in _GREY or samples != 1:
        raise ValueError(
            f"{path} is a {pi} image with {samples} sample(s) per pixel; a radiograph is one grayscale channel "
            f"({' or '.join(_GREY)})."
        )
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    if frames != 1:
        raise ValueError(f"{path} holds {frames} frames; expected one radiograph.")
    rows, cols = int(ds.Rows), int(ds.Columns)
    bits_allocated = int(getattr(ds, "BitsAllocated", 8))
    transfer_syntax = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", ""))
    if check_pixels or decode:
        if "PixelData" not in ds:
            raise ValueError(
                f"{path} has no Pixel Data element (SOP class {sop_class or 'unknown'})"
                + (f": the file is truncated or corrupt ({why})." if why else ": it holds no image.")
            )
        is_native = not getattr(ds.file_meta.TransferSyntaxUID, "is_compressed", False)
        expected = rows * cols * bits_allocated // 8
        if is_native and len(ds.PixelData) < expected:
            raise ValueError(
                f"{path}: its pixel data hold {len(ds.PixelData)} bytes, {rows}x{cols} pixels of {bits_allocated} bits "
                f"need {expected}: the file is truncated."
            )
    if decode:
        try:
            array = ds.pixel_array
        except Exception as e:
            raise ValueError(
                f"cannot decode the pixels of {path} (transfer syntax {transfer_syntax}): {type(e).__name__}: {e}"
            ) from e
        if array.shape != (rows, cols):
            raise ValueError(f"{path}: decoded pixels of shape {array.shape}, the header says {rows}x{cols}.")
    return DicomHeader(
        path=str(path),
        sop_instance_uid=str(getattr(ds, "SOPInstanceUID", path.stem)),
        rows=rows,
        columns=cols,
        photometric_interpretation=pi,
        bits_stored=int(getattr(ds, "BitsStored", bits_allocated)),
        pixel_representation=int(getattr(ds, "PixelRepresentation", 0)),
        rescale_slope=float(getattr(ds, "RescaleSlope", 1.0) or 1.0),
        rescale_intercept=float(getattr(ds, "RescaleIntercept", 0.0) or 0.0),
        modality=str(getattr(ds, "Modality", "")),
        sex=str(getattr(ds, "PatientSex", "") or "").strip().upper(),
        age=_age_in_years(getattr(ds, "PatientAge", "")),
        transfer_syntax=transfer_syntax,
    )
