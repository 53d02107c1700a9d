"""A seeded generator of H&E-like kidney tiles in the layout of the podocyte dataset (Sarder lab).

The real dataset (Lalwani, "DeepLab with adversarial loss for semi-supervised semantic segmentation
of Medical Images"; data of P. Sarder's lab) holds RGB tiles of renal cortex with four classes:
background, glomeruli, podocyte nuclei and other (non-podocyte) glomerular nuclei, and many more
tiles without masks. The generator writes a stand-in in the same layout, so that
:func:`monai_gamble.data.pathology_datalist` reads both::

    root/training/images/<ID>.jpg    RGB tile
    root/training/masks/<ID>.png     class indices 0-3, same size
    root/unlabelled/<ID>.jpg         RGB tiles without masks

The tiles are rendered with the Beer-Lambert law from two stain concentration maps, hematoxylin
(nuclei, blue-purple) and eosin (cytoplasm and stroma, pink), as in stain deconvolution (Ruifrok &
Johnston, "Quantification of histochemical staining by color deconvolution", Anal Quant Cytol
Histol 2001): :math:`I = I_0 \\exp(-(c_H h + c_E e))` per pixel, with the optical densities
:math:`h, e` of the two stains jittered per tile (stain variation between slides and scanners).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage.color import rgb_from_hed

from ..classes import PATHOLOGY_CLASSES
from ._common import map_jobs, radius_profile, smooth_noise, write_once

__all__ = ["PATHOLOGY_CLASSES", "make_pathology_tiles", "pathology_tile_sample"]

_BACKGROUND, _GLOMERULUS, _PODOCYTE, _NON_PODOCYTE = range(4)


def _ellipse(
    conc: np.ndarray,
    mask: np.ndarray | None,
    cy: float,
    cx: float,
    ry: float,
    rx: float,
    angle: float,
    value: float,
    label: int | None = None,
    texture: np.ndarray | None = None,
) -> None:
    """Add ``value`` (times an optional texture) to ``conc`` inside an ellipse with soft edges, and
    write ``label`` into ``mask`` where the ellipse covers more than half a pixel."""
    h, w = conc.shape
    r = max(ry, rx) + 2
    y0, y1 = max(int(cy - r), 0), min(int(cy + r) + 2, h)
    x0, x1 = max(int(cx - r), 0), min(int(cx + r) + 2, w)
    if y0 >= y1 or x0 >= x1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    c, s = np.cos(angle), np.sin(angle)
    u, v = (yy - cy) * c + (xx - cx) * s, -(yy - cy) * s + (xx - cx) * c
    d = np.sqrt((u / ry) ** 2 + (v / rx) ** 2)  # 1 on the boundary
    cover = np.clip((1.0 - d) * min(ry, rx) + 0.5, 0.0, 1.0)  # anti-aliased, about one pixel wide
    amount = value * cover
    if texture is not None:
        amount = amount * texture[y0:y1, x0:x1]
    conc[y0:y1, x0:x1] += amount
    if mask is not None and label is not None:
        mask[y0:y1, x0:x1][cover > 0.5] = label


def _glomerulus(
    rng: np.random.Generator,
    hema: np.ndarray,
    eosin: np.ndarray,
    mask: np.ndarray,
    cy: float,
    cx: float,
    radius: float,
    zoom: float,
    chromatin: np.ndarray,
) -> None:
    """Draw one glomerulus: Bowman's capsule with flat parietal nuclei, the pale Bowman's space, and
    a lobulated capillary tuft with small mesangial/endothelial nuclei inside and large dark podocyte
    nuclei on its outer rim, bulging into Bowman's space."""
    h, w = hema.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    dist = np.hypot(yy - cy, xx - cx)
    theta = np.arctan2(yy - cy, xx - cx)
    capsule_profile = radius_profile(rng, irregularity=0.12, n_harmonics=4)
    r_capsule = radius * capsule_profile(theta)
    tuft_profile = radius_profile(rng, irregularity=0.35, n_harmonics=7)
    tuft_scale = rng.uniform(0.74, 0.86) * radius
    r_tuft = np.minimum(tuft_scale * tuft_profile(theta), r_capsule - 2 * zoom)
    capsule_width = rng.uniform(1.8, 3.0) * zoom

    inside = dist <= r_capsule
    mask[inside] = _GLOMERULUS
    # Bowman's space: nearly no stain; the capsule: a thin eosinophilic ring
    space = inside & (dist > r_tuft)
    eosin[space] *= 0.12
    hema[space] *= 0.1
    eosin += 0.55 * np.exp(-(((dist - r_capsule + capsule_width / 2) / (capsule_width / 2)) ** 2))
    # the tuft: mesangial matrix (eosin) with open capillary loops (pale holes)
    tuft = dist <= r_tuft
    eosin[tuft] = 0.5 + 0.12 * smooth_noise(rng, (h, w), 2.0 * zoom)[tuft]
    loops = np.zeros((h, w))
    n_loops = int(rng.integers(25, 45) * (radius / (55 * zoom)) ** 2)
    for _ in range(n_loops):
        rr = tuft_scale * np.sqrt(rng.uniform(0.0, 0.8))
        a = rng.uniform(0, 2 * np.pi)
        rl = rng.uniform(2.0, 4.0) * zoom
        _ellipse(loops, None, cy + rr * np.sin(a), cx + rr * np.cos(a), rl, rl * rng.uniform(0.7, 1.4), a, 1.0)
    eosin[tuft] *= 1.0 - 0.7 * np.clip(loops[tuft], 0, 1)

    # parietal epithelial nuclei: flat, on the capsule (non-podocyte)
    for a in rng.uniform(0, 2 * np.pi, int(rng.integers(3, 8))):
        rr = radius * float(capsule_profile(np.array([a]))[0]) - capsule_width / 2
        _ellipse(
            hema,
            mask,
            cy + rr * np.sin(a),
            cx + rr * np.cos(a),
            1.2 * zoom,
            3.2 * zoom,
            a,
            0.8,
            _NON_PODOCYTE,
            chromatin,
        )
    # mesangial and endothelial nuclei: small, inside the tuft (non-podocyte)
    n_inner = int(rng.integers(18, 36) * (radius / (55 * zoom)) ** 2)
    for _ in range(n_inner):
        rr = np.sqrt(rng.uniform(0.0, 1.0)) * 0.78
        a = rng.uniform(0, 2 * np.pi)
        rr = rr * tuft_scale * float(tuft_profile(np.array([a]))[0])
        r_n = rng.uniform(1.7, 2.6) * zoom
        _ellipse(
            hema,
            mask,
            cy + rr * np.sin(a),
            cx + rr * np.cos(a),
            r_n,
            r_n * rng.uniform(1.0, 1.6),
            rng.uniform(0, np.pi),
            rng.uniform(0.55, 0.85),
            _NON_PODOCYTE,
            chromatin,
        )
    # podocytes: large dark nuclei on the outer rim of the tuft, elongated along it
    n_podo = int(rng.integers(14, 24) * radius / (55 * zoom))
    angles = np.sort(rng.uniform(0, 2 * np.pi, n_podo))
    for a in angles:
        r_p = rng.uniform(3.8, 5.4) * zoom
        rim = min(tuft_scale * float(tuft_profile(np.array([a]))[0]), radius * float(capsule_profile(np.array([a]))[0]))
        rr = rim - 0.45 * r_p
        _ellipse(
            hema,
            mask,
            cy + rr * np.sin(a),
            cx + rr * np.cos(a),
            r_p * rng.uniform(0.65, 0.85),
            r_p * rng.uniform(1.05, 1.3),
            a,
            rng.uniform(1.0, 1.35),
            _PODOCYTE,
            chromatin,
        )


