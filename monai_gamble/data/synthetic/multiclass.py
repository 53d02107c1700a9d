"""A small in-memory multi-class segmentation task with a rare, hard class (for TCE demos and tests).

Unlike the other generators of :mod:`monai_gamble.data.synthetic`, this writes nothing to disk and
mimics no real layout: it is a toy task, seeded and fast, on which the effect of class-fair training
is visible on a CPU in seconds. Until the pathology bundle exists it carries the multi-class workflow
of the tests and of ``tutorials/03_tilted_cross_entropy.ipynb``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage

__all__ = ["MULTICLASS_BLOB_CLASSES", "make_multiclass_blobs"]

#: class names of :func:`make_multiclass_blobs`, by label value
MULTICLASS_BLOB_CLASSES = ("background", "large", "small", "rare")


def _ball(grid: Sequence[np.ndarray], center: np.ndarray, radii: np.ndarray) -> np.ndarray:
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grid, center, radii)) <= 1.0


def make_multiclass_blobs(
    num_images: int = 64,
    image_size: Sequence[int] = (64, 64),
    rare_fraction: float = 0.25,
    noise: float = 0.3,
    rare_contrast: float = 0.5,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """A seeded datalist of noisy images with four classes, one of them rare and hard.

    Every image has a smooth, noisy background (label 0) with

    - ``"large"`` (1): one or two big ellipses (ellipsoids in 3D) of intensity +1 — common and easy;
    - ``"small"`` (2): three to six small discs of intensity -1 — common, small, easy to see;
    - ``"rare"`` (3): in about ``rare_fraction`` of the images, one or two discs of intensity
      ``rare_contrast`` (between the background's 0 and the large class's +1, so they are confused
      with both under the noise), drawn last, partly over the large ellipses — rare and hard.

    Args:
        num_images: number of images.
        image_size: spatial size, 2 values (2D) or 3 (3D).
        rare_fraction: probability that an image contains the rare class (at least one image does).
        noise: standard deviation of the white noise added to the image.
        rare_contrast: intensity of the rare class (smaller: harder).
        seed: seed of everything; the same seed gives the same arrays.

    Returns:
        A MONAI datalist: one dict per image with ``"image"`` (``(1, *image_size)`` float32),
        ``"label"`` (``(1, *image_size)`` int64, values 0..3) and ``"id"``.

    Raises:
        ValueError: for fewer than one image, an ``image_size`` of other than 2 or 3 values or
            smaller than 16, or a ``rare_fraction`` outside [0, 1].

    Example:
        >>> data = make_multiclass_blobs(num_images=8, image_size=(32, 32), seed=0)
        >>> data[0]["image"].shape, data[0]["label"].dtype
        ((1, 32, 32), dtype('int64'))
    """
    size = tuple(int(s) for s in image_size)
    if num_images < 1:
        raise ValueError(f"num_images must be at least 1, got {num_images}.")
    if len(size) not in (2, 3) or min(size) < 16:
        raise ValueError(f"image_size must be 2 or 3 values of at least 16, got {tuple(image_size)}.")
    if not 0.0 <= rare_fraction <= 1.0:
        raise ValueError(f"rare_fraction must lie in [0, 1], got {rare_fraction}.")
    rng = np.random.default_rng(seed)
    shape = np.array(size, dtype=float)
    grid = np.ogrid[tuple(slice(0, s) for s in size)]
    has_rare = rng.random(num_images) < rare_fraction
    if not has_rare.any():
        has_rare[rng.integers(num_images)] = True
    out = []
    for i in range(num_images):
        label = np.zeros(size, dtype=np.int64)
        for _ in range(rng.integers(1, 3)):
            radii = shape * rng.uniform(0.15, 0.28, len(size))
            label[_ball(grid, rng.uniform(0.25, 0.75, len(size)) * shape, radii)] = 1
        for _ in range(rng.integers(3, 7)):
            radii = np.full(len(size), min(size) * rng.uniform(0.04, 0.07))
            label[_ball(grid, rng.uniform(0.1, 0.9, len(size)) * shape, radii)] = 2
        if has_rare[i]:
            for _ in range(rng.integers(1, 3)):
                radii = np.full(len(size), min(size) * rng.uniform(0.12, 0.18))
                label[_ball(grid, rng.uniform(0.15, 0.85, len(size)) * shape, radii)] = 3
        intensity = np.array([0.0, 1.0, -1.0, rare_contrast])[label]
        background = ndimage.gaussian_filter(rng.standard_normal(size), sigma=min(size) / 8)
        background /= background.std() + 1e-8
        image = intensity + 0.1 * background + noise * rng.standard_normal(size)
        out.append({"image": image[None].astype(np.float32), "label": label[None], "id": f"blobs_{i:04d}"})
    return out
