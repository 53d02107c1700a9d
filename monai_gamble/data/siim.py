"""Datalists of the SIIM-ACR Pneumothorax Segmentation layout (Kaggle, 2019): DICOM in, RLE labels.

The layout::

    root/dicom-images-train/<study>/<series>/<SOPInstanceUID>.dcm   chest radiographs, 1024x1024
    root/dicom-images-test/<study>/<series>/<SOPInstanceUID>.dcm    unlabelled (inference)
    root/train-rle.csv          stage 1: ``ImageId, EncodedPixels`` (note the space), " -1" when empty
    root/stage_2_train.csv      stage 2: ``ImageId,EncodedPixels``, "-1" when empty

The ImageId of a file is its stem (the SOP Instance UID). Each CSV row is one pneumothorax region in
the competition's relative, column-major run-length encoding (:attr:`RLEFormat.SIIM
<monai_gamble.data.RLEFormat>`); an image with several regions has several rows, which are united.
The competition's sample (``train-rle-sample.csv``) has no header at all; all three are read.

The same functions read the real data and the stand-in of :func:`monai_gamble.data.make_chest_xrays`.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from monai.utils import StrEnum, look_up_option

from .datasets import _names, read_csv_rows, split_datalist
from .dicom import read_dicom_header
from .rle import RLEFormat, rle_union

__all__ = [
    "MissingPolicy",
    "SIIMMatch",
    "match_siim_files",
    "read_siim_csv",
    "siim_datalist",
    "siim_test_datalist",
]

#: column names of the SIIM-ACR CSVs (stage 1 writes the second with a leading space)
SIIM_COLUMNS = ("ImageId", "EncodedPixels")


class MissingPolicy(StrEnum):
    """What :func:`siim_datalist` does with ImageIds that have a CSV row but no file, or a file but no row."""

    WARN = "warn"
    RAISE = "raise"
    IGNORE = "ignore"


def read_siim_csv(path: str | os.PathLike) -> dict[str, list[str]]:
    """Read a SIIM-ACR RLE CSV: ``{ImageId: [rle, ...]}``, one RLE per row, in file order.

    Reads stage 1's ``train-rle.csv`` (header ``ImageId, EncodedPixels``, values with a leading
    space such as ``" -1"``), stage 2's ``stage_2_train.csv`` (``ImageId,EncodedPixels``) and the
    competition's ``train-rle-sample.csv`` (no header, a UTF-8 byte-order mark, Windows line ends).
    A header is recognised by its first field being ``ImageId``.

    Args:
        path: the CSV file.

    Returns:
        The rows of each ImageId (``"-1"`` for an image without pneumothorax), stripped of spaces.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: naming the file and line, for an empty file, a header without the two columns, a
            row without two fields, or an empty ImageId.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SIIM RLE CSV {path} does not exist.")
    with open(path, encoding="utf-8-sig") as f:
        first = next((line for line in f if line.strip()), "")
    if not first:
        raise ValueError(f"{path} is empty.")
    head = [c.strip() for c in first.split(",")]
    if head[0].lower() == "imageid":
        if [h.lower() for h in head] != [c.lower() for c in SIIM_COLUMNS]:
            raise ValueError(f"{path} must have the columns {', '.join(SIIM_COLUMNS)}; found {head}.")
        rows = read_csv_rows(path)
        offset = 2
        rows = [{k2: r[k1] for k1, k2 in zip(r, SIIM_COLUMNS, strict=True)} for r in rows]
    else:
        rows = read_csv_rows(path, fieldnames=SIIM_COLUMNS)
        offset = 1
    out: dict[str, list[str]] = {}
    for i, row in enumerate(rows):
        image_id, rle = row[SIIM_COLUMNS[0]], row[SIIM_COLUMNS[1]]
        if not image_id:
            raise ValueError(f"{path}, row {i + offset}: empty ImageId.")
        out.setdefault(image_id, []).append(rle)
    return out


