"""Run-length codecs of segmentation challenges: Kaggle's standard RLE and SIIM-ACR's relative RLE.

Both encode a binary 2D mask as ``start length`` pairs over its pixels in **column-major** order
(top to bottom, then left to right): the flat index of the pixel in row ``r`` and column ``c`` of
an ``(H, W)`` mask is ``c * H + r``, i.e. the order of ``mask.T.ravel()``. They differ in how a
run's start is written:

- :attr:`RLEFormat.KAGGLE` (Kaggle "Ultrasound Nerve Segmentation", 2016, and most Kaggle
  segmentation challenges): absolute, 1-based starts, in increasing order. An empty mask is ``""``.
- :attr:`RLEFormat.SIIM` (SIIM-ACR Pneumothorax Segmentation, 2019, the reference
  ``mask_functions.py``): the first start is a 0-based absolute position, each later start the
  number of background pixels between the end of the previous run and this run. An empty mask is
  ``"-1"``. The reference ``mask2rle`` silently drops a run that ends on the last pixel; this codec
  does not.

With ``s_k`` the 0-based absolute start and ``l_k`` the length of run ``k`` (``k = 0, 1, ...``):

.. math::

    \\text{Kaggle: } (s_k + 1,\\ l_k), \\qquad
    \\text{SIIM: } (s_0,\\ l_0),\\ (s_k - s_{k-1} - l_{k-1},\\ l_k)\\ (k \\ge 1).

Examples (masks written row by row), from the challenges' reference functions::

    [[0,0,0,0],[0,1,1,0],[0,1,1,0],[0,0,0,0]]   Kaggle "6 2 10 2"      SIIM "5 2 2 2"
    [[1,0,0],[1,0,1],[0,1,0]]                   Kaggle "1 2 6 1 8 1"   SIIM "0 2 3 1 1 1"

MONAI's ``PILReader`` loads an image file as ``(W, H)`` (its spatial axes are swapped with respect
to NumPy/PIL): pass the transpose of such an array, e.g. ``rle_encode(pred[0].T)``.
"""

from __future__ import annotations

import csv
import operator
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from monai.utils import StrEnum, look_up_option
from PIL import Image

from .datasets import _natural_key

__all__ = ["RLEFormat", "masks_to_rle_csv", "rle_decode", "rle_encode", "rle_union"]

_INTEGER = re.compile(r"[+-]?[0-9]+", re.ASCII)
#: the largest mask (in pixels) whose run arithmetic cannot overflow int64
_MAX_PIXELS = 2**62


class RLEFormat(StrEnum):
    """Run-length formats: ``"kaggle"`` (absolute 1-based starts) and ``"siim"`` (relative starts)."""

    KAGGLE = "kaggle"
    SIIM = "siim"


_EMPTY = {RLEFormat.KAGGLE: "", RLEFormat.SIIM: "-1"}


def _as_mask(mask: Any) -> np.ndarray:
    if hasattr(mask, "detach"):  # a torch tensor (or MONAI MetaTensor)
        mask = mask.detach().cpu().numpy()
    a = np.asarray(mask)
    if a.ndim != 2:
        hint = " (for a channel-first (1, H, W) array pass mask[0])" if a.ndim == 3 and a.shape[0] == 1 else ""
        raise ValueError(f"rle_encode expects a 2D mask (H, W), got shape {a.shape}{hint}.")
    if a.dtype == bool:
        return a
    if not np.issubdtype(a.dtype, np.number):
        raise TypeError(f"mask must hold numbers or booleans, got dtype {a.dtype}.")
    foreground = a[a != 0]
    if foreground.size and (foreground != foreground[0]).any():
        raise ValueError(
            f"mask must be binary (0 and one foreground value such as 1 or 255), found the values "
            f"{np.unique(a)[:6].tolist()}: threshold or argmax it first."
        )
    if foreground.size and not np.isfinite(foreground[0]):
        raise ValueError("mask holds NaN or infinite values.")
    return a != 0


