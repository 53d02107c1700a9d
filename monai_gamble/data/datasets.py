"""Datalists (MONAI's list of dicts) read from the real datasets' own layouts.

Every reader checks the files before training starts and names the offending file in its
error: a crash in the middle of the first epoch, or a silently wrong label, is worse.
"""

from __future__ import annotations

import csv
import logging
import os
import re
import warnings
from collections.abc import Callable, Collection, Hashable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from monai.utils import StrEnum, look_up_option
from PIL import Image

from .image_checks import check_image_files

__all__ = [
    "DDTI_HALF_SCAN_OFFSET",
    "check_splits",
    "SPLIT_NAMES",
    "TNSCUIGrouping",
    "count_items",
    "ddti_scan_group",
    "evaluation_datalist",
    "evaluation_name",
    "image_folder_datalist",
    "is_ddti_layout",
    "limit_training",
    "read_csv_rows",
    "split_datalist",
    "tnscui_datalist",
]

logger = logging.getLogger(__name__)

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


def _group_of(
    groups: str | Callable[[dict[str, Any]], Hashable] | None, key: str
) -> Callable[[dict[str, Any]], Hashable]:
    if groups is None:
        return lambda it: it[key]
    if callable(groups):
        return groups
    if isinstance(groups, str):
        return lambda it: it[groups]
    raise TypeError(f"groups must be None, an item key or a function of an item, got {type(groups).__name__}.")


def _grouped_strata(
    items: Sequence[dict[str, Any]],
    stratify_by: str | None,
    key: str,
    groups: str | Callable[[dict[str, Any]], Hashable] | None,
) -> dict[Hashable, list[list[dict[str, Any]]]]:
    """``{stratum: [group, ...]}``: the items sorted by ``key``, gathered into their groups (each
    group in the order of its first item), the groups into strata; a group must lie in one stratum."""
    group_of = _group_of(groups, key)
    ordered = sorted(items, key=lambda it: str(it[key]))
    by_group: dict[Hashable, list[dict[str, Any]]] = {}
    for it in ordered:
        by_group.setdefault(group_of(it), []).append(it)
    strata: dict[Hashable, list[list[dict[str, Any]]]] = {}
    for gid, members in by_group.items():
        found = {m[stratify_by] for m in members} if stratify_by else {None}
        if len(found) > 1:
            raise ValueError(
                f"group {gid!r} holds items of several {stratify_by!r} values {sorted(found, key=str)} "
                f"({_names([str(m[key]) for m in members])}): a group must lie in one stratum."
            )
        strata.setdefault(found.pop(), []).append(members)
    return strata


def _cut(groups: list[list[dict[str, Any]]], counts: Sequence[int]) -> list[list[dict[str, Any]]]:
    """Deal ``groups`` (in order) into consecutive parts of about ``counts`` items each: a group goes
    to the part in which its first item falls (with groups of one item, exactly ``counts``)."""
    bounds = np.cumsum(counts)
    parts: list[list[dict[str, Any]]] = [[] for _ in counts]
    start = 0
    for g in groups:
        k = min(int(np.searchsorted(bounds, start, side="right")), len(counts) - 1)
        parts[k].extend(g)
        start += len(g)
    return parts


