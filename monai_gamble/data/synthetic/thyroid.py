"""A seeded generator of thyroid-nodule ultrasound in the TN-SCUI 2020 layout (DDTI-like screens:
speckle, hypoechoic nodules, the scanner's overlay), read by :func:`monai_gamble.data.tnscui_datalist`."""

from __future__ import annotations

import csv
import functools
import os
from pathlib import Path
from typing import Any

import numpy as np
from monai.utils import StrEnum, look_up_option
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage
from skimage.draw import disk, polygon

from ._common import map_jobs, radius_profile, write_once

__all__ = ["ThyroidScanLayout", "make_thyroid_ultrasound", "thyroid_ultrasound_sample"]

#: version of the thyroid generator, in its marker: a dataset of an older version is not reused silently
_THYROID_VERSION = 3


def _speckle(
    rng: np.random.Generator, shape: tuple[int, int], axial: float, lateral: float, looks: int = 1
) -> np.ndarray:
    """Fully developed speckle, ``float32`` of mean 1: the magnitude of low-pass complex Gaussian fields.

    The point-spread function of a linear probe is longer laterally than axially, so each complex
    field is smoothed anisotropically (``axial`` along rows, ``lateral`` along columns); one look is
    Rayleigh distributed. Spatial compounding adds the intensities of ``looks`` independent looks
    (a square-root Gamma amplitude: the speckle contrast falls as ``1 / sqrt(looks)``; Burckhardt
    1978, "Speckle in ultrasound B-mode scans", IEEE Trans. Sonics Ultrason. 25(1)).
    """
    intensity = np.zeros(shape, dtype=np.float32)
    for _ in range(2 * looks):  # the real and imaginary parts of each look
        part = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), (axial, lateral), truncate=3.0)
        intensity += part * part
    mag = np.sqrt(intensity)
    return mag / (mag.mean() + 1e-8)


class ThyroidScanLayout(StrEnum):
    """How a thyroid ultrasound image of the DDTI / TN-SCUI kind is framed on the scanner's screen.

    - ``WHOLE``: a single-view screen, 560x360 in DDTI: the imaging window in the middle, black
      margins on both sides with the grey-scale bar, the depth scale, the side label ("DER"/"IZQ"),
      the parameter block and the probe icon.
    - ``LEFT``: the left half of a double-view screen (280 or 315 px wide in DDTI): the grey-scale
      bar and the depth scale on the left, the imaging window running to the right border (the cut).
    - ``RIGHT``: the right half (280 or 245 px wide): the window from the left border, the
      parameter column of both views on the right.
    """

    WHOLE = "whole"
    LEFT = "left"
    RIGHT = "right"


#: height of the DDTI images (all 517 real ones are 360 px high)
DDTI_HEIGHT = 360
#: the layouts' share of the 517 real DDTI images (235 whole scans, 141 + 141 half-scan crops)
_LAYOUT_MIX = {
    ThyroidScanLayout.WHOLE: 235 / 517,
    ThyroidScanLayout.LEFT: 141 / 517,
    ThyroidScanLayout.RIGHT: 141 / 517,
}
#: widths of each layout in DDTI and their shares (left halves: 124 x 280, 17 x 315; right: 124 x 280, 17 x 245)
_LAYOUT_WIDTHS = {
    ThyroidScanLayout.WHOLE: ((560,), (1.0,)),
    ThyroidScanLayout.LEFT: ((280, 315), (124 / 141, 17 / 141)),
    ThyroidScanLayout.RIGHT: ((280, 245), (124 / 141, 17 / 141)),
}
_PROBES = ("12L6", "L12-5", "9L4", "L14-5", "11L", "L7-4")


_F32 = np.float32  # the tissue model and the image formation work in single precision (twice as fast)