def rle_encode(mask: Any, format: RLEFormat | str = RLEFormat.KAGGLE) -> str:
    """Run-length encode a binary 2D mask, column-major (see the module docstring for the formats).

    The runs are found without a loop over pixels: the flat column-major mask is padded with a
    zero at both ends and the positions where it changes (``numpy.flatnonzero(numpy.diff(...))``)
    are alternately run starts and run ends.

    Args:
        mask: ``(H, W)`` array or tensor, boolean or with the values 0 and one foreground value
            (1 or 255). Rows are the image's rows, as NumPy and PIL give them.
        format: ``"kaggle"`` (absolute 1-based starts; empty mask ``""``) or ``"siim"`` (relative
            starts; empty mask ``"-1"``).

    Returns:
        ``"start length start length ..."``.

    Raises:
        ValueError: for a mask that is not 2D or not binary, or an unknown format.
        TypeError: for a mask of strings or objects.

    Example:
        >>> rle_encode(np.array([[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]))
        '6 2 10 2'
        >>> rle_encode(np.array([[1, 0, 0], [1, 0, 1], [0, 1, 0]]), format="siim")
        '0 2 3 1 1 1'
    """
    fmt = look_up_option(format, RLEFormat)
    flat = _as_mask(mask).T.ravel()
    padded = np.concatenate([[False], flat, [False]]).view(np.int8)
    changes = np.flatnonzero(np.diff(padded))
    starts, ends = changes[0::2], changes[1::2]
    if starts.size == 0:
        return _EMPTY[fmt]
    lengths = ends - starts
    if fmt == RLEFormat.KAGGLE:
        written = starts + 1
    else:
        written = starts - np.concatenate([[0], ends[:-1]])
    return " ".join(np.stack([written, lengths], axis=1).ravel().astype(str).tolist())


def _parse(rle: str, fmt: RLEFormat, n: int) -> np.ndarray:
    """The values of ``rle`` as int64, each checked to lie in ``[0, n]`` *before* any arithmetic."""
    if not isinstance(rle, str):
        raise TypeError(f"an RLE must be a string, got {type(rle).__name__} ({_short(repr(rle))}).")
    if not rle.isascii():
        ch = next(c for c in rle if not c.isascii())
        raise ValueError(
            f"RLE {_short(rle)} holds the non-ASCII character {ch!r} (U+{ord(ch):04X}); an RLE is ASCII digits "
            "0-9 separated by spaces."
        )
    tokens = rle.split()
    if not tokens or (fmt == RLEFormat.SIIM and tokens == ["-1"]):
        return np.zeros(0, dtype=np.int64)
    bad = [_token(t) for t in tokens if not _INTEGER.fullmatch(t)]
    if bad:
        raise ValueError(f"RLE {_short(rle)} holds non-integer values {bad[:5]}.")
    if len(tokens) % 2:
        raise ValueError(
            f"RLE {_short(rle)} has an odd number of values ({len(tokens)}); it must be start/length pairs."
        )
    if negative := [t for t in tokens if t.startswith("-")]:
        raise ValueError(f"RLE {_short(rle)} holds negative values {[_token(t) for t in negative[:5]]}.")
    # no start, gap or length can exceed the number of pixels: refuse longer numbers by their digits,
    # so that neither int64 nor the sums below can overflow
    digits = len(str(n))
    if huge := [t for t in tokens if len(t.lstrip("+").lstrip("0")) > digits]:
        raise ValueError(
            f"RLE {_short(rle)} holds values {[_token(t) for t in huge[:3]]} larger than the {n} pixels of "
            "the mask (is the shape right?)."
        )
    values = np.array([int(t) for t in tokens], dtype=np.int64)
    if (values > n).any():
        raise ValueError(
            f"RLE {_short(rle)} holds values {values[values > n][:3].tolist()} larger than the {n} pixels of the "
            "mask (is the shape right?)."
        )
    if len(tokens) // 2 > n:
        raise ValueError(f"RLE {_short(rle)} has {len(tokens) // 2} runs, more than the {n} pixels of the mask.")
    return values


def _token(t: str, limit: int = 20) -> int | str:
    """A value for an error message: the number when short (``-3``), else its first digits."""
    if len(t) > limit:
        return t[:limit] + f"... ({len(t)} characters)"
    return int(t) if _INTEGER.fullmatch(t) else t


def _short(rle: str, limit: int = 60) -> str:
    return repr(rle if len(rle) <= limit else rle[:limit] + "...")


