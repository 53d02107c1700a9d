"""Erosion mask smoothing (EMS): a binary mask made into a soft target that relaxes the interior."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from monai.config import KeysCollection
from monai.config.type_definitions import NdarrayOrTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_tensor, ensure_tuple_rep

__all__ = [
    "ErosionMaskSmoothing",
    "ErosionMaskSmoothingD",
    "ErosionMaskSmoothingDict",
    "ErosionMaskSmoothingd",
]

_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}


def _check_kernel(kernel_size: Sequence[int] | int, iterations: int) -> None:
    ks = ensure_tuple_rep(kernel_size, 1) if isinstance(kernel_size, int) else tuple(kernel_size)
    if not ks or any(not isinstance(k, int) or isinstance(k, bool) or k < 1 or k % 2 == 0 for k in ks):
        raise ValueError(f"kernel_size must be a positive odd integer or a sequence of them, got {kernel_size}.")
    if not isinstance(iterations, int) or isinstance(iterations, bool) or iterations < 1:
        raise ValueError(f"iterations must be a positive integer, got {iterations}.")


def _binary_erosion(x: torch.Tensor, kernel_size: Sequence[int] | int, iterations: int) -> torch.Tensor:
    """Erosion of float masks ``(B, C, *spatial)`` by a box, pixels outside the image counting as foreground.

    ``iterations`` erosions by a box of side ``k`` equal one erosion by a box of side
    ``(k - 1) * iterations + 1`` (the Minkowski sum of boxes), computed as one min-pooling
    (``-max_pool(-x)``) of stride 1, whose padding is ignored: the behaviour of OpenCV's
    ``cv2.erode`` with its default border value.
    """
    nd = x.ndim - 2
    size = tuple((k - 1) * iterations + 1 for k in ensure_tuple_rep(kernel_size, nd))
    return -_POOL[nd](-x, kernel_size=size, stride=1, padding=tuple(s // 2 for s in size))


class ErosionMaskSmoothing(Transform):
    """Erosion mask smoothing (EMS): a binary mask becomes a soft target whose interior is relaxed.

    With :math:`M` the mask and :math:`E = M \\ominus B` its erosion (``iterations`` times by a
    box :math:`B` of side ``kernel_size``), the target is

    .. math::

        S(p) = \\begin{cases} 1 & p \\in M \\setminus E \\quad\\text{(boundary band)}\\\\
        v & p \\in E \\quad\\text{(eroded interior)}\\\\ 0 & p \\notin M \\end{cases}
        \\qquad\\text{i.e.}\\quad S = M - (1 - v)\\,E,

    with :math:`v` the ``interior_value``. Trained against :math:`S`, a loss keeps its full weight
    on the boundary band and is relaxed inside the object. The defaults are the authors' (Liao, Ng
    & Hung, "Ultrasound Nerve Segmentation", VRDL 2022, and their code): a 9x9 kernel, 3
    iterations, interior 243/255 (about 0.953). An empty mask stays empty; a mask smaller than
    the eroded kernel erodes to nothing, so all its pixels are boundary (1) and it does not
    vanish. The image border does not erode a mask (pixels outside the image count as
    foreground, as in OpenCV's ``cv2.erode`` with its default border): a mask cut by the border
    keeps its interior value up to the border. The erosion is one min-pooling of stride 1 by the
    box of side ``(kernel_size - 1) * iterations + 1`` (equal to the iterated erosion).

    Note that a loss that casts its target to class indices (e.g. ``DiceFocalLoss(to_onehot_y=True)``,
    which calls ``.long()``) turns 0.953 into background: give the loss the two-channel soft target
    ``[1 - S, S]`` (``background_channel=True``) with ``to_onehot_y=False``.

    Args:
        kernel_size: side of the square (cubic in 3D) erosion kernel, odd; one per spatial
            dimension or one for all.
        iterations: number of erosions.
        interior_value: the target value :math:`v` of the eroded interior, in [0, 1].
        background_channel: prepend the background channel :math:`1 - S`, so that a one-channel
            mask ``(1, *spatial)`` becomes a soft two-class target ``(2, *spatial)``.

    Raises:
        ValueError: for an even or non-positive kernel size, a non-positive number of iterations, an
            interior value outside [0, 1], a mask that is not binary, more than three spatial
            dimensions, or ``background_channel`` with a mask of several channels.

    Example:
        >>> mask = torch.zeros(1, 5, 5)
        >>> mask[0, 1:4, 1:4] = 1
        >>> ErosionMaskSmoothing(kernel_size=3, iterations=1, interior_value=0.5)(mask)[0, 1:4, 1:4]
        tensor([[1.0000, 1.0000, 1.0000],
                [1.0000, 0.5000, 1.0000],
                [1.0000, 1.0000, 1.0000]])
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        kernel_size: Sequence[int] | int = 9,
        iterations: int = 3,
        interior_value: float = 243 / 255,
        background_channel: bool = False,
    ) -> None:
        _check_kernel(kernel_size, iterations)
        if not 0.0 <= float(interior_value) <= 1.0:
            raise ValueError(f"interior_value must be in [0, 1], got {interior_value}.")
        self.kernel_size = kernel_size
        self.iterations = iterations
        self.interior_value = float(interior_value)
        self.background_channel = background_channel

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """
        Args:
            img: binary mask ``(C, *spatial)`` with 1 to 3 spatial dimensions, values 0 and 1.

        Returns:
            The soft target, float32, ``(C, *spatial)`` (``(2, *spatial)`` with ``background_channel``).
        """
        t = convert_to_tensor(
            np.array(img) if isinstance(img, np.ndarray) and not img.flags.writeable else img, track_meta=False
        )
        if t.ndim - 1 not in _POOL:
            raise ValueError(
                f"expected a channel-first mask (C, *spatial) with 1 to 3 spatial dims, got {tuple(t.shape)}."
            )
        if t.dtype != torch.bool and not ((t == 0) | (t == 1)).all():
            raise ValueError(
                "ErosionMaskSmoothing expects a binary mask (values 0 and 1); threshold it first, "
                "e.g. AsDiscrete(threshold=0.5) (or 127.5 for a {0, 255} mask)."
            )
        if self.background_channel and t.shape[0] != 1:
            raise ValueError(f"background_channel needs a one-channel mask (1, *spatial), got {tuple(t.shape)}.")
        if not isinstance(self.kernel_size, int) and len(self.kernel_size) != t.ndim - 1:
            raise ValueError(
                f"kernel_size {tuple(self.kernel_size)} has {len(self.kernel_size)} values for a mask with "
                f"{t.ndim - 1} spatial dimensions."
            )
        m = t.float()
        eroded = _binary_erosion(m[None], self.kernel_size, self.iterations)[0]
        soft = m - (1.0 - self.interior_value) * eroded
        if self.background_channel:
            soft = torch.cat([1.0 - soft, soft], dim=0)
        out, *_ = convert_to_dst_type(soft, img, dtype=torch.float32)
        return out


class ErosionMaskSmoothingd(MapTransform):
    """Dictionary form of :class:`ErosionMaskSmoothing`.

    Args:
        keys: keys of the masks to smooth.
        kernel_size: side of the erosion kernel, odd.
        iterations: number of erosions.
        interior_value: the target value of the eroded interior, in [0, 1].
        background_channel: prepend the background channel ``1 - S``.
        allow_missing_keys: do not raise if a key is missing.
    """

    backend = ErosionMaskSmoothing.backend

    def __init__(
        self,
        keys: KeysCollection,
        kernel_size: Sequence[int] | int = 9,
        iterations: int = 3,
        interior_value: float = 243 / 255,
        background_channel: bool = False,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.smoother = ErosionMaskSmoothing(kernel_size, iterations, interior_value, background_channel)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.smoother(d[key])
        return d


ErosionMaskSmoothingD = ErosionMaskSmoothingDict = ErosionMaskSmoothingd