def split_datalist(
    items: Sequence[dict[str, Any]],
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    stratify_by: str | None = None,
    key: str = "id",
    groups: str | Callable[[dict[str, Any]], Hashable] | None = None,
    num_folds: int | None = None,
    fold: int | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Seeded train/validation/test split of a datalist, optionally stratified, grouped or k-fold.

    Items are first sorted by ``item[key]`` so that the split does not depend on the order in
    which the file system listed them. Items that share a group (``groups``: an item key, or a
    function of an item, e.g. :func:`ddti_scan_group`; None: every item is its own group) always
    land in the same split, so that two images of one scan or one patient never sit on both sides
    of a split. Each stratum (the groups sharing ``item[stratify_by]``, or all groups when
    ``stratify_by`` is None) is shuffled with ``numpy.random.default_rng(seed)`` and cut into
    parts of sizes proportional to ``fractions``: the split sizes (in items) are the
    largest-remainder allocation of all items (80/10/10 of 100 is exactly 80, 10, 10), each split
    holds each stratum in the same proportion as nearly as integers allow, and with groups of
    several items a split can differ from its target by less than one group. This is why the split
    is not MONAI's ``partition_dataset_classes``: that one neither groups nor guarantees the split
    totals.

    **Cross-validation**: with ``num_folds = K`` and ``fold = k`` the test split is the one above
    (the same images with and without folds, so every fold is evaluated on one test set), and the
    remaining items (training + validation) are shuffled by group and stratum and dealt into ``K``
    folds of nearly equal size; fold ``k`` is the validation split, the other ``K - 1`` the training
    split. ``fractions[0:2]`` then only decide, with ``fractions[2]``, how large the test split is.

    Args:
        items: the datalist.
        fractions: fractions of the training, validation and test splits; they sum to 1.
        seed: the random seed (of the split and of the folds).
        stratify_by: an item key whose value defines the strata, or None for an unstratified split.
        key: the item key that identifies an item (used for the canonical order).
        groups: None, an item key, or a function ``item -> hashable`` naming each item's group.
        num_folds: the number of cross-validation folds (at least 2), or None for a plain split.
        fold: which fold is the validation split, ``0 <= fold < num_folds``; given with ``num_folds``.

    Returns:
        ``{"training": [...], "validation": [...], "test": [...]}``, each sorted by ``key``.

    Raises:
        ValueError: for bad ``fractions``, a ``fold`` without ``num_folds`` (or the reverse), a fold
            out of range, more folds than groups, or a group whose items lie in several strata.
    """
    fr = _check_fractions(fractions)
    if (num_folds is None) != (fold is None):
        raise ValueError(f"num_folds and fold go together; got num_folds={num_folds}, fold={fold}.")
    if num_folds is not None and (int(num_folds) < 2 or not 0 <= int(fold) < int(num_folds)):
        raise ValueError(f"need num_folds >= 2 and 0 <= fold < num_folds; got num_folds={num_folds}, fold={fold}.")
    strata = _grouped_strata(items, stratify_by, key, groups)
    labels = sorted(strata, key=str)
    counts = _stratified_counts([sum(len(g) for g in strata[label]) for label in labels], fr)
    rng = np.random.default_rng(seed)
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in SPLIT_NAMES}
    rest: dict[Hashable, list[list[dict[str, Any]]]] = {}
    for label, row in zip(labels, counts, strict=True):
        members = strata[label]
        shuffled = [members[i] for i in rng.permutation(len(members))]
        if num_folds is None:
            for name, part in zip(SPLIT_NAMES, _cut(shuffled, row), strict=True):
                out[name].extend(part)
            continue
        # the test split exactly as without folds: the groups whose first item falls past train + val
        start, bound = 0, int(row[0] + row[1])
        for g in shuffled:
            if start < bound:
                rest.setdefault(label, []).append(g)
            else:
                out["test"].extend(g)
            start += len(g)
    if num_folds is not None:
        k, n_groups = int(num_folds), sum(len(v) for v in rest.values())
        if n_groups < k:
            raise ValueError(f"{n_groups} groups outside the test split cannot make {k} folds.")
        fold_rng = np.random.default_rng([int(seed), k])
        for label in sorted(rest, key=str):
            members = rest[label]
            shuffled = [members[i] for i in fold_rng.permutation(len(members))]
            sizes = _allocate(sum(len(g) for g in shuffled), (1.0 / k,) * k)
            for f, part in enumerate(_cut(shuffled, sizes)):
                out["validation" if f == int(fold) else "training"].extend(part)
    return {name: sorted(v, key=lambda it: str(it[key])) for name, v in out.items()}


def check_splits(
    datalist: dict[str, Sequence[Any]],
    splits: Sequence[str] = ("training", "validation"),
    num_processes: int | None = None,
    exit_on_error: bool = False,
) -> dict[str, Sequence[Any]]:
    """Check that each of ``splits`` of ``datalist`` holds at least one item per process, before training.

    A validation split that is empty (a small dataset with the default fractions) makes every
    validation metric fail after the first epoch; under ``torchrun`` with more processes than items,
    a process gets no validation item and waits for the others for ever.

    Args:
        datalist: ``{"training": [...], "validation": [...], ...}``.
        splits: the splits that must not be empty.
        num_processes: the number of processes (None: ``WORLD_SIZE``, as ``torchrun`` sets it, else 1).
        exit_on_error: raise ``SystemExit`` with the message (what the bundles do) instead of ``ValueError``.

    Returns:
        ``datalist``.

    Raises:
        ValueError: naming the split, its size and the number of processes.
    """
    n_proc = int(os.environ.get("WORLD_SIZE", 1)) if num_processes is None else int(num_processes)
    sizes = {name: len(datalist.get(name, ())) for name in datalist if isinstance(datalist.get(name), (list, tuple))}
    for name in splits:
        n = len(datalist.get(name, ()))
        if n < max(1, n_proc):
            per = f" for {n_proc} processes (one item each at least)" if n_proc > 1 else ""
            message = (
                f"the {name} split holds {n} items{per} (splits: {sizes}): use more images or a larger "
                f"{name} fraction" + (", or fewer processes" if n_proc > 1 else "") + "."
            )
            if exit_on_error:
                raise SystemExit(f"Bad setting, nothing was run: {message}")
            raise ValueError(message)
    return datalist


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


def _list_files(folder: Path, extensions: Sequence[str], prefix: str = "") -> dict[str, Path]:
    """``{ID: path}`` of the files ``<prefix><ID><ext>`` in ``folder`` (extensions case-insensitive).

    Raises:
        ValueError: if two files have the same ID (e.g. ``7.png`` and ``7.PNG``).
    """
    files: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if not (p.is_file() and p.suffix.lower() in extensions and p.name.startswith(prefix)):
            continue
        sid = p.stem[len(prefix) :]
        if sid in files:
            raise ValueError(f"{folder} holds two files for ID {sid!r}: {files[sid].name} and {p.name}.")
        files[sid] = p
    return files


def _check_pairs(
    images: Collection[str], masks: Collection[str], image_place: Any, mask_place: Any, image_word: str = "image"
) -> None:
    """Every image ID has a mask and every mask ID an image; else a ``ValueError`` that names the
    folders and the first IDs (``image_word``: what an image is called, e.g. ``"tile"``)."""
    if missing := set(images) - set(masks):
        raise ValueError(
            f"{len(missing)} {image_word}(s) in {image_place} have no mask in {mask_place}: {_names(missing)}."
        )
    if orphans := set(masks) - set(images):
        raise ValueError(
            f"{len(orphans)} mask(s) in {mask_place} have no {image_word} in {image_place}: {_names(orphans)}."
        )


def _list_images(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} does not exist or is not a folder.")
    return _list_files(folder, _IMAGE_EXTENSIONS)


def image_folder_datalist(
    folder: str | os.PathLike, extensions: Sequence[str] = _IMAGE_EXTENSIONS, check_pixels: bool = False
) -> list[dict[str, str]]:
    """A datalist ``[{"image": path, "id": stem}, ...]`` of the images in a folder, for inference.

    Args:
        folder: the folder (not searched recursively).
        extensions: file extensions to take, matched case-insensitively.
        check_pixels: decode every image once (:func:`~monai_gamble.data.check_image_files`, in
            parallel threads) and refuse truncated, corrupt, multi-page or unreadable-mode files.

    Raises:
        FileNotFoundError: if the folder does not exist or holds no such file.
        ValueError: with ``check_pixels``, listing the images that cannot be used.
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
    if check_pixels:
        check_image_files([it["image"] for it in items])
    return items


def _natural_key(name: str) -> tuple[Any, ...]:
    """Sort key of an ID with numbers in it, by value: ``"2_10"`` after ``"2_9"``."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))


def _names(ids: Collection[str], limit: int = 10) -> str:
    """The first ``limit`` of ``ids`` in natural order, for an error message (``"1, 2, 10 and 4 more"``)."""
    ordered = sorted(ids, key=_natural_key)
    return ", ".join(ordered[:limit]) + (f" and {len(ordered) - limit} more" if len(ordered) > limit else "")


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


class TNSCUIGrouping(StrEnum):
    """How :func:`tnscui_datalist` groups images before it splits them.

    - ``auto``: the DDTI rule when the IDs look like DDTI's half-scan pairs (:func:`is_ddti_layout`),
      else none.
    - ``ddti``: :func:`ddti_scan_group` (ID and ID + 10000 are two halves of one scan).
    - ``none``: every image is its own group (the TN-SCUI challenge's IDs are one image per case).
    """

    AUTO = "auto"
    DDTI = "ddti"
    NONE = "none"


#: DDTI in the TN-SCUI layout: IDs below this are whole scans; ``ID`` in [10000, 20000) and
#: ``ID + 10000`` are the left and right halves of one double-view scan.
DDTI_HALF_SCAN_OFFSET = 10000


def ddti_scan_group(item: dict[str, Any] | str | int) -> str:
    """The scan an image of DDTI-in-TN-SCUI-layout comes from: its split group.

    The DDTI database (Pedraza et al., SPIE 9287, 2015) as converted to the TN-SCUI layout by the
    TN-SCUI 2020 winners (WAMAWAMA/TNSCUI2020-Seg-Rank1st, ``download_DDTI.py``) stores a double-view
    scan as two images: ``ID`` in [10000, 20000) is its left half and ``ID + 10000`` its right half
    (the same nodule of the same patient). A split that separates them leaks, so both map to one
    group: ``"ID"`` of the left half. Whole scans (``ID < 10000``) and IDs that are not integers are
    their own group.

    Args:
        item: a datalist item (its ``"id"``) or an ID.

    Returns:
        The group name, e.g. ``ddti_scan_group("20123") == ddti_scan_group("10123") == "10123"``.
    """
    sid = str(item["id"] if isinstance(item, dict) else item)
    if not sid.isascii() or not sid.isdigit():
        return sid
    n = int(sid)
    if 2 * DDTI_HALF_SCAN_OFFSET <= n < 3 * DDTI_HALF_SCAN_OFFSET:
        return str(n - DDTI_HALF_SCAN_OFFSET)
    return str(n)


def is_ddti_layout(ids: Sequence[str]) -> bool:
    """Whether a TN-SCUI-layout folder's IDs are DDTI's (see :func:`ddti_scan_group`): every ID an
    integer below 30000 and at least one half-scan pair ``(ID, ID + 10000)`` with ID in [10000, 20000)."""
    if not ids or not all(str(i).isascii() and str(i).isdigit() for i in ids):
        return False
    nums = {int(i) for i in ids}
    if max(nums) >= 3 * DDTI_HALF_SCAN_OFFSET:
        return False
    off = DDTI_HALF_SCAN_OFFSET
    return any(off <= n < 2 * off and n + off in nums for n in nums)


def tnscui_datalist(
    root: str | os.PathLike,
    csv_name: str | None = "train.csv",
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    check_masks: bool = True,
    groups: TNSCUIGrouping | str | Callable[[dict[str, Any]], Hashable] = TNSCUIGrouping.AUTO,
    num_folds: int | None = None,
    fold: int | None = None,
    split: bool = True,
    check_pixels: bool = False,
) -> dict[str, list[dict[str, Any]]]:
    """Datalists of the TN-SCUI 2020 thyroid-nodule layout, split 80/10/10, grouped and stratified.

    The layout (TN-SCUI 2020 challenge, as used by Bakhtiariziabari & Ghafoorian, "Gambling
    Adversarial Nets for Hard Sample Mining and Structured Prediction")::

        root/image/<ID>.PNG   grayscale ultrasound image (any size)
        root/mask/<ID>.PNG    nodule mask of the same size, values {0, 255}
        root/train.csv        columns ID,category (``CATE`` is accepted for category; IDs with or
                              without the ``.PNG`` extension)

    Without the CSV (e.g. the DDTI images in this layout) the split is unstratified and a
    warning says so. The extension is matched case-insensitively.

    Images of one scan stay in one split: with ``groups="auto"`` (the default) a folder whose IDs
    follow DDTI's half-scan numbering (:func:`is_ddti_layout`: ``ID`` and ``ID + 10000`` are the two
    halves of one double-view scan) is grouped by :func:`ddti_scan_group`, and the log says so;
    other folders are split by image. ``num_folds`` / ``fold`` give grouped cross-validation folds
    (see :func:`split_datalist`: the test split stays the same, fold ``fold`` is the validation split).

    Args:
        root: the dataset folder.
        csv_name: name of the CSV in ``root``, or None to ignore any CSV.
        fractions: training, validation and test fractions.
        seed: the split's random seed.
        check_masks: read every mask and check that its values are {0, 255} (image and mask sizes
            are always checked, from the file headers).
        groups: ``"auto"``, ``"ddti"``, ``"none"`` (:class:`TNSCUIGrouping`), or a function
            ``item -> hashable`` naming each item's group.
        num_folds: number of grouped cross-validation folds, or None for the plain split.
        fold: the validation fold, ``0 <= fold < num_folds`` (with ``num_folds``).
        split: False to return every image as ``{"test": [...]}`` (with empty ``training`` and
            ``validation``), for evaluating a trained model on a whole external dataset.
        check_pixels: decode every image and mask once (:func:`~monai_gamble.data.check_image_files`,
            in parallel threads) and refuse truncated, corrupt, multi-page or unreadable-mode files.

    Returns:
        ``{"training": [...], "validation": [...], "test": [...]}``; each item is
        ``{"image": path, "label": path, "id": ID, "group": scan, "category": int}``, without
        ``category`` when there is no CSV.

    Raises:
        FileNotFoundError: if ``root``, ``image/`` or ``mask/`` is missing, or the folder is empty.
        ValueError: naming the files, for an image without a mask, a mask without an image, a CSV row
            without files or files without a CSV row, a mask of another size than its image, a mask
            with values other than {0, 255}, an unreadable file, or a malformed CSV; for a bad
            ``groups`` name or bad folds; with ``check_pixels``, listing the files that cannot be used.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"TN-SCUI dataset folder {root} does not exist.")
    images = _list_images(root / "image")
    masks = _list_images(root / "mask")
    if not images and not masks:
        raise FileNotFoundError(f"{root}/image and {root}/mask hold no .PNG files.")
    _check_pairs(images, masks, root / "image", root / "mask")

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

    group_of = _tnscui_group_function(root, list(images), groups)
    items = []
    for sid in images:
        _check_mask(images[sid], masks[sid], check_masks)
        item = {"image": str(images[sid]), "label": str(masks[sid]), "id": sid}
        item["group"] = str(group_of(item))
        if categories[sid] is not None:  # no None values: MONAI's collation cannot batch them
            item["category"] = categories[sid]
        items.append(item)
    if check_pixels:
        check_image_files([it["image"] for it in items] + [it["label"] for it in items])
    if not split:
        ordered = sorted(items, key=lambda it: (len(it["id"]), it["id"]))
        logger.info("%s: all %d images in the evaluation list (no split).", root, len(ordered))
        return {"training": [], "validation": [], "test": ordered}
    out = split_datalist(
        items, fractions=fractions, seed=seed, stratify_by=stratify, groups="group", num_folds=num_folds, fold=fold
    )
    how = f"fold {fold} of {num_folds} as validation" if num_folds is not None else f"fractions {tuple(fractions)}"
    logger.info(
        "%s: %s images split (%s, seed %d): %s.",
        root,
        len(items),
        how,
        seed,
        ", ".join(f"{k} {len(v)}" for k, v in out.items()),
    )
    return out


def _tnscui_group_function(
    root: Path, ids: list[str], groups: TNSCUIGrouping | str | Callable[[dict[str, Any]], Hashable]
) -> Callable[[dict[str, Any]], Hashable]:
    if callable(groups):
        return groups
    rule = look_up_option(groups, TNSCUIGrouping)
    if rule == TNSCUIGrouping.AUTO:
        rule = TNSCUIGrouping.DDTI if is_ddti_layout(ids) else TNSCUIGrouping.NONE
        if rule == TNSCUIGrouping.DDTI:
            pairs = sum(1 for i in ids if ddti_scan_group(i) != i)
            logger.info(
                "%s looks like DDTI in the TN-SCUI layout: %d half-scan images (ID + %d) are kept in the "
                "split of their other half (%d scans in all); pass groups='none' to split by image.",
                root,
                pairs,
                DDTI_HALF_SCAN_OFFSET,
                len({ddti_scan_group(i) for i in ids}),
            )
    if rule == TNSCUIGrouping.DDTI:
        return ddti_scan_group
    return lambda it: it["id"]


def evaluation_datalist(
    datalist: dict[str, list[dict[str, Any]]],
    split: str = "test",
    external_dir: str | os.PathLike | None = None,
    reader: Callable[..., dict[str, list[dict[str, Any]]]] = tnscui_datalist,
) -> list[dict[str, Any]]:
    """The items an evaluation runs on: a split of the training datalist, or a whole external dataset.

    A model is evaluated either on a split of the data it was trained on (``datalist[split]``:
    the held-out test split, or the validation split), or, when ``external_dir`` is given, on
    *every* image of another dataset in the same layout, read with ``reader(external_dir,
    split=False)`` (e.g. a model trained on DDTI evaluated on TN-SCUI). The bundles' evaluation
    configs call it with ``--evaluation_dataset_dir``.

    Args:
        datalist: the training datalist (``{"training": ..., "validation": ..., "test": ...}``).
        split: which split of ``datalist`` to evaluate when there is no ``external_dir``.
        external_dir: an external dataset folder, or None.
        reader: the datalist reader of the layout; it must accept ``split=False``.

    Returns:
        The list of items to evaluate.

    Raises:
        ValueError: for a split that ``datalist`` does not have, an empty evaluation list, or an
            ``external_dir`` that is not in the reader's layout (the reader's error, naming the folder).
    """
    if external_dir is None or str(external_dir) == "":
        if split not in datalist:
            raise ValueError(f"evaluation_split {split!r} is not one of the datalist's splits {sorted(datalist)}.")
        items = datalist[split]
        if not items:
            raise ValueError(f"the {split!r} split is empty: nothing to evaluate (choose another evaluation_split).")
        return items
    try:
        items = reader(external_dir, split=False)["test"]
    except (FileNotFoundError, ValueError) as e:
        raise ValueError(
            f"evaluation_dataset_dir {external_dir} cannot be read as a {getattr(reader, '__name__', 'dataset')} "
            f"layout: {e}"
        ) from e
    return items


def count_items(items: Sequence[dict[str, Any]], key: str) -> int:
    """How many items of a datalist have a true ``key`` (e.g. ``"positive"``: the SIIM radiographs with
    a pneumothorax); an item without the key does not count."""
    return sum(bool(item.get(key)) for item in items)


def evaluation_name(split: str = "test", external_dir: str | os.PathLike | None = None) -> str:
    """The name of an evaluation, for its output folder and MLflow run: ``split``, or
    ``external_<folder name>`` for an external dataset (see :func:`evaluation_datalist`)."""
    if external_dir is None or str(external_dir) == "":
        return str(split)
    return "external_" + (Path(external_dir).resolve().name or "dataset")


def limit_training(
    datalist: dict[str, list[dict[str, Any]]],
    num_images: int | None,
    seed: int = 0,
    groups: str | Callable[[dict[str, Any]], Hashable] | None = "group",
) -> dict[str, list[dict[str, Any]]]:
    """The datalist with a seeded subset of about ``num_images`` training images (label-efficiency studies).

    Whole groups are drawn (``groups``: the item key or function of :func:`split_datalist`; the
    datalists of this package carry a ``"group"`` key, e.g. a DDTI scan's two halves), in a seeded
    order, until ``num_images`` are reached: the subset may be one image larger when the last group
    drawn holds two. Smaller subsets are prefixes of larger ones (the 32 images of a 32-image run
    are among the 128 of a 128-image run), so that label-efficiency curves compare nested sets.
    The validation and test splits are unchanged.

    Args:
        datalist: ``{"training": ..., "validation": ..., "test": ...}``.
        num_images: how many training images to keep; None keeps them all.
        seed: the subset's random seed.
        groups: how items are grouped (an item key, a function of an item, or None for no groups;
            an item without the key is its own group).

    Raises:
        ValueError: if ``num_images`` is below 1 or above the number of training images.
    """
    if num_images is None:
        return datalist
    items = datalist["training"]
    n = int(num_images)
    if not 1 <= n <= len(items):
        raise ValueError(
            f"num_training_images must be between 1 and {len(items)} (the training split), got {num_images}."
        )
    if groups is None:
        group_of: Callable[[dict[str, Any]], Hashable] = lambda it: it["id"]  # noqa: E731
    elif isinstance(groups, str):
        group_of = lambda it: it.get(groups, it["id"])  # noqa: E731
    else:
        group_of = groups
    by_group: dict[Hashable, list[dict[str, Any]]] = {}
    for it in sorted(items, key=lambda it: str(it["id"])):
        by_group.setdefault(group_of(it), []).append(it)
    order = [list(by_group)[i] for i in np.random.default_rng([int(seed), 17]).permutation(len(by_group))]
    kept: list[dict[str, Any]] = []
    for g in order:
        if len(kept) >= n:
            break
        kept.extend(by_group[g])
    logger.info("training on %d of the %d training images (num_training_images=%d, seed %d).", len(kept),
                len(items), n, seed)  # fmt: skip
    return {**datalist, "training": sorted(kept, key=lambda it: str(it["id"]))}