def _check_shape(shape: Sequence[int]) -> tuple[int, int]:
    """``(H, W)`` as two Python ints, or a ``ValueError`` (never an ``OverflowError`` for ``inf``)."""
    try:
        dims = [operator.index(s) if not isinstance(s, float) else s for s in shape]
    except TypeError:
        dims = None
    if (
        dims is None
        or len(dims) != 2
        or not all(isinstance(d, int) or (isinstance(d, float) and d.is_integer()) for d in dims)
        or any(d < 1 for d in dims)
    ):
        raise ValueError(f"shape must be (H, W) with two positive integers, got {tuple(shape)}.")
    h, w = int(dims[0]), int(dims[1])
    if h * w >= _MAX_PIXELS:
        raise ValueError(f"shape {h}x{w} holds {h * w} pixels, more than a mask can have (2**62).")
    return h, w


def rle_decode(rle: str, shape: Sequence[int], format: RLEFormat | str = RLEFormat.KAGGLE) -> np.ndarray:
    """Decode a run-length string into a boolean ``(H, W)`` mask (the inverse of :func:`rle_encode`).

    The runs are painted without a loop over pixels: ``+1`` at each run's start and ``-1`` after
    its end in a flat difference array whose cumulative sum is positive inside the runs, then the
    flat column-major array is reshaped to ``(W, H)`` and transposed.

    Args:
        rle: ``"start length ..."``; ``""`` (or only white space) is an empty mask, and so is
            ``"-1"`` in the SIIM format.
        shape: ``(H, W)`` of the mask (rows, columns).
        format: ``"kaggle"`` or ``"siim"``.

    Returns:
        A boolean array of shape ``(H, W)``.

    Raises:
        TypeError: if ``rle`` is not a string.
        ValueError: naming the problem, for a character that is not ASCII (only the digits 0-9, signs
            and white space make an RLE: ``"\\u0663"``, an Arabic-Indic three, is refused), non-integer
            values, an odd number of values, negative values, a value larger than the mask's number of
            pixels (every value is bounded before any arithmetic, so a 40-digit number is this error,
            not an ``OverflowError``), a zero length, a Kaggle start of 0 (starts are 1-based), runs
            out of order or overlapping, a run past the end of the image, a bad shape or an unknown
            format.

    Example:
        >>> rle_decode("1 2 6 1 8 1", (3, 3)).astype(int).tolist()
        [[1, 0, 0], [1, 0, 1], [0, 1, 0]]
    """
    fmt = look_up_option(format, RLEFormat)
    h, w = _check_shape(shape)
    n = h * w
    values = _parse(rle, fmt, n)
    if values.size == 0:
        return np.zeros((h, w), dtype=bool)
    written, lengths = values[0::2], values[1::2]
    if (lengths == 0).any():
        raise ValueError(f"RLE {_short(rle)} has a run of length 0 (run {int(np.argmax(lengths == 0)) + 1}).")
    if fmt == RLEFormat.KAGGLE:
        if (written == 0).any():
            raise ValueError(f"RLE {_short(rle)} has a start of 0: Kaggle starts are 1-based (is it the SIIM format?).")
        starts = written - 1
        gaps = starts[1:] - (starts[:-1] + lengths[:-1])
        if (gaps < 0).any():
            k = int(np.argmax(gaps < 0)) + 1
            raise ValueError(
                f"RLE {_short(rle)}: run {k + 1} (start {written[k]}) starts before the end of run {k} "
                f"(start {written[k - 1]}, length {lengths[k - 1]}); runs must be sorted and must not overlap."
            )
    else:  # relative starts: non-negative gaps cannot overlap, so only the end needs checking
        if values.size * n >= _MAX_PIXELS and sum(values.tolist()) > n:  # the cumulative sum could overflow
            raise ValueError(f"RLE {_short(rle)} runs past the end of a {h}x{w} (HxW) mask (is the shape right?).")
        ends = np.cumsum(written + lengths)
        starts = ends - lengths
    last_end = int(starts[-1] + lengths[-1])
    if last_end > n:
        raise ValueError(
            f"RLE {_short(rle)} runs past the end of a {h}x{w} (HxW) mask: its last run ends at pixel "
            f"{last_end} of {n} (is the shape right?)."
        )
    delta = np.zeros(n + 1, dtype=np.int32)
    np.add.at(delta, starts, 1)
    np.add.at(delta, starts + lengths, -1)
    flat = np.cumsum(delta[:n]) > 0
    return flat.reshape(w, h).T