def _tubule(
    rng: np.random.Generator,
    hema: np.ndarray,
    eosin: np.ndarray,
    cy: float,
    cx: float,
    radius: float,
    zoom: float,
    chromatin: np.ndarray,
) -> None:
    """Draw one tubule cross-section: an eosinophilic epithelial ring around a pale lumen, with
    nuclei along the ring (background class: nuclei outside glomeruli are not labelled)."""
    aspect = rng.uniform(0.55, 1.0)
    angle = rng.uniform(0, np.pi)
    lumen = rng.uniform(0.45, 0.75)
    _ellipse(eosin, None, cy, cx, radius * aspect, radius, angle, rng.uniform(0.3, 0.55))
    _ellipse(eosin, None, cy, cx, radius * aspect * lumen, radius * lumen, angle, -1.2)
    n = int(2 * np.pi * radius / (rng.uniform(7.0, 12.0) * zoom))
    mid = 0.5 * (1 + lumen)
    c, s = np.cos(angle), np.sin(angle)
    for a in rng.uniform(0, 2 * np.pi, n):
        u, v = radius * aspect * mid * np.sin(a), radius * mid * np.cos(a)
        r_n = rng.uniform(1.8, 2.8) * zoom
        _ellipse(
            hema,
            None,
            cy + u * c - v * s,
            cx + u * s + v * c,
            r_n,
            r_n * rng.uniform(1.0, 1.4),
            a,
            0.7,
            None,
            chromatin,
        )


