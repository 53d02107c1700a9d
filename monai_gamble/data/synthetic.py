"""Seeded generators of realistic stand-in datasets, written in the real datasets' own layouts.

No medical dataset can be downloaded at run time and the real ones need licences, so each
workflow ships a generator that writes a synthetic dataset in exactly the layout of the real
one; the same loader (:mod:`monai_gamble.data.datasets`) then reads both.
"""

from __future__ import annotations

import csv
import json
import multiprocessing as mp
import os
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage.draw import disk, polygon

__all__ = ["make_thyroid_ultrasound", "thyroid_ultrasound_sample"]

_MARKER = "synthetic.json"


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise normalised to zero mean and unit standard deviation.

    Wide filters are applied on a coarse grid and interpolated back (the field is smooth at that
    scale anyway), which keeps the cost independent of ``sigma``.
    """
    factor = max(1, int(sigma // 3))
    coarse = tuple(-(-n // factor) + 1 for n in shape) if factor > 1 else shape
    field = ndimage.gaussian_filter(rng.standard_normal(coarse), sigma=sigma / factor, mode="reflect")
    if factor > 1:
        field = ndimage.zoom(field, factor, order=1)[: shape[0], : shape[1]]
    return (field - field.mean()) / (field.std() + 1e-8)


def _speckle(rng: np.random.Generator, shape: tuple[int, int], axial: float, lateral: float) -> np.ndarray:
    """Fully developed speckle: magnitude of a low-pass complex Gaussian field (Rayleigh), mean 1.

    The point-spread function of a linear probe is longer laterally than axially, so the complex
    field is smoothed anisotropically (``axial`` along rows, ``lateral`` along columns).
    """
    re = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=(axial, lateral))
    im = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=(axial, lateral))
    mag = np.hypot(re, im)
    return mag / (mag.mean() + 1e-8)


def _radius_profile(
    rng: np.random.Generator, irregularity: float, n_harmonics: int = 5
) -> Callable[[np.ndarray], np.ndarray]:
    """A random star-shaped contour ``r(theta) = 1 + sum_k a_k cos(k theta + phi_k)`` (k = 2..n)."""
    ks = np.arange(2, n_harmonics + 1)
    amps = rng.uniform(0.0, irregularity, size=ks.size) / ks**0.8
    phases = rng.uniform(0.0, 2 * np.pi, size=ks.size)

    def profile(theta: np.ndarray) -> np.ndarray:
        r = 1.0 + np.sum(amps[:, None] * np.cos(ks[:, None] * theta.ravel()[None] + phases[:, None]), axis=0)
        return np.clip(r, 0.35, None).reshape(theta.shape)

    return profile


def thyroid_ultrasound_sample(
    rng: np.random.Generator,
    height: int,
    width: int,
    malignant: bool,
    label_noise: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Render one synthetic thyroid ultrasound image and its nodule annotation.

    The image model follows B-mode physics loosely: an echogenicity map (skin line, strap muscles,
    thyroid parenchyma, an optional anechoic carotid artery with posterior enhancement, and the
    nodule) multiplied by correlated Rayleigh speckle, depth attenuation with partial time-gain
    compensation, log compression, and, on some images, the black frame of the scanner's screen
    with annotation marks around the imaging window.

    The nodule is hypoechoic (some nearly isoechoic), star-shaped with random harmonics (more
    irregular and taller-than-wide when ``malignant``), with a hypoechoic halo on some (mostly
    benign), cystic parts on some, bright microcalcifications with acoustic shadows on some (mostly
    malignant), and it touches the imaging window's border on some. The annotation is a polygon
    through points of the true contour, as annotators draw it; ``label_noise`` (a fraction of the
    nodule radius) jitters its vertices radially with a smooth random perturbation.

    Args:
        rng: the random generator (the sample is a deterministic function of its state).
        height: image height in pixels.
        width: image width in pixels.
        malignant: whether to draw the nodule with the malignant-looking features.
        label_noise: standard deviation of the annotation's radial jitter, as a fraction of the
            nodule's radius (0 = the polygon follows the true contour).

    Returns:
        ``(image, mask)``: ``uint8`` arrays of shape ``(height, width)``; the mask holds {0, 255}.
    """
    h, w = height, width
    # --- imaging window inside an optional black screen frame --------------------------------
    if rng.random() < 0.6:
        top = int(rng.uniform(0.01, 0.08) * h)
        bottom = h - int(rng.uniform(0.05, 0.18) * h)
        left = int(rng.uniform(0.04, 0.2) * w)
        right = w - int(rng.uniform(0.04, 0.2) * w)
    else:
        top, bottom, left, right = 0, h, 0, w
    wh, ww = bottom - top, right - left
    rows = np.arange(wh, dtype=np.float64)[:, None]
    cols = np.arange(ww, dtype=np.float64)[None, :]
    depth = rows / wh

    # --- echogenicity map ---------------------------------------------------------------------
    echo = 0.55 + 0.06 * _smooth_noise(rng, (wh, ww), sigma=min(wh, ww) / 12)
    echo += 0.05 * _smooth_noise(rng, (wh, ww), sigma=rng.uniform(2.5, 5.0))  # echotexture
    # skin line and subcutaneous fat
    skin = rng.uniform(0.02, 0.05)
    echo += 0.5 * np.exp(-(((depth - skin) / 0.008) ** 2))
    # strap muscles: a darker band with horizontal striations, curving gently
    m_top = skin + rng.uniform(0.04, 0.1)
    m_thick = rng.uniform(0.06, 0.14)
    curve = 0.03 * np.sin(np.pi * cols / ww + rng.uniform(0, np.pi))
    in_muscle = np.clip(1 - np.abs((depth - m_top - curve) / m_thick - 0.5) * 2, 0, 1) ** 0.5
    striation = 0.5 + 0.5 * np.sin(2 * np.pi * rows / rng.uniform(4, 8) + 0.2 * _smooth_noise(rng, (wh, ww), 6))
    echo = echo * (1 - 0.4 * in_muscle) + 0.08 * in_muscle * striation
    # fascia (bright line) below the muscles
    echo += 0.3 * np.exp(-(((depth - (m_top + m_thick + curve)) / 0.006) ** 2))
    parenchyma_top = m_top + m_thick + 0.02

    # optional carotid artery: anechoic disc with posterior acoustic enhancement (a hard negative)
    vessel = np.zeros((wh, ww))
    if rng.random() < 0.4:
        vr = rng.uniform(0.07, 0.12) * min(wh, ww)
        vy = rng.uniform(parenchyma_top + 0.1, 0.7) * wh
        vx = (rng.uniform(0.02, 0.15) if rng.random() < 0.5 else rng.uniform(0.85, 0.98)) * ww
        dist = np.hypot(rows - vy, cols - vx)
        vessel = np.clip(vr + 1.5 - dist, 0, 1.5) / 1.5
        below = (rows > vy) & (np.abs(cols - vx) < vr)
        echo = echo * (1 + 0.25 * below * np.exp(-(rows - vy) / (0.3 * wh)))
        echo = echo * (1 - 0.92 * vessel) + 0.35 * np.exp(-(((dist - vr) / 1.5) ** 2))

    # --- nodule ------------------------------------------------------------------------------
    r0 = rng.uniform(0.1, 0.28) * min(wh, ww)
    aspect = rng.uniform(1.0, 1.5) if malignant else rng.uniform(0.6, 1.05)  # height / width
    ry, rx = r0 * np.sqrt(aspect), r0 / np.sqrt(aspect)
    cy = rng.uniform(min(parenchyma_top * wh + ry, 0.6 * wh), max(wh - 1.05 * ry, 0.6 * wh))
    cx = rng.uniform(min(1.05 * rx, ww / 2), max(ww - 1.05 * rx, ww / 2))
    if rng.random() < 0.15:  # the nodule runs out of the imaging window (bottom, left or right)
        side, overlap = rng.integers(3), rng.uniform(0.3, 0.8)
        if side == 0:
            cy = wh - ry * overlap
        else:
            cx = rx * overlap if side == 1 else ww - rx * overlap
    tilt = rng.uniform(-0.4, 0.4)
    profile = _radius_profile(rng, irregularity=0.45 if malignant else 0.18)

    dy, dx = rows - cy, cols - cx
    uy = (dy * np.cos(tilt) - dx * np.sin(tilt)) / ry
    ux = (dy * np.sin(tilt) + dx * np.cos(tilt)) / rx
    theta = np.arctan2(uy, ux)
    rho = np.hypot(uy, ux) / profile(theta)  # < 1 inside the true contour
    edge_blur = rng.uniform(0.015, 0.05) if not malignant else rng.uniform(0.008, 0.03)
    inside = 0.5 * (1.0 - np.tanh((rho - 1.0) / (2 * edge_blur)))  # a logistic step, overflow-free

    level = rng.choice([rng.uniform(0.25, 0.55), rng.uniform(0.55, 0.8)], p=[0.75, 0.25])
    texture = 1 + 0.12 * _smooth_noise(rng, (wh, ww), sigma=r0 / 6)
    nodule_echo = echo.mean() * level * texture
    if not malignant and rng.random() < 0.35:  # cystic (anechoic) parts
        cyst = (_smooth_noise(rng, (wh, ww), sigma=r0 / 4) > 0.8) & (rho < 0.75)
        nodule_echo = np.where(ndimage.gaussian_filter(cyst.astype(float), 1.5) > 0.5, 0.05, nodule_echo)
    echo = echo * (1 - inside) + nodule_echo * inside
    if rng.random() < (0.15 if malignant else 0.5):  # hypoechoic halo
        halo = np.exp(-(((rho - 0.95) / 0.04) ** 2))  # the capsule's rim, inside the annotation
        echo *= 1 - 0.6 * halo
    shadows = np.ones((wh, ww))
    if rng.random() < (0.6 if malignant else 0.15):  # microcalcifications with acoustic shadows
        n_calc = rng.integers(2, 9)
        ang = rng.uniform(0, 2 * np.pi, n_calc)
        rad = rng.uniform(0, 0.8, n_calc)
        py = cy + rad * r0 * np.sin(ang)
        px = cx + rad * r0 * np.cos(ang)
        for y, x in zip(py, px, strict=True):
            rr, cc = disk((y, x), rng.uniform(1.0, 2.5), shape=(wh, ww))
            echo[rr, cc] = rng.uniform(1.4, 2.2)
            col = (np.abs(cols - x) < 2.0) & (rows > y + 2)
            shadows = shadows * np.where(col, 0.55, 1.0)
        shadows = ndimage.gaussian_filter(shadows, (0.5, 1.5))

    # --- B-mode formation ----------------------------------------------------------------------
    speckle = _speckle(rng, (wh, ww), axial=rng.uniform(0.6, 1.0), lateral=rng.uniform(1.2, 2.2))
    attenuation = np.exp(-rng.uniform(0.5, 1.6) * depth) ** 0.6  # partially compensated by the TGC
    intensity = np.clip(echo, 0.0, None) * shadows * attenuation * speckle
    compressed = np.log1p(12 * intensity) / np.log1p(12 * 2.2)
    gain = rng.uniform(0.55, 0.85)
    window = np.clip(255 * gain * compressed + rng.normal(0, 3, (wh, ww)), 0, 255)

    image = np.zeros((h, w), dtype=np.uint8)
    image[top:bottom, left:right] = window.astype(np.uint8)
    if top or left:  # screen frame annotations: depth ticks, a grey bar, a few text-like marks
        for y in np.linspace(top, bottom - 3, rng.integers(4, 8)).astype(int):
            image[y : y + 2, max(left - 8, 0) : max(left - 4, 1)] = 200
        if left > 14:
            bar = np.linspace(255, 0, max(bottom - top, 2) // 3)[:, None]
            y0 = top + (bottom - top) // 3
            image[y0 : y0 + bar.shape[0], 3:7] = bar.astype(np.uint8)
        for _ in range(rng.integers(1, 5)):
            ty, tx = rng.integers(0, h - 6), rng.integers(0, w - 16)
            if top <= ty < bottom and left <= tx < right:
                continue
            block = rng.random((5, rng.integers(6, 16))) < 0.5
            image[ty : ty + 5, tx : tx + block.shape[1]][block] = 230

    # --- annotation: a polygon through the true contour, jittered by the annotator -------------
    n_vertices = int(rng.integers(24, 48))  # clicked fairly evenly along the contour
    t = (np.arange(n_vertices) + rng.uniform(-0.3, 0.3, n_vertices)) * (2 * np.pi / n_vertices)
    r = profile(t)
    if label_noise > 0:
        jitter = np.fft.irfft(np.fft.rfft(rng.standard_normal(n_vertices))[: max(n_vertices // 4, 2)], n=n_vertices)
        r = r * (1 + label_noise * jitter / (jitter.std() + 1e-8))
    uy_v, ux_v = r * np.sin(t), r * np.cos(t)
    dy_v = uy_v * ry * np.cos(tilt) + ux_v * rx * np.sin(tilt)
    dx_v = -uy_v * ry * np.sin(tilt) + ux_v * rx * np.cos(tilt)
    rr, cc = polygon(cy + dy_v + top, cx + dx_v + left, shape=(h, w))
    mask = np.zeros((h, w), dtype=np.uint8)
    mask[rr, cc] = 255
    mask[:top] = 0
    mask[bottom:] = 0
    mask[:, :left] = 0
    mask[:, right:] = 0
    if not mask.any():  # a degenerate draw: keep the annotation non-empty as in the real data
        mask[int(np.clip(cy + top, 0, h - 1)), int(np.clip(cx + left, 0, w - 1))] = 255
    return image, mask


def _write_thyroid_pair(job: tuple[int, int, int, int, float, float, str]) -> tuple[str, int]:
    seed, index, lo, hi, malignant_fraction, label_noise, folder = job
    rng = np.random.default_rng([seed, index])
    height, width = (int(v) for v in rng.integers(lo, hi + 1, size=2))
    malignant = bool(rng.random() < malignant_fraction)
    image, mask = thyroid_ultrasound_sample(rng, height, width, malignant, label_noise)
    Image.fromarray(image, mode="L").save(Path(folder) / "image" / f"{index}.PNG")
    Image.fromarray(mask, mode="L").save(Path(folder) / "mask" / f"{index}.PNG")
    return str(index), int(malignant)


def _map(fn: Callable[[Any], Any], jobs: list[Any], num_workers: int | None) -> list[Any]:
    """``[fn(j) for j in jobs]``, in worker processes (forked) when there are several CPUs and jobs.

    Every job carries its own seed, so the result does not depend on the number of workers.
    """
    workers = min(os.cpu_count() or 1, 8) if num_workers is None else int(num_workers)
    if workers <= 1 or len(jobs) < 8 or "fork" not in mp.get_all_start_methods():
        return [fn(j) for j in jobs]
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("fork")) as pool:
        return list(pool.map(fn, jobs, chunksize=max(1, len(jobs) // (4 * workers))))


def _distributed_rank() -> tuple[int, bool]:
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover - torch is a dependency
        return 0, False
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), True
    return 0, False


def _write_once(root: Path, params: dict[str, Any], writer: Callable[[Path], None], overwrite: bool) -> Path:
    """Write a dataset atomically into ``root``, or reuse it if it was written with the same parameters.

    Under ``torch.distributed`` only rank 0 writes; the other ranks wait at a barrier.
    """
    rank, distributed = _distributed_rank()
    if rank == 0:
        marker = root / _MARKER
        if root.exists() and not overwrite:
            if not marker.is_file():
                raise FileExistsError(
                    f"{root} exists and was not written by this generator (no {_MARKER}); "
                    "choose another folder or pass overwrite=True."
                )
            found = json.loads(marker.read_text())
            if found != params:
                raise FileExistsError(
                    f"{root} holds a synthetic dataset made with other parameters ({found}, asked {params}); "
                    "pass overwrite=True to replace it."
                )
        else:
            root.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
            try:
                writer(tmp)
                (tmp / _MARKER).write_text(json.dumps(params, indent=1))
                if root.exists():
                    shutil.rmtree(root)
                os.replace(tmp, root)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
    if distributed:
        import torch.distributed as dist

        dist.barrier()
    return root


def make_thyroid_ultrasound(
    root: str | os.PathLike,
    num_images: int = 200,
    seed: int = 0,
    size_range: tuple[int, int] = (300, 560),
    label_noise: float = 0.0,
    malignant_fraction: float = 0.4,
    overwrite: bool = False,
    num_workers: int | None = None,
) -> Path:
    """Write a synthetic thyroid-nodule ultrasound dataset in the TN-SCUI 2020 layout.

    The layout is that of the TN-SCUI 2020 challenge (Zhou et al. 2020), the dataset of
    Bakhtiariziabari & Ghafoorian, "Gambling Adversarial Nets for Hard Sample Mining and
    Structured Prediction: Application in Ultrasound Thyroid Nodule Segmentation"::

        root/image/<ID>.PNG    8-bit grayscale B-mode image, sizes between size_range
        root/mask/<ID>.PNG     8-bit nodule mask, values {0, 255}, same size as the image
        root/train.csv         columns ID,category (0 benign, 1 malignant)

    Each image is drawn by :func:`thyroid_ultrasound_sample` from its own generator
    ``numpy.random.default_rng([seed, index])``: the same seed gives the same bytes, and the first
    images do not change when ``num_images`` grows. The folder is written atomically (a
    temporary folder renamed into place) with a ``synthetic.json`` marker of the parameters; a
    second call with the same parameters reuses it, which makes the bundles' first-run generation
    idempotent. Under ``torch.distributed`` rank 0 writes and the other ranks wait.

    Args:
        root: the dataset folder to create.
        num_images: number of image/mask pairs.
        seed: the random seed.
        size_range: inclusive range of the image's height and width (each drawn independently).
        label_noise: radial jitter of the annotations as a fraction of the nodule radius
            (0 = exact annotations; 0.05 to 0.1 resembles inter-annotator variation).
        malignant_fraction: fraction of malignant-looking nodules (category 1).
        overwrite: replace an existing dataset written with other parameters.
        num_workers: processes that draw the images (None: the CPU count, at most 8); the bytes
            written do not depend on it.

    Returns:
        The dataset folder.

    Raises:
        ValueError: for a non-positive ``num_images``, a bad ``size_range`` or a negative ``label_noise``.
        FileExistsError: if ``root`` holds something else and ``overwrite`` is False.

    Example:
        >>> root = make_thyroid_ultrasound("/tmp/tnscui_synth", num_images=20, seed=0)
        >>> datalist = tnscui_datalist(root)
    """
    if int(num_images) < 1:
        raise ValueError(f"num_images must be at least 1, got {num_images}.")
    lo, hi = (int(v) for v in size_range)
    if not 32 <= lo <= hi:
        raise ValueError(f"size_range must be (low, high) with 32 <= low <= high, got {size_range}.")
    if not np.isfinite(label_noise) or label_noise < 0:
        raise ValueError(f"label_noise must be a non-negative number, got {label_noise}.")
    if not 0 <= malignant_fraction <= 1:
        raise ValueError(f"malignant_fraction must be in [0, 1], got {malignant_fraction}.")
    params = {
        "generator": "make_thyroid_ultrasound",
        "num_images": int(num_images),
        "seed": int(seed),
        "size_range": [lo, hi],
        "label_noise": float(label_noise),
        "malignant_fraction": float(malignant_fraction),
    }

    def writer(folder: Path) -> None:
        (folder / "image").mkdir()
        (folder / "mask").mkdir()
        jobs = [
            (int(seed), index, lo, hi, float(malignant_fraction), float(label_noise), str(folder))
            for index in range(1, int(num_images) + 1)
        ]
        rows = _map(_write_thyroid_pair, jobs, num_workers)
        with open(folder / "train.csv", "w", newline="") as f:
            out = csv.writer(f)
            out.writerow(["ID", "category"])
            out.writerows(rows)

    return _write_once(Path(root), params, writer, overwrite)
