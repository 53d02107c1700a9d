"""Datalists (MONAI's list of dicts) read from the real datasets' own layouts.

Every reader checks the files before training starts and names the offending file in its
error: a crash in the middle of the first epoch, or a silently wrong label, is worse.
"""

from __future__ import annotations

import csv
import os
import warnings
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

__all__ = ["SPLIT_NAMES", "image_folder_datalist", "read_csv_rows", "split_datalist", "tnscui_datalist"]

#: Names of the three splits, as in MONAI's Decathlon datalists.
SPLIT_NAMES = ("training", "validation", "test")

_IMAGE_EXTENSIONS = (".png",)


def _check_fractions(fractions: Sequence[float]) -> tuple[float, ...]:
    fr = tuple(float(f) for f in fractions)
    if len(fr) != len(SPLIT_NAMES) or any(not np.isfinite(f) or f < 0 for f in fr) or abs(sum(fr) - 1) > 1e-6:
        raise ValueError(
            f"fractions must be three non-negative numbers that sum to 1 (train, val, test), got {fractions}."
        )
    return fr


def _allocate(n: int, fractions: tuple[float, ...]) -> list[int]:
    """Split ``n`` into integer counts proportional to ``fractions`` (largest remainder method)."""
    raw = np.asarray(fractions) * n
    counts = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - counts), kind="stable")[: n - counts.sum()]:
        counts[i] += 1
    return counts.tolist()


def _stratified_counts(sizes: list[int], fractions: tuple[float, ...]) -> np.ndarray:
    """Counts ``(stratum, split)`` proportional to ``fractions`` whose split totals equal the
    largest-remainder allocation of all items, each stratum as near its proportion as integers allow."""
    raw = np.outer(sizes, fractions)
    counts = np.floor(raw).astype(int)
    need_split = np.asarray(_allocate(sum(sizes), fractions)) - counts.sum(0)
    need_stratum = np.asarray(sizes) - counts.sum(1)
    order = np.argsort(-(raw - counts), axis=None, kind="stable")
    for s, k in zip(*np.unravel_index(order, raw.shape), strict=True):  # largest remainders first
        if need_split[k] > 0 and need_stratum[s] > 0:
            counts[s, k] += 1
            need_split[k] -= 1
            need_stratum[s] -= 1
    for s in np.flatnonzero(need_stratum):  # what the remainders could not place
        for k in np.flatnonzero(need_split):
            take = min(need_stratum[s], need_split[k])
            counts[s, k] += take
            need_stratum[s] -= take
            need_split[k] -= take
    return counts


def split_datalist(
    items: Sequence[dict[str, Any]],
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    stratify_by: str | None = None,
    key: str = "id",
) -> dict[str, list[dict[str, Any]]]:
    """Seeded train/validation/test split of a datalist, optionally stratified.

    Items are first sorted by ``item[key]`` so that the split does not depend on the order in
    which the file system listed them; each stratum (the items sharing ``item[stratify_by]``, or
    all items when ``stratify_by`` is None) is shuffled with ``numpy.random.default_rng(seed)``
    and cut into counts proportional to ``fractions``: the split sizes are the largest-remainder
    allocation of all items (80/10/10 of 100 is exactly 80, 10, 10), and each split holds each
    stratum in the same proportion as nearly as integers allow.

    Args:
        items: the datalist.
        fractions: fractions of the training, validation and test splits; they sum to 1.
        seed: the random seed.
        stratify_by: an item key whose value defines the strata, or None for an unstratified split.
        key: the item key that identifies an item (used for the canonical order).

    Returns:
        ``{"training": [...], "validation": [...], "test": [...]}``, each sorted by ``key``.
    """
    fr = _check_fractions(fractions)
    ordered = sorted(items, key=lambda it: str(it[key]))
    strata: dict[Hashable, list[dict[str, Any]]] = {}
    for it in ordered:
        strata.setdefault(it[stratify_by] if stratify_by else None, []).append(it)
    labels = sorted(strata, key=str)
    counts = _stratified_counts([len(strata[label]) for label in labels], fr)
    rng = np.random.default_rng(seed)
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in SPLIT_NAMES}
    for label, row in zip(labels, counts, strict=True):
        members = strata[label]
        perm = rng.permutation(len(members))
        start = 0
        for name, count in zip(SPLIT_NAMES, row, strict=True):
            out[name].extend(members[i] for i in perm[start : start + count])
            start += count
    return {name: sorted(v, key=lambda it: str(it[key])) for name, v in out.items()}