def rle_union(rles: str | Sequence[str], shape: Sequence[int], format: RLEFormat | str = RLEFormat.KAGGLE) -> str:
    """Unite several run-length strings of one image into one (the union of their masks).

    SIIM-ACR's ``train-rle.csv`` has one row per pneumothorax region, so an image with two regions
    has two rows; Kaggle's challenges likewise list one row per object in some CSVs. Each string
    is decoded with :func:`rle_decode` (so each is checked), the masks are united,

    .. math:: M = \\bigvee_{k} \\operatorname{decode}(r_k),

    and the union is encoded with :func:`rle_encode`. Overlapping regions count once; an empty
    string (``"-1"`` in the SIIM format) adds nothing.

    Args:
        rles: one string or a sequence of strings, all of the same image and format.
        shape: ``(H, W)`` of the image.
        format: ``"kaggle"`` or ``"siim"``.

    Returns:
        One run-length string in ``format`` (the empty mask's, ``""`` or ``"-1"``, for no region).

    Raises:
        ValueError: as :func:`rle_decode`, naming the row (0-based) that cannot be decoded.
        TypeError: if a row is not a string.

    Example:
        >>> rle_union(["5 2", "1 2"], (4, 4), format="siim")  # column-major pixels 5-6 and 1-2
        '1 2 2 2'
    """
    fmt = look_up_option(format, RLEFormat)
    rows = [rles] if isinstance(rles, str) else list(rles)
    union: np.ndarray | None = None
    for k, rle in enumerate(rows):
        try:
            mask = rle_decode(rle, shape, fmt)
        except ValueError as e:
            raise ValueError(f"row {k} of {len(rows)}: {e}") from None
        union = mask if union is None else union | mask
    if union is None:
        return _EMPTY[fmt]
    return rle_encode(union, fmt)


def masks_to_rle_csv(
    masks: str | os.PathLike | Sequence[str | os.PathLike],
    csv_path: str | os.PathLike,
    header: Sequence[str] = ("img", "pixels"),
    format: RLEFormat | str = RLEFormat.KAGGLE,
    suffix: str = "_mask",
    pattern: str = "*",
) -> Path:
    """Write a submission CSV (one row per mask file: its ID and its RLE) from mask images on disk.

    The ID of ``<ID><suffix>.<ext>`` is ``<ID>``; rows are sorted by ID in natural order
    (``2`` before ``10``). A mask file is read with PIL (as its rows and columns are) and encoded
    with :func:`rle_encode`, so its pixels must be 0 and one foreground value (e.g. 255).

    Args:
        masks: a folder (its files matching ``pattern``) or a list of mask files.
        csv_path: the CSV to write (its folder is created).
        header: the two column names: ``("img", "pixels")`` for the nerve challenge,
            ``("ImageId", "EncodedPixels")`` for SIIM-ACR.
        format: ``"kaggle"`` or ``"siim"``.
        suffix: removed from the file stem to make the ID.
        pattern: glob of the files to take when ``masks`` is a folder.

    Returns:
        The CSV's path.

    Raises:
        FileNotFoundError: if the folder holds no file matching ``pattern``.
        ValueError: naming the file, for a mask that is not 2D grayscale or not binary, two files of
            one ID, or a header that is not two names.
    """
    if len(header) != 2:
        raise ValueError(f"header must be two column names (ID, RLE), got {list(header)}.")
    if isinstance(masks, (str, os.PathLike)):
        folder = Path(masks)
        files = sorted(p for p in folder.glob(pattern) if p.is_file())
        if not files:
            raise FileNotFoundError(f"{folder} holds no mask file matching {pattern!r}.")
    else:
        files = [Path(p) for p in masks]
    rows: dict[str, str] = {}
    for path in files:
        sid = path.stem[: -len(suffix)] if suffix and path.stem.endswith(suffix) else path.stem
        if sid in rows:
            raise ValueError(f"two mask files have the ID {sid!r} (one is {path}).")
        with Image.open(path) as im:
            if im.mode not in ("1", "L", "I", "I;16", "F"):
                raise ValueError(f"mask {path} is a {im.mode} image; expected one grayscale channel.")
            array = np.asarray(im)
        try:
            rows[sid] = rle_encode(array, format)
        except ValueError as e:
            raise ValueError(f"mask {path}: {e}") from None
    csv_path = Path(csv_path)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(list(header))
        writer.writerows([sid, rows[sid]] for sid in sorted(rows, key=_natural_key))
    return csv_path
