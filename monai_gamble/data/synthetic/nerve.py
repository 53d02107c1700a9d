"""A seeded generator of brachial-plexus ultrasound sweeps in the layout of Kaggle's
"Ultrasound Nerve Segmentation" challenge (2016).

The real data are frames of ultrasound sweeps of the neck, one sweep per subject: consecutive
frames are nearly identical, the brachial plexus (BP) is visible, and annotated, on about 40% of
them, and a few frames are pixel-identical to another frame of the same subject but annotated
differently (Liao et al. found 9). The generator writes a stand-in with those properties, in the
same files, so that :func:`monai_gamble.data.nerve_datalist` reads both.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage.draw import polygon

from ..rle import rle_encode
from ._common import map_jobs, radius_profile, smooth_noise, write_once

__all__ = ["make_nerve_ultrasound", "nerve_ultrasound_sweep"]

#: size of the real images, (height, width)
NERVE_IMAGE_SHAPE = (420, 580)
#: range of the annotated BP area in the real data at 580x420 (Liao et al.: 2,000 to 12,000 px, min 2,684)
_AREA_RANGE = (2800.0, 11500.0)


def _complex_field(rng: np.random.Generator, shape: tuple[int, int], axial: float, lateral: float) -> np.ndarray:
    """A low-pass circular complex Gaussian field (the echo of many sub-resolution scatterers)."""
    re = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=(axial, lateral))
    im = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=(axial, lateral))
    z = re + 1j * im
    return z / np.sqrt(np.mean(np.abs(z) ** 2))


def _streaks(rng: np.random.Generator, shape: tuple[int, int], scale: float, density: float) -> np.ndarray:
    """Bright, laterally elongated streaks (fibrous septa, fascia fragments): the high tail of an
    anisotropically smoothed noise field, ``density`` setting how much of it shows."""
    g = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=(1.3 * scale, rng.uniform(8, 16) * scale))
    g /= g.std() + 1e-8
    return np.clip(g - (2.6 - density), 0, None)


def _subject_anatomy(rng: np.random.Generator, hc: int, wc: int, h: int, w: int) -> dict[str, np.ndarray | float]:
    """The echogenicity map of one subject's neck on a canvas larger than a frame, and its nerve."""
    scale = np.sqrt(h * w / (NERVE_IMAGE_SHAPE[0] * NERVE_IMAGE_SHAPE[1]))
    rows = np.arange(hc, dtype=np.float64)[:, None]
    cols = np.arange(wc, dtype=np.float64)[None, :]
    m = (hc - h) // 2, (wc - w) // 2
    depth = (rows - m[0]) / h

    # tissue regions: dark muscle bellies and brighter connective tissue, large smooth patches
    regions = np.tanh(1.4 * smooth_noise(rng, (hc, wc), sigma=rng.uniform(0.06, 0.1) * h))
    echo = 0.33 + 0.17 * regions + 0.05 * smooth_noise(rng, (hc, wc), sigma=3 * scale)
    echo += 0.5 * _streaks(rng, (hc, wc), scale, density=rng.uniform(0.6, 1.0))
    # skin and subcutaneous layers: bright horizontal lines near the top
    for d in np.sort(rng.uniform(0.0, 0.13, int(rng.integers(2, 5)))):
        echo += rng.uniform(0.4, 1.0) * np.exp(-(((depth - d) / (rng.uniform(0.004, 0.01))) ** 2))
    # fascia between the muscles (sternocleidomastoid, scalenes): long curved bright interfaces
    for d in np.sort(rng.uniform(0.15, 0.95, int(rng.integers(3, 7)))):
        curve = d * h + rng.uniform(0.02, 0.1) * h * np.sin(
            2 * np.pi * cols / (rng.uniform(0.8, 2.5) * wc) + rng.uniform(0, 2 * np.pi)
        )
        curve = curve + 0.015 * h * smooth_noise(rng, (1, wc), sigma=25 * scale)
        gaps = np.clip(1.2 + smooth_noise(rng, (1, wc), sigma=30 * scale), 0, 1)  # broken in places
        width = rng.uniform(1.5, 3.5) * scale
        echo += rng.uniform(0.5, 1.3) * gaps * np.exp(-(((rows - curve) / width) ** 2))

    # the brachial plexus: round hypoechoic fascicles in bright connective tissue (honeycomb)
    area = rng.uniform(*_AREA_RANGE) * scale**2
    aspect = rng.uniform(0.8, 2.0)  # width / height
    ry, rx = np.sqrt(area / np.pi / aspect), np.sqrt(area / np.pi * aspect)
    cy = m[0] + rng.uniform(0.25, 0.7) * h
    cx = m[1] + rng.uniform(0.25, 0.75) * w
    tilt = rng.uniform(-0.6, 0.6)
    profile = radius_profile(rng, irregularity=0.18, n_harmonics=4)
    dy, dx = rows - cy, cols - cx
    uy = (dy * np.cos(tilt) - dx * np.sin(tilt)) / ry
    ux = (dy * np.sin(tilt) + dx * np.cos(tilt)) / rx
    rho = np.hypot(uy, ux) / profile(np.arctan2(uy, ux))  # < 1 inside the nerve's outline
    inside = 0.5 * (1 - np.tanh((rho - 1.0) / 0.06))
    sheath = np.exp(-(((rho - 0.97) / 0.07) ** 2)) * np.clip(1.3 + smooth_noise(rng, (hc, wc), 6 * scale), 0, 1)
    visibility = rng.uniform(0.5, 1.0)  # some subjects' plexus is hard to see
    nerve_add = visibility * (rng.uniform(0.05, 0.15) * inside + rng.uniform(0.2, 0.5) * sheath)
    nerve_mul = np.ones((hc, wc))
    r_fascicle = rng.uniform(0.16, 0.3) * min(rx, ry)
    candidates = rng.uniform(-1, 1, size=(300, 2)) * (ry, rx)
    accepted: list[np.ndarray] = []
    for p in candidates:  # dart throwing: fascicles inside the outline, not overlapping
        py, px = p
        ey = (py * np.cos(tilt) + px * np.sin(tilt)) / ry
        ex = (-py * np.sin(tilt) + px * np.cos(tilt)) / rx
        if np.hypot(ey, ex) / profile(np.array([np.arctan2(ey, ex)]))[0] > 0.75:
            continue
        if accepted and np.min(np.hypot(*(np.asarray(accepted) - p).T)) < 2.4 * r_fascicle:
            continue
        accepted.append(p)
    for py, px in accepted:
        r = r_fascicle * rng.uniform(0.75, 1.25)
        level = 1 - visibility * rng.uniform(0.35, 0.65)
        y0, y1 = int(max(cy + py - 2 * r, 0)), int(min(cy + py + 2 * r + 1, hc))
        x0, x1 = int(max(cx + px - 2 * r, 0)), int(min(cx + px + 2 * r + 1, wc))
        d = np.hypot(rows[y0:y1] - cy - py, cols[:, x0:x1] - cx - px) / r
        nerve_mul[y0:y1, x0:x1] *= 1 - (1 - level) * 0.5 * (1 - np.tanh((d - 1.0) / 0.15))
        nerve_add[y0:y1, x0:x1] += visibility * 0.15 * np.exp(-(((d - 1.15) / 0.15) ** 2))  # a bright rim
    nerve_add *= 1 - inside * (1 - nerve_mul)  # the dark fascicles are not brightened
    # annotation: a polygon along the outline, as annotators click it
    n_vertices = int(rng.integers(20, 40))
    t = (np.arange(n_vertices) + rng.uniform(-0.3, 0.3, n_vertices)) * (2 * np.pi / n_vertices)
    r = profile(t)
    uy_v, ux_v = r * np.sin(t), r * np.cos(t)
    poly_y = cy + uy_v * ry * np.cos(tilt) + ux_v * rx * np.sin(tilt)
    poly_x = cx - uy_v * ry * np.sin(tilt) + ux_v * rx * np.cos(tilt)

    # an artery beside the plexus (anechoic, bright wall, posterior enhancement): a hard negative
    if rng.random() < 0.6:
        vr = rng.uniform(0.035, 0.06) * h
        side = rng.choice([-1.0, 1.0])
        vy = cy + rng.uniform(-0.5, 1.0) * ry
        vx = cx + side * (rx + vr + rng.uniform(5, 30) * scale)
        dist = np.hypot(rows - vy, cols - vx)
        lumen = np.clip(vr + 1.5 - dist, 0, 1.5) / 1.5
        below = (rows > vy) & (np.abs(cols - vx) < vr)
        echo = echo * (1 + 0.4 * below * np.exp(-(rows - vy) / (0.25 * h)))
        echo = echo * (1 - 0.92 * lumen) + 0.7 * np.exp(-(((dist - vr) / (1.5 * scale)) ** 2))
    attenuation = np.exp(-rng.uniform(0.2, 0.8) * np.clip(depth, 0, None))
    return {
        "echo": np.clip(echo, 0.02, None) * attenuation,
        "nerve_mul": nerve_mul,
        "nerve_add": nerve_add * attenuation,
        "poly_y": poly_y,
        "poly_x": poly_x,
        "gain": rng.uniform(0.85, 1.05),
    }


