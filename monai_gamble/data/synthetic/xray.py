"""A seeded generator of chest radiographs with pneumothorax, written as DICOM files with an RLE CSV
in the layout of the SIIM-ACR Pneumothorax Segmentation challenge (Kaggle, 2019).

The real data are 1024x1024 frontal chest radiographs (CR and DX) in DICOM, most JPEG-compressed,
with the patient's sex and age in the header, and a CSV of pneumothorax regions in the
competition's relative run-length encoding; about 22% of the training images have pneumothorax
(2,669 of 12,047 in stage 1). The generator writes a stand-in with those properties, in the same
files, so that :func:`monai_gamble.data.siim_datalist` reads both.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage.draw import line_aa

from ..rle import RLEFormat, rle_encode
from ._common import map_jobs, smooth_noise, write_once

__all__ = ["chest_xray_sample", "make_chest_xrays"]

#: DICOM SOP classes of the two modalities written
_SOP_CLASS = {"CR": "1.2.840.10008.5.1.4.1.1.1", "DX": "1.2.840.10008.5.1.4.1.1.1.1"}
#: pixel spacing (mm) of the real 1024x1024 images; scaled for other sizes so the anatomy keeps its size
_SPACING_1024 = 0.168
#: size of the grid on which the (smooth) anatomy is drawn before the image is formed at full size
_ANATOMY_SIZE = 512
_CSV_NAMES = {"stage1": "train-rle.csv", "stage2": "stage_2_train.csv"}


def _smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _band(dist: np.ndarray, half_width: float, soft: float) -> np.ndarray:
    """A soft band ``|dist| < half_width`` with edges ``soft`` wide (values in [0, 1])."""
    return 1.0 - _smoothstep(np.abs(dist), half_width - soft, half_width + soft)


def _vessel_tree(
    rng: np.random.Generator,
    canvas: np.ndarray,
    start: tuple[float, float],
    angle: float,
    length: float,
    weight: float,
    depth: int,
) -> None:
    """Draw a random branching tree of line segments (the pulmonary vessels) into ``canvas`` (in place)."""
    h, w = canvas.shape
    stack = [(start, angle, length, weight, depth)]
    while stack:  # a loop over segments, not pixels
        (y0, x0), a, ln, wt, d = stack.pop()
        y1, x1 = y0 + ln * np.sin(a), x0 + ln * np.cos(a)
        rr, cc, val = line_aa(int(round(y0)), int(round(x0)), int(round(y1)), int(round(x1)))
        keep = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
        np.add.at(canvas, (rr[keep], cc[keep]), wt * val[keep])
        if d > 0:
            for turn in (-1, 1):
                spread = rng.uniform(0.2, 0.6)
                stack.append(((y1, x1), a + turn * spread, ln * rng.uniform(0.6, 0.85), wt * 0.65, d - 1))


def _curve_distance(ys: np.ndarray, xs: np.ndarray, h: int, w: int) -> np.ndarray:
    """Distance (pixels) of every pixel to a polyline, computed with a distance transform of its raster."""
    line = np.zeros((h, w), dtype=bool)
    for i in range(len(ys) - 1):
        rr, cc, _ = line_aa(int(ys[i]), int(xs[i]), int(ys[i + 1]), int(xs[i + 1]))
        keep = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
        line[rr[keep], cc[keep]] = True
    if not line.any():
        return np.full((h, w), np.inf)
    return ndimage.distance_transform_edt(~line)


def chest_xray_sample(
    rng: np.random.Generator,
    size: int = 1024,
    positive: bool = False,
    female: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Render one synthetic frontal (PA) chest radiograph and its pneumothorax regions.

    The radiograph is the line integral of attenuation through a simple thorax, displayed as an
    X-ray film is (bright = dense, MONOCHROME2): the soft tissue of the trunk, neck and (on some)
    the arms; two lung fields that let X-rays through (dark), each a superellipse cut by the
    mediastinum, the heart and the domed hemidiaphragm; branching pulmonary vessel markings from
    the hila, denser centrally; the heart, the mediastinum with the air of the trachea, the spine
    with its vertebrae; ten posterior ribs a side with bright cortices, fainter anterior ribs, the
    clavicles; breast shadows on women; a gastric air bubble on some; a drain, ECG electrodes and a
    side marker on some. The image is formed as ``1 - exp(-k A)`` of the attenuation ``A`` with a
    random exposure, blurred by the detector, with quantum noise stronger where fewer photons are
    absorbed, CR-style edge enhancement, and, on some, bright collimation borders.

    A pneumothorax is air between the chest wall and the collapsed lung: a crescent along the
    apical-lateral pleura of one lung (sometimes two, or both sides), thicker in its middle, in
    which the lung markings are absent and the film is darker, bounded medially by the thin bright
    line of the visceral pleura. Drains are much more frequent on images with pneumothorax (35%
    against 3%), a shortcut that models trained on the real data are known to take.

    Args:
        rng: the random generator (the sample is a deterministic function of its state).
        size: height and width in pixels (the real images: 1024); the anatomy scales with it.
        positive: draw pneumothorax.
        female: draw breast shadows.

    Returns:
        ``(image, regions)``: ``image`` float32 ``(size, size)`` in [0, 1] (MONOCHROME2: bright =
        dense); ``regions`` int32 ``(size, size)``, 0 outside pneumothorax and ``1..K`` for its K
        separate regions (K = 0 when ``positive`` is False).

    Raises:
        ValueError: for a size below 64.
    """
    if size < 64:
        raise ValueError(f"size must be at least 64 pixels, got {size}.")
    atten, ptx = _attenuation(rng, min(int(size), _ANATOMY_SIZE), positive, female)
    n = int(size)
    if n > atten.shape[0]:  # the anatomy is smooth at 512 px: draw it there, form the image at full size
        atten = ndimage.zoom(atten, n / atten.shape[0], order=1, grid_mode=True, mode="nearest")
        ptx = ndimage.zoom(ptx.astype(np.uint8), n / ptx.shape[0], order=0, grid_mode=True, mode="nearest") > 0
    s = n / 1024.0

    # --- image formation --------------------------------------------------------------------------
    k = rng.uniform(1.6, 2.4)
    film = 1 - np.exp(-k * atten)
    film = ndimage.gaussian_filter(film, max(0.5, 0.8 * s))
    photons = np.exp(-k * atten)
    film += rng.uniform(0.008, 0.02) * np.sqrt(photons + 0.05) * rng.standard_normal((n, n))
    film += 0.35 * (film - _blur(film, 12 * s + 1))  # CR unsharp masking
    lo, hi = np.percentile(film, [1, 99.7])
    image = np.clip((film - lo) / (hi - lo + 1e-8), 0, 1) ** rng.uniform(0.8, 1.2)
    image = 0.03 + 0.94 * image
    if rng.random() < 0.3:  # collimation: bright unexposed borders
        for edge in rng.choice(4, size=int(rng.integers(1, 3)), replace=False):
            w = int(n * rng.uniform(0.01, 0.04))
            if w:
                sl = [np.s_[:w, :], np.s_[-w:, :], np.s_[:, :w], np.s_[:, -w:]][edge]
                image[sl] = rng.uniform(0.85, 0.98)
    my, mx = int(n * rng.uniform(0.03, 0.1)), int(n * (0.06 if rng.random() < 0.5 else 0.86))
    block = rng.random((max(3, int(14 * s)), max(3, int(10 * s)))) < 0.55  # a side marker
    image[my : my + block.shape[0], mx : mx + block.shape[1]][block] = 0.97
    regions, _ = ndimage.label(ptx)
    return image.astype(np.float32), regions.astype(np.int32)