@dataclasses.dataclass(frozen=True)
class SIIMMatch:
    """The DICOM files and CSV rows of a SIIM-ACR dataset, matched by ImageId (:func:`match_siim_files`).

    Attributes:
        files: ``{ImageId: path}`` of the DICOM files.
        rows: ``{ImageId: [rle, ...]}`` of the CSV.
        missing_file: ImageIds with a CSV row but no DICOM file, sorted.
        missing_row: ImageIds with a DICOM file but no CSV row, sorted.
    """

    files: dict[str, Path]
    rows: dict[str, list[str]]
    missing_file: list[str]
    missing_row: list[str]


def _find_dicoms(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"DICOM folder {folder} does not exist.")
    files: dict[str, Path] = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.suffix.lower() == ".dcm":
            if p.stem in files:
                raise ValueError(f"two DICOM files have the ImageId {p.stem!r}: {files[p.stem]} and {p}.")
            files[p.stem] = p
    if not files:
        raise FileNotFoundError(f"{folder} holds no .dcm file (searched recursively).")
    return files


def _image_folder(root: Path, image_dir: str | os.PathLike | None) -> Path:
    if not root.is_dir():
        raise FileNotFoundError(f"SIIM dataset folder {root} does not exist.")
    return root / image_dir if image_dir else root


def match_siim_files(
    root: str | os.PathLike, csv: str | os.PathLike = "train-rle.csv", image_dir: str | None = "dicom-images-train"
) -> SIIMMatch:
    """Find the DICOM files (recursively, by ``.dcm`` extension) and the CSV rows of a SIIM-ACR dataset.

    Args:
        root: the dataset folder.
        csv: the RLE CSV, relative to ``root`` or absolute.
        image_dir: the folder of the DICOM files under ``root`` (None, ``""`` or ``"."``: ``root`` itself).

    Returns:
        The :class:`SIIMMatch`.

    Raises:
        FileNotFoundError: if ``root``, the image folder or the CSV does not exist, or no DICOM is found.
        ValueError: for two files with one ImageId or a malformed CSV.
    """
    root = Path(root)
    files = _find_dicoms(_image_folder(root, image_dir))
    csv_path = Path(csv) if Path(csv).is_absolute() else root / csv
    rows = read_siim_csv(csv_path)
    return SIIMMatch(
        files=files,
        rows=rows,
        missing_file=sorted(set(rows) - set(files)),
        missing_row=sorted(set(files) - set(rows)),
    )


