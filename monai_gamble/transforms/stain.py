"""H&E stain augmentation in the optical-density space of the stains, and MONAI's stain normalisation
on channel-first images (array and dictionary forms).

MONAI has stain *normalisation* (``monai.apps.pathology.transforms.NormalizeHEStains``, Macenko et
al. 2009, on channel-last 8-bit arrays) but no stain *augmentation*; this module adds the HED jitter
of Tellez et al., and :class:`NormalizeHEStainsChannelFirst`, MONAI's normaliser for the channel-first
images of a MONAI pipeline.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.apps.pathology.transforms import NormalizeHEStains
from monai.config import KeysCollection
from monai.config.type_definitions import NdarrayOrTensor
from monai.transforms import MapTransform, RandomizableTransform, Transform
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_tensor
from skimage.color import hed_from_rgb, rgb_from_hed

__all__ = [
    "NormalizeHEStainsChannelFirst",
    "NormalizeHEStainsChannelFirstD",
    "NormalizeHEStainsChannelFirstDict",
    "NormalizeHEStainsChannelFirstd",
    "RandHEDStainJitter",
    "RandHEDStainJitterD",
    "RandHEDStainJitterDict",
    "RandHEDStainJitterd",
]


def _three(value: float | Sequence[float], name: str, upper: float | None = None) -> np.ndarray:
    v = np.broadcast_to(np.asarray(value, dtype=np.float64), (3,)).copy()
    if not np.isfinite(v).all() or (v < 0).any() or (upper is not None and (v >= upper).any()):
        bound = f" and below {upper}" if upper is not None else ""
        raise ValueError(f"{name} must be one or three finite non-negative numbers{bound}, got {value}.")
    return v


class RandHEDStainJitter(RandomizableTransform):
    """Random H&E stain jitter (Tellez et al., "Whole-Slide Mitosis Detection in H&E Breast Histology
    Using PHH3 as a Reference to Train Distilled Stain-Invariant Convolutional Networks", IEEE TMI
    2018; "Quantifying the effects of data augmentation and stain color normalization in
    convolutional neural networks for computational pathology", MedIA 2019).

    The RGB image is converted to optical densities :math:`\\mathrm{OD} = -\\log(I / I_{max})` and
    deconvolved into the concentrations of hematoxylin, eosin and DAB (the third, residual channel
    for H&E) with Ruifrok & Johnston's stain matrix :math:`M` (``skimage.color.rgb_from_hed``),
    :math:`c = \\mathrm{OD}\\, M^{-1}`; each stain's concentration is scaled and shifted,

    .. math::
        c'_s = \\alpha_s c_s + \\beta_s, \\qquad \\alpha_s \\sim U(1 - \\sigma_s, 1 + \\sigma_s),\\quad
        \\beta_s \\sim U(-b_s, b_s),

    and the image is recomposed, :math:`I' = I_{max} \\exp(-c' M)`, clipped to :math:`[0, I_{max}]`.
    Tellez et al.'s "HED-light" is ``sigma=0.05, bias=0.05``, "HED-strong" ``sigma=0.2, bias=0.2``. One
    3x3 matrix and offset per image: the cost is that of two pointwise passes.

    Args:
        prob: probability of jittering an image.
        sigma: :math:`\\sigma`, one value or one per stain (H, E, DAB), in [0, 1).
        bias: :math:`b`, one value or one per stain, non-negative.
        max_value: :math:`I_{max}`, the intensity of white (1 for images scaled to [0, 1], 255 for 8 bits).

    Shapes:
        ``(3, *spatial)`` RGB, channel first (2D or 3D), NumPy or torch; the output has the input's
        type, dtype and metadata.

    Raises:
        ValueError: for bad ``sigma``, ``bias`` or ``max_value``, and (on call) an image without
            three channels.

    Example:
        >>> jitter = RandHEDStainJitter(prob=1.0, sigma=0.05, bias=0.05)
        >>> jitter.set_random_state(0)
        >>> augmented = jitter(image)  # (3, H, W) in [0, 1]
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        prob: float = 0.5,
        sigma: float | Sequence[float] = 0.05,
        bias: float | Sequence[float] = 0.05,
        max_value: float = 1.0,
    ) -> None:
        RandomizableTransform.__init__(self, prob)
        self.sigma = _three(sigma, "sigma", upper=1.0)
        self.bias = _three(bias, "bias")
        if not (np.isfinite(max_value) and max_value > 0):
            raise ValueError(f"max_value must be a positive number (the intensity of white), got {max_value}.")
        self.max_value = float(max_value)
        self._alpha = np.ones(3)
        self._beta = np.zeros(3)

    def randomize(self, data: object = None) -> None:
        """Draw whether to jitter and, if so, the scales and shifts of the three stains."""
        super().randomize(None)
        if self._do_transform:
            self._alpha = self.R.uniform(1.0 - self.sigma, 1.0 + self.sigma)
            self._beta = self.R.uniform(-self.bias, self.bias)

    def __call__(self, img: NdarrayOrTensor, randomize: bool = True) -> NdarrayOrTensor:
        """Jitter ``img`` ``(3, *spatial)`` (draws new parameters unless ``randomize`` is False)."""
        if img.shape[0] != 3:
            raise ValueError(f"HED stain jitter needs an RGB image (3, *spatial), got shape {tuple(img.shape)}.")
        if randomize:
            self.randomize()
        if not self._do_transform:
            return img
        t = convert_to_tensor(img, track_meta=False).float()
        # od' = A od + b with A = M^T diag(alpha) (M^-1)^T and b = M^T beta (channel-first: od is (3, N))
        m = torch.as_tensor(rgb_from_hed, dtype=torch.float64)
        m_inv = torch.as_tensor(hed_from_rgb, dtype=torch.float64)
        a = (m.T @ torch.diag(torch.as_tensor(self._alpha)) @ m_inv.T).to(t)
        b = (m.T @ torch.as_tensor(self._beta)).to(t)
        od = -torch.log((t / self.max_value).clamp(1e-3, 1.0)).reshape(3, -1)
        out = (self.max_value * torch.exp(-(a @ od + b[:, None]))).clamp(0.0, self.max_value).reshape(t.shape)
        if not torch.as_tensor(img).is_floating_point():
            out = out.round()
        result, *_ = convert_to_dst_type(out, img)
        return result


