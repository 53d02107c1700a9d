"""Datalists of Kaggle's "Ultrasound Nerve Segmentation" layout (brachial plexus, 2016).

The layout::

    root/train/<subject>_<n>.tif        8-bit grayscale frame, 580x420 (W x H), LZW TIFF
    root/train/<subject>_<n>_mask.tif   BP annotation of the same size, values {0, 255} (empty: no BP)
    root/train_masks.csv                subject,img,pixels (Kaggle RLE, empty when no BP); optional
    root/test/<k>.tif                   unlabelled frames of other subjects

The same functions read the real data and the stand-in of
:func:`monai_gamble.data.make_nerve_ultrasound`.
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .datasets import SPLIT_NAMES, _names, _natural_key, read_csv_rows, split_datalist
from .rle import rle_decode

__all__ = ["find_conflicting_duplicates", "nerve_datalist", "nerve_test_datalist"]

_GREY_MODES = ("1", "L", "I", "I;16", "F")
_TRAIN_NAME = re.compile(r"^(\d+)_(\d+)$")


def _check_grey(im: Image.Image, path: Path, what: str) -> None:
    if im.mode not in _GREY_MODES:
        raise ValueError(
            f"{what} {path} is a {im.mode} image ({len(im.getbands())} channels); the nerve data are 8-bit "
            "grayscale: convert it (e.g. PIL's convert('L')) first."
        )


def _read_grey(path: Path, what: str) -> np.ndarray:
    """Pixels of a one-channel image file, with errors that name the file."""
    try:
        with Image.open(path) as im:
            _check_grey(im, path, what)
            return np.asarray(im)
    except (OSError, SyntaxError) as e:  # PIL raises these for truncated or non-image files
        raise ValueError(f"cannot read {what} {path}: {e}") from e


def _digest(a: np.ndarray) -> str:
    return hashlib.blake2b(np.ascontiguousarray(a).tobytes() + str(a.shape).encode(), digest_size=16).hexdigest()


def find_conflicting_duplicates(items: Sequence[dict[str, Any]]) -> list[list[str]]:
    """Groups of images that are pixel-identical but whose masks differ.

    Liao et al. found 9 training images of the nerve challenge that are identical to another image
    (e.g. ``8_56`` and ``8_70``) but annotated differently (one with the nerve, one without): a
    model cannot fit both, and they removed them. Images are compared by a hash of their pixels
    (not of their files, which may differ in compression), masks likewise.

    Args:
        items: datalist items with ``"image"`` and ``"label"`` paths and an ``"id"``.

    Returns:
        The IDs of each group of identical images with at least two different masks, each group
        sorted, groups sorted by their first ID; identical images with identical masks are not
        listed.

    Raises:
        ValueError: naming the file, for an unreadable or non-grayscale image or mask.
    """
    groups: dict[str, list[tuple[str, str]]] = {}
    for it in items:
        image = _digest(_read_grey(Path(it["image"]), "image"))
        mask = _digest(_read_grey(Path(it["label"]), "mask") > 0)
        groups.setdefault(image, []).append((str(it["id"]), mask))
    conflicts = [
        sorted((sid for sid, _ in members), key=_natural_key)
        for members in groups.values()
        if len({m for _, m in members}) > 1
    ]
    return sorted(conflicts, key=lambda g: _natural_key(g[0]))


def _balance(items: list[dict[str, Any]], rng: np.random.Generator) -> list[dict[str, Any]]:
    pos = [it for it in items if it["positive"]]
    neg = [it for it in items if not it["positive"]]
    n = min(len(pos), len(neg))
    keep_pos = [pos[i] for i in sorted(rng.permutation(len(pos))[:n])]
    keep_neg = [neg[i] for i in sorted(rng.permutation(len(neg))[:n])]
    return keep_pos + keep_neg


def nerve_datalist(
    root: str | os.PathLike,
    fractions: Sequence[float] = (0.8, 0.2, 0.0),
    seed: int = 0,
    drop_conflicts: bool = True,
    balance: bool = False,
    csv_name: str | None = "train_masks.csv",
    check_masks: bool = True,
) -> dict[str, list[dict[str, Any]]]:
    """Datalists of the nerve challenge's training images, split by subject.

    The split is by subject (all frames of a sweep are nearly identical, so a subject in two
    splits would leak): the subjects are split with :func:`~monai_gamble.data.split_datalist`
    (seeded, sizes by the largest-remainder rule), and each split takes all their frames. The
    default 4:1 train/validation split is Liao et al.'s.

    Every image is checked before training: it must have a mask of the same size, both must be
    one grayscale channel, masks must hold only 0 and 255, and when the CSV is present each of
    its RLEs must decode to the mask file (rows of images that are not on disk are reported and
    skipped, so a partial copy of the data can be read).

    Args:
        root: the dataset folder (holding ``train/``).
        fractions: training, validation and test fractions of the *subjects*; they sum to 1.
        seed: the split's (and the balancing's) random seed.
        drop_conflicts: drop every image of a group of pixel-identical images with different
            masks (:func:`find_conflicting_duplicates`); a warning names them.
        balance: keep as many images without the nerve as with it in the training and validation
            splits (a seeded random subset of the larger class, as Liao et al. did); the test split
            keeps all its images.
        csv_name: the RLE CSV in ``root`` to check the masks against, or None.
        check_masks: read every mask and check its values and, with the CSV, its RLE (image and
            mask sizes and modes are always checked).

    Returns:
        ``{"training": [...], "validation": [...], "test": [...]}``; each item is
        ``{"image": path, "label": path, "id": "<subject>_<n>", "subject": int, "positive": 0 or 1}``,
        sorted by ID in natural order.

    Raises:
        FileNotFoundError: if ``root`` or ``root/train`` is missing or holds no image.
        ValueError: naming the files, for an image without a mask (or a mask without an image), a
            file name that is not ``<subject>_<n>``, a mask of another size than its image, an
            image or mask that is not grayscale, mask values other than {0, 255}, a CSV row whose
            RLE does not match the mask or cannot be decoded, or bad fractions.
    """
    root = Path(root)
    train = root / "train"
    if not root.is_dir():
        raise FileNotFoundError(f"nerve dataset folder {root} does not exist.")
    if not train.is_dir():
        raise FileNotFoundError(f"{root} has no train/ folder (expected train/<subject>_<n>.tif and _mask.tif).")
    images: dict[str, Path] = {}
    masks: dict[str, Path] = {}
    for p in sorted(train.iterdir()):
        if not p.is_file() or p.suffix.lower() not in (".tif", ".tiff"):
            continue
        if p.stem.endswith("_mask"):
            masks[p.stem[: -len("_mask")]] = p
        else:
            images[p.stem] = p
    if not images and not masks:
        raise FileNotFoundError(f"{train} holds no .tif file.")
    if missing := set(images) - set(masks):
        raise ValueError(f"{len(missing)} image(s) in {train} have no <id>_mask.tif: {_names(missing)}.")
    if orphans := set(masks) - set(images):
        raise ValueError(f"{len(orphans)} mask(s) in {train} have no image: {_names(orphans)}.")
    if bad := [sid for sid in images if not _TRAIN_NAME.match(sid)]:
        raise ValueError(f"training file names must be <subject>_<n>.tif; found {_names(bad)} in {train}.")

    rles: dict[str, str] = {}
    csv_path = root / csv_name if csv_name else None
    if csv_path is not None and csv_path.is_file():
        rows = read_csv_rows(csv_path)
        if not rows or not {"subject", "img", "pixels"} <= set(rows[0]):
            raise ValueError(
                f"{csv_path} must have the columns subject,img,pixels; found {list(rows[0]) if rows else []}."
            )
        for row in rows:
            rles[f"{row['subject']}_{row['img']}"] = row["pixels"]
        if no_file := set(rles) - set(images):
            warnings.warn(
                f"{len(no_file)} row(s) of {csv_path} have no image in {train} and are skipped: {_names(no_file)}.",
                UserWarning,
                stacklevel=2,
            )

    items = []
    for sid in sorted(images, key=_natural_key):
        try:
            with Image.open(images[sid]) as im, Image.open(masks[sid]) as m:
                _check_grey(im, images[sid], "image")
                _check_grey(m, masks[sid], "mask")
                size, mask_size = im.size, m.size
        except (OSError, SyntaxError) as e:  # PIL raises these for truncated or non-image files
            raise ValueError(f"cannot read {images[sid]} or {masks[sid]}: {e}") from e
        if size != mask_size:
            raise ValueError(
                f"mask {masks[sid]} is {mask_size[0]}x{mask_size[1]} (WxH) but its image {images[sid].name} is "
                f"{size[0]}x{size[1]}."
            )
        if check_masks:
            values = _read_grey(masks[sid], "mask")
            found = np.unique(values)
            if not np.isin(found, (0, 255)).all():
                raise ValueError(
                    f"mask {masks[sid]} holds values {found[:10].tolist()}; nerve masks hold only 0 and 255."
                )
            positive = bool(found.size > 1 or found[0] == 255)
            if sid in rles:
                try:
                    decoded = rle_decode(rles[sid], (size[1], size[0]))
                except ValueError as e:
                    raise ValueError(f"{csv_path}, image {sid}: {e}") from None
                if not np.array_equal(decoded, values > 0):
                    raise ValueError(
                        f"{csv_path}: the RLE of {sid} ({int(decoded.sum())} pixels) does not match {masks[sid]} "
                        f"({int((values > 0).sum())} pixels)."
                    )
        elif sid in rles:
            positive = bool(rles[sid].strip())
        else:
            positive = bool(_read_grey(masks[sid], "mask").any())
        subject, _ = _TRAIN_NAME.match(sid).groups()
        items.append(
            {
                "image": str(images[sid]),
                "label": str(masks[sid]),
                "id": sid,
                "subject": int(subject),
                "positive": int(positive),
            }
        )

    if drop_conflicts:
        conflicts = find_conflicting_duplicates(items)
        if conflicts:
            dropped = {sid for group in conflicts for sid in group}
            warnings.warn(
                f"dropped {len(dropped)} image(s) in {len(conflicts)} group(s) of identical images with different "
                f"masks: {'; '.join(', '.join(g) for g in conflicts)}.",
                UserWarning,
                stacklevel=2,
            )
            items = [it for it in items if it["id"] not in dropped]

    subjects = [{"id": str(s)} for s in sorted({it["subject"] for it in items})]
    by_subject = split_datalist(subjects, fractions=fractions, seed=seed)
    rng = np.random.default_rng([seed, 1])
    out: dict[str, list[dict[str, Any]]] = {}
    for name in SPLIT_NAMES:
        chosen = {int(s["id"]) for s in by_subject[name]}
        split = [it for it in items if it["subject"] in chosen]
        if balance and name != "test":
            split = _balance(split, rng)
        out[name] = sorted(split, key=lambda it: _natural_key(it["id"]))
    return out


def nerve_test_datalist(folder: str | os.PathLike) -> list[dict[str, str]]:
    """A datalist ``[{"image": path, "id": stem}, ...]`` of the TIFFs of a folder, for inference.

    Masks (``*_mask.tif``) are left out, every image is checked to be one grayscale channel, and
    the items are in natural order of their IDs (``2`` before ``10``), the order of Kaggle's
    submission file.

    Args:
        folder: e.g. ``root/test``.

    Raises:
        FileNotFoundError: if the folder does not exist or holds no TIFF.
        ValueError: naming the file, for an image that is not grayscale or cannot be read.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"input folder {folder} does not exist.")
    files = [
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in (".tif", ".tiff") and not p.stem.endswith("_mask")
    ]
    if not files:
        raise FileNotFoundError(f"{folder} holds no .tif image.")
    items = []
    for p in sorted(files, key=lambda p: _natural_key(p.stem)):
        try:
            with Image.open(p) as im:
                _check_grey(im, p, "image")
        except (OSError, SyntaxError) as e:
            raise ValueError(f"cannot read image {p}: {e}") from e
        items.append({"image": str(p), "id": p.stem})
    return items