def read_csv_rows(path: str | os.PathLike, fieldnames: Sequence[str] | None = None) -> list[dict[str, str]]:
    """Read a CSV into a list of dicts, tolerant of the quirks of challenge CSVs.

    A UTF-8 byte-order mark is dropped, header names and values are stripped of surrounding
    white space (SIIM's ``ImageId, EncodedPixels``), and blank lines are skipped.

    Args:
        path: the CSV file.
        fieldnames: the column names of a CSV without a header row (e.g. SIIM's sample
            ``train-rle-sample.csv``), or None when the first row is the header.

    Raises:
        ValueError: naming the file and line, for an empty file or a row with another number of
            fields than the header.
    """
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        rows = [r for r in reader if any(c.strip() for c in r)]
    if fieldnames is not None:
        header, body, first_line = [str(h).strip() for h in fieldnames], rows, 1
    elif not rows:
        raise ValueError(f"{path} is empty.")
    else:
        header, body, first_line = [h.strip() for h in rows[0]], rows[1:], 2
    out = []
    for lineno, r in enumerate(body, start=first_line):
        if len(r) != len(header):
            raise ValueError(f"{path}, line {lineno}: {len(r)} fields where the header {header} has {len(header)}.")
        out.append({h: v.strip() for h, v in zip(header, r, strict=True)})
    return out


def _list_images(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} does not exist or is not a folder.")
    files: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in _IMAGE_EXTENSIONS:
            if p.stem in files:
                raise ValueError(f"{folder} holds two files for ID {p.stem!r}: {files[p.stem].name} and {p.name}.")
            files[p.stem] = p
    return files


