"""Masks from run-length strings, for datalists whose labels are RLE rows (array and dictionary forms)."""

from __future__ import annotations

import copy
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform
from monai.utils import look_up_option

from ..data.rle import RLEFormat, rle_decode

__all__ = ["RLEToMask", "RLEToMaskD", "RLEToMaskDict", "RLEToMaskd"]


class RLEToMask(Transform):
    """Decode one or several run-length strings of an image into a channel-first mask ``(1, *spatial)``.

    The strings are decoded with :func:`monai_gamble.data.rle_decode` (column-major, Kaggle's or
    SIIM-ACR's format) and united, :math:`M = \\bigvee_k \\operatorname{decode}(r_k)`. The challenges'
    RLEs index the image as NumPy and PIL show it, ``(H, W)``; MONAI's readers (``PILReader``,
    ``PydicomReader`` with its default ``swap_ij=True``, ``ITKReader``) give ``(W, H)`` arrays. With
    ``transpose=True`` (the default) ``spatial_shape`` is taken in MONAI's ``(W, H)`` order and the
    decoded mask is transposed to it, so that it lies on the loaded image; for 2D only.

    Args:
        format: ``"siim"`` (relative starts, empty ``"-1"``) or ``"kaggle"`` (absolute 1-based starts).
        transpose: the output is in MONAI's ``(W, H)`` order (True) or in the RLE's ``(H, W)`` (False).
        dtype: the mask's dtype.

    Raises:
        ValueError: for an unknown format, a shape that is not two positive sizes, and, as
            :func:`~monai_gamble.data.rle_decode`, for a malformed string (naming it).
        TypeError: for a label that is neither a string nor a sequence of strings.

    Example:
        >>> RLEToMask("siim")("5 2 2 2", spatial_shape=(4, 4))[0].int().tolist()  # (W, H): transposed
        [[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]
    """

    def __init__(
        self, format: RLEFormat | str = RLEFormat.SIIM, transpose: bool = True, dtype: torch.dtype = torch.float32
    ) -> None:
        self.format = look_up_option(format, RLEFormat)
        self.transpose = bool(transpose)
        self.dtype = dtype

    def __call__(self, rle: str | Sequence[str], spatial_shape: Sequence[int]) -> torch.Tensor:
        """
        Args:
            rle: one string or a sequence of strings (the rows of one image).
            spatial_shape: ``(W, H)`` with ``transpose``, else ``(H, W)``.

        Returns:
            ``(1, *spatial_shape)`` tensor of 0 and 1.
        """
        if len(spatial_shape) != 2:
            raise ValueError(
                f"RLEToMask decodes 2D masks; spatial_shape must be two sizes, got {tuple(spatial_shape)}."
            )
        if isinstance(rle, str):
            rows: list[Any] = [rle]
        elif isinstance(rle, Sequence) and all(isinstance(r, str) for r in rle):
            rows = list(rle)
        else:
            raise TypeError(f"the label must be an RLE string or a sequence of them, got {type(rle).__name__}.")
        hw = tuple(int(s) for s in (spatial_shape[::-1] if self.transpose else spatial_shape))
        mask = np.zeros(hw, dtype=bool)
        for r in rows:
            mask |= rle_decode(r, hw, self.format)
        if self.transpose:
            mask = mask.T
        return torch.as_tensor(np.ascontiguousarray(mask)[None], dtype=self.dtype)


class RLEToMaskd(MapTransform):
    """Dictionary form of :class:`RLEToMask`: replace each RLE label by its mask, sized like a reference image.

    The mask takes the spatial shape of ``data[ref_key]`` (an image already loaded, channel-first) and,
    when that is a ``MetaTensor``, a copy of its metadata (affine, file name), so that spatial
    transforms and ``Invertd`` treat the two alike. Decode right after loading, before any spatial
    transform of the image.

    Args:
        keys: keys of the RLE labels (a string or a list of strings each).
        ref_key: key of the loaded, channel-first image ``(C, *spatial)``.
        format: ``"siim"`` or ``"kaggle"``.
        transpose: masks in MONAI's ``(W, H)`` order (True, for images loaded by MONAI's readers).
        dtype: the masks' dtype.
        allow_missing_keys: do not raise if a key is missing.

    Raises:
        KeyError: if ``ref_key`` is missing.
        ValueError: as :class:`RLEToMask`, naming the key and the image's ``id`` when the item has one.
    """

    def __init__(
        self,
        keys: KeysCollection,
        ref_key: str = "image",
        format: RLEFormat | str = RLEFormat.SIIM,
        transpose: bool = True,
        dtype: torch.dtype = torch.float32,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.ref_key = ref_key
        self.decoder = RLEToMask(format, transpose, dtype)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        if self.ref_key not in d:
            raise KeyError(
                f"RLEToMaskd: the reference image {self.ref_key!r} is not in the data ({sorted(map(str, d))})."
            )
        ref = d[self.ref_key]
        for key in self.key_iterator(d):
            try:
                mask = self.decoder(d[key], ref.shape[1:])
            except ValueError as e:
                raise ValueError(f"RLEToMaskd, {key!r} of image {d.get('id', '?')}: {e}") from None
            if isinstance(ref, MetaTensor):
                mask = MetaTensor(mask, meta=copy.deepcopy(dict(ref.meta)))
            d[key] = mask
        return d


RLEToMaskD = RLEToMaskDict = RLEToMaskd