def siim_datalist(
    root: str | os.PathLike,
    csv: str | os.PathLike = "train-rle.csv",
    image_dir: str | None = "dicom-images-train",
    fractions: Sequence[float] = (0.85, 0.15, 0.0),
    seed: int = 0,
    on_missing: MissingPolicy | str = MissingPolicy.WARN,
    check_pixels: bool = True,
    decode: bool = False,
) -> dict[str, list[dict[str, Any]]]:
    """Datalists of the SIIM-ACR pneumothorax layout: DICOM files joined with their RLE rows, split
    with stratification by the presence of pneumothorax.

    Every file's header is read and checked (:func:`read_dicom_header`: a DICOM radiograph, one
    grayscale channel, complete pixel data), and every row is decoded at the image's
    ``Rows x Columns``; the rows of one image are united (:func:`~monai_gamble.data.rle_union`), so
    each item holds one RLE. The split is :func:`~monai_gamble.data.split_datalist`, seeded and
    stratified by ``positive``: by default 85% for training and 15% for validation, as in the report
    of Balezo (SIIM-ACR 2019, sec. 4.1.1); a third fraction makes a test split.

    ImageIds with a row but no file, or a file but no row, are listed in a warning and left out
    (``on_missing="warn"``), or raise (``"raise"``), or are left out silently (``"ignore"``);
    :func:`match_siim_files` returns the full lists.

    Args:
        root: the dataset folder.
        csv: the RLE CSV, relative to ``root`` or absolute: ``train-rle.csv`` (stage 1),
            ``stage_2_train.csv`` (stage 2) or a header-less sample.
        image_dir: the folder of the training DICOMs under ``root``, searched recursively (None or
            ``"."``: ``root`` itself, e.g. for the competition's flat ``sample images`` folder).
        fractions: training, validation and test fractions; they sum to 1.
        seed: the split's random seed.
        on_missing: ``"warn"``, ``"raise"`` or ``"ignore"``.
        check_pixels: read each whole file and check that its pixel data are complete.
        decode: also decode every image (slow), which finds corrupt JPEG streams and missing decoders.

    Returns:
        ``{"training": [...], "validation": [...], "test": [...]}``; each item is ``{"image": path,
        "label": RLE (SIIM format, "-1" when empty), "id": ImageId, "positive": 0 or 1,
        "num_regions": rows with a region, "height": Rows, "width": Columns, "sex": str, "age": int
        (-1 unknown), "photometric_interpretation": str}``, sorted by ImageId.

    Raises:
        FileNotFoundError: if the folder, the image folder or the CSV is missing, or holds no DICOM.
        ValueError: naming the file or ImageId, for an unreadable or non-image DICOM, a row whose RLE
            cannot be decoded at the image's size, unmatched ImageIds with ``on_missing="raise"``, or
            bad fractions.
    """
    policy = look_up_option(on_missing, MissingPolicy)
    match = match_siim_files(root, csv, image_dir)
    problems = []
    if match.missing_file:
        problems.append(
            f"{len(match.missing_file)} ImageId(s) of {csv} have no DICOM file: {_names(match.missing_file)}"
        )
    if match.missing_row:
        problems.append(f"{len(match.missing_row)} DICOM file(s) have no row in {csv}: {_names(match.missing_row)}")
    if problems:
        message = f"{root}: " + "; ".join(problems) + "."
        if policy == MissingPolicy.RAISE:
            raise ValueError(message)
        if policy == MissingPolicy.WARN:
            warnings.warn(message + " They are left out.", UserWarning, stacklevel=2)
    items = []
    for image_id in sorted(set(match.files) & set(match.rows)):
        header = read_dicom_header(match.files[image_id], check_pixels=check_pixels, decode=decode)
        rows = match.rows[image_id]
        try:
            rle = rle_union(rows, (header.rows, header.columns), RLEFormat.SIIM)
        except (ValueError, TypeError) as e:
            raise ValueError(f"{csv}, ImageId {image_id} ({header.rows}x{header.columns}): {e}") from None
        items.append(
            {
                "image": str(match.files[image_id]),
                "label": rle,
                "id": image_id,
                "positive": int(rle != "-1"),
                "num_regions": sum(r.strip() not in ("", "-1") for r in rows),
                "height": header.rows,
                "width": header.columns,
                "sex": header.sex,
                "age": header.age,
                "photometric_interpretation": header.photometric_interpretation,
            }
        )
    if not items:
        raise ValueError(f"no ImageId of {csv} has a DICOM file under {_image_folder(Path(root), image_dir)}.")
    return split_datalist(items, fractions=fractions, seed=seed, stratify_by="positive", key="id")


def siim_test_datalist(folder: str | os.PathLike, check_pixels: bool = True) -> list[dict[str, Any]]:
    """A datalist ``[{"image": path, "id": ImageId, "height": Rows, "width": Columns}, ...]`` of the
    DICOM files under a folder (searched recursively), sorted by ImageId, for inference.

    Args:
        folder: e.g. ``root/dicom-images-test``.
        check_pixels: check that each file's pixel data are complete (:func:`read_dicom_header`).

    Raises:
        FileNotFoundError: if the folder does not exist or holds no ``.dcm`` file.
        ValueError: naming the file, for an unreadable or non-image DICOM, or two files of one ImageId.
    """
    files = _find_dicoms(Path(folder))
    items = []
    for image_id in sorted(files):
        header = read_dicom_header(files[image_id], check_pixels=check_pixels)
        items.append({"image": str(files[image_id]), "id": image_id, "height": header.rows, "width": header.columns})
    return items