def pathology_tile_sample(
    rng: np.random.Generator, size: int = 256, num_glomeruli: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Render one synthetic H&E tile of renal cortex and its 4-class mask.

    The tile holds eosinophilic interstitium with tubule cross-sections (epithelial rings with
    nuclei around pale lumina) and 0-2 glomeruli (:data:`PATHOLOGY_CLASSES`): Bowman's capsule and
    space, a lobulated capillary tuft, small non-podocyte nuclei inside the tuft and on the capsule,
    and large, dark podocyte nuclei on the outer rim of the tuft. Nuclei outside glomeruli (in the
    tubules) are background, so the class of a nucleus depends on where it is, not only on how it
    looks. Podocytes cover a few percent of the pixels. Between tiles the scale (x0.8 to x1.25),
    the stains' colours and amounts, and the illumination vary.

    Args:
        rng: the random generator (the tile is a deterministic function of its state).
        size: height and width in pixels (the anatomy scales with it: 256 is the reference).
        num_glomeruli: number of glomeruli (None: 0, 1 or 2 with probabilities 0.1, 0.65, 0.25).

    Returns:
        ``(image, mask)``: ``uint8`` arrays ``(size, size, 3)`` (RGB) and ``(size, size)`` with
        values 0 (background), 1 (glomeruli), 2 (podocyte), 3 (non-podocyte).

    Raises:
        ValueError: for ``size`` below 32 or a negative ``num_glomeruli``.
    """
    if int(size) < 32:
        raise ValueError(f"size must be at least 32, got {size}.")
    s = int(size)
    zoom = s / 256 * rng.uniform(0.8, 1.25)
    shape = (s, s)
    hema = 0.04 + 0.02 * smooth_noise(rng, shape, 3.0 * zoom)
    eosin = 0.38 + 0.1 * smooth_noise(rng, shape, 10.0 * zoom) + 0.05 * smooth_noise(rng, shape, 1.5 * zoom)
    chromatin = np.clip(1.0 + 0.25 * smooth_noise(rng, shape, 0.8 * zoom), 0.4, 1.6)
    mask = np.zeros(shape, dtype=np.uint8)

    n_glom = int(rng.choice([0, 1, 2], p=[0.1, 0.65, 0.25])) if num_glomeruli is None else int(num_glomeruli)
    if n_glom < 0:
        raise ValueError(f"num_glomeruli must be non-negative, got {num_glomeruli}.")
    glomeruli: list[tuple[float, float, float]] = []
    for _ in range(50 * max(n_glom, 1)):
        if len(glomeruli) == n_glom:
            break
        radius = rng.uniform(42.0, 68.0) * zoom
        cy, cx = rng.uniform(0.15 * s, 0.85 * s, size=2)
        if all(np.hypot(cy - y, cx - x) > 1.15 * (radius + r) + 6 * zoom for y, x, r in glomeruli):
            glomeruli.append((cy, cx, radius))

    # tubules everywhere but on the glomeruli, drawn first (glomeruli replace what lies under them)
    placed = [(y, x, 1.15 * r + 4 * zoom) for y, x, r in glomeruli]
    for _ in range(600):
        radius = rng.uniform(12.0, 26.0) * zoom
        cy, cx = rng.uniform(-radius / 2, s + radius / 2, size=2)
        if all(np.hypot(cy - y, cx - x) > radius + r - 1 * zoom for y, x, r in placed):
            _tubule(rng, hema, eosin, cy, cx, radius, zoom, chromatin)
            placed.append((cy, cx, radius))
    for cy, cx, radius in glomeruli:
        yy, xx = np.ogrid[0:s, 0:s]
        inside = np.hypot(yy - cy, xx - cx) <= 1.15 * radius + 1.5
        hema[inside] = 0.04
        eosin[inside] = 0.38
        _glomerulus(rng, hema, eosin, mask, cy, cx, radius, zoom, chromatin)

    # the edge of the tissue section (glass beyond it) on some tiles
    if rng.random() < 0.2:
        a = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:s, 0:s].astype(np.float64)
        depth = (yy - s / 2) * np.sin(a) + (xx - s / 2) * np.cos(a) - rng.uniform(0.15, 0.45) * s
        depth += 6 * zoom * smooth_noise(rng, shape, 12.0 * zoom)
        glass = depth > 0
        hema[glass] = 0.0
        eosin[glass] = 0.01
        mask[glass] = _BACKGROUND
    # optics: a slight blur; stains: per-tile colours and amounts (Ruifrok & Johnston vectors, jittered)
    hema = ndimage.gaussian_filter(np.clip(hema, 0, None), 0.6 * zoom)
    eosin = ndimage.gaussian_filter(np.clip(eosin, 0, None), 0.6 * zoom)
    stains = rgb_from_hed[:2] + rng.normal(0.0, 0.05, size=(2, 3))
    stains = np.clip(stains, 0.02, None)
    stains /= np.linalg.norm(stains, axis=1, keepdims=True)
    amounts = rng.uniform(0.75, 1.3, size=2) * np.array([1.6, 1.1])
    density = hema[..., None] * amounts[0] * stains[0] + eosin[..., None] * amounts[1] * stains[1]
    white = rng.uniform(225.0, 250.0) * (1.0 + rng.normal(0.0, 0.015, size=3))
    shading = 1.0 + 0.03 * smooth_noise(rng, shape, 0.5 * s)[..., None]
    rgb = white * shading * np.exp(-density) + rng.normal(0.0, 2.0, size=(s, s, 3))
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8), mask


def _write_tile(job: tuple[int, int, int, int, str, str, bool]) -> None:
    seed, stream, index, size, folder, ext, with_mask = job
    rng = np.random.default_rng([seed, stream, index])
    image, mask = pathology_tile_sample(rng, size)
    name = f"{index:04d}" if with_mask else f"u{index:04d}"
    image_dir = Path(folder) / ("training/images" if with_mask else "unlabelled")
    kwargs = {"quality": 95, "subsampling": 0} if ext == "jpg" else {}
    Image.fromarray(image, mode="RGB").save(image_dir / f"{name}.{ext}", **kwargs)
    if with_mask:
        Image.fromarray(mask, mode="L").save(Path(folder) / "training" / "masks" / f"{name}.png")


def make_pathology_tiles(
    root: str | os.PathLike,
    num_labelled: int = 120,
    num_unlabelled: int = 120,
    seed: int = 0,
    tile_size: int = 256,
    image_format: str = "jpg",
    overwrite: bool = False,
    num_workers: int | None = None,
) -> Path:
    """Write a synthetic H&E podocyte dataset in the layout of the real one (module docstring).

    Each tile is drawn by :func:`pathology_tile_sample` from its own generator,
    ``numpy.random.default_rng([seed, 0, index])`` for labelled tiles (``<index>.jpg`` and
    ``<index>.png``, from ``0001``) and ``default_rng([seed, 1, index])`` for unlabelled ones
    (``u<index>.jpg``): the same seed gives the same bytes, and the first tiles do not change when
    the counts grow. JPEG tiles are written at quality 95 without chroma subsampling (small
    nuclei keep their colour). The folder is written atomically with a ``synthetic.json`` marker
    of the parameters; a second call with the same parameters reuses it (the bundle's first-run
    generation is idempotent); under ``torch.distributed`` rank 0 writes and the others wait.

    Args:
        root: the dataset folder to create.
        num_labelled: tiles with masks (``training/``).
        num_unlabelled: tiles without masks (``unlabelled/``); 0 writes no such folder.
        seed: the random seed.
        tile_size: height and width of the tiles (the anatomy scales with it).
        image_format: ``"jpg"`` (as the real dataset) or ``"png"`` (lossless).
        overwrite: replace an existing dataset written with other parameters.
        num_workers: processes that draw the tiles (None: the CPU count, at most 8); the bytes do
            not depend on it.

    Returns:
        The dataset folder.

    Raises:
        ValueError: for ``num_labelled`` below 1, a negative ``num_unlabelled``, ``tile_size`` below
            32 or an unknown ``image_format``.
        FileExistsError: if ``root`` holds something else and ``overwrite`` is False.

    Example:
        >>> root = make_pathology_tiles("/tmp/podocytes", num_labelled=40, num_unlabelled=40)
        >>> datalist = pathology_datalist(root)
    """
    if int(num_labelled) < 1:
        raise ValueError(f"num_labelled must be at least 1, got {num_labelled}.")
    if int(num_unlabelled) < 0:
        raise ValueError(f"num_unlabelled must be non-negative, got {num_unlabelled}.")
    if int(tile_size) < 32:
        raise ValueError(f"tile_size must be at least 32, got {tile_size}.")
    ext = str(image_format).lower().lstrip(".")
    if ext not in ("jpg", "png"):
        raise ValueError(f"image_format must be 'jpg' or 'png', got {image_format!r}.")
    params = {
        "generator": "make_pathology_tiles",
        "num_labelled": int(num_labelled),
        "num_unlabelled": int(num_unlabelled),
        "seed": int(seed),
        "tile_size": int(tile_size),
        "image_format": ext,
    }

    def writer(folder: Path) -> None:
        (folder / "training" / "images").mkdir(parents=True)
        (folder / "training" / "masks").mkdir()
        if int(num_unlabelled):
            (folder / "unlabelled").mkdir()
        jobs = [(int(seed), 0, i, int(tile_size), str(folder), ext, True) for i in range(1, int(num_labelled) + 1)]
        jobs += [(int(seed), 1, i, int(tile_size), str(folder), ext, False) for i in range(1, int(num_unlabelled) + 1)]
        map_jobs(_write_tile, jobs, num_workers)

    return write_once(Path(root), params, writer, overwrite)