def _noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float | tuple[float, float]) -> np.ndarray:
    """Gaussian-filtered white noise of zero mean and unit standard deviation, in ``float32``.

    A field smoother than 3 px along an axis is drawn on a grid coarser along it and interpolated
    back (it is smooth at that scale anyway), which keeps the cost nearly independent of ``sigma``.
    """
    sig = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (2,))
    factor = np.maximum(1, (sig // 3).astype(int))
    coarse = tuple(int(-(-n // k) + 1) if k > 1 else n for n, k in zip(shape, factor, strict=True))
    field = rng.standard_normal(coarse, dtype=_F32)
    field = ndimage.gaussian_filter(field, sigma=tuple(sig / factor), mode="reflect", truncate=3.0)
    if factor.max() > 1:  # bilinear interpolation back to the full grid
        size = (int(coarse[1] * factor[1]), int(coarse[0] * factor[0]))
        field = np.array(Image.fromarray(field, mode="F").resize(size, Image.Resampling.BILINEAR))
        field = field[: shape[0], : shape[1]]
    field -= field.mean()
    return field / (field.std() + 1e-6)


def _step(z: np.ndarray | float) -> np.ndarray:
    """A smooth step from 0 to 1 (``(1 + tanh z) / 2``, overflow-free)."""
    return 0.5 * (1.0 + np.tanh(z))


def _wiggle(rng: np.random.Generator, cols: np.ndarray, amplitude: float, period: float) -> np.ndarray:
    """A smooth random curve ``y(x)`` of zero mean: two sinusoids of random phase, ``amplitude`` in px."""
    ph = rng.uniform(0.0, 2 * np.pi, 2)
    return amplitude * (
        0.7 * np.sin(2 * np.pi * cols / period + ph[0]) + 0.3 * np.sin(4 * np.pi * cols / period + ph[1])
    )


def _ridge(distance: np.ndarray, width: float) -> np.ndarray:
    """A specular interface: ``exp(-(d / width)^2)`` of the signed distance ``d`` to it."""
    return np.exp(-((distance / width) ** 2))


def _striations(rng: np.random.Generator, shape: tuple[int, int], mm: float) -> np.ndarray:
    """Fibrillar muscle echotexture: noise stretched along the fibres (laterally), mean 1."""
    return 1.0 + 0.35 * _noise(rng, shape, sigma=(0.35 * mm, 4.0 * mm))


@functools.lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _window_box(rng: np.random.Generator, layout: ThyroidScanLayout, h: int, w: int) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)`` of the imaging window, as measured on the DDTI screens.

    Whole scans: rows 7-309 and columns 86-472 of 560 (a zoomed window on some: lower top, narrower);
    left halves: rows 6-309, columns 34 to the cut; right halves: rows 7-309, columns 0-247; the
    315 / 245 px wide half-scans have a taller window (rows 10-335).
    """
    f = h / DDTI_HEIGHT
    if layout == ThyroidScanLayout.WHOLE:
        top = rng.uniform(5, 9) if rng.random() < 0.8 else rng.uniform(15, 75)
        bottom = rng.uniform(306, 311)
        left = w * (rng.uniform(84, 90) + (rng.uniform(0, 80) if rng.random() < 0.2 else 0.0)) / 560
        right = w * (rng.uniform(468, 474) - (rng.uniform(0, 60) if rng.random() < 0.15 else 0.0)) / 560
        return int(top * f), int(bottom * f), int(left), int(right)
    if layout == ThyroidScanLayout.LEFT:
        tall = w > 0.83 * h
        top, bottom = (
            (rng.uniform(9, 11), rng.uniform(330, 336)) if tall else (rng.uniform(5, 8), rng.uniform(306, 311))
        )
        return int(top * f), int(bottom * f), int(rng.uniform(33, 37) * f), w
    right = min(w, int(rng.uniform(245, 249) * f))
    tall = w - right < 20 * f
    top, bottom = (rng.uniform(9, 11), rng.uniform(330, 336)) if tall else (rng.uniform(5, 8), rng.uniform(306, 311))
    return int(top * f), int(bottom * f), 0, right


def _nodule_extent(inside: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column (``axis=0``) the first and last row of ``inside``, and whether the column has any."""
    has = inside.any(axis=axis)
    first = np.argmax(inside, axis=axis).astype(_F32)
    last = (inside.shape[axis] - 1 - np.argmax(np.flip(inside, axis=axis), axis=axis)).astype(_F32)
    return first, last, has


def _thyroid_scene(
    rng: np.random.Generator, wh: int, ww: int, malignant: bool
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], dict[str, Any]]:
    """The tissue model of the imaging window: backscatter amplitude, a shadowing field, the structures.

    Returns ``(echo, shadow, structures, nodule)``: ``echo`` the echogenicity (backscatter
    amplitude, thyroid parenchyma = 1), ``shadow`` the multiplicative field of acoustic shadows and
    posterior enhancements, ``structures`` boolean masks, and ``nodule`` the parameters of the
    nodule's true contour (for the annotation).
    """
    rows = np.arange(wh, dtype=_F32)[:, None]
    cols = np.arange(ww, dtype=_F32)[None, :]
    shape = (wh, ww)
    mm = wh / rng.uniform(38.0, 55.0)  # px per mm: a linear probe showing 3.8-5.5 cm of depth
    transverse = rng.random() < 0.55
    side = float(rng.choice([-1.0, 1.0]))  # the lateral direction (towards the carotid) in the image
    structures: dict[str, np.ndarray] = {}

    # --- the nodule's place and size: DDTI's global statistics -------------------------------------
    # bounding-box height: log-normal, median 0.33 window heights (sd of the log 0.42); width/height
    # 1.3 (benign wider than tall, malignant nodules taller on average); centre near 0.39 of the window's
    # height and 0.54 of its width.
    nh = wh * float(np.clip(np.exp(rng.normal(np.log(0.33), 0.42)), 0.1, 0.85))
    aspect = float(np.clip(np.exp(rng.normal(0.12 if malignant else 0.33, 0.22)), 0.6, 2.8))
    nw = min(nh * aspect, 0.98 * ww)
    ry, rx = nh / 2, nw / 2
    cy = float(np.clip(wh * rng.normal(0.38, 0.08), ry + rng.uniform(3.5, 6.0) * mm, wh - 0.55 * ry))
    cx = float(np.clip(ww * rng.normal(0.54, 0.07), 0.6 * rx, ww - 0.6 * rx))
    tilt = rng.uniform(-0.25, 0.25)
    profile = radius_profile(rng, irregularity=0.5 if malignant else rng.uniform(0.05, 0.25))
    extent = float(profile(np.linspace(0, 2 * np.pi, 128, endpoint=False)).max())
    ry, rx = ry / extent, rx / extent  # the drawn size is the bounding box's
    dy, dx = rows - cy, cols - cx
    uy = (dy * np.cos(tilt) - dx * np.sin(tilt)) / ry
    ux = (dy * np.sin(tilt) + dx * np.cos(tilt)) / rx
    theta = np.arctan2(uy, ux)
    rho = np.hypot(uy, ux) / profile(theta)  # < 1 inside the true contour
    r_mean = 0.5 * (rx + ry)
    nodule_core = rho < 1.0
    keep_out = rho < 1.0 + 1.2 * mm / r_mean  # other structures stay 1.2 mm away from the nodule
    n_top, n_bottom, n_cols = _nodule_extent(nodule_core, axis=0)

    # --- superficial layers: skin, subcutaneous fat, strap muscles ---------------------------------
    y_skin = rng.uniform(0.0, 1.2) * mm + _wiggle(rng, cols, 0.3 * mm, ww * rng.uniform(0.8, 2.0))
    # the deeper layers bend (the neck is curved, the probe is not): a parabola of random sign
    bend = rng.uniform(-1.0, 1.0) * 6.0 * mm * ((cols - rng.uniform(0.3, 0.7) * ww) / ww) ** 2
    y_fat = y_skin + rng.uniform(1.5, 4.5) * mm + 0.4 * bend + _wiggle(rng, cols, 0.6 * mm, ww * rng.uniform(0.6, 1.5))
    gland_top = (
        y_fat + rng.uniform(2.0, 6.5) * mm + 0.6 * bend + _wiggle(rng, cols, 1.2 * mm, ww * rng.uniform(0.6, 1.5))
    )
    # a nodule that bulges anteriorly pushes the capsule (and the muscles) up
    gland_top = np.where(n_cols, np.minimum(gland_top, n_top - rng.uniform(0.3, 2.0) * mm), gland_top)
    gland_top = ndimage.gaussian_filter1d(gland_top, 2 * mm, axis=1, mode="nearest")
    y_fat = np.minimum(y_fat, gland_top - 0.8 * mm)
    y_skin = np.minimum(y_skin, y_fat - 0.6 * mm)

    # deep soft tissue: mostly darker than the gland, mottled, with echogenic fibrous strands
    echo = rng.uniform(0.35, 0.85) * np.exp(0.25 * _noise(rng, shape, 3 * mm) + 0.3 * _noise(rng, shape, 0.8 * mm))
    echo += rng.uniform(0.3, 1.0) * np.clip(_noise(rng, shape, (0.3 * mm, 2.5 * mm)) - 1.2, 0, None)
    fat = (rows > y_skin) & (rows < y_fat)
    echo = np.where(fat, 0.45 * (1 + 0.25 * _noise(rng, shape, sigma=0.8 * mm)), echo)
    strap = (rows >= y_fat) & (rows < gland_top)
    striated = _striations(rng, shape, mm)
    echo = np.where(strap, 0.32 * striated, echo)
    muscle = strap.copy()

    # --- the thyroid gland -------------------------------------------------------------------------
    bottom_base = cy + 1.05 * ry + rng.uniform(0.5, 6.0) * mm
    if transverse:
        # lobe: from its lateral border (near the carotid) to its medial end, where the isthmus
        # crosses over the trachea; deepest in its middle, tapering at both ends
        x_lat = cx + side * (rx + rng.uniform(0.5, 6.0) * mm)
        x_med = cx - side * (rx + rng.uniform(2.0, 10.0) * mm)
        gcx, gax = 0.5 * (x_lat + x_med), 0.5 * abs(x_lat - x_med)
        t = np.sqrt(np.clip(1 - ((cols - gcx) / gax) ** 2, 0, 1))
        gland_bottom = gland_top + (bottom_base + bend - gland_top) * t**0.6 + _wiggle(rng, cols, 0.8 * mm, ww)
        isthmus_thick = rng.uniform(2.0, 5.0) * mm
        medial = side * (cols - x_med) < 0
        gland_bottom = np.where(medial, gland_top + isthmus_thick, gland_bottom)
    else:
        # longitudinal: a band across the window, ending at a pole on some images
        gland_bottom = bottom_base + bend + _wiggle(rng, cols, 1.5 * mm, ww * rng.uniform(0.8, 2.0))
        if rng.random() < 0.5:
            pole_side = float(rng.choice([-1.0, 1.0]))
            x_pole = cx + pole_side * (rx + rng.uniform(3.0, 15.0) * mm)
            taper = np.clip(pole_side * (x_pole - cols) / (rng.uniform(5.0, 12.0) * mm), 0, 1) ** 0.5
            gland_bottom = gland_top + (gland_bottom - gland_top) * taper
    gland_bottom = np.where(n_cols, np.maximum(gland_bottom, n_bottom + rng.uniform(0.3, 1.5) * mm), gland_bottom)
    gland = (rows >= gland_top) & (rows < gland_bottom)
    parenchyma = 1.0 + 0.08 * _noise(rng, shape, sigma=3 * mm) + 0.12 * _noise(rng, shape, sigma=1.2 * mm)
    if rng.random() < 0.35:  # thyroiditis: a heterogeneous gland with hypoechoic micronodules
        patches = np.clip(_noise(rng, shape, sigma=1.5 * mm) - 0.3, 0, None)
        parenchyma = parenchyma * (1 - 0.45 * np.clip(patches, 0, 1.5) / 1.5)
    echo = np.where(gland, parenchyma, echo)

    # deep structures below the gland: longus colli, a fascia, the vertebral surface on some
    deep_y = float(np.median(gland_bottom))
    if rng.random() < 0.7:
        lc_cx = (cx + side * rng.uniform(-0.3, 0.6) * rx) if transverse else ww / 2
        lc_rx = rng.uniform(6.0, 11.0) * mm if transverse else ww
        lc_ry = rng.uniform(2.0, 4.5) * mm
        lc_cy = deep_y + rng.uniform(1.0, 4.0) * mm + lc_ry
        lc = ((((rows - lc_cy) / lc_ry) ** 2 + ((cols - lc_cx) / lc_rx) ** 2) < 1) & ~gland & ~keep_out
        echo = np.where(lc, 0.33 * striated, echo)
        muscle |= lc
    specular = np.zeros(shape)
    for _ in range(rng.integers(1, 3)):  # fascial planes in the deep tissue
        y = deep_y + rng.uniform(2.0, 14.0) * mm + _wiggle(rng, cols, 1.5 * mm, ww * rng.uniform(0.5, 1.5))
        specular += rng.uniform(0.3, 0.8) * _ridge(rows - y, 0.35 * mm) * ~gland
    shadow = np.ones(shape)
    if rng.random() < 0.35:  # vertebral body / transverse process: a bright curved surface with a full shadow
        xb, half = rng.uniform(0.1, 0.9) * ww, rng.uniform(6.0, 15.0) * mm
        yb = deep_y + rng.uniform(6.0, 14.0) * mm + 0.02 / mm * (cols - xb) ** 2
        span = _step((half - np.abs(cols - xb)) / (0.7 * mm))
        specular += 2.0 * _ridge(rows - yb, 0.5 * mm) * span
        shadow *= 1 - 0.9 * span * _step((rows - yb - 0.6 * mm) / (0.4 * mm))

    # --- vessels: the carotid artery and jugular vein (transverse), a vessel along the image (longitudinal)
    vessel = np.zeros(shape, dtype=bool)
    enhancement = np.ones(shape)

    def add_vessel(lumen: np.ndarray, wall: np.ndarray, x0: float, half_width: float, y_from: float) -> None:
        nonlocal echo, specular, enhancement, vessel
        soft = _step(lumen / 0.6)
        echo = echo * (1 - soft) + rng.uniform(0.02, 0.1) * soft  # blood: anechoic, or faint slow-flow echoes
        specular = specular + 1.3 * wall
        col = _step((half_width - np.abs(cols - x0)) / (0.5 * mm)) * (rows > y_from)
        enhancement = enhancement * (1 + rng.uniform(0.2, 0.5) * col * np.exp(-(rows - y_from) / (8 * mm)))
        vessel = vessel | (lumen > -0.5)

    if transverse:
        r_car = rng.uniform(2.8, 4.3) * mm
        x_car = x_lat + side * r_car * rng.uniform(0.2, 1.0)
        y_car = 0.5 * (float(np.median(gland_top)) + bottom_base) + rng.uniform(-0.1, 0.5) * 0.5 * (bottom_base - cy)
        for _ in range(4):  # keep the artery off the nodule: move it laterally
            d = np.hypot(rows - y_car, cols - x_car)
            if not (keep_out & (d < r_car + 1.0 * mm)).any():
                break
            x_car += side * 0.6 * r_car
        else:
            d = None
        if d is not None and rng.random() < 0.9:
            wall = _ridge(d - r_car, 0.4 * mm) * (0.5 + 0.5 * np.abs((rows - y_car) / (d + 1e-6)))
            add_vessel(r_car - d, wall, x_car, 0.9 * r_car, y_car)
            gland &= d > r_car + 0.3 * mm
            if rng.random() < 0.55:  # the internal jugular vein, lateral and anterior, flattened
                vy, vx = y_car - r_car * rng.uniform(0.2, 0.8), x_car + side * r_car * rng.uniform(1.3, 2.2)
                jr_y, jr_x = r_car * rng.uniform(0.35, 0.9), r_car * rng.uniform(1.0, 2.0)
                q = np.hypot((rows - vy) / jr_y, (cols - vx) / jr_x)
                if not (keep_out & (q < 1.15)).any():
                    add_vessel((1 - q) * min(jr_x, jr_y), 0.6 * _ridge((q - 1) * jr_y, 0.35 * mm), vx, 0.9 * jr_x, vy)
            # sternocleidomastoid: a large hypoechoic oval over the vessels, superficial to the lobe
            sx, sy = x_car + side * rng.uniform(0.0, 1.5) * r_car, float(np.median(y_fat)) + rng.uniform(2.0, 5.0) * mm
            s_rx, s_ry = rng.uniform(8.0, 15.0) * mm, rng.uniform(2.5, 5.0) * mm
            scm = ((((rows - sy) / s_ry) ** 2 + ((cols - sx) / s_rx) ** 2) < 1) & ~gland & ~vessel & ~keep_out
            echo = np.where(scm, 0.3 * striated, echo)
            specular += 0.6 * _ridge((np.hypot((rows - sy) / s_ry, (cols - sx) / s_rx) - 1) * s_ry, 0.3 * mm) * ~gland
            muscle |= scm
    elif rng.random() < 0.5:  # longitudinal: a vessel running across the image below the gland
        rv = rng.uniform(2.5, 4.0) * mm
        yv = deep_y + rng.uniform(1.5, 6.0) * mm + rv + rng.uniform(-0.05, 0.05) * (cols - ww / 2)
        d = np.abs(rows - yv)
        if not (keep_out & (d < rv + 1.0 * mm)).any() and float(np.min(yv)) + rv < wh:
            add_vessel(rv - d, _ridge(d - rv, 0.4 * mm), ww / 2, ww, float(np.max(yv)))

    # --- the trachea (transverse): a bright ring behind the isthmus, air shadow and reverberations --
    trachea = np.zeros(shape, dtype=bool)
    if transverse:
        r_tr = rng.uniform(6.0, 9.0) * mm
        x_tr = x_med - side * r_tr * rng.uniform(0.7, 1.4)
        for _ in range(4):
            col_tr = int(np.clip(x_tr, 0, ww - 1))
            y_top = float(gland_top[0, col_tr]) + isthmus_thick + rng.uniform(0.3, 1.0) * mm
            y_tr = y_top + r_tr
            d = np.hypot(rows - y_tr, cols - x_tr)
            region = (np.abs(cols - x_tr) < 0.95 * r_tr) & (rows > y_top - 0.5 * mm)
            if not (region & keep_out).any():
                break
            x_tr -= side * 0.5 * r_tr
        else:
            region = None
        if region is not None and region.any():
            arc = (rows < y_tr) * _step((0.9 * r_tr - np.abs(cols - x_tr)) / mm)
            specular += 2.2 * _ridge(d - r_tr, 0.5 * mm) * arc
            spacing = rng.uniform(1.5, 3.0) * mm
            for k in range(1, 4):  # reverberation: fading copies of the ring below it
                dk = np.hypot(rows - y_tr - k * spacing, cols - x_tr)
                specular += 0.7 * 0.55**k * _ridge(dk - r_tr, 0.5 * mm) * arc * (rows > y_top + k * spacing - mm)
            air = _step((0.92 * r_tr - np.abs(cols - x_tr)) / (0.6 * mm)) * _step(
                (rows - y_top - 0.8 * mm) / (0.5 * mm)
            )
            shadow *= 1 - rng.uniform(0.55, 0.8) * air
            trachea = region
            if rng.random() < 0.3:  # the oesophagus, posterolateral: a target (hypoechoic wall, bright mucosa)
                ex, ey = x_tr + side * r_tr * rng.uniform(0.8, 1.2), y_tr + r_tr * rng.uniform(0.2, 0.6)
                erx, ery = rng.uniform(5.0, 8.0) * mm, rng.uniform(3.0, 5.0) * mm
                q = np.hypot((rows - ey) / ery, (cols - ex) / erx)
                if not (keep_out & (q < 1.1)).any():
                    echo = np.where(q < 1, np.where(q < 0.45, 1.3, 0.3), echo)
                    muscle |= (q < 1) & (q >= 0.45)
    structures["trachea"] = trachea

    # --- confounders in the gland: small cysts, colloid with comet tails -----------------------------
    gland &= ~vessel & ~trachea
    cysts = np.zeros(shape, dtype=bool)
    candidates = np.flatnonzero(gland & ~keep_out)
    if candidates.size and rng.random() < 0.55:
        for idx in rng.choice(candidates, size=int(rng.integers(1, 5))):
            y0, x0 = divmod(int(idx), ww)
            cr = rng.uniform(0.8, 3.0) * mm
            q = np.hypot((rows - y0) / (cr * rng.uniform(0.7, 1.0)), (cols - x0) / cr)
            if (keep_out & (q < 1.3)).any() or (vessel & (q < 1.3)).any():
                continue
            soft = _step((1 - q) * cr / 0.6)
            echo = echo * (1 - soft) + 0.04 * soft
            specular += 0.6 * _ridge((q - 1) * cr, 0.3 * mm) * (rows > y0)
            col = _step((0.8 * cr - np.abs(cols - x0)) / (0.4 * mm)) * (rows > y0)
            enhancement = enhancement * (1 + 0.3 * col * np.exp(-(rows - y0) / (5 * mm)))
            cysts |= q < 1
    if candidates.size and rng.random() < 0.25:
        for idx in rng.choice(candidates, size=int(rng.integers(1, 4))):
            y0, x0 = divmod(int(idx), ww)
            tail = _step((0.5 * mm - np.abs(cols - x0)) / (0.2 * mm)) * (rows >= y0)
            specular += 2.5 * tail * np.exp(-(rows - y0) / (rng.uniform(1.0, 3.0) * mm))
    if candidates.size and rng.random() < 0.4:  # intrathyroidal vessels: small anechoic tubes or dots
        for idx in rng.choice(candidates, size=int(rng.integers(1, 4))):
            y0, x0 = divmod(int(idx), ww)
            vr, a = rng.uniform(0.5, 1.3) * mm, rng.uniform(0, np.pi)
            ey, ex = rows - y0, cols - x0
            q = np.hypot(
                (ey * np.cos(a) - ex * np.sin(a)) / vr, (ey * np.sin(a) + ex * np.cos(a)) / (vr * rng.uniform(1, 4))
            )
            if (keep_out & (q < 1.5)).any() or (cysts & (q < 1.5)).any():
                continue
            soft = _step((1 - q) * vr / 0.5)
            echo = echo * (1 - soft) + 0.05 * soft
            vessel |= q < 1
    structures["vessel"] = vessel
    structures["gland_cyst"] = cysts
    structures["gland"] = gland & ~cysts
    structures["muscle"] = muscle & ~gland & ~vessel

    # --- the nodule -------------------------------------------------------------------------------
    # echogenicity relative to the parenchyma, as radiologists grade it (TI-RADS): markedly
    # hypoechoic (below the strap muscles), hypo-, iso- or hyperechoic
    p = [0.12, 0.58, 0.25, 0.05] if malignant else [0.04, 0.42, 0.40, 0.14]
    grade = int(rng.choice(4, p=p))
    level = [rng.uniform(0.2, 0.4), rng.uniform(0.4, 0.7), rng.uniform(0.7, 1.2), rng.uniform(1.2, 2.0)][grade]
    blur = rng.uniform(0.02, 0.06) if rng.random() < 0.7 else rng.uniform(0.06, 0.14)  # sharp / ill-defined margin
    inside = _step((1.0 - rho) / (2 * blur))
    texture = 1 + rng.uniform(0.1, 0.35) * _noise(rng, shape, sigma=rng.uniform(0.8, 2.5) * mm)
    nod = level * np.clip(texture, 0.1, None)
    cystic = 0.0
    if not malignant and rng.random() < 0.12:  # predominantly cystic: fluid inside a solid wall, septa
        wall = rho > rng.uniform(0.75, 0.93)
        solid = wall | (_noise(rng, shape, sigma=max(r_mean / 5, mm)) > rng.uniform(0.8, 1.6))
        fluid = ndimage.gaussian_filter((~solid).astype(_F32), 0.4 * mm)
        nod = nod * (1 - fluid) + 0.04 * fluid
        cystic = float(fluid[nodule_core].mean()) if nodule_core.any() else 0.0
    elif rng.random() < (0.08 if malignant else 0.35):  # cystic parts (anechoic)
        fluid = (_noise(rng, shape, sigma=max(r_mean / 4, mm)) > rng.uniform(0.4, 1.4)) & (rho < 0.8)
        fluid = ndimage.gaussian_filter(fluid.astype(_F32), 0.4 * mm)
        nod = nod * (1 - fluid) + 0.04 * fluid
        cystic = float(fluid[nodule_core].mean()) if nodule_core.any() else 0.0
    elif not malignant and rng.random() < 0.12:  # spongiform: aggregated microcysts
        micro = (_noise(rng, shape, sigma=0.5 * mm) > 1.0) & (rho < 0.9)
        nod = np.where(micro, 0.12 * nod, nod)
    halo_p = 0.15 if malignant else (0.6 if grade >= 2 else 0.3)
    if rng.random() < halo_p:  # the hypoechoic halo (a thin rim, inside the annotation)
        th = rng.uniform(0.5, 1.5) * mm / r_mean
        nod = nod * (1 - rng.uniform(0.6, 0.9) * _step((rho - 1 + th) / 0.02) * _step((1.02 - rho) / 0.02))
    echo = echo * (1 - inside) + nod * inside
    if not malignant and rng.random() < 0.2:  # a thin echogenic capsule
        specular += 0.6 * _ridge((rho - 1) * r_mean, 0.35 * mm)
    calc = np.zeros(shape, dtype=bool)
    if rng.random() < (0.4 if malignant else 0.08):  # microcalcifications: punctate echogenic foci
        n = int(rng.integers(3, 16))
        ang, rad = rng.uniform(0, 2 * np.pi, n), rng.uniform(0, 0.85, n) ** 0.5
        for y, x in zip(cy + rad * ry * np.sin(ang), cx + rad * rx * np.cos(ang), strict=True):
            rr, cc = disk((y, x), rng.uniform(0.3, 0.7) * mm, shape=shape)
            echo[rr, cc] = rng.uniform(2.0, 3.5)
            calc[rr, cc] = True
    if rng.random() < (0.15 if malignant else 0.08):  # macrocalcifications with acoustic shadows
        for _ in range(rng.integers(1, 4)):
            a, r = rng.uniform(0, 2 * np.pi), rng.uniform(0, 0.7)
            y, x = cy + r * ry * np.sin(a), cx + r * rx * np.cos(a)
            rc = rng.uniform(1.0, 2.5) * mm
            q = np.hypot((rows - y) / (0.6 * rc), (cols - x) / rc)
            echo = np.where(q < 1, rng.uniform(2.5, 4.0), echo)
            calc |= q < 1
            col = _step((0.9 * rc - np.abs(cols - x)) / (0.3 * mm)) * _step((rows - y - 0.6 * rc) / (0.3 * mm))
            shadow *= 1 - rng.uniform(0.6, 0.9) * col
    if rng.random() < 0.04:  # rim ("eggshell") calcification: a bright arc along the top, shadowing the nodule
        arc = _ridge((rho - 1) * r_mean, 0.5 * mm) * (uy < -0.3)
        echo = echo + 3.0 * arc
        calc |= arc > 0.5
        shadow *= 1 - 0.7 * _step((rx - np.abs(cols - cx)) / mm) * _step((rows - cy) / mm)
    structures["calcification"] = calc
    below = _step((0.9 * rx - np.abs(cols - cx)) / mm) * _step((rows - float(n_bottom.max())) / (0.5 * mm))
    if cystic > 0.2 or (not malignant and rng.random() < 0.25):  # posterior acoustic enhancement
        enhancement = enhancement * (1 + rng.uniform(0.15, 0.45) * below * np.exp(-(rows - cy - ry) / (10 * mm)))
    elif malignant and rng.random() < 0.3:  # posterior shadowing
        shadow *= 1 - rng.uniform(0.2, 0.5) * below
    if rng.random() < 0.3:  # edge shadows: refraction at the nodule's lateral margins
        for x in (cx - 0.97 * rx, cx + 0.97 * rx):
            shadow *= 1 - 0.5 * _step((0.6 * mm - np.abs(cols - x)) / (0.2 * mm)) * (rows > cy)

    # skin and fascia: specular interfaces, over everything
    specular += 1.6 * _ridge(rows - y_skin, 0.35 * mm) + 0.8 * _ridge(rows - y_fat, 0.3 * mm)
    specular += 0.9 * _ridge(rows - gland_top, 0.3 * mm) * ~vessel  # the anterior capsule
    for _ in range(rng.integers(1, 4)):  # more fascial planes: in the fat, between the strap muscles
        frac = rng.uniform(0.1, 0.9)
        y = (1 - frac) * y_skin + frac * gland_top + _wiggle(rng, cols, 0.5 * mm, ww * rng.uniform(0.4, 1.5))
        extent = _step((rng.uniform(0.3, 1.0) * ww - np.abs(cols - rng.uniform(0, ww))) / (2 * mm))
        specular += rng.uniform(0.3, 0.9) * _ridge(rows - y, 0.3 * mm) * extent
    specular *= 1 - 0.85 * inside  # no fascia inside the nodule
    echo = np.clip(echo + specular, 0.0, None)
    nodule = {
        "cy": cy,
        "cx": cx,
        "ry": ry,
        "rx": rx,
        "tilt": tilt,
        "profile": profile,
        "grade": grade,
        "level": level,
        "mm": mm,
    }
    structures["nodule"] = inside > 0.5
    # shadows and enhancements have the beam's lateral width at their edges
    field = ndimage.gaussian_filter(shadow * enhancement, sigma=(0.3 * mm, 1.0 * mm))
    return echo, field, structures, nodule


def _draw_overlay(
    rng: np.random.Generator,
    layout: ThyroidScanLayout,
    h: int,
    w: int,
    box: tuple[int, int, int, int],
    mm: float,
    nodule: tuple[float, float, float, float],
) -> np.ndarray:
    """The scanner's screen graphics as a grey-level layer (0 where none): text, scales, markers.

    Modelled on the DDTI screens (a linear-array system with a Spanish interface): the parameter
    block (power, probe, frequency, frame rate, dynamic range, gain), the side label ("DER" right /
    "IZQ" left), the grey-scale bar, the depth scale (a dot per cm, "0" at the skin), the focus
    marker, the orientation mark, the probe icon, and calipers ("+" with a letter) on some images.
    """
    top, bottom, left, right = box
    f = h / DDTI_HEIGHT
    font = _font(max(6, int(round(10 * f))))
    layer = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(layer)

    def grey() -> int:
        return int(rng.integers(190, 246))

    def params() -> list[str]:
        return [
            f"P{rng.choice([70, 80, 90, 100])}",
            str(rng.choice(_PROBES)),
            f"{rng.choice([7.5, 9.0, 10.0, 12.0]):.1f}",
            f"{rng.integers(15, 45)}fps",
            f"DR{rng.integers(50, 76)}",
            "2DG",
            str(rng.integers(60, 101)),
        ]

    bars: list[tuple[int, int, int, int]] = []

    def grey_bar(x0: int, y0: int, y1: int) -> None:
        bars.append((x0, x0 + max(2, int(rng.uniform(4, 7) * f)), y0, y1))

    side_text = str(rng.choice(["DER", "IZQ", "DER", "IZQ", "TIR", "ISTMO", "DER - ISTMO", "IZQ 2"]))
    if rng.random() < 0.25:  # the radiologist's note on the screen
        note = f"TIRADS {rng.choice(['2', '3', '4A', '4B', '4C', '5'])}" + str(rng.choice(["", " (4A*)", " : PAT"]))
        draw.text((int(w * rng.uniform(0.3, 0.5)), int(rng.uniform(326, 338) * f)), note, fill=grey(), font=font)
    step = 10 * mm  # one dot per cm of depth
    if layout == ThyroidScanLayout.WHOLE:
        x = w - int(rng.uniform(24, 30) * f)
        y0 = rng.uniform(2, 7) * f
        for i, line in enumerate(params()):
            draw.text((x, y0 + i * 12.5 * f), line, fill=grey(), font=font)
        grey_bar(int(rng.uniform(6, 10) * w / 560), int(0.35 * h), int(0.68 * h))
        if rng.random() < 0.85:
            draw.text(
                (int(rng.uniform(40, 56) * w / 560), int(rng.uniform(326, 336) * f)), side_text, fill=grey(), font=font
            )
        if rng.random() < 0.75:  # the probe icon
            px, py = int(w - rng.uniform(60, 80) * w / 560), int(rng.uniform(318, 328) * f)
            s = 14 * f
            draw.arc([px, py, px + 2.5 * s, py + 2.4 * s], 180, 360, fill=grey(), width=max(1, int(f)))
            draw.rectangle([px + 0.9 * s, py + 0.6 * s, px + 1.6 * s, py + 1.5 * s], outline=grey())
            draw.line([(px - 0.3 * s, py + 2.4 * s), (px + 2.8 * s, py + 2.4 * s)], fill=grey(), width=max(1, int(f)))
        if rng.random() < 0.3:
            draw.text(
                (int(w - rng.uniform(95, 110) * w / 560), int(rng.uniform(322, 330) * f)), "!", fill=grey(), font=font
            )
        tick_x = left - int(4 * f)
    elif layout == ThyroidScanLayout.LEFT:
        grey_bar(int(rng.uniform(3, 6) * f), int(0.45 * h), int(0.76 * h))
        if rng.random() < 0.85:
            draw.text((int(rng.uniform(38, 48) * f), int(rng.uniform(326, 340) * f)), side_text, fill=grey(), font=font)
        tick_x = left - int(4 * f)
    else:
        if w - right >= 20 * f:  # the parameter column of both views, each under a boxed view letter
            x = right + int(rng.uniform(2, 5) * f)
            y = rng.uniform(2, 6) * f
            for letter in ("R", "L"):
                draw.rectangle([x + 2 * f, y + 2 * f, x + 11 * f, y + 12 * f], outline=grey())
                draw.text((x + 4 * f, y + 1 * f), letter, fill=grey(), font=font)
                y += 13 * f
                for line in params()[1:]:
                    draw.text((x, y), line, fill=grey(), font=font)
                    y += 12.5 * f
                y += 6 * f
        tick_x = right + int(2 * f) if right < w - 2 else right - int(4 * f)
    # the depth scale: a dot every cm, "0" at the skin line, "5" at 5 cm
    for k, y in enumerate(np.arange(top, bottom, step)):
        r = max(1.0, 1.2 * f)
        draw.ellipse([tick_x - r, y - r, tick_x + r, y + r], fill=grey())
        if k in (0, 5) and rng.random() < 0.8:
            tx = tick_x - 9 * f if tick_x < w / 2 else tick_x + 3 * f
            draw.text((tx, y - 5 * f), str(k), fill=grey(), font=font)
    if layout == ThyroidScanLayout.WHOLE and rng.random() < 0.8:  # lateral scale along the top edge
        for x in np.arange(left + step, right, step):
            draw.point((int(x), max(top - 2, 0)), fill=grey())
    # focus marker: a small triangle at the window's edge, at the focal depth
    fy = top + rng.uniform(0.15, 0.6) * (bottom - top)
    s = 3 * f
    fx = left + 1 if layout != ThyroidScanLayout.RIGHT else right - 2
    tip = s if layout != ThyroidScanLayout.RIGHT else -s
    draw.polygon([(fx, fy - s), (fx, fy + s), (fx + tip, fy)], fill=grey())
    if rng.random() < 0.85:  # orientation mark ("T"-like) at the window's top corner
        ox = right - int(rng.uniform(15, 25) * f) if rng.random() < 0.8 else left + int(15 * f)
        oy = top + int(rng.uniform(4, 12) * f)
        draw.rectangle([ox, oy, ox + 7 * f, oy + 2 * f], fill=grey())
        draw.rectangle([ox + 2.5 * f, oy, ox + 4.5 * f, oy + 7 * f], fill=grey())
    if rng.random() < 0.2:  # calipers: "+" marks at the nodule's extremes, with the measurement letter
        cy, cx, ry, rx = nodule
        marks = [(cy - ry, cx), (cy + ry, cx)] if rng.random() < 0.5 else [(cy, cx - rx), (cy, cx + rx)]
        letter = str(rng.choice(["A", "B", "C"]))
        for y, x in marks:
            y, x = y + top + rng.normal(0, 2), x + left + rng.normal(0, 2)
            g = grey()
            draw.line([(x - 3 * f, y), (x + 3 * f, y)], fill=g)
            draw.line([(x, y - 3 * f), (x, y + 3 * f)], fill=g)
        draw.text((marks[0][1] + left - 16 * f, marks[0][0] + top - 5 * f), letter, fill=grey(), font=font)
    out = np.array(layer)
    for x0, x1, y0, y1 in bars:  # the grey-scale bar: white at the top to black at the bottom
        out[y0:y1, x0:x1] = np.linspace(255, 0, max(y1 - y0, 1))[:, None].astype(np.uint8)
    return out


def thyroid_ultrasound_sample(
    rng: np.random.Generator,
    height: int,
    width: int,
    malignant: bool,
    label_noise: float = 0.0,
    layout: ThyroidScanLayout | str | None = None,
    return_structures: bool = False,
) -> tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Render one synthetic thyroid ultrasound screen, as DDTI / TN-SCUI store them, and its nodule mask.

    **Anatomy** (a transverse or a longitudinal scan of one lobe; Chaudhary & Bano 2013, "Thyroid
    ultrasound", Indian J Endocrinol Metab 17(2); Tessler et al. 2017, ACR TI-RADS): skin and
    subcutaneous fat, the strap muscles (hypoechoic, fibrillar) under bright fascial planes, the
    lobe (homogeneous, brighter than muscle) with its capsule; in transverse scans the common carotid
    artery at the lobe's lateral border (an anechoic disc with bright walls and posterior
    enhancement, never overlapping the nodule), often the flattened jugular vein and the
    sternocleidomastoid, the isthmus over the trachea (a bright ring with an air shadow and
    reverberations) and sometimes the oesophagus; in longitudinal scans a band-like lobe, some with
    a pole, and a vessel along the image on some; deep: longus colli, fascial planes, the vertebral
    surface and its shadow. Confounders in the gland: small cysts (anechoic, posterior enhancement),
    colloid comet tails, heterogeneous parenchyma (thyroiditis).

    **The nodule** (ACR TI-RADS features): echogenicity drawn from a mix (markedly hypo-, hypo-,
    iso-, hyperechoic; iso- and hyperechoic as often as hypoechoic for benign ones), heterogeneous
    texture, cystic parts or a spongiform pattern on some, a hypoechoic halo (mostly iso/hyperechoic
    benign nodules), sharp or ill-defined margins (lobulated or irregular when ``malignant``, and
    taller than wide more often), microcalcifications (mostly malignant), macrocalcifications and
    rim calcifications with acoustic shadows, posterior enhancement or shadowing, edge shadows. Its
    size and place follow the global statistics of the 517 DDTI images (centre near 0.39 of the
    window's height and 0.54 of its width, median height a third of the window's, wider than tall).

    **Image formation** (Szabo, "Diagnostic Ultrasound Imaging", 2nd ed., ch. 8-10): the
    backscatter amplitude times fully developed speckle (a Rayleigh field, correlated by an
    anisotropic point-spread function, longer laterally), acoustic shadows and enhancements as
    columns below their cause, residual depth attenuation after time-gain compensation, a focal
    zone, log compression over a 40-58 dB dynamic range, and a gain that puts the window's median
    grey level where DDTI's are (64 on average).

    **Screen** (``layout``): the imaging window inside the black screen of a single-view or of one
    half of a double-view display, with the vendor's graphics (see :class:`ThyroidScanLayout`):
    parameter text, "DER"/"IZQ", the grey-scale bar, depth dots, focus and orientation marks, probe
    icon, calipers on some images. Positions are fractions of DDTI's 360 px height (and of 560 px
    for a whole scan's width), so any ``height`` x ``width`` works.

    The annotation is a polygon through points of the nodule's true contour (halo included), as
    annotators draw it; ``label_noise`` (a fraction of the nodule radius) jitters its vertices
    radially with a smooth random perturbation, after the image is drawn (the image does not depend
    on it).

    Args:
        rng: the random generator (the sample is a deterministic function of its state).
        height: image height in pixels (360 in DDTI).
        width: image width in pixels (560 for a whole scan, 245-315 for a half, in DDTI).
        malignant: whether to draw the nodule with the malignant-looking features.
        label_noise: standard deviation of the annotation's radial jitter, as a fraction of the
            nodule's radius (0 = the polygon follows the true contour).
        layout: the screen layout (a :class:`ThyroidScanLayout` or its value); None draws it from
            DDTI's mix (whole scans 45%, left and right halves 27% each).
        return_structures: also return the boolean masks of what was drawn (see Returns).

    Returns:
        ``(image, mask)``: ``uint8`` arrays of shape ``(height, width)``; the mask holds {0, 255}.
        With ``return_structures``, ``(image, mask, structures)``: a dict of boolean
        ``(height, width)`` masks, ``"window"`` (the imaging window), ``"nodule"`` (its true
        contour), ``"gland"``, ``"vessel"`` (artery and veins), ``"trachea"`` (ring and air
        column), ``"muscle"``, ``"gland_cyst"``, ``"calcification"`` and ``"overlay"`` (the screen
        graphics), and ``"grade"`` a 0-d int array: the nodule's echogenicity grade (0 markedly
        hypoechoic, 1 hypo-, 2 iso-, 3 hyperechoic).

    Raises:
        ValueError: for an unknown ``layout``.
    """
    h, w = int(height), int(width)
    if layout is None:
        names = list(_LAYOUT_MIX)
        layout = names[int(rng.choice(len(names), p=list(_LAYOUT_MIX.values())))]
    layout = ThyroidScanLayout(look_up_option(layout, ThyroidScanLayout))
    top, bottom, left, right = _window_box(rng, layout, h, w)
    wh, ww = bottom - top, right - left
    echo, field, structures, nodule = _thyroid_scene(rng, wh, ww, malignant)

    # --- B-mode formation ----------------------------------------------------------------------
    rows = np.arange(wh, dtype=_F32)[:, None]
    # spatial compounding: the incoherent mean of a few looks lowers the speckle contrast
    looks = int(rng.integers(2, 4))
    axial, lateral = rng.uniform(1.0, 1.6), rng.uniform(1.8, 3.0)
    speckle = _speckle(rng, (wh, ww), axial, lateral, looks)
    attenuation = np.exp(-rng.uniform(1.0, 2.2) * rows / wh)  # what the time-gain compensation leaves
    focus = 1 + rng.uniform(0.0, 0.15) * np.exp(-(((rows - rng.uniform(0.2, 0.6) * wh) / (0.25 * wh)) ** 2))
    clutter = rng.uniform(0.08, 0.15)  # reverberation, side lobes and noise: anechoic spaces are not black
    amplitude = np.hypot(echo * field * attenuation * focus, clutter) * speckle
    db = 20 * np.log10(amplitude + 1e-4)
    dynamic_range = rng.uniform(40.0, 58.0)
    median_target = float(np.clip(rng.normal(64.0, 13.0), 35.0, 105.0))
    grey_levels = median_target + (db - float(np.median(db[::3, ::3]))) * (255.0 / dynamic_range)
    grey_levels = ndimage.gaussian_filter(grey_levels, 0.6)  # the scanner's smoothing
    window = np.clip(grey_levels + 1.5 * rng.standard_normal((wh, ww), dtype=_F32), 0, 255)

    image = np.zeros((h, w), dtype=np.uint8)
    image[top:bottom, left:right] = window.astype(np.uint8)
    box = (top, bottom, left, right)
    overlay = _draw_overlay(rng, layout, h, w, box, nodule["mm"], tuple(nodule[k] for k in ("cy", "cx", "ry", "rx")))
    image = np.maximum(image, overlay)

    # --- annotation: a polygon through the true contour, jittered by the annotator -------------
    cy, cx, ry, rx, tilt, profile = (nodule[k] for k in ("cy", "cx", "ry", "rx", "tilt", "profile"))
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
    in_window = np.zeros((h, w), dtype=bool)
    in_window[top:bottom, left:right] = True
    mask[~in_window] = 0
    if not mask.any():  # a degenerate draw: keep the annotation non-empty as in the real data
        mask[int(np.clip(cy + top, top, bottom - 1)), int(np.clip(cx + left, left, right - 1))] = 255
    if not return_structures:
        return image, mask
    full = {"window": in_window, "overlay": overlay > 0}
    for name, value in structures.items():
        canvas = np.zeros((h, w), dtype=bool)
        canvas[top:bottom, left:right] = value
        full[name] = canvas
    full["grade"] = np.asarray(nodule["grade"])
    full["echogenicity"] = np.asarray(nodule["level"])
    return image, mask, full


def _write_thyroid_pair(job: tuple[int, int, tuple[int, int] | None, float, float, str]) -> tuple[str, int]:
    seed, index, size_range, malignant_fraction, label_noise, folder = job
    rng = np.random.default_rng([seed, index])
    names = list(_LAYOUT_MIX)
    layout = names[int(rng.choice(len(names), p=list(_LAYOUT_MIX.values())))]
    if size_range is None:  # DDTI's geometry: 360 px high, the layout's width
        widths, shares = _LAYOUT_WIDTHS[layout]
        height, width = DDTI_HEIGHT, int(widths[int(rng.choice(len(widths), p=shares))])
    else:
        height, width = (int(v) for v in rng.integers(size_range[0], size_range[1] + 1, size=2))
    malignant = bool(rng.random() < malignant_fraction)
    image, mask = thyroid_ultrasound_sample(rng, height, width, malignant, label_noise, layout=layout)
    Image.fromarray(image, mode="L").save(Path(folder) / "image" / f"{index}.PNG")
    Image.fromarray(mask, mode="L").save(Path(folder) / "mask" / f"{index}.PNG")
    return str(index), int(malignant)


def make_thyroid_ultrasound(
    root: str | os.PathLike,
    num_images: int = 200,
    seed: int = 0,
    size_range: tuple[int, int] | None = None,
    label_noise: float = 0.0,
    malignant_fraction: float = 0.4,
    overwrite: bool = False,
    num_workers: int | None = None,
) -> Path:
    """Write a synthetic thyroid-nodule ultrasound dataset in the TN-SCUI 2020 layout.

    The layout is that of the TN-SCUI 2020 challenge (Zhou et al. 2020), the dataset of
    Bakhtiariziabari & Ghafoorian, "Gambling Adversarial Nets for Hard Sample Mining and
    Structured Prediction: Application in Ultrasound Thyroid Nodule Segmentation", and of DDTI
    converted to it (Pedraza et al. 2015)::

        root/image/<ID>.PNG    8-bit grayscale B-mode screen (see below for the sizes)
        root/mask/<ID>.PNG     8-bit nodule mask, values {0, 255}, same size as the image
        root/train.csv         columns ID,category (0 benign, 1 malignant)

    Each image is drawn by :func:`thyroid_ultrasound_sample` from its own generator
    ``numpy.random.default_rng([seed, index])``: the screen layout from DDTI's mix (whole
    single-view scans, left and right halves of double-view scans), then the size, then the
    category. The same seed gives the same bytes, and the first images do not change when
    ``num_images`` grows. The folder is written atomically (a temporary folder renamed into place)
    with a ``synthetic.json`` marker of the parameters (and of the generator's version); a second
    call with the same parameters reuses it, which makes the bundles' first-run generation
    idempotent. Under ``torch.distributed`` rank 0 writes and the other ranks wait.

    Args:
        root: the dataset folder to create.
        num_images: number of image/mask pairs.
        seed: the random seed.
        size_range: None (default): DDTI's geometry, every image 360 px high, 560 px wide for a
            whole scan and 280 / 315 (left) or 280 / 245 (right) for a half, in DDTI's proportions.
            ``(low, high)``: the height and the width each drawn from that inclusive range (the
            screen's graphics scaled to it), for other canvases.
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
        FileExistsError: if ``root`` holds something else (or a dataset of other parameters, or of an
            older version of this generator) and ``overwrite`` is False.

    Example:
        >>> root = make_thyroid_ultrasound("/tmp/tnscui_synth", num_images=20, seed=0)
        >>> datalist = tnscui_datalist(root)
    """
    if int(num_images) < 1:
        raise ValueError(f"num_images must be at least 1, got {num_images}.")
    sizes: tuple[int, int] | None = None
    if size_range is not None:
        lo, hi = (int(v) for v in size_range)
        if not 32 <= lo <= hi:
            raise ValueError(
                f"size_range must be None (DDTI's geometry) or (low, high) with 32 <= low <= high, got {size_range}."
            )
        sizes = (lo, hi)
    if not np.isfinite(label_noise) or label_noise < 0:
        raise ValueError(f"label_noise must be a non-negative number, got {label_noise}.")
    if not 0 <= malignant_fraction <= 1:
        raise ValueError(f"malignant_fraction must be in [0, 1], got {malignant_fraction}.")
    params = {
        "generator": "make_thyroid_ultrasound",
        "version": _THYROID_VERSION,
        "num_images": int(num_images),
        "seed": int(seed),
        "size_range": list(sizes) if sizes is not None else None,
        "label_noise": float(label_noise),
        "malignant_fraction": float(malignant_fraction),
    }

    def writer(folder: Path) -> None:
        (folder / "image").mkdir()
        (folder / "mask").mkdir()
        jobs = [
            (int(seed), index, sizes, float(malignant_fraction), float(label_noise), str(folder))
            for index in range(1, int(num_images) + 1)
        ]
        rows = map_jobs(_write_thyroid_pair, jobs, num_workers)
        with open(folder / "train.csv", "w", newline="") as f:
            out = csv.writer(f)
            out.writerow(["ID", "category"])
            out.writerows(rows)

    return write_once(Path(root), params, writer, overwrite)
