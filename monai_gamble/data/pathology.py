"""Datalists of pathology tiles: labelled tiles with class masks and unlabelled tiles, for
semi-supervised segmentation.

Three real layouts are read (:class:`PathologyLayout`); every tile and mask is checked before
training (an image without a mask, a mask of another size, a tile that is not RGB, mask values
outside the classes, an empty ``unlabelled/`` folder: each an error that names the file).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from monai.utils import StrEnum, look_up_option
from PIL import Image

from .classes import MONUSAC_CLASSES, PATHOLOGY_CLASSES, SARDER_GLOMERULI_CLASSES
from .datasets import _check_fractions, _check_pairs, _list_files, split_datalist

__all__ = ["MONUSAC_CLASSES", "PathologyLayout", "SARDER_GLOMERULI_CLASSES", "pathology_datalist"]

_TILE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff")
_MASK_EXTENSIONS = (".png", ".tif", ".tiff")


class PathologyLayout(StrEnum):
    """The folder layouts :func:`pathology_datalist` reads.

    - ``"podocyte"``: the podocyte dataset (Sarder lab; Lalwani's report) and
      :func:`monai_gamble.data.make_pathology_tiles`: ``training/images/<ID>.jpg``,
      ``training/masks/<ID>.png`` (class indices 0-3), and ``unlabelled/<ID>.jpg`` without masks.
    - ``"sarder_frozen"``: the glomerulus tiles of SarderLab/Frozen_Glom_Segmentation:
      ``slides_patch/slide_<ID>.png`` and ``masks_patch/mask_<ID>.png`` with values {0, 255}
      (read as classes 0, 1), no unlabelled tiles.
    - ``"monusac"``: ``images/<ID>.png`` and ``class_masks/<ID>.png`` with nucleus classes 0-4.
    - ``"auto"``: the first of the above whose folders exist in ``root``.
    """

    AUTO = "auto"
    PODOCYTE = "podocyte"
    SARDER_FROZEN = "sarder_frozen"
    MONUSAC = "monusac"


# per layout: (image folder, mask folder, image prefix, mask prefix, default classes, mask values)
_LAYOUTS: dict[PathologyLayout, tuple[str, str, str, str, tuple[str, ...], str]] = {
    PathologyLayout.PODOCYTE: ("training/images", "training/masks", "", "", PATHOLOGY_CLASSES, "indices"),
    PathologyLayout.SARDER_FROZEN: (
        "slides_patch",
        "masks_patch",
        "slide_",
        "mask_",
        SARDER_GLOMERULI_CLASSES,
        "0_255",
    ),
    PathologyLayout.MONUSAC: ("images", "class_masks", "", "", MONUSAC_CLASSES, "indices"),
}


def _detect_layout(root: Path) -> PathologyLayout:
    for layout, (image_dir, mask_dir, *_) in _LAYOUTS.items():
        if (root / image_dir).is_dir() and (root / mask_dir).is_dir():
            return layout
    expected = "; ".join(f"{lay.value}: {spec[0]}/ and {spec[1]}/" for lay, spec in _LAYOUTS.items())
    raise FileNotFoundError(f"{root} holds none of the pathology layouts ({expected}).")


def _check_tile(path: Path) -> tuple[int, int]:
    """The size of an RGB tile; raises naming the file if it cannot be read or is not RGB."""
    try:
        with Image.open(path) as im:
            mode, size = im.mode, im.size
    except (OSError, SyntaxError) as e:
        raise ValueError(f"cannot read the tile {path}: {e}") from e
    if mode != "RGB":
        raise ValueError(
            f"tile {path} is a {mode!r} image; pathology tiles must be RGB (3 channels, 8 bits): convert it, "
            "e.g. PIL's Image.convert('RGB') for RGBA or CMYK, or re-export the tile."
        )
    return size


def _check_mask(image: Path, mask: Path, classes: Sequence[str], values: str, check_values: bool) -> None:
    size = _check_tile(image)
    try:
        with Image.open(mask) as m:
            mask_size = m.size
            a = np.asarray(m) if check_values else None
    except (OSError, SyntaxError) as e:
        raise ValueError(f"cannot read the mask {mask}: {e}") from e
    if mask_size != size:
        raise ValueError(
            f"mask {mask} is {mask_size[0]}x{mask_size[1]} (WxH) but its tile {image.name} is {size[0]}x{size[1]}."
        )
    if a is None:
        return
    if a.ndim == 3:
        if not (a == a[..., :1]).all():
            raise ValueError(
                f"mask {mask} has {a.shape[-1]} different channels; expected one channel of class indices."
            )
        a = a[..., 0]
    found = np.unique(a)
    if values == "0_255":
        if not np.isin(found, (0, 255)).all():
            raise ValueError(f"mask {mask} holds values {found[:10].tolist()}; glomerulus masks hold only 0 and 255.")
    elif found.size and (found.min() < 0 or found.max() >= len(classes)):
        names = ", ".join(f"{i} {n}" for i, n in enumerate(classes))
        raise ValueError(
            f"mask {mask} holds values {found[:10].tolist()}{'...' if found.size > 10 else ''} outside "
            f"0-{len(classes) - 1} ({names}): masks must hold class indices."
        )


def pathology_datalist(
    root: str | os.PathLike,
    layout: PathologyLayout | str = PathologyLayout.AUTO,
    classes: Sequence[str] | None = None,
    labeled_fraction: float = 1.0,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    unlabeled_dir: str = "unlabelled",
    check_masks: bool = True,
) -> dict[str, Any]:
    """Labelled and unlabelled datalists of pathology tiles, the labelled ones split 80/10/10.

    Labelled tiles (image and mask with the same ID, see :class:`PathologyLayout`) are split into
    training, validation and test with :func:`monai_gamble.data.split_datalist` (seeded, sorted by
    ID first). Then, to study semi-supervised learning, only ``labeled_fraction`` of the training
    split keeps its masks: a seeded random subset of ``max(1, round(labeled_fraction * n))`` tiles
    (the subsets are nested: for one seed the 10% subset lies inside the 25% one); the other
    training tiles join the unlabelled list *without* their masks, before the tiles of the
    ``unlabelled/`` folder (podocyte layout). Validation and test keep all their masks.

    Args:
        root: the dataset folder.
        layout: one of :class:`PathologyLayout` (``"auto"``: detected from the folders).
        classes: the class names, by mask value (default: the layout's, e.g. background,
            glomeruli, podocyte, non-podocyte); masks are checked against their number.
        labeled_fraction: the fraction of the training split that keeps its masks, in (0, 1].
        fractions: training, validation and test fractions of the labelled tiles.
        seed: the seed of the split and of the labelled subset.
        unlabeled_dir: the folder of unlabelled tiles in ``root`` (podocyte layout); a missing
            folder means none, an empty one is an error.
        check_masks: read every mask and check its values (sizes and RGB tiles are always checked).

    Returns:
        ``{"training": [...], "validation": [...], "test": [...], "unlabeled": [...], "labels":
        {"0": "background", ...}}``: labelled items are ``{"image": path, "label": path, "id": ID}``,
        unlabelled ones ``{"image": path, "id": ID}``; ``labels`` maps the class index (as a
        string, as in MONAI's Decathlon datalists) to the class name. Masks of the
        ``sarder_frozen`` layout hold {0, 255}: map 255 to 1 when loading (the bundle's
        ``MapLabelValued``).

    Raises:
        FileNotFoundError: if ``root`` does not exist, holds no known layout, or holds no tile.
        ValueError: naming the files, for a tile without a mask, a mask without a tile, a tile that
            is not RGB, a mask of another size than its tile, mask values outside the classes (or
            other than {0, 255} in the ``sarder_frozen`` layout), an unreadable file, an empty
            unlabelled folder; and for a ``labeled_fraction`` outside (0, 1], bad ``fractions``
            or fewer than two classes.

    Example:
        >>> datalist = pathology_datalist("/data/podocytes", labeled_fraction=0.25, seed=0)
        >>> len(datalist["training"]), len(datalist["unlabeled"]), datalist["labels"]["2"]
        (24, 192, 'podocyte')
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"pathology dataset folder {root} does not exist.")
    if not 0.0 < float(labeled_fraction) <= 1.0:
        raise ValueError(f"labeled_fraction must be in (0, 1], got {labeled_fraction}.")
    _check_fractions(fractions)
    layout = look_up_option(layout, PathologyLayout)
    if layout == PathologyLayout.AUTO:
        layout = _detect_layout(root)
    image_dir, mask_dir, image_prefix, mask_prefix, default_classes, values = _LAYOUTS[layout]
    classes = tuple(str(c) for c in (default_classes if classes is None else classes))
    if len(classes) < 2:
        raise ValueError(f"need at least two classes (background and one more), got {classes}.")
    for folder in (root / image_dir, root / mask_dir):
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} does not exist: {root} is not in the {layout.value!r} layout.")
    images = _list_files(root / image_dir, _TILE_EXTENSIONS, image_prefix)
    masks = _list_files(root / mask_dir, _MASK_EXTENSIONS, mask_prefix)
    if not images and not masks:
        raise FileNotFoundError(f"{root / image_dir} and {root / mask_dir} hold no tiles.")
    _check_pairs(images, masks, root / image_dir, root / mask_dir, image_word="tile")
    items = []
    for sid in images:
        _check_mask(images[sid], masks[sid], classes, values, check_masks)
        items.append({"image": str(images[sid]), "label": str(masks[sid]), "id": sid})

    unlabeled: list[dict[str, Any]] = []
    folder = root / unlabeled_dir
    if layout == PathologyLayout.PODOCYTE and folder.exists():
        if not folder.is_dir():
            raise ValueError(f"{folder} is not a folder.")
        tiles = _list_files(folder, _TILE_EXTENSIONS)
        if not tiles:
            raise ValueError(
                f"the unlabelled folder {folder} holds no tiles ({', '.join(_TILE_EXTENSIONS)}): add tiles or remove "
                "the folder."
            )
        for sid, path in tiles.items():
            _check_tile(path)
            unlabeled.append({"image": str(path), "id": sid})

    split = split_datalist(items, fractions=fractions, seed=seed)
    training = split["training"]
    if labeled_fraction < 1.0 and training:
        keep = max(1, round(float(labeled_fraction) * len(training)))
        order = np.random.default_rng([int(seed), 1]).permutation(len(training))
        kept = set(order[:keep].tolist())
        unlabeled = [
            {"image": it["image"], "id": it["id"]} for i, it in enumerate(training) if i not in kept
        ] + unlabeled
        training = [it for i, it in enumerate(training) if i in kept]
    return {
        "training": training,
        "validation": split["validation"],
        "test": split["test"],
        "unlabeled": unlabeled,
        "labels": {str(i): name for i, name in enumerate(classes)},
    }