def image_folder_datalist(
    folder: str | os.PathLike, extensions: Sequence[str] = _IMAGE_EXTENSIONS
) -> list[dict[str, str]]:
    """A datalist ``[{"image": path, "id": stem}, ...]`` of the images in a folder, for inference.

    Args:
        folder: the folder (not searched recursively).
        extensions: file extensions to take, matched case-insensitively.

    Raises:
        FileNotFoundError: if the folder does not exist or holds no such file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"input folder {folder} does not exist.")
    exts = tuple(e.lower() for e in extensions)
    items = [
        {"image": str(p), "id": p.stem} for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in exts
    ]
    if not items:
        raise FileNotFoundError(f"{folder} holds no image with extension {' or '.join(exts)}.")
    return items


def _names(ids: Sequence[str], limit: int = 10) -> str:
    ids = sorted(ids, key=lambda s: (len(s), s))
    return ", ".join(ids[:limit]) + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def _check_mask(image_path: Path, mask_path: Path, check_values: bool) -> None:
    try:
        with Image.open(image_path) as im:
            image_size = im.size
        with Image.open(mask_path) as m:
            mask_size = m.size
            values = np.asarray(m) if check_values else None
    except (OSError, SyntaxError) as e:  # PIL raises these for truncated or non-image files
        raise ValueError(f"cannot read {image_path} or {mask_path}: {e}") from e
    if image_size != mask_size:
        raise ValueError(
            f"mask {mask_path} is {mask_size[0]}x{mask_size[1]} (WxH) but its image {image_path.name} "
            f"is {image_size[0]}x{image_size[1]}."
        )
    if values is not None:
        if values.ndim == 3:
            if not (values == values[..., :1]).all():
                raise ValueError(f"mask {mask_path} has {values.shape[-1]} different channels; expected one.")
            values = values[..., 0]
        found = np.unique(values)
        if not np.isin(found, (0, 255)).all():
            raise ValueError(
                f"mask {mask_path} holds values {found[:10].tolist()}{'...' if found.size > 10 else ''}; "
                "TN-SCUI masks hold only 0 (background) and 255 (nodule)."
            )


def tnscui_datalist(
    root: str | os.PathLike,
    csv_name: str | None = "train.csv",
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    check_masks: bool = True,
) -> dict[str, list[dict[str, Any]]]:
    """Datalists of the TN-SCUI 2020 thyroid-nodule layout, split 80/10/10 and stratified by category.

    The layout (TN-SCUI 2020 challenge, as used by Bakhtiariziabari & Ghafoorian, "Gambling
    Adversarial Nets for Hard Sample Mining and Structured Prediction")::

        root/image/<ID>.PNG   grayscale ultrasound image (any size)
        root/mask/<ID>.PNG    nodule mask of the same size, values {0, 255}
        root/train.csv        columns ID,category (``CATE`` is accepted for category; IDs with or
                              without the ``.PNG`` extension)

    Without the CSV (e.g. the DDTI images in this layout) the split is unstratified and a
    warning says so. The extension is matched case-insensitively.

    Args:
        root: the dataset folder.
        csv_name: name of the CSV in ``root``, or None to ignore any CSV.
        fractions: training, validation and test fractions.
        seed: the split's random seed.
        check_masks: read every mask and check that its values are {0, 255} (image and mask sizes
            are always checked, from the file headers).

    Returns:
        ``{"training": [...], "validation": [...], "test": [...]}``; each item is
        ``{"image": path, "label": path, "id": ID, "category": int}``, without ``category`` when
        there is no CSV.

    Raises:
        FileNotFoundError: if ``root``, ``image/`` or ``mask/`` is missing, or the folder is empty.
        ValueError: naming the files, for an image without a mask, a mask without an image, a CSV row
            without files or files without a CSV row, a mask of another size than its image, a mask
            with values other than {0, 255}, an unreadable file, or a malformed CSV.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"TN-SCUI dataset folder {root} does not exist.")
    images = _list_images(root / "image")
    masks = _list_images(root / "mask")
    if not images and not masks:
        raise FileNotFoundError(f"{root}/image and {root}/mask hold no .PNG files.")
    if missing := set(images) - set(masks):
        raise ValueError(
            f"{len(missing)} image(s) in {root / 'image'} have no mask in {root / 'mask'}: {_names(missing)}."
        )
    if orphans := set(masks) - set(images):
        raise ValueError(
            f"{len(orphans)} mask(s) in {root / 'mask'} have no image in {root / 'image'}: {_names(orphans)}."
        )

    categories: dict[str, int | None] = dict.fromkeys(images)
    csv_path = root / csv_name if csv_name else None
    if csv_path is not None and csv_path.is_file():
        rows = read_csv_rows(csv_path)
        fields = {k.lower(): k for k in rows[0]} if rows else {}
        id_col = fields.get("id")
        cat_col = fields.get("category") or fields.get("cate")
        if id_col is None or cat_col is None:
            raise ValueError(
                f"{csv_path} must have the columns ID and category (or CATE); found {list(fields.values())}."
            )
        from_csv: dict[str, int] = {}
        for i, row in enumerate(rows, start=2):
            rid = row[id_col]
            rid = rid[: -len(Path(rid).suffix)] if Path(rid).suffix.lower() in _IMAGE_EXTENSIONS else rid
            if rid in from_csv:
                raise ValueError(f"{csv_path}, line {i}: ID {rid!r} appears twice.")
            try:
                from_csv[rid] = int(float(row[cat_col]))
            except ValueError:
                raise ValueError(f"{csv_path}, line {i}: category {row[cat_col]!r} is not a number.") from None
        if no_file := set(from_csv) - set(images):
            raise ValueError(f"{len(no_file)} ID(s) in {csv_path} have no image file: {_names(no_file)}.")
        if no_row := set(images) - set(from_csv):
            raise ValueError(f"{len(no_row)} image(s) have no row in {csv_path}: {_names(no_row)}.")
        categories.update(from_csv)
        stratify = "category"
    else:
        warnings.warn(
            f"{root} has no {csv_name or 'CSV'}: the split is not stratified by category.", UserWarning, stacklevel=2
        )
        stratify = None

    items = []
    for sid in images:
        _check_mask(images[sid], masks[sid], check_masks)
        item = {"image": str(images[sid]), "label": str(masks[sid]), "id": sid}
        if categories[sid] is not None:  # no None values: MONAI's collation cannot batch them
            item["category"] = categories[sid]
        items.append(item)
    return split_datalist(items, fractions=fractions, seed=seed, stratify_by=stratify)
