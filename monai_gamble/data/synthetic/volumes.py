"""A seeded generator of synthetic 3D CT (or multi-modal MR) volumes in the Medical Segmentation
Decathlon layout: an abdominal-like body with an organ that holds a lesion.

It is the embedded default of the generic bundle (``bundles/generic_segmentation``): with no
dataset of their own a user trains on it, and the same reader
(:func:`monai_gamble.data.decathlon_dataset`) then reads their real Decathlon task. Each case is
drawn in world coordinates (millimetres) and sampled on its own anisotropic voxel grid, stored with
an LPS-like affine (``diag(-sx, -sy, sz)``, as DICOM-to-NIfTI conversions store CT), so that the
bundle's ``Orientationd`` and ``Spacingd`` have real work to do:

- air (-1000 HU) around an elliptic body whose outer layer is fat (-100 HU) over soft tissue
  (40 HU), with a vertebra (cancellous 250 HU inside a 700 HU cortex) behind;
- the **organ** (label 1): an irregular ellipsoid (60 HU, a little texture) on the right side,
  crossed by contrast-enhanced vessels (160 HU, not labelled: bright distractors), and on the
  left a second, unlabelled organ of similar density and pockets of bowel gas;
- one or two **lesions** (label 2) inside it, of varied size (12-40 mm across), shape (smooth to
  lobulated) and contrast: hypo- or hyperdense by 8 to 60 HU (the faintest are hard), some with an
  enhancing rim or a necrotic core;
- the partial-volume blur of the slice profile (stronger across slices) and correlated noise of
  8-15 HU; CT is stored as int16 HU, MR modalities as float32 arbitrary units with a bias field.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from monai.utils import optional_import
from scipy import ndimage

from ._common import MARKER, write_once

nib, _ = optional_import("nibabel")

__all__ = [
    "SYNTHETIC_VOLUME_CLASSES",
    "make_synthetic_volumes",
    "prepare_synthetic_volumes",
    "synthetic_volume_sample",
]

logger = logging.getLogger(__name__)

#: class names of :func:`make_synthetic_volumes`, by label value
SYNTHETIC_VOLUME_CLASSES = ("background", "organ", "lesion")
#: version of the generator, in its marker: a dataset of an older version is not reused silently
_VOLUMES_VERSION = 2
#: tissue intensities per modality family: air, fat, soft tissue, organ, bone (cancellous), cortex, vessel
_TISSUES = {
    "CT": {"air": -1000.0, "fat": -100.0, "soft": 40.0, "organ": 60.0, "bone": 250.0, "cortex": 700.0, "vessel": 160.0},
    "T1": {"air": 0.0, "fat": 900.0, "soft": 420.0, "organ": 560.0, "bone": 600.0, "cortex": 60.0, "vessel": 120.0},
    "T2": {"air": 0.0, "fat": 650.0, "soft": 280.0, "organ": 380.0, "bone": 420.0, "cortex": 40.0, "vessel": 90.0},
}


def _family(modality: str) -> str:
    m = modality.upper()
    return "CT" if m == "CT" else ("T1" if "T1" in m else "T2")


def _smooth_field(rng: np.random.Generator, shape: tuple[int, ...], sigma_vox: Sequence[float]) -> np.ndarray:
    """Zero-mean, unit-std, smooth random field on the grid (drawn on a grid coarser by up to half
    the correlation length, then interpolated: a wide Gaussian costs the same as a narrow one)."""
    step = np.maximum(np.floor(np.asarray(sigma_vox, dtype=float) / 2), 1).astype(int)
    coarse = tuple(int(np.ceil(s / k)) + int(k > 1) for s, k in zip(shape, step, strict=True))
    f = ndimage.gaussian_filter(rng.standard_normal(coarse).astype(np.float32), np.asarray(sigma_vox) / step)
    if (step > 1).any():
        f = ndimage.zoom(f, step, order=1, grid_mode=False)[tuple(slice(0, s) for s in shape)]
    return (f - f.mean()) / (f.std() + 1e-8)


def _world_grid(shape: tuple[int, int, int], affine: np.ndarray) -> list[np.ndarray]:
    """The world coordinates (mm) of the voxel centres, as three broadcastable arrays."""
    idx = np.ogrid[tuple(slice(0, s) for s in shape)]
    return [affine[a, a] * idx[a] + affine[a, 3] for a in range(3)]


def _segment_distance(grid: list[np.ndarray], p0: np.ndarray, p1: np.ndarray) -> np.ndarray:
    """Distance (mm) of every voxel to the segment p0-p1 (a vessel's centre line)."""
    d = p1 - p0
    t = sum((g - a) * b for g, a, b in zip(grid, p0, d, strict=True)) / float(d @ d)
    t = np.clip(t, 0.0, 1.0)
    return np.sqrt(sum((g - (a + t * b)) ** 2 for g, a, b in zip(grid, p0, d, strict=True)))


def synthetic_volume_sample(
    rng: np.random.Generator,
    modalities: Sequence[str] = ("CT",),
    field_of_view: Sequence[float] = (150.0, 120.0, 96.0),
    spacing: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Draw one synthetic case (see the module docstring) from ``rng``.

    Args:
        rng: the random generator (one per case, e.g. ``numpy.random.default_rng([seed, index])``).
        modalities: one name per image channel: ``"CT"`` (Hounsfield units), names holding ``"T1"``
            (T1-weighted contrast) or anything else (T2-like contrast: ``"T2"``, ``"FLAIR"``, ...).
        field_of_view: the extent of the volume in mm (x, y, z: right-left, anterior-posterior,
            inferior-superior).
        spacing: the voxel spacing in mm; None draws an in-plane spacing in [0.9, 1.3] mm and a slice
            thickness in [2.5, 4.0] mm.

    Returns:
        ``{"image": (X, Y, Z) array (or (X, Y, Z, M) for M modalities), "label": (X, Y, Z) uint8 array
        (0 background, 1 organ, 2 lesion), "affine": (4, 4) array, "spacing": (3,) array}``.
    """
    if spacing is None:
        s_xy = rng.uniform(0.9, 1.3)
        sp = np.array([s_xy, s_xy, rng.uniform(2.5, 4.0)])
    else:
        sp = np.asarray(spacing, dtype=float)
    fov = np.asarray(field_of_view, dtype=float)
    shape = tuple(int(v) for v in np.maximum(np.round(fov / sp), 8))
    # LPS-like storage: the x index runs towards the patient's left, the y index towards the back
    affine = np.diag([-sp[0], -sp[1], sp[2], 1.0])
    affine[:3, 3] = [fov[0] / 2, fov[1] / 2 - rng.uniform(-5, 5), -fov[2] / 2 + rng.uniform(-5, 5)]
    x, y, z = _world_grid(shape, affine)
    sigma = 6.0 / sp  # smooth fields of ~6 mm correlation length

    # body: an elliptic cylinder, fat under the skin, a vertebra at the back
    a, b = rng.uniform(58, 70), rng.uniform(44, 54)
    body_r = np.sqrt((x / a) ** 2 + (y / b) ** 2) + 0.02 * _smooth_field(rng, shape, sigma * 2)
    fat_frac = rng.uniform(0.08, 0.16)
    body, inner = body_r <= 1.0, body_r <= 1.0 - fat_frac
    spine_c = np.array([rng.uniform(-4, 4), -b * rng.uniform(0.55, 0.7)])
    spine_d = np.broadcast_to(np.sqrt((x - spine_c[0]) ** 2 + (y - spine_c[1]) ** 2), shape)
    spine_r = rng.uniform(11, 14)

    # organ: an irregular ellipsoid on the patient's right (RAS+: x > 0), inside the body
    centre = np.array([a * rng.uniform(0.25, 0.4), b * rng.uniform(-0.05, 0.2), rng.uniform(-8, 8)])
    radii = np.array([rng.uniform(32, 42), rng.uniform(26, 34), rng.uniform(28, 38)])
    organ_d = np.sqrt(sum(((g - c) / r) ** 2 for g, c, r in zip((x, y, z), centre, radii, strict=True)))
    organ_d = organ_d + rng.uniform(0.05, 0.12) * _smooth_field(rng, shape, sigma * 1.5)
    organ = (organ_d <= 1.0) & inner & (spine_d > spine_r + 3)

    # lesions inside the organ: varied size, shape and contrast
    lesion = np.zeros(shape, dtype=bool)
    lesion_delta = np.zeros(shape, dtype=np.float32)
    inside = np.argwhere(organ_d <= 0.6)
    for _ in range(1 + int(rng.random() < 0.35)):
        if inside.size == 0:
            break
        c_vox = inside[rng.integers(len(inside))]
        c = np.array([affine[i, i] * c_vox[i] + affine[i, 3] for i in range(3)])
        r = rng.uniform(7, 16) * rng.uniform(0.8, 1.25, 3)
        d = np.sqrt(sum(((g - ci) / ri) ** 2 for g, ci, ri in zip((x, y, z), c, r, strict=True)))
        d = d + rng.uniform(0.03, 0.3) * _smooth_field(rng, shape, np.maximum(sigma * 0.6, 0.5))
        this = (d <= 1.0) & organ
        sign = -1.0 if rng.random() < 0.65 else 1.0
        contrast = sign * rng.choice([rng.uniform(8, 18), rng.uniform(18, 60)], p=[0.3, 0.7])
        profile = np.full(shape, contrast, dtype=np.float32)
        kind = rng.random()
        if kind < 0.2:  # enhancing rim
            profile = np.where(d > 0.75, abs(contrast) * 0.8 + 20, contrast).astype(np.float32)
        elif kind < 0.35:  # necrotic core
            profile = np.where(d < 0.5, contrast - 25, contrast).astype(np.float32)
        lesion_delta = np.where(this, profile, lesion_delta)
        lesion |= this

    # unlabelled distractors on the left: a second organ of similar density, and bowel gas
    other_c = np.array([-a * rng.uniform(0.3, 0.45), -b * rng.uniform(0.05, 0.25), rng.uniform(-10, 10)])
    other_r = np.array([rng.uniform(14, 20), rng.uniform(16, 24), rng.uniform(25, 35)])
    other_d = np.sqrt(sum(((g - c) / r) ** 2 for g, c, r in zip((x, y, z), other_c, other_r, strict=True)))
    other = (other_d + 0.06 * _smooth_field(rng, shape, sigma * 1.5) <= 1.0) & inner & ~organ
    gas = np.zeros(shape, dtype=bool)
    for _ in range(rng.integers(2, 6)):
        c = np.array([-a * rng.uniform(0.0, 0.6), b * rng.uniform(0.1, 0.7), rng.uniform(-40, 40)])
        d = np.sqrt(sum(((g - ci) / ri) ** 2 for g, ci, ri in zip((x, y, z), c, rng.uniform(4, 9, 3), strict=True)))
        gas |= d <= 1.0
    gas &= inner & ~organ & ~other

    vessel = np.zeros(shape, dtype=bool)
    for _ in range(rng.integers(2, 4)):
        p0 = centre + rng.uniform(-1, 1, 3) * radii * 0.8
        p1 = centre + rng.uniform(-1, 1, 3) * radii * 0.8
        if np.linalg.norm(p1 - p0) > 10:
            vessel |= _segment_distance([x, y, z], p0, p1) <= rng.uniform(1.5, 3.0)
    vessel &= organ & ~lesion

    label = np.zeros(shape, dtype=np.uint8)
    label[organ] = 1
    label[lesion] = 2

    texture = _smooth_field(rng, shape, np.maximum(sigma * 0.4, 0.5))
    bias = 1.0 + 0.08 * _smooth_field(rng, shape, sigma * 8)
    channels = []
    for modality in modalities:
        t = _TISSUES[_family(modality)]
        ct = _family(modality) == "CT"
        img = np.full(shape, t["air"], dtype=np.float32)
        img[body] = t["fat"]
        img[inner] = t["soft"]
        img[organ] = t["organ"] + rng.uniform(-10, 10)
        img[other] = t["organ"] + rng.uniform(-15, 5) * (1.0 if ct else 0.01 * t["organ"])
        img[gas] = t["air"] + (100.0 if ct else 0.0)
        img[vessel] = t["vessel"]
        if ct:
            img = img + lesion_delta
        else:  # MR: lesions darker on T1, brighter on T2, scaled to the tissue range
            scale = (t["organ"] - t["soft"]) / 20.0
            sign = -1.0 if _family(modality) == "T1" else 1.0
            img = img + sign * np.abs(lesion_delta) * scale
        img[spine_d <= spine_r] = t["cortex"]
        img[spine_d <= spine_r - 2.5] = t["bone"]
        img = img + np.where(organ | inner, texture * (4.0 if ct else 0.02 * t["organ"]), 0.0)
        # slice profile: partial volume, wider across the slices
        img = ndimage.gaussian_filter(img, sigma=(0.5, 0.5, 0.8), mode="nearest")
        noise_sd = rng.uniform(8, 15) if ct else rng.uniform(0.02, 0.04) * t["organ"]
        noise = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), 0.6)
        noise *= noise_sd / (noise.std() + 1e-8)
        if ct:
            img = np.clip(np.round(img + noise), -1024, 3071).astype(np.int16)
        else:
            img = np.abs(img * bias + noise).astype(np.float32)  # magnitude images
        channels.append(img)
    image = channels[0] if len(channels) == 1 else np.stack(channels, axis=-1)
    return {"image": image, "label": label, "affine": affine, "spacing": sp}


def _save_nifti(array: np.ndarray, affine: np.ndarray, path: Path) -> None:
    img = nib.Nifti1Image(array, affine)
    img.header.set_xyzt_units("mm")
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    nib.save(img, str(path))


def make_synthetic_volumes(
    root: str | os.PathLike,
    num_cases: int = 16,
    num_test: int = 2,
    seed: int = 0,
    modalities: Sequence[str] = ("CT",),
    overwrite: bool = False,
) -> Path:
    """Write a synthetic organ-and-lesion dataset in the Medical Segmentation Decathlon layout::

        root/dataset.json              name, modality, labels {0 background, 1 organ, 2 lesion},
                                       numTraining, numTest, "training" and "test" lists
        root/imagesTr/organ_NNN.nii.gz  (X, Y, Z) int16 HU for CT; (X, Y, Z, M) float32 for M modalities
        root/labelsTr/organ_NNN.nii.gz  (X, Y, Z) uint8 class indices
        root/imagesTs/organ_NNN.nii.gz  unlabelled test images

    Case ``i`` is drawn by :func:`synthetic_volume_sample` from ``numpy.random.default_rng([seed, i])``
    (test cases follow the training cases), so the same seed gives the same bytes and the first
    cases do not change when ``num_cases`` grows. The folder is written atomically with a
    ``synthetic.json`` marker of the parameters; a second call with the same parameters reuses it.
    Under ``torch.distributed`` rank 0 writes and the other ranks wait.

    Args:
        root: the dataset folder to create.
        num_cases: labelled cases (``imagesTr`` / ``labelsTr``).
        num_test: unlabelled cases (``imagesTs``).
        seed: the random seed.
        modalities: the image channels (see :func:`synthetic_volume_sample`), e.g. ``("CT",)`` or
            ``("T1", "T2")`` for 4D two-channel MR.
        overwrite: replace an existing dataset written with other parameters.

    Returns:
        The dataset folder.

    Raises:
        ValueError: for fewer than one labelled case, a negative ``num_test`` or no modality.
        FileExistsError: if ``root`` holds something else (or a dataset of other parameters) and
            ``overwrite`` is False.

    Example:
        >>> root = make_synthetic_volumes("/tmp/organ", num_cases=8, seed=0)
        >>> decathlon_dataset(root).num_classes
        3
    """
    if int(num_cases) < 1 or int(num_test) < 0:
        raise ValueError(f"need num_cases >= 1 and num_test >= 0, got {num_cases} and {num_test}.")
    mods = tuple(str(m) for m in modalities)
    if not mods:
        raise ValueError("modalities must name at least one image channel, e.g. ('CT',).")
    params = {
        "generator": "make_synthetic_volumes",
        "version": _VOLUMES_VERSION,
        "num_cases": int(num_cases),
        "num_test": int(num_test),
        "seed": int(seed),
        "modalities": list(mods),
    }

    def write(tmp: Path) -> None:
        for sub in ("imagesTr", "labelsTr", "imagesTs"):
            (tmp / sub).mkdir()
        training, test = [], []
        for i in range(int(num_cases) + int(num_test)):
            case = synthetic_volume_sample(np.random.default_rng([int(seed), i]), mods)
            name = f"organ_{i:03d}.nii.gz"
            if i < int(num_cases):
                _save_nifti(case["image"], case["affine"], tmp / "imagesTr" / name)
                _save_nifti(case["label"], case["affine"], tmp / "labelsTr" / name)
                training.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"})
            else:
                _save_nifti(case["image"], case["affine"], tmp / "imagesTs" / name)
                test.append(f"./imagesTs/{name}")
        meta = {
            "name": "SyntheticOrgan",
            "description": "Synthetic abdominal-like volumes: an organ with internal lesions (monai_gamble).",
            "reference": "monai_gamble.data.make_synthetic_volumes",
            "licence": "CC0 (synthetic)",
            "release": f"seed {int(seed)}, version {_VOLUMES_VERSION}",
            "tensorImageSize": "3D" if len(mods) == 1 else "4D",
            "modality": {str(k): m for k, m in enumerate(mods)},
            "labels": {str(k): n for k, n in enumerate(SYNTHETIC_VOLUME_CLASSES)},
            "numTraining": len(training),
            "numTest": len(test),
            "training": training,
            "test": test,
        }
        (tmp / "dataset.json").write_text(json.dumps(meta, indent=1) + "\n")

    return write_once(Path(root), params, write, overwrite)


def prepare_synthetic_volumes(dataset_dir: str | os.PathLike, synthetic_dir: str | os.PathLike, **kwargs: Any) -> str:
    """The embedded default of a bundle: ``dataset_dir`` itself when it is a user's dataset, or the
    synthetic dataset written (once) into it when it is the bundle's ``synthetic_dir``.

    Args:
        dataset_dir: the bundle's ``dataset_dir``.
        synthetic_dir: the bundle's default ``dataset_dir``, where the synthetic data lives.
        kwargs: arguments of :func:`make_synthetic_volumes` (``num_cases``, ``seed``, ...).

    Returns:
        ``dataset_dir`` as a string.
    """
    if Path(dataset_dir).resolve() != Path(synthetic_dir).resolve():
        return str(dataset_dir)
    if (Path(synthetic_dir) / MARKER).is_file():
        logger.info("no --dataset_dir given: training on the synthetic dataset in %s.", synthetic_dir)
    else:
        logger.info(
            "no --dataset_dir given: generating a synthetic Decathlon-layout dataset (%s) in %s on this first run; "
            "pass --dataset_dir /path/to/TaskXX to train on your own data.",
            ", ".join(f"{k}={v}" for k, v in kwargs.items()),
            synthetic_dir,
        )
    make_synthetic_volumes(synthetic_dir, **kwargs)
    return str(dataset_dir)