def _blur(a: np.ndarray, sigma: float) -> np.ndarray:
    """A wide Gaussian blur computed on a coarser grid (the result is smooth at that scale anyway)."""
    factor = max(1, int(sigma // 4))
    if factor == 1:
        return ndimage.gaussian_filter(a, sigma)
    coarse = ndimage.zoom(a, 1 / factor, order=1, grid_mode=True, mode="nearest")
    coarse = ndimage.gaussian_filter(coarse, sigma / factor)
    return ndimage.zoom(coarse, np.divide(a.shape, coarse.shape), order=1, grid_mode=True, mode="nearest")


def _attenuation(rng: np.random.Generator, n: int, positive: bool, female: bool) -> tuple[np.ndarray, np.ndarray]:
    """The attenuation map ``(n, n)`` of the thorax and the pneumothorax mask (see :func:`chest_xray_sample`)."""
    s = n / 1024.0  # pixels per pixel of a real image
    rows = np.arange(n, dtype=np.float64)[:, None]
    cols = np.arange(n, dtype=np.float64)[None, :]
    # patient position: shift, scale and a small rotation
    cx = n * (0.5 + rng.normal(0, 0.015))
    top = n * rng.uniform(-0.03, 0.04)
    scale = rng.uniform(0.9, 1.04)
    rot = np.deg2rad(rng.uniform(-3, 3))
    dx, dy = cols - cx, rows - top - 0.5 * n
    u = (dx * np.cos(rot) + dy * np.sin(rot)) / (n * scale)  # horizontal, 0 on the midline
    v = (-dx * np.sin(rot) + dy * np.cos(rot)) / (n * scale) + 0.5  # vertical, 0 at the top
    au = np.abs(u)

    # --- trunk, neck and arms: soft tissue path lengths --------------------------------------
    half_width = 0.09 + (0.40 + 0.04 * np.clip(v, 0, 1) - 0.09) * _smoothstep(v, 0.02, 0.16)
    trunk = np.sqrt(np.clip(1 - (u / half_width) ** 2, 0, None))
    atten = 0.55 * trunk
    if rng.random() < 0.6:  # arms beside the trunk
        arm_u = rng.uniform(0.45, 0.49)
        arm = np.sqrt(np.clip(1 - ((au - arm_u) / 0.045) ** 2, 0, None)) * _smoothstep(v, 0.08, 0.2)
        atten += 0.45 * arm * (1 - _smoothstep(v, 0.55, 0.75))

    # --- lungs ----------------------------------------------------------------------------------
    lungs = []
    dome_u = rng.uniform(0.1, 0.16)
    for side in (-1, 1):  # -1: patient's right lung (image left), +1: left lung
        uc = side * rng.uniform(0.19, 0.22)
        vc = rng.uniform(0.44, 0.48)
        a = rng.uniform(0.15, 0.17)
        b = np.where(v < vc, rng.uniform(0.28, 0.32), 0.4)
        p = rng.uniform(2.2, 2.8)
        shape = (np.abs((u - uc) / a) ** p + np.abs((v - vc) / b) ** p) ** (1 / p)
        dome = rng.uniform(0.66, 0.72) + (0.03 if side == 1 else 0.0)  # the left hemidiaphragm is lower
        diaphragm = dome + rng.uniform(1.6, 2.4) * (u - side * dome_u) ** 2 + 0.3 * np.clip(side * u - 0.2, 0, None)
        lung = (shape < 1) & (v < diaphragm) & (side * u > 0.055 + 0.03 * _smoothstep(v, 0.3, 0.45))
        lungs.append((side, uc, vc, lung, diaphragm))
    lung_any = lungs[0][3] | lungs[1][3]

    # heart, mediastinum, trachea, spine
    hu, hv = rng.uniform(0.05, 0.09), rng.uniform(0.6, 0.64)
    ha, hb = rng.uniform(0.13, 0.16), rng.uniform(0.1, 0.12)
    tilt = rng.uniform(0.3, 0.6)  # the heart's long axis points down and to the patient's left
    hx, hy = u - hu, v - hv
    heart_r = np.hypot((hx * np.cos(tilt) + hy * np.sin(tilt)) / ha, (-hx * np.sin(tilt) + hy * np.cos(tilt)) / hb)
    heart = _smoothstep(-heart_r, -1.05, -0.9)
    mediastinum = _band(u, 0.06 + 0.03 * _smoothstep(v, 0.25, 0.5), 0.01) * _smoothstep(v, 0.05, 0.15)
    trachea = _band(u, 0.012, 0.004) * _smoothstep(v, 0.02, 0.06) * (1 - _smoothstep(v, 0.32, 0.36))
    spine = _band(u, 0.035, 0.006)
    vertebrae = 0.5 + 0.5 * np.cos(2 * np.pi * (v - rng.uniform(0, 0.05)) / 0.047)

    lung_soft = ndimage.gaussian_filter(lung_any.astype(np.float64), 6 * s + 0.5) * (1 - 0.6 * heart)
    atten = atten - 0.34 * lung_soft * trunk
    atten += 0.13 * heart + 0.22 * mediastinum * (1 - lung_soft) - 0.1 * trachea
    atten += spine * (0.12 + 0.05 * vertebrae) * (1 - 0.3 * heart)
    below = 1 - _smoothstep(v - np.minimum(lungs[0][4], lungs[1][4]), -0.01, 0.02)  # abdomen below the domes
    atten += 0.18 * (1 - below) * trunk * _smoothstep(au, 0.0, 0.02)
    if rng.random() < 0.5:  # gastric air bubble under the left hemidiaphragm
        gu, gv = rng.uniform(0.12, 0.22), lungs[1][4] + rng.uniform(0.03, 0.06)
        bubble = np.hypot((u - gu) / rng.uniform(0.04, 0.07), (v - gv) / rng.uniform(0.025, 0.04))
        atten -= 0.15 * _smoothstep(-bubble, -1.05, -0.9)

    # --- bones ----------------------------------------------------------------------------------
    bones = np.zeros((n, n))
    d = au - 0.03
    for k in range(10):  # posterior ribs: arcs from the spine, up then down laterally
        vk = 0.1 + 0.057 * k + rng.uniform(-0.006, 0.006)
        width_k = 0.3 + 0.1 * min(k, 5) / 5
        t = np.clip(d / width_k, 0, 1.2)
        rise, fall = rng.uniform(0.03, 0.05), rng.uniform(0.12, 0.2)
        centre = vk - rise * np.sin(np.pi * np.clip(t, 0, 1) * 0.8) + fall * t**3
        half = (0.008 + 0.004 * t) * rng.uniform(0.9, 1.1)
        dist = v - centre
        shaft = _band(dist, half, 0.002) * _smoothstep(d, -0.005, 0.01) * (1 - _smoothstep(t, 1.0, 1.15))
        cortex = np.exp(-(((np.abs(dist) - half) / 0.002) ** 2)) * (shaft > 0.01)
        bones += 0.045 * shaft + 0.05 * cortex
    for k in range(6):  # anterior ribs: fainter, sloping down towards the sternum
        vk = 0.2 + 0.085 * k + rng.uniform(-0.01, 0.01)
        t = np.clip((0.42 - au) / 0.27, 0, 1)
        centre = vk + 0.09 * t
        shaft = _band(v - centre, 0.011, 0.003) * _smoothstep(au, 0.14, 0.18) * (1 - _smoothstep(au, 0.4, 0.44))
        bones += 0.025 * shaft
    clav_v = rng.uniform(0.1, 0.13)
    clavicle_centre = clav_v + 0.04 * (au - 0.2) ** 2 / 0.04 - 0.02
    bones += (
        0.14 * _band(v - clavicle_centre, 0.012, 0.003) * _smoothstep(au, 0.04, 0.06) * (1 - _smoothstep(au, 0.36, 0.4))
    )
    atten += bones * trunk

    if female:  # breast shadows over the lower lung fields
        for side in (-1, 1):
            br = np.hypot((u - side * 0.25) / 0.16, (v - rng.uniform(0.7, 0.76)) / 0.13)
            atten += rng.uniform(0.08, 0.14) * np.clip(1 - br, 0, 1) ** 0.5 * _smoothstep(v, 0.55, 0.65)

    # --- lung markings ------------------------------------------------------------------------
    vessels = np.zeros((n, n))

    def to_pixel(pu: float, pv: float) -> tuple[float, float]:  # (u, v) -> (row, column)
        ddx = n * scale * (pu * np.cos(rot) - (pv - 0.5) * np.sin(rot))
        ddy = n * scale * (pu * np.sin(rot) + (pv - 0.5) * np.cos(rot))
        return ddy + top + 0.5 * n, ddx + cx

    for side, *_ in lungs:
        hilum = to_pixel(side * rng.uniform(0.09, 0.11), rng.uniform(0.4, 0.44))
        base = np.pi if side < 0 else 0.0  # outwards: image left for the right lung
        for offset in (-0.8, 0.0, 0.7):  # upper, middle and lower branches
            angle = base + side * offset + rng.normal(0, 0.15)
            _vessel_tree(rng, vessels, hilum, angle, 0.1 * n * scale, 1.0, 5)
    vessels = ndimage.gaussian_filter(vessels, 3.5 * s + 0.5)
    vessels = vessels / (np.percentile(vessels[lung_any], 99) + 1e-8) if lung_any.any() else vessels
    texture = 0.5 + 0.5 * np.tanh(smooth_noise(rng, (n, n), 2.0 * s + 0.5))
    markings = np.clip(vessels, 0, 1.5) * 0.11 + 0.02 * texture

    # --- pneumothorax ---------------------------------------------------------------------------
    ptx = np.zeros((n, n), dtype=bool)
    pleural_line = np.zeros((n, n))
    lucency = np.zeros((n, n))
    if positive:
        n_regions = 1 + int(rng.random() < 0.3)
        first_side = int(rng.integers(2))
        drawn, attempts = 0, 0
        while drawn < n_regions and attempts < 10:  # redraw a region too small to see at this size
            attempts += 1
            side_index = first_side if (drawn == 0 or rng.random() < 0.5) else 1 - first_side
            side, uc, vc, lung, _ = lungs[side_index]
            depth = ndimage.distance_transform_edt(lung) / n  # distance to the lung's edge
            phi = np.arctan2(v - vc, side * (u - uc))  # 0 lateral, -pi/2 apical
            centre = rng.uniform(-1.9, 0.5) if drawn == 0 else rng.uniform(-2.2, 0.9)
            spread = rng.uniform(0.25, 1.1)
            taper = np.cos(np.clip((phi - centre) / spread, -1, 1) * np.pi / 2)
            taper = np.where(taper > 1e-3, taper, 0.0)
            thickness = rng.choice([rng.uniform(0.006, 0.02), rng.uniform(0.02, 0.07)], p=[0.4, 0.6])
            edge = max(thickness, 2.5 / n) * taper**0.6  # at least 2.5 px thick in its middle
            region = lung & (depth < edge) & (taper > 0)
            pieces, count = ndimage.label(region)
            if count > 1:  # a thin crescent can break into pieces: keep the largest, one region
                region = pieces == 1 + int(np.argmax(np.bincount(pieces.ravel())[1:]))
            region = ndimage.binary_fill_holes(ndimage.binary_closing(region, iterations=2)) & lung
            if region.sum() < 6:
                continue
            drawn += 1
            ptx |= region
            line = np.exp(-(((depth - edge) * n / max(1.2 * s, 0.7)) ** 2)) * (taper > 0.05) * lung
            pleural_line = np.maximum(pleural_line, line)
            lucency = np.maximum(lucency, region * rng.uniform(0.03, 0.09))
    markings = markings * (1 - ndimage.gaussian_filter(ptx.astype(np.float64), max(0.8, 1.0 * s)))
    atten += markings * lung_any + 0.05 * pleural_line - lucency * trunk

    # --- devices ----------------------------------------------------------------------------------
    devices = np.zeros((n, n))
    if rng.random() < (0.35 if positive else 0.03):  # a chest drain
        side = lungs[int(rng.integers(2))][0]
        t = np.linspace(0, 1, 40)
        v0, v1 = rng.uniform(0.6, 0.75), rng.uniform(0.15, 0.3)
        u0, bend = rng.uniform(0.35, 0.42), rng.uniform(0.05, 0.2)
        ys, xs = np.array([to_pixel(side * (u0 - bend * ti**2), v0 + (v1 - v0) * ti) for ti in t]).T
        dist = _curve_distance(ys, xs, n, n)
        devices += 0.5 * _band(dist, 4 * s + 0.5, 1.0) - 0.25 * _band(dist, 2 * s, 0.7)
    for _ in range(int(rng.integers(0, 4)) if rng.random() < 0.3 else 0):  # ECG electrodes
        ey, ex = rng.uniform(0.15, 0.8) * n, cx + rng.uniform(-0.4, 0.4) * n
        devices += 0.6 * _band(np.hypot(rows - ey, cols - ex), 9 * s + 1, 1.5)
    atten += devices
    return np.clip(atten, 0, None), ptx


def _uid(seed: int, index: int, kind: str, split: str) -> str:
    from pydicom.uid import generate_uid

    return str(generate_uid(entropy_srcs=["monai_gamble.make_chest_xrays", str(seed), split, str(index), kind]))


def _write_dicom(path: Path, image: np.ndarray, info: dict[str, Any]) -> None:
    """Write a radiograph in [0, 1] (MONOCHROME2 sense) as a DICOM file: 8-bit JPEG Baseline, or
    12-bit in 16 uncompressed with a rescale; MONOCHROME1 stores the inverted values."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit

    jpeg = info["storage"] == "jpeg8"
    bits = 8 if jpeg else 12
    top = 2**bits - 1
    if jpeg:
        stored = np.round(image * top).astype(np.uint16)
        slope, intercept = 1.0, 0.0
    else:  # values v = slope * stored + intercept, stored in [0, 4095]
        slope, intercept = info["rescale"]
        stored = np.clip(np.round(image * top), 0, top).astype(np.uint16)
    if info["photometric"] == "MONOCHROME1":
        stored = top - stored
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = _SOP_CLASS[info["modality"]]
    meta.MediaStorageSOPInstanceUID = info["sop"]
    meta.TransferSyntaxUID = JPEGBaseline8Bit if jpeg else ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = info["sop"]
    ds.StudyInstanceUID = info["study"]
    ds.SeriesInstanceUID = info["series"]
    ds.StudyDate, ds.StudyTime = "19010101", "000000.00"
    ds.Modality = info["modality"]
    if info["modality"] == "CR":
        ds.ConversionType = "WSD"
    ds.SeriesDescription = f"view: {info['view']}"
    ds.PatientName = info["patient"]
    ds.PatientID = info["patient"]
    ds.PatientSex = info["sex"]
    ds.PatientAge = f"{info['age']:03d}Y"
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = info["view"]
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    ds.PatientOrientation = ["L", "F"]  # displayed as facing the patient: the patient's left on the right
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = info["photometric"]
    ds.Rows, ds.Columns = image.shape
    ds.PixelSpacing = [info["spacing"], info["spacing"]]
    ds.ImagerPixelSpacing = [info["spacing"], info["spacing"]]
    ds.BitsAllocated = 8 if jpeg else 16
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    if not jpeg:
        ds.RescaleSlope = f"{slope:g}"
        ds.RescaleIntercept = f"{intercept:g}"
        ds.RescaleType = "US"
        ds.PixelData = stored.astype("<u2").tobytes()
    else:
        buffer = io.BytesIO()
        Image.fromarray(stored.astype(np.uint8), mode="L").save(buffer, format="JPEG", quality=92)
        ds.PixelData = encapsulate([buffer.getvalue()])
        ds["PixelData"].VR = "OB"
        ds.LossyImageCompression = "01"
        ds.LossyImageCompressionMethod = "ISO_10918_1"
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def _is_positive(index: int, fraction: float, offset: float) -> bool:
    """Low-discrepancy assignment: any first n images hold floor or ceil of ``n * fraction`` positives."""
    return int(np.floor((index + 1) * fraction + offset)) > int(np.floor(index * fraction + offset))


def _write_xray(job: tuple[int, str, int, int, float, float, float, float, str]) -> list[tuple[str, str]]:
    seed, split, index, size, fraction, offset, m1_fraction, native_fraction, folder = job
    rng = np.random.default_rng([seed, 0 if split == "train" else 1, index])
    positive = _is_positive(index, fraction, offset)
    female = bool(rng.random() < 0.45)
    image, regions = chest_xray_sample(rng, size, positive=positive, female=female)
    native = bool(rng.random() < native_fraction)
    info = {
        "sop": _uid(seed, index, "sop", split),
        "study": _uid(seed, index, "study", split),
        "series": _uid(seed, index, "series", split),
        "patient": f"synthetic-{split}-{seed}-{index}",
        "sex": "F" if female else "M",
        "age": int(rng.integers(16, 90)),
        "view": "PA" if rng.random() < 0.6 else "AP",
        "modality": "DX" if native else "CR",
        "storage": "native12" if native else "jpeg8",
        "photometric": "MONOCHROME1" if rng.random() < m1_fraction else "MONOCHROME2",
        "rescale": (float(rng.choice([1.0, 0.5, 2.0])), float(rng.choice([0.0, -1024.0, 100.0]))),
        "spacing": round(_SPACING_1024 * 1024 / size, 4),
    }
    sub = "dicom-images-train" if split == "train" else "dicom-images-test"
    path = Path(folder) / sub / info["study"] / info["series"] / f"{info['sop']}.dcm"
    _write_dicom(path, image, info)
    if split != "train":
        return []
    if regions.max() == 0:
        return [(info["sop"], "-1")]
    return [(info["sop"], rle_encode(regions == k, RLEFormat.SIIM)) for k in range(1, int(regions.max()) + 1)]


def make_chest_xrays(
    root: str | os.PathLike,
    num_images: int = 200,
    seed: int = 0,
    image_size: int = 1024,
    positive_fraction: float = 0.22,
    monochrome1_fraction: float = 0.25,
    native_fraction: float = 0.3,
    num_test_images: int = 0,
    csv_style: str = "stage1",
    overwrite: bool = False,
    num_workers: int | None = None,
) -> Path:
    """Write synthetic chest radiographs with pneumothorax as DICOM files and their RLE CSV, in the
    layout of the SIIM-ACR Pneumothorax Segmentation challenge (Kaggle, 2019)::

        root/dicom-images-train/<study>/<series>/<SOPInstanceUID>.dcm
        root/dicom-images-test/<study>/<series>/<SOPInstanceUID>.dcm    (num_test_images, no labels)
        root/train-rle.csv        "ImageId, EncodedPixels", values " -1" or " <relative RLE>" (stage 1)
        root/stage_2_train.csv    "ImageId,EncodedPixels" without spaces (csv_style="stage2")

    Each image is drawn by :func:`chest_xray_sample` from ``numpy.random.default_rng([seed, 0,
    index])`` (test images ``[seed, 1, index]``). Which images have pneumothorax is a
    low-discrepancy sequence with a seeded offset, so that any first ``n`` images hold
    ``n * positive_fraction`` of them, rounded down or up (0.22 by default, as the challenge's 2,669
    of 12,047). Each pneumothorax region (connected component) is one CSV row, in the competition's
    relative, column-major run-length encoding; an image without pneumothorax has one row ``-1``.

    The files are real DICOM, readable by pydicom, MONAI's ``PydicomReader`` and ``ITKReader``:
    modality CR written as 8-bit JPEG Baseline (transfer syntax 1.2.840.10008.1.2.4.50, as the
    real images) or, for ``native_fraction`` of the images, DX as 12 bits in 16, uncompressed, with a
    rescale slope and intercept; ``monochrome1_fraction`` of them are MONOCHROME1 (stored inverted);
    pixel spacing (0.168 mm at 1024 px, scaled with ``image_size``), patient sex and age (``038Y``),
    view position and deterministic UIDs (the ImageId is the SOP Instance UID).

    The folder is written atomically with a ``synthetic.json`` marker of the parameters; a second
    call with the same parameters reuses it. Under ``torch.distributed`` rank 0 writes and the
    others wait.

    Args:
        root: the dataset folder to create.
        num_images: training images (with CSV rows).
        seed: the random seed.
        image_size: height and width in pixels (the real images: 1024).
        positive_fraction: fraction of training images with pneumothorax, in [0, 1].
        monochrome1_fraction: fraction of images stored as MONOCHROME1, in [0, 1].
        native_fraction: fraction of images stored uncompressed with 12 bits and a rescale, in [0, 1].
        num_test_images: unlabelled images in ``dicom-images-test/``.
        csv_style: ``"stage1"`` (``train-rle.csv``) or ``"stage2"`` (``stage_2_train.csv``).
        overwrite: replace an existing dataset written with other parameters.
        num_workers: processes that draw the images (None: the CPU count, at most 8); the bytes
            written do not depend on it.

    Returns:
        The dataset folder.

    Raises:
        ValueError: for fewer than one image, a negative number of test images, an image size below
            64, a fraction outside [0, 1] or an unknown ``csv_style``.
        FileExistsError: if ``root`` holds something else and ``overwrite`` is False.

    Example:
        >>> root = make_chest_xrays("/tmp/siim_synth", num_images=20, image_size=256)
        >>> datalist = siim_datalist(root)
    """
    if int(num_images) < 1:
        raise ValueError(f"num_images must be at least 1, got {num_images}.")
    if int(num_test_images) < 0:
        raise ValueError(f"num_test_images must not be negative, got {num_test_images}.")
    if int(image_size) < 64:
        raise ValueError(f"image_size must be at least 64, got {image_size}.")
    for name, value in (
        ("positive_fraction", positive_fraction),
        ("monochrome1_fraction", monochrome1_fraction),
        ("native_fraction", native_fraction),
    ):
        if not 0 <= value <= 1:
            raise ValueError(f"{name} must be in [0, 1], got {value}.")
    if csv_style not in _CSV_NAMES:
        raise ValueError(f"csv_style must be one of {sorted(_CSV_NAMES)}, got {csv_style!r}.")
    params = {
        "generator": "make_chest_xrays",
        "num_images": int(num_images),
        "seed": int(seed),
        "image_size": int(image_size),
        "positive_fraction": float(positive_fraction),
        "monochrome1_fraction": float(monochrome1_fraction),
        "native_fraction": float(native_fraction),
        "num_test_images": int(num_test_images),
        "csv_style": csv_style,
    }
    offset = float(np.random.default_rng([int(seed), 2]).random())

    def writer(folder: Path) -> None:
        common = (
            int(image_size),
            float(positive_fraction),
            offset,
            float(monochrome1_fraction),
            float(native_fraction),
        )
        jobs = [(int(seed), "train", i, *common, str(folder)) for i in range(int(num_images))]
        jobs += [(int(seed), "test", i, *common, str(folder)) for i in range(int(num_test_images))]
        rows = [row for image_rows in map_jobs(_write_xray, jobs, num_workers) for row in image_rows]
        space = " " if csv_style == "stage1" else ""
        with open(folder / _CSV_NAMES[csv_style], "w", newline="") as f:
            out = csv.writer(f)
            out.writerow(["ImageId", f"{space}EncodedPixels"])
            out.writerows([image_id, f"{space}{rle}"] for image_id, rle in rows)

    return write_once(Path(root), params, writer, overwrite)
