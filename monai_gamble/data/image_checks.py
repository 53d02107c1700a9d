"""Checks and conversions of 2D image files (PNG, TIFF, JPEG, BMP) read with PIL.

Two kinds of input train a model wrong without a word when read with MONAI's ``PILReader``
(which returns ``np.asarray(image)``) followed by the bundles' ``ScaleIntensityRanged(0, 255)``:

- *silently wrong pixels*: a palette (``"P"``) PNG gives its palette indices, not its grey
  values; a 16-bit PNG or TIFF saturates at 255; a float32 TIFF in [0, 1] ends up at most
  1/255; a multi-page TIFF gives page 0 only;
- *truncated or corrupt files*: PIL opens them lazily, so they pass a datalist built from the
  file headers and fail (or abort the process) in the middle of training.

:func:`check_image_file` / :func:`check_image_files` decode every file once, when the datalist
is built, and refuse such files with a ``ValueError`` that names the file; :class:`CheckedPILReader`
is a ``PILReader`` for ``LoadImage(d)`` that converts each mode by its real range (see
:func:`pil_to_array`) and refuses, naming the file and its mode, what it cannot convert.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from monai.config import PathLike
from monai.data import PILReader
from monai.utils import StrEnum, ensure_tuple, look_up_option, optional_import
from PIL import Image

tqdm, has_tqdm = optional_import("tqdm", name="tqdm")

__all__ = [
    "CheckedPILReader",
    "ImageFileInfo",
    "IntensityScale",
    "check_image_file",
    "check_image_files",
    "decode_single_page",
    "open_image",
    "pil_to_array",
]

#: Bits per sample of the PIL modes whose depth does not depend on the file.
_MODE_BITS = {"1": 1, "L": 8, "P": 8, "LA": 8, "PA": 8, "RGB": 8, "RGBA": 8, "F": 32}
_MODES_16BIT = ("I;16", "I;16L", "I;16B", "I;16N")
_MODES_8BIT = ("L", "LA", "RGB", "RGBA")
_SUPPORTED_MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", *_MODES_16BIT, "I", "F")
_MAX_LISTED_ERRORS = 20


class IntensityScale(StrEnum):
    """The intensity scale of the arrays that :func:`pil_to_array` returns.

    - ``"byte"``: the 0..255 scale of an 8-bit image, whatever the file's depth, so that a
      pipeline written for 8-bit PNGs (``ScaleIntensityRanged(a_min=0, a_max=255)``) reads 16-bit
      and float files correctly; 8-bit images stay ``uint8``, unchanged.
    - ``"unit"``: [0, 1] ``float32``, each image divided by the full range of its own sample type
      (255 for 8-bit, 65535 for 16-bit, float images in [0, 1] unchanged).
    """

    BYTE = "byte"
    UNIT = "unit"


@dataclass(frozen=True)
class ImageFileInfo:
    """What :func:`check_image_file` found in one fully decoded image file.

    Attributes:
        path: the file.
        format: PIL's name of the file format (``"PNG"``, ``"TIFF"``, ...).
        mode: PIL's mode of the stored pixels (``"L"``, ``"P"``, ``"I;16"``, ``"F"``, ...).
        width: width in pixels.
        height: height in pixels.
        channels: samples per pixel as stored (1 for ``"P"``: the palette index).
        bits: bits per sample (1, 8, 16 or 32).
        value_range: smallest and largest stored sample value (palette indices for ``"P"``).
    """

    path: str
    format: str | None
    mode: str
    width: int
    height: int
    channels: int
    bits: int
    value_range: tuple[float, float]


def _bits_per_sample(image: Image.Image, name: str) -> int:
    """Bits per sample of ``image``; for mode ``"I"`` (32-bit integers in PIL) read from the file."""
    if image.mode in _MODE_BITS:
        return _MODE_BITS[image.mode]
    if image.mode in _MODES_16BIT:
        return 16
    if image.mode == "I":
        if image.format == "PNG":  # PNG samples are at most 16 bits (older Pillow gives "I" for them)
            return 16
        tags = getattr(image, "tag_v2", None)
        if tags is not None and 258 in tags:  # TIFF BitsPerSample
            return int(ensure_tuple(tags[258])[0])
        raise ValueError(
            f"{name}: mode 'I' (integer samples) of unknown bit depth (format {image.format}); "
            "save the image as an 8-bit or 16-bit PNG/TIFF."
        )
    raise ValueError(
        f"{name}: cannot read images of mode {image.mode!r}; supported modes: {', '.join(_SUPPORTED_MODES)}."
    )


def open_image(path: PathLike, **kwargs: Any) -> Image.Image:
    """Open a single-page image with PIL and decode all its pixels (``Image.load()``).

    PIL reads pixels lazily: without ``load()`` a truncated file opens fine and fails later, when
    its pixels are first used. Note that PIL pads truncated files silently when
    ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` is set; leave it False.

    Args:
        path: the image file.
        kwargs: passed to ``PIL.Image.open``.

    Returns:
        the decoded PIL image (its ``filename`` is ``path``).

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: naming the file, for a file PIL cannot identify, a multi-page image (multi-page
            TIFF, animated PNG or GIF: naming the page count), or a truncated or corrupt file
            (with the decoder's message).
    """
    name = os.fspath(path)
    try:
        image = Image.open(name, **kwargs)
    except (FileNotFoundError, MemoryError):
        raise
    except Exception as e:  # UnidentifiedImageError, SyntaxError from broken headers, ...
        raise ValueError(f"cannot read {name} as an image: {e}") from e
    return decode_single_page(image, name)


def decode_single_page(image: Image.Image, name: str | None = None) -> Image.Image:
    """Check that an opened PIL image has one page and decode all its pixels (``Image.load()``).

    Args:
        image: a PIL image as ``PIL.Image.open`` returns it (pixels not read yet).
        name: the file, for error messages (default: ``image.filename``).

    Returns:
        ``image``, decoded.

    Raises:
        ValueError: naming the file, for a multi-page image (with its page count) or a truncated or
            corrupt file (with the decoder's message); ``image`` is closed then.
    """
    name = name or getattr(image, "filename", None) or "<image>"
    frames = int(getattr(image, "n_frames", 1))
    if frames > 1:
        fmt, mode = image.format, image.mode
        image.close()
        raise ValueError(
            f"{name} is a multi-page image ({frames} pages, {fmt}, mode {mode}); only its first page would "
            "be read: save each page as its own file."
        )
    try:
        image.load()
    except MemoryError:
        raise
    except Exception as e:  # OSError "image file is truncated", zlib errors, broken chunks, ...
        fmt, mode = image.format, image.mode
        image.close()
        raise ValueError(
            f"{name} is truncated or corrupt ({fmt}, mode {mode}): decoding it failed with {type(e).__name__}: {e}"
        ) from e
    return image


def pil_to_array(
    image: Image.Image,
    scale: IntensityScale | str = IntensityScale.BYTE,
    keep_palette_indices: bool = False,
    name: str | None = None,
) -> np.ndarray:
    """The pixels of a decoded PIL image as an array on one intensity scale, converted by mode.

    Conversions (``scale="byte"`` / ``scale="unit"``):

    - ``"L"``, ``"LA"``, ``"RGB"``, ``"RGBA"`` (8 bits): unchanged ``uint8`` / divided by 255.
    - ``"1"`` (bilevel): 0 and 255 ``uint8`` / 0 and 1.
    - ``"P"``, ``"PA"`` (palette): each index replaced by the grey value of its palette colour
      (ITU-R BT.601 luma, PIL's ``convert("L")``: exact for a grey palette), alpha dropped; then as
      ``"L"``. With ``keep_palette_indices=True`` the indices themselves, ``uint8``, on both
      scales (label maps that store class numbers as indices).
    - ``"I;16"`` and its byte orders, and ``"I"`` from a 16-bit file: divided by 65535, times 255
      for ``"byte"`` (``float32``), so 4000 becomes 4000/65535 on the unit scale, not 1.
    - ``"F"`` (32-bit float) with every value in [0, 1]: kept / times 255 (``float32``). A float
      image with values outside [0, 1] (or NaN) is refused: its intensity range is not known.

    Args:
        image: a decoded PIL image (see :func:`open_image`).
        scale: ``"byte"`` or ``"unit"`` (:class:`IntensityScale`).
        keep_palette_indices: return the indices of a palette image instead of its grey values.
        name: the file, for error messages (default: ``image.filename``).

    Returns:
        ``(H, W)`` for one channel, ``(H, W, C)`` for ``"LA"`` (C=2), ``"RGB"`` (3), ``"RGBA"`` (4):
        PIL's row-major order; ``uint8`` or ``float32`` as above.

    Raises:
        ValueError: naming the file and its mode, for a mode not listed above (``"CMYK"``,
            ``"YCbCr"``, signed or 32-bit integers, ...) or a float image outside [0, 1].
    """
    scale = look_up_option(scale, IntensityScale)
    name = name or getattr(image, "filename", None) or "<image>"
    mode = image.mode
    if mode in ("P", "PA"):
        if keep_palette_indices:
            return np.asarray(image.convert("P") if mode == "PA" else image, dtype=np.uint8)
        image, mode = image.convert("L"), "L"
    bits = _bits_per_sample(image, name)
    if mode == "1":
        on = np.asarray(image, dtype=bool)
        return on.astype(np.float32) if scale == IntensityScale.UNIT else on.astype(np.uint8) * np.uint8(255)
    if mode in _MODES_8BIT:
        data = np.asarray(image)
        return data.astype(np.float32) / np.float32(255) if scale == IntensityScale.UNIT else data
    if mode in _MODES_16BIT or (mode == "I" and bits == 16):
        data = np.asarray(image)
        if mode == "I" and data.size and (data.min() < 0 or data.max() > 65535):
            raise ValueError(
                f"{name}: mode 'I' with 16 bits per sample holds values outside 0..65535 "
                f"([{data.min()}, {data.max()}]): signed samples are not supported."
            )
        unit = data.astype(np.float32) / np.float32(65535)
        return unit if scale == IntensityScale.UNIT else unit * np.float32(255)
    if mode == "F":
        data = np.asarray(image, dtype=np.float32)
        if data.size and not (np.isfinite(data).all() and data.min() >= 0.0 and data.max() <= 1.0):
            low, high = np.nanmin(data), np.nanmax(data)
            raise ValueError(
                f"{name}: a float (mode 'F') image with values in [{low:g}, {high:g}], not in [0, 1]"
                f"{' (with NaN or inf)' if not np.isfinite(data).all() else ''}: its intensity range is "
                "not known. Scale it to [0, 1] (or save it as 8/16-bit integers), or read it with MONAI's "
                "PILReader and set the range with ScaleIntensityRange."
            )
        return data.copy() if scale == IntensityScale.UNIT else data * np.float32(255)
    raise ValueError(
        f"{name}: cannot read images of mode {mode!r} with {bits} bits per sample; supported modes: "
        f"{', '.join(_SUPPORTED_MODES)} ('I' from 16-bit files only)."
    )


def check_image_file(path: PathLike) -> ImageFileInfo:
    """Decode one image file fully and check that :class:`CheckedPILReader` can convert it.

    Args:
        path: the image file.

    Returns:
        its :class:`ImageFileInfo` (format, mode, size, bit depth, stored value range).

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: naming the file, for a truncated or corrupt file (with the decoder's message), a
            multi-page image (with its page count), or a mode or value range that
            :func:`pil_to_array` refuses (with the mode).
    """
    name = os.fspath(path)
    with open_image(name) as image:
        pil_to_array(image, name=name)  # refuses what the reader would refuse
        stored = np.asarray(image)
        bits = _bits_per_sample(image, name)
        return ImageFileInfo(
            path=name,
            format=image.format,
            mode=image.mode,
            width=image.width,
            height=image.height,
            channels=1 if stored.ndim == 2 else int(stored.shape[-1]),
            bits=bits,
            value_range=(float(stored.min()), float(stored.max())) if stored.size else (0.0, 0.0),
        )


def check_image_files(
    paths: Sequence[PathLike], num_workers: int | None = None, progress: bool = False
) -> list[ImageFileInfo]:
    """:func:`check_image_file` on many files, in parallel threads (PIL's decoders release the GIL).

    Every file is checked; the error lists all the bad ones.

    Args:
        paths: the image files.
        num_workers: number of threads; default ``min(8, os.cpu_count())``.
        progress: show a ``tqdm`` progress bar (when ``tqdm`` is installed).

    Returns:
        one :class:`ImageFileInfo` per path, in the order of ``paths``.

    Raises:
        ValueError: listing every file that cannot be used (missing, truncated or corrupt,
            multi-page, unsupported mode), up to 20 of them, and how many there are.
    """
    names = [os.fspath(p) for p in paths]
    if not names:
        return []
    workers = num_workers if num_workers is not None else min(8, os.cpu_count() or 1)
    if workers < 1:
        raise ValueError(f"num_workers must be at least 1, got {num_workers}.")

    def one(name: str) -> ImageFileInfo | str:
        try:
            return check_image_file(name)
        except FileNotFoundError:
            return f"{name} does not exist."
        except ValueError as e:
            return str(e)

    with ThreadPoolExecutor(max_workers=min(workers, len(names))) as pool:
        results: Any = pool.map(one, names)
        if progress and has_tqdm:
            results = tqdm(results, total=len(names), desc="checking images", unit="file")
        found = list(results)
    errors = [r for r in found if isinstance(r, str)]
    if errors:
        more = len(errors) - _MAX_LISTED_ERRORS
        listed = "\n".join(f"  {e}" for e in errors[:_MAX_LISTED_ERRORS])
        raise ValueError(
            f"{len(errors)} of {len(names)} image files cannot be used:\n{listed}"
            + (f"\n  ... and {more} more." if more > 0 else "")
        )
    return found


class _ConvertedImage:
    """The attributes of a PIL image that ``PILReader.get_data`` reads, with converted pixels."""

    def __init__(self, image: Image.Image, pixels: np.ndarray) -> None:
        self.format, self.mode, self.width, self.height = image.format, image.mode, image.width, image.height
        self.pixels = pixels

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        return self.pixels if dtype is None else self.pixels.astype(dtype)


class CheckedPILReader(PILReader):
    """MONAI's ``PILReader`` that decodes each file fully, refuses what it cannot read right, and
    converts each mode by its real range (:func:`pil_to_array`).

    Use it in ``LoadImage(d)`` by dotted path or as an instance, for images and labels alike::

        {"_target_": "LoadImaged", "keys": ["image", "label"], "reader": "monai_gamble.data.CheckedPILReader"}
        "reader": {"_target_": "monai_gamble.data.CheckedPILReader", "intensity_scale": "unit"}

    With the default ``intensity_scale="byte"`` it is a drop-in for ``PILReader`` in a pipeline
    written for 8-bit images (8-bit files read exactly as before); 16-bit, float, palette and
    bilevel files then land on the same 0..255 scale. The checks (multi-page, truncated, mode)
    run in ``get_data`` and raise ``ValueError`` naming the file: ``LoadImage`` catches errors in
    ``read`` and would try its other readers, which read such files wrong.

    Output of ``get_data``: ``(W, H)`` or ``(W, H, C)`` with ``reverse_indexing=True`` (as
    ``PILReader``); the metadata ``mode`` is the file's stored mode (the converter's output mode
    with a ``converter``).

    Args:
        converter: a function applied to each PIL image after decoding, as in ``PILReader``.
        reverse_indexing: swap the two spatial axes (the MONAI convention), as in ``PILReader``.
        intensity_scale: ``"byte"`` or ``"unit"`` (:class:`IntensityScale`).
        keep_palette_indices: return palette indices instead of grey values (label maps).
        kwargs: passed to ``PIL.Image.open``.
    """

    def __init__(
        self,
        converter: Callable[[Image.Image], Image.Image] | None = None,
        reverse_indexing: bool = True,
        intensity_scale: IntensityScale | str = IntensityScale.BYTE,
        keep_palette_indices: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(converter=converter, reverse_indexing=reverse_indexing, **kwargs)
        self.intensity_scale = look_up_option(intensity_scale, IntensityScale)
        self.keep_palette_indices = keep_palette_indices

    def verify_suffix(self, filename: Sequence[PathLike] | PathLike) -> bool:
        """Whether every file is a PNG, JPEG, BMP or TIFF (by extension)."""
        return all(
            os.fspath(f).lower().endswith((".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"))
            for f in ensure_tuple(filename)
        )

    def read(self, data: Sequence[PathLike] | PathLike, **kwargs: Any) -> Image.Image | list[Image.Image]:
        """Open the file(s) with PIL (lazily; the checks are in :meth:`get_data`).

        Args:
            data: a file or a list of files (stacked as channels by :meth:`get_data`).
            kwargs: passed to ``PIL.Image.open``, over the constructor's.
        """
        opened = [Image.open(os.fspath(name), **{**self.kwargs, **kwargs}) for name in ensure_tuple(data)]
        return opened if len(opened) > 1 else opened[0]

    def get_data(self, img: Image.Image | Sequence[Image.Image]) -> tuple[np.ndarray, dict]:
        """Check, decode and convert the image(s) read by :meth:`read`.

        Args:
            img: a PIL image or a list of them, from :meth:`read`.

        Returns:
            the array (``(W, H[, C])``, or with the files stacked first) and its metadata, as
            ``PILReader.get_data``.

        Raises:
            ValueError: naming the file, for a multi-page, truncated or corrupt file or a mode or
                range that :func:`pil_to_array` refuses.
        """
        converted = []
        for lazy in ensure_tuple(img):
            name = getattr(lazy, "filename", None) or "<image>"
            decoded = decode_single_page(lazy, name)
            image = self.converter(decoded) if callable(self.converter) else decoded
            pixels = pil_to_array(image, self.intensity_scale, self.keep_palette_indices, name=name)
            converted.append(_ConvertedImage(image, pixels))
            image.close()
            decoded.close()
        return super().get_data(converted)
