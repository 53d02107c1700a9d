"""Label maps to checked class indices (array and dictionary forms)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import torch
from monai.config import KeysCollection
from monai.config.type_definitions import NdarrayOrTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_tensor

__all__ = ["ToClassIndices", "ToClassIndicesD", "ToClassIndicesDict", "ToClassIndicesd"]


def _source(img: NdarrayOrTensor) -> str:
    meta = getattr(img, "meta", None) or {}
    return str(meta.get("filename_or_obj", "the label"))


class ToClassIndices(Transform):
    """A loaded label map ``(C, *spatial)`` as one channel of class indices ``(1, *spatial)`` in
    ``0..num_classes-1``, checked, with an error naming the file for anything else.

    A label is divided by ``scale`` (255 for binary 2D masks saved as ``{0, 255}``, so that they
    become ``{0, 1}``; 1 for class-index labels): exactly, never thresholded, so a mask with other
    values (an anti-aliased or JPEG-compressed edge, a 128 for a second class) is an error rather
    than a silent change of the target. Several identical channels (a grey mask saved as RGB) become
    one. :func:`monai_gamble.data.segmentation_dataset` detects ``scale`` and ``num_classes`` from the
    data; this transform applies them to every label as it is loaded.

    Args:
        num_classes: C, the number of classes (including the background).
        scale: the label value of class 1 in a binary mask (255), or 1 for class indices.

    Raises:
        ValueError: (on call) for a label with different channels, or values that are not
            ``scale`` times a class index in ``0..C-1`` (naming the file from the metadata).

    Example:
        >>> ToClassIndices(num_classes=2, scale=255)(torch.tensor([[[0, 255], [255, 0]]]))
        tensor([[[0, 1],
                 [1, 0]]])
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, num_classes: int, scale: int = 1) -> None:
        if int(num_classes) < 2 or int(scale) < 1:
            raise ValueError(f"need num_classes >= 2 and scale >= 1, got {num_classes} and {scale}.")
        self.num_classes = int(num_classes)
        self.scale = int(scale)

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        t = convert_to_tensor(img, track_meta=False)
        if t.ndim < 2:
            raise ValueError(
                f"{_source(img)} has shape {tuple(t.shape)}: expected a channel-first (C, *spatial) label."
            )
        if t.shape[0] > 1:
            if not (t == t[:1]).all():
                raise ValueError(f"{_source(img)} has {t.shape[0]} different channels: a label map has one channel.")
            t, img = t[:1], img[:1]
        values = torch.unique(t)
        index = values / self.scale
        bad = values[(index != torch.round(index)) | (index < 0) | (index > self.num_classes - 1)]
        if bad.numel():
            allowed = [k * self.scale for k in range(self.num_classes)]
            raise ValueError(
                f"{_source(img)} holds label values {bad[:10].tolist()}; expected only {allowed} "
                f"({'binary masks {0, ' + str(self.scale) + '}' if self.scale > 1 else 'class indices'}). "
                "Remap the labels: no threshold is applied."
            )
        out = t / self.scale if self.scale > 1 else t
        result, *_ = convert_to_dst_type(out, img, dtype=out.dtype if t.is_floating_point() else t.dtype)
        return result


class ToClassIndicesd(MapTransform):
    """Dictionary form of :class:`ToClassIndices`.

    Args:
        keys: keys of the labels.
        num_classes: C, the number of classes.
        scale: 255 for binary ``{0, 255}`` masks, 1 for class indices.
        allow_missing_keys: do not raise if a key is missing.
    """

    backend = ToClassIndices.backend

    def __init__(
        self, keys: KeysCollection, num_classes: int, scale: int = 1, allow_missing_keys: bool = False
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.converter = ToClassIndices(num_classes, scale)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.converter(d[key])
        return d


ToClassIndicesD = ToClassIndicesDict = ToClassIndicesd
