"""Intensity scaling by imaging modality: a CT window for CT channels, percentiles for the others."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import torch
from monai.config import KeysCollection
from monai.config.type_definitions import NdarrayOrTensor
from monai.transforms import MapTransform, ScaleIntensityRange, ScaleIntensityRangePercentiles, Transform
from monai.utils import StrEnum, TransformBackends, convert_to_dst_type, convert_to_tensor, look_up_option

__all__ = [
    "IntensityScaling",
    "ScaleIntensityByModality",
    "ScaleIntensityByModalityD",
    "ScaleIntensityByModalityDict",
    "ScaleIntensityByModalityd",
    "intensity_scaling_for",
]


class IntensityScaling(StrEnum):
    """How one image channel is scaled to ``[b_min, b_max]``.

    - ``"ct_window"``: a fixed window of Hounsfield units (MONAI's ``ScaleIntensityRange``), the
      same for every image: CT intensities are physical.
    - ``"percentile"``: the channel's own lower and upper percentiles (MONAI's
      ``ScaleIntensityRangePercentiles``): MR and other intensities are relative to each scan.
    """

    CT_WINDOW = "ct_window"
    PERCENTILE = "percentile"


def intensity_scaling_for(modality: str) -> IntensityScaling:
    """The scaling of a modality name of a Decathlon ``dataset.json``: ``"ct_window"`` for ``"CT"``
    (any case), ``"percentile"`` for everything else (``"MRI"``, ``"T2"``, ``"FLAIR"``, ``"ADC"``, a PNG's ``"L"``)."""
    return IntensityScaling.CT_WINDOW if str(modality).strip().upper() == "CT" else IntensityScaling.PERCENTILE


class ScaleIntensityByModality(Transform):
    """Scale each channel of a multi-modal image ``(M, *spatial)`` by its modality.

    Channel ``k`` with modality ``modalities[k]`` is scaled by :func:`intensity_scaling_for` (or
    ``scalings[k]`` when given):

    .. math::
        \\text{CT:}\\quad x' = b_{min} + (b_{max} - b_{min})\\,\\frac{x - w_{lo}}{w_{hi} - w_{lo}}, \\qquad
        \\text{others:}\\quad x' = b_{min} + (b_{max} - b_{min})\\,\\frac{x - P_{lo}(x)}{P_{hi}(x) - P_{lo}(x)},

    clipped to ``[b_min, b_max]`` when ``clip``; :math:`P_q(x)` is the q-th percentile of the channel.
    The default CT window, -175 to 250 HU, is the abdominal soft-tissue window of MONAI's BTCV and
    Swin UNETR tutorials.

    Args:
        modalities: one name per channel (the Decathlon ``"modality"`` map in channel order).
        ct_window: ``(w_lo, w_hi)`` in HU.
        percentiles: ``(lo, hi)`` percentiles, in [0, 100].
        b_min: the output minimum.
        b_max: the output maximum.
        clip: clip the output to ``[b_min, b_max]``.
        scalings: an explicit :class:`IntensityScaling` per channel, overriding the names.

    Raises:
        ValueError: for a bad window or percentiles, ``scalings`` of another length than
            ``modalities``; on call, for an image whose channel count differs from the modalities.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        modalities: Sequence[str],
        ct_window: Sequence[float] = (-175.0, 250.0),
        percentiles: Sequence[float] = (0.5, 99.5),
        b_min: float = 0.0,
        b_max: float = 1.0,
        clip: bool = True,
        scalings: Sequence[IntensityScaling | str] | None = None,
    ) -> None:
        self.modalities = tuple(str(m) for m in modalities)
        if not self.modalities:
            raise ValueError("modalities must name at least one channel.")
        lo, hi = (float(v) for v in ct_window)
        plo, phi = (float(v) for v in percentiles)
        if not lo < hi or not 0 <= plo < phi <= 100:
            raise ValueError(
                f"need ct_window lo < hi and 0 <= lo < hi <= 100 percentiles, got {ct_window}, {percentiles}."
            )
        if scalings is None:
            self.scalings = tuple(intensity_scaling_for(m) for m in self.modalities)
        else:
            if len(scalings) != len(self.modalities):
                raise ValueError(f"scalings has {len(scalings)} entries for {len(self.modalities)} modalities.")
            self.scalings = tuple(look_up_option(s, IntensityScaling) for s in scalings)
        self.ct = ScaleIntensityRange(lo, hi, b_min, b_max, clip=clip)
        self.percentile = ScaleIntensityRangePercentiles(plo, phi, b_min, b_max, clip=clip)

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        t = convert_to_tensor(img, track_meta=False, dtype=torch.float32)
        if t.shape[0] != len(self.modalities):
            raise ValueError(
                f"the image has {t.shape[0]} channel(s) but {len(self.modalities)} modalities {list(self.modalities)} "
                "were given."
            )
        channels = []
        for k, scaling in enumerate(self.scalings):
            op = self.ct if scaling == IntensityScaling.CT_WINDOW else self.percentile
            channels.append(convert_to_tensor(op(t[k : k + 1]), track_meta=False))
        out, *_ = convert_to_dst_type(torch.cat(channels), img, dtype=torch.float32)
        return out


class ScaleIntensityByModalityd(MapTransform):
    """Dictionary form of :class:`ScaleIntensityByModality`.

    Args:
        keys: keys of the images.
        modalities: one name per channel.
        ct_window: the CT window in HU.
        percentiles: the percentiles of the other modalities.
        b_min: the output minimum.
        b_max: the output maximum.
        clip: clip the output.
        scalings: an explicit scaling per channel.
        allow_missing_keys: do not raise if a key is missing.
    """

    backend = ScaleIntensityByModality.backend

    def __init__(
        self,
        keys: KeysCollection,
        modalities: Sequence[str],
        ct_window: Sequence[float] = (-175.0, 250.0),
        percentiles: Sequence[float] = (0.5, 99.5),
        b_min: float = 0.0,
        b_max: float = 1.0,
        clip: bool = True,
        scalings: Sequence[IntensityScaling | str] | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.scaler = ScaleIntensityByModality(modalities, ct_window, percentiles, b_min, b_max, clip, scalings)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.scaler(d[key])
        return d


ScaleIntensityByModalityD = ScaleIntensityByModalityDict = ScaleIntensityByModalityd
