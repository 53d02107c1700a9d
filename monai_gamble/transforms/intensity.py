"""Intensity transforms that MONAI lacks (array and dictionary forms)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import torch
from monai.config import KeysCollection
from monai.config.type_definitions import NdarrayOrTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_tensor

__all__ = ["ToGrayscale", "ToGrayscaled", "ToGrayscaleD", "ToGrayscaleDict"]


class ToGrayscale(Transform):
    """Convert a channel-first image ``(C, *spatial)`` to one luminance channel ``(1, *spatial)``.

    With ITU-R BT.601 luma weights (those of PIL's ``convert("L")``):

    .. math:: Y = 0.299 R + 0.587 G + 0.114 B

    One channel passes through unchanged; two channels (grey + alpha) keep the first; four (RGBA)
    drop the alpha channel. Ultrasound scanners save some frames as RGB (coloured annotations,
    Doppler boxes), others as grey: this gives the network one channel either way. The input's
    type, dtype and metadata (``MetaTensor``) are kept.

    Args:
        weights: luma weights of the R, G and B channels.

    Raises:
        ValueError: for a channel count other than 1 to 4.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, weights: Sequence[float] = (0.299, 0.587, 0.114)) -> None:
        if len(weights) != 3:
            raise ValueError(f"weights must be three numbers (R, G, B), got {weights}.")
        self.weights = tuple(float(w) for w in weights)

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        c = img.shape[0]
        if c == 1:
            return img
        if c == 2:
            return img[:1]
        if c not in (3, 4):
            raise ValueError(f"expected a channel-first image with 1 to 4 channels, got shape {tuple(img.shape)}.")
        t = convert_to_tensor(img, track_meta=False)
        w = torch.as_tensor(self.weights, dtype=torch.float32, device=t.device).reshape(3, *([1] * (t.ndim - 1)))
        grey = (t[:3].float() * w).sum(0, keepdim=True)
        if not t.is_floating_point():
            grey = grey.round().clamp(torch.iinfo(t.dtype).min, torch.iinfo(t.dtype).max)
        out, *_ = convert_to_dst_type(grey, img, dtype=img.dtype)
        return out


class ToGrayscaled(MapTransform):
    """Dictionary form of :class:`ToGrayscale`.

    Args:
        keys: keys of the images to convert.
        weights: luma weights of the R, G and B channels.
        allow_missing_keys: do not raise if a key is missing.
    """

    backend = ToGrayscale.backend

    def __init__(
        self, keys: KeysCollection, weights: Sequence[float] = (0.299, 0.587, 0.114), allow_missing_keys: bool = False
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.converter = ToGrayscale(weights)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.converter(d[key])
        return d


ToGrayscaleD = ToGrayscaleDict = ToGrayscaled