class RandHEDStainJitterd(RandomizableTransform, MapTransform):
    """Dictionary form of :class:`RandHEDStainJitter`: the same draw for every key of one sample.

    Args:
        keys: keys of the RGB images.
        prob: probability of jittering a sample.
        sigma: scale range per stain, see :class:`RandHEDStainJitter`.
        bias: shift range per stain.
        max_value: the intensity of white.
        allow_missing_keys: do not raise if a key is missing.
    """

    backend = RandHEDStainJitter.backend

    def __init__(
        self,
        keys: KeysCollection,
        prob: float = 0.5,
        sigma: float | Sequence[float] = 0.05,
        bias: float | Sequence[float] = 0.05,
        max_value: float = 1.0,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.jitter = RandHEDStainJitter(prob=1.0, sigma=sigma, bias=bias, max_value=max_value)

    def set_random_state(
        self, seed: int | None = None, state: np.random.RandomState | None = None
    ) -> RandHEDStainJitterd:
        super().set_random_state(seed, state)
        self.jitter.set_random_state(seed, state)
        return self

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        self.randomize(None)
        if not self._do_transform:
            return d
        self.jitter.randomize()
        for key in self.key_iterator(d):
            d[key] = self.jitter(d[key], randomize=False)
        return d


RandHEDStainJitterD = RandHEDStainJitterDict = RandHEDStainJitterd


class NormalizeHEStainsChannelFirst(Transform):
    """MONAI's Macenko stain normalisation (``monai.apps.pathology.transforms.NormalizeHEStains``) of a
    channel-first RGB image, as the images of a MONAI pipeline are (``EnsureChannelFirstd``).

    MONAI's normaliser takes ``(H, W, 3)`` NumPy arrays of 8-bit values; this transform gives it the
    ``(3, H, W)`` image transposed, and returns the normalised image channel first again, as
    ``float32`` of the input's type (NumPy or torch, metadata kept), values in [0, 255].

    Args:
        tli, alpha, beta, target_he, max_cref: MONAI's ``NormalizeHEStains`` arguments (transmitted
            light intensity, percentile tolerance, absorbance threshold, target stain matrix, reference
            maximum concentrations).

    Raises:
        ValueError: (on call) for an image without three channels first, or values outside [0, 255].

    Example:
        >>> NormalizeHEStainsChannelFirst()(tile)  # (3, H, W) in [0, 255] -> (3, H, W) float32
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        tli: float = 240,
        alpha: float = 1,
        beta: float = 0.15,
        target_he: Sequence[Sequence[float]] | np.ndarray = ((0.5626, 0.2159), (0.7201, 0.8012), (0.4062, 0.5581)),
        max_cref: Sequence[float] | np.ndarray = (1.9705, 1.0308),
    ) -> None:
        self.normalizer = NormalizeHEStains(tli=tli, alpha=alpha, beta=beta, target_he=target_he, max_cref=max_cref)

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """Normalise a ``(3, H, W)`` image."""
        if img.ndim != 3 or img.shape[0] != 3:
            raise ValueError(f"expected a (3, H, W) RGB image, channel first, got shape {tuple(img.shape)}.")
        hwc = np.moveaxis(convert_to_tensor(img, track_meta=False).cpu().numpy(), 0, -1)
        out = np.ascontiguousarray(np.moveaxis(self.normalizer(hwc), -1, 0))
        result, *_ = convert_to_dst_type(out, img, dtype=torch.float32 if isinstance(img, torch.Tensor) else np.float32)
        return result


class NormalizeHEStainsChannelFirstd(MapTransform):
    """Dictionary form of :class:`NormalizeHEStainsChannelFirst`.

    Args:
        keys: keys of the ``(3, H, W)`` RGB images.
        allow_missing_keys: do not raise if a key is missing.
        kwargs: the arguments of :class:`NormalizeHEStainsChannelFirst`.
    """

    backend = NormalizeHEStainsChannelFirst.backend

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False, **kwargs: float | Sequence) -> None:
        super().__init__(keys, allow_missing_keys)
        self.normalizer = NormalizeHEStainsChannelFirst(**kwargs)  # type: ignore[arg-type]

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.normalizer(d[key])
        return d


NormalizeHEStainsChannelFirstD = NormalizeHEStainsChannelFirstDict = NormalizeHEStainsChannelFirstd