def nerve_ultrasound_sweep(
    rng: np.random.Generator,
    num_frames: int,
    height: int = NERVE_IMAGE_SHAPE[0],
    width: int = NERVE_IMAGE_SHAPE[1],
    presence: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Render one subject's ultrasound sweep of the neck and the BP annotation of each frame.

    The subject's anatomy is drawn once on a canvas a little larger than a frame: muscle bellies
    with striations between curved bright fascia, an anechoic artery beside the nerve on most
    subjects, and the brachial plexus, a cluster of round hypoechoic fascicles in hyperechoic
    connective tissue inside a bright sheath (the "honeycomb" pattern). Each frame is a crop of
    the canvas at a probe position that drifts by a pixel or two between frames, times a speckle
    field (the magnitude of a low-pass complex Gaussian field) that is 92% correlated with the
    subject's, so consecutive frames are nearly identical. The plexus is visible, and annotated,
    on one contiguous run of frames; just outside the run it is sometimes faintly visible but not
    annotated, which makes neighbouring frames look alike with different labels, as in the real
    data. The annotation is one polygon (one connected piece) of 2,800 to 11,500 pixels at
    580x420 (scaled with the image area otherwise), the range of the real masks.

    Args:
        rng: the random generator (the sweep is a deterministic function of its state).
        num_frames: number of frames.
        height: frame height (the real one: 420).
        width: frame width (the real one: 580).
        presence: fraction of frames with the plexus; None draws it from U(0.15, 0.7) (mean 0.425).
            At least one frame is positive and, with two frames or more, one is negative.

    Returns:
        ``(images, masks)``: ``uint8`` arrays of shape ``(num_frames, height, width)``; the masks
        hold {0, 255}.

    Raises:
        ValueError: for fewer than one frame, a frame smaller than 64 pixels a side, or a presence
            outside [0, 1].
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}.")
    if height < 64 or width < 64:
        raise ValueError(f"frames must be at least 64x64, got {height}x{width} (HxW).")
    if presence is not None and not 0 <= presence <= 1:
        raise ValueError(f"presence must be in [0, 1], got {presence}.")
    h, w = int(height), int(width)
    margin = max(8, int(0.06 * w))
    hc, wc = h + 2 * margin, w + 2 * margin
    anatomy = _subject_anatomy(rng, hc, wc, h, w)
    scale = np.sqrt(h * w / (NERVE_IMAGE_SHAPE[0] * NERVE_IMAGE_SHAPE[1]))
    axial, lateral = rng.uniform(1.2, 2.0) * scale, rng.uniform(3.0, 5.0) * scale
    base = _complex_field(rng, (hc, wc), axial, lateral)

    # which frames show the plexus: one contiguous run
    frac = rng.uniform(0.15, 0.7) if presence is None else presence
    n_pos = int(np.clip(round(frac * num_frames), 1, max(num_frames - 1, 1)))
    start = int(rng.integers(0, num_frames - n_pos + 1))
    positive = np.zeros(num_frames, dtype=bool)
    positive[start : start + n_pos] = True
    contrast = positive.astype(float)
    for edge in (start - 1, start + n_pos):  # faint, unannotated plexus next to the run
        if 0 <= edge < num_frames and rng.random() < 0.5:
            contrast[edge] = rng.uniform(0.2, 0.5)

    # probe positions: a slow random walk inside the margin
    walk = np.cumsum(rng.normal(0, [0.8, 1.6], size=(num_frames, 2)), axis=0)
    walk -= walk.mean(0)
    offsets = np.clip(np.rint(walk), -margin, margin).astype(int) + margin

    images = np.zeros((num_frames, h, w), dtype=np.uint8)
    masks = np.zeros((num_frames, h, w), dtype=np.uint8)
    rho = 0.92
    for f in range(num_frames):
        oy, ox = offsets[f]
        crop = (slice(oy, oy + h), slice(ox, ox + w))
        c = contrast[f]
        echo = anatomy["echo"][crop] * (1 - c * (1 - anatomy["nerve_mul"][crop])) + c * anatomy["nerve_add"][crop]
        z = rho * base[crop] + np.sqrt(1 - rho**2) * _complex_field(rng, (h, w), axial, lateral)
        intensity = echo * (0.35 + 0.65 * np.abs(z))
        compressed = np.log1p(4 * intensity) / np.log1p(4 * 1.2)
        frame = 255 * anatomy["gain"] * compressed + rng.normal(0, 1.5, (h, w))
        frame[: max(2, h // 60), w // 2 - w // 60 : w // 2 + w // 60] = 128  # the probe's orientation mark
        images[f] = np.clip(frame, 0, 255).astype(np.uint8)
        if positive[f]:
            jitter = rng.normal(0, 1.2 * scale, size=(2, anatomy["poly_y"].size))  # each frame annotated anew
            rr, cc = polygon(anatomy["poly_y"] - oy + jitter[0], anatomy["poly_x"] - ox + jitter[1], shape=(h, w))
            masks[f, rr, cc] = 255
    return images, masks


def _write_subject(job: tuple[int, int, int, int, int, int, str]) -> list[tuple[int, int, str]]:
    seed, subject, num_frames, height, width, n_conflicts, folder = job
    rng = np.random.default_rng([seed, 0, subject])
    images, masks = nerve_ultrasound_sweep(rng, num_frames, height, width)
    if n_conflicts:  # a negative frame made pixel-identical to a positive one, its mask left empty
        pos = np.flatnonzero(masks.reshape(num_frames, -1).any(1))
        neg = np.flatnonzero(~masks.reshape(num_frames, -1).any(1))
        for j in rng.choice(neg, size=min(n_conflicts, neg.size), replace=False):
            images[j] = images[rng.choice(pos)]
    out = Path(folder) / "train"
    rows = []
    for f in range(num_frames):
        name = f"{subject}_{f + 1}"
        Image.fromarray(images[f], mode="L").save(out / f"{name}.tif", compression="tiff_lzw")
        Image.fromarray(masks[f], mode="L").save(out / f"{name}_mask.tif", compression="tiff_lzw")
        rows.append((subject, f + 1, rle_encode(masks[f])))
    return rows


def _write_test_image(job: tuple[int, int, int, int, str]) -> None:
    seed, index, height, width, folder = job
    rng = np.random.default_rng([seed, 1, index])
    images, masks = nerve_ultrasound_sweep(rng, 3, height, width, presence=float(rng.random() < 0.4))
    frame = int(np.flatnonzero(masks.reshape(3, -1).any(1))[0]) if masks.any() else 0
    Image.fromarray(images[frame], mode="L").save(Path(folder) / "test" / f"{index}.tif", compression="tiff_lzw")


def make_nerve_ultrasound(
    root: str | os.PathLike,
    num_subjects: int = 10,
    images_per_subject: int = 20,
    seed: int = 0,
    num_test_images: int = 10,
    num_conflicts: int | None = None,
    image_shape: tuple[int, int] = NERVE_IMAGE_SHAPE,
    overwrite: bool = False,
    num_workers: int | None = None,
) -> Path:
    """Write a synthetic brachial-plexus ultrasound dataset in the layout of Kaggle's nerve challenge.

    The layout of Kaggle's "Ultrasound Nerve Segmentation" (2016), as used by Liao, Ng & Hung,
    "Ultrasound Nerve Segmentation" (erosion mask smoothing and ASME)::

        root/train/<subject>_<n>.tif        8-bit grayscale frame, LZW TIFF, 580x420 by default
        root/train/<subject>_<n>_mask.tif   BP annotation, values {0, 255}, empty when no BP
        root/train_masks.csv                subject,img,pixels (Kaggle RLE, empty when no BP)
        root/test/<k>.tif                   unlabelled frames of other subjects, k = 1..num_test_images

    Each subject is a sweep drawn by :func:`nerve_ultrasound_sweep` from
    ``numpy.random.default_rng([seed, 0, subject])`` (test image ``k`` from
    ``default_rng([seed, 1, k])``): the same seed gives the same pixels, and the first subjects do
    not change when ``num_subjects`` grows. The BP is annotated on about 40% of the frames. In
    ``num_conflicts`` subjects one frame without the BP is made pixel-identical to a frame with it
    (its mask stays empty): the conflicting duplicates that :func:`~monai_gamble.data.nerve_datalist`
    can drop, as the real data hold. The folder is written atomically with a ``synthetic.json``
    marker of the parameters; a second call with the same parameters reuses it. Under
    ``torch.distributed`` rank 0 writes and the other ranks wait.

    Args:
        root: the dataset folder to create.
        num_subjects: number of subjects (sweeps), numbered from 1.
        images_per_subject: frames per subject (the real data: 120).
        seed: the random seed.
        num_test_images: unlabelled images in ``test/`` (0 for none).
        num_conflicts: subjects with one conflicting duplicate; None: one per 10 subjects, at least
            one (the real data: 9 in 5,635 images).
        image_shape: ``(height, width)`` of the frames; the BP area range scales with the area.
        overwrite: replace an existing dataset written with other parameters.
        num_workers: processes that draw the subjects (None: the CPU count, at most 8); the bytes
            written do not depend on it.

    Returns:
        The dataset folder.

    Raises:
        ValueError: for fewer than one subject, fewer than two images per subject (a subject needs
            frames with and without the BP), more conflicts than subjects, a negative number of
            test images, or frames smaller than 64x64.
        FileExistsError: if ``root`` holds something else and ``overwrite`` is False.

    Example:
        >>> root = make_nerve_ultrasound("/tmp/nerve_synth", num_subjects=4, images_per_subject=10)
        >>> datalist = nerve_datalist(root)
    """
    if int(num_subjects) < 1:
        raise ValueError(f"num_subjects must be at least 1, got {num_subjects}.")
    if int(images_per_subject) < 2:
        raise ValueError(
            f"images_per_subject must be at least 2 (frames with and without the nerve), got {images_per_subject}."
        )
    if int(num_test_images) < 0:
        raise ValueError(f"num_test_images must not be negative, got {num_test_images}.")
    h, w = (int(v) for v in image_shape)
    if h < 64 or w < 64:
        raise ValueError(f"image_shape must be at least (64, 64), got {tuple(image_shape)}.")
    n_conf = max(1, int(num_subjects) // 10) if num_conflicts is None else int(num_conflicts)
    if not 0 <= n_conf <= int(num_subjects):
        raise ValueError(f"num_conflicts must be between 0 and num_subjects ({num_subjects}), got {num_conflicts}.")
    params = {
        "generator": "make_nerve_ultrasound",
        "num_subjects": int(num_subjects),
        "images_per_subject": int(images_per_subject),
        "seed": int(seed),
        "num_test_images": int(num_test_images),
        "num_conflicts": n_conf,
        "image_shape": [h, w],
    }

    def writer(folder: Path) -> None:
        (folder / "train").mkdir()
        (folder / "test").mkdir()
        chosen = set(np.random.default_rng([int(seed), 2]).permutation(int(num_subjects))[:n_conf] + 1)
        jobs = [
            (int(seed), s, int(images_per_subject), h, w, int(s in chosen), str(folder))
            for s in range(1, int(num_subjects) + 1)
        ]
        rows = [row for subject_rows in map_jobs(_write_subject, jobs, num_workers) for row in subject_rows]
        with open(folder / "train_masks.csv", "w", newline="") as f:
            out = csv.writer(f)
            out.writerow(["subject", "img", "pixels"])
            out.writerows(rows)
        test_jobs = [(int(seed), k, h, w, str(folder)) for k in range(1, int(num_test_images) + 1)]
        map_jobs(_write_test_image, test_jobs, num_workers)

    return write_once(Path(root), params, writer, overwrite)
