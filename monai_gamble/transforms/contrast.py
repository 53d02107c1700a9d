"""Contrast correction that MONAI lacks: CLAHE (array and dictionary forms)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
from monai.config import KeysCollection
from monai.config.type_definitions import NdarrayOrTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_numpy

__all__ = ["CLAHE", "CLAHED", "CLAHEDict", "CLAHEd"]


class CLAHE(Transform):
    """Contrast-limited adaptive histogram equalisation of each channel, with scikit-image's
    ``equalize_adapthist`` (Zuiderveld, "Contrast Limited Adaptive Histogram Equalization",
    Graphics Gems IV, 1994).

    The image is cut into contextual regions (by default 1/8 of each spatial size); in each, the
    histogram of ``nbins`` bins is clipped at ``clip_limit`` (a fraction of the region's pixels),
    the excess is redistributed over all bins, and the cumulative histogram gives the region's
    mapping :math:`T_r`; each pixel's output is the bilinear interpolation of the mappings of the
    four nearest regions,

    .. math:: y(p) = \\sum_{r \\in N(p)} w_r(p)\\, T_r\\big(x(p)\\big), \\qquad \\sum_r w_r(p) = 1,

    which enhances local contrast (the lung markings and the pleura in a chest radiograph) without
    amplifying noise in flat regions as plain equalisation does. In the SIIM-ACR pneumothorax
    workflow it is applied after resizing, with the default settings, as the report did when it
    converted the DICOM files to PNG. MONAI's ``HistogramNormalize`` is the global (non-adaptive)
    counterpart.

    Each channel is first rescaled to [0, 1] by its minimum and maximum (``equalize_adapthist``
    takes floats in that range; its result does not depend on this affine rescaling), and the
    output is in [0, 1], float32. A constant channel becomes zeros. The spatial axes may be in any
    order: with the default ``kernel_size`` the result of a transposed image is the transposed
    result (up to rounding, 1e-4), so MONAI's ``(W, H)`` arrays need no special care.

    Args:
        kernel_size: the contextual regions' size in pixels (an int for all spatial axes, or one per
            axis), or None for 1/8 of each spatial size (scikit-image's default).
        clip_limit: the clipping limit, in (0, 1]; higher values give more contrast (0.01 by default).
        nbins: histogram bins (256 by default).

    Raises:
        ValueError: for a clip limit outside (0, 1], fewer than 2 bins, a non-positive kernel size, an
            input with fewer than two or more than three spatial dimensions, or NaN values.

    Example:
        >>> clahe = CLAHE()
        >>> out = clahe(torch.rand(1, 256, 256))  # (1, 256, 256), float32 in [0, 1]
    """

    backend = [TransformBackends.NUMPY]

    def __init__(self, kernel_size: int | Sequence[int] | None = None, clip_limit: float = 0.01, nbins: int = 256):
        if not (np.isfinite(clip_limit) and 0 < clip_limit <= 1):
            raise ValueError(f"clip_limit must be in (0, 1], got {clip_limit}.")
        if int(nbins) < 2:
            raise ValueError(f"nbins must be at least 2, got {nbins}.")
        if kernel_size is not None and any(int(k) < 1 for k in np.atleast_1d(kernel_size)):
            raise ValueError(f"kernel_size must be positive, got {kernel_size}.")
        self.kernel_size = kernel_size
        self.clip_limit = float(clip_limit)
        self.nbins = int(nbins)

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """
        Args:
            img: channel-first image ``(C, H, W)`` or ``(C, H, W, D)`` (any value range).

        Returns:
            The equalised image, same shape and type (tensor or array, metadata kept), float32 in [0, 1].
        """
        from skimage.exposure import equalize_adapthist

        if img.ndim not in (3, 4):
            raise ValueError(
                f"CLAHE expects a channel-first image (C, H, W) or (C, H, W, D), got shape {tuple(img.shape)}."
            )
        a = convert_to_numpy(img, dtype=np.float64)
        if np.isnan(a).any():
            raise ValueError("CLAHE: the image contains NaN values.")
        out = np.zeros(a.shape, dtype=np.float32)
        for c in range(a.shape[0]):  # a loop over channels, each equalised as a whole
            lo, hi = a[c].min(), a[c].max()
            if hi > lo:
                scaled = (a[c] - lo) / (hi - lo)
                out[c] = equalize_adapthist(
                    scaled, kernel_size=self.kernel_size, clip_limit=self.clip_limit, nbins=self.nbins
                )
        result, *_ = convert_to_dst_type(out, img, dtype=np.float32)
        return result


class CLAHEd(MapTransform):
    """Dictionary form of :class:`CLAHE`.

    Args:
        keys: keys of the images to equalise.
        kernel_size: contextual region size, or None for 1/8 of each spatial size.
        clip_limit: the clipping limit in (0, 1].
        nbins: histogram bins.
        allow_missing_keys: do not raise if a key is missing.
    """

    backend = CLAHE.backend

    def __init__(
        self,
        keys: KeysCollection,
        kernel_size: int | Sequence[int] | None = None,
        clip_limit: float = 0.01,
        nbins: int = 256,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.clahe = CLAHE(kernel_size, clip_limit, nbins)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.clahe(d[key])
        return d


CLAHED = CLAHEDict = CLAHEd
