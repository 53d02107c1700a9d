"""Segmentation datasets of any task: the Medical Segmentation Decathlon layout (NIfTI, 2D or 3D,
multi-modal 4D images) and 2D folders of image / mask pairs, read and checked before training.

A generic bundle cannot know the number of classes, the dimensionality, the channels or the voxel
spacing of a user's data: they are read from the data here (:class:`SegmentationDataset`), checked,
and logged, so that a wrong label file fails with its name before the first epoch rather than
training silently on the wrong target. In particular label values are *detected*: class indices
``0..C-1`` (the Decathlon ``labels`` map names the C classes), or ``{0, 255}`` for binary 2D masks
(mapped to ``{0, 1}`` by :class:`monai_gamble.transforms.ToClassIndicesd`); anything else is an
error that names the file and the values, never a silent threshold.

The Decathlon layout (Antonelli et al., "The Medical Segmentation Decathlon", Nature
Communications 13, 4128, 2022; http://medicaldecathlon.com)::

    root/dataset.json     {"name", "modality": {"0": "CT"}, "labels": {"0": "background", "1": "liver"},
                           "training": [{"image": "./imagesTr/a.nii.gz", "label": "./labelsTr/a.nii.gz"}],
                           "test": ["./imagesTs/b.nii.gz"]}
    root/imagesTr/*.nii.gz  images: (X, Y, Z) or (X, Y, Z, M) for M modalities (channel last, as NIfTI)
    root/labelsTr/*.nii.gz  label maps (X, Y, Z) of class indices, on the image's grid
    root/imagesTs/*.nii.gz  unlabelled test images

is read with MONAI's ``load_decathlon_datalist``; the image/mask folder layout is::

    root/image/<ID>.png   any 8-bit grey or RGB image
    root/mask/<ID>.png    its mask, the same size: class indices 0..C-1, or {0, 255}
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from monai.utils import StrEnum, look_up_option, optional_import
from PIL import Image

nib, _ = optional_import("nibabel")

__all__ = [
    "SegmentationDataset",
    "SegmentationLayout",
    "decathlon_dataset",
    "image_mask_folder_dataset",
    "segmentation_dataset",
]

logger = logging.getLogger(__name__)

_NIFTI_SUFFIXES = (".nii.gz", ".nii")
_FOLDER_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
_FOLDER_MASK_EXTENSIONS = (".png", ".tif", ".tiff", ".bmp")
#: Binary 2D masks saved as 8-bit images hold {0, 255}; their scale maps them to {0, 1}.
BINARY_MASK_SCALE = 255


class SegmentationLayout(StrEnum):
    """The on-disk layouts :func:`segmentation_dataset` reads.

    - ``"auto"``: ``"decathlon"`` when ``root/dataset.json`` exists, else ``"folder"`` when
      ``root/image`` and ``root/mask`` exist.
    - ``"decathlon"``: the Medical Segmentation Decathlon layout (:func:`decathlon_dataset`).
    - ``"folder"``: 2D ``image/`` and ``mask/`` pairs (:func:`image_mask_folder_dataset`).
    """

    AUTO = "auto"
    DECATHLON = "decathlon"
    FOLDER = "folder"


@dataclass(frozen=True)
class SegmentationDataset:
    """A segmentation dataset, read and checked: its items and what a bundle needs to know about it.

    Built by :func:`decathlon_dataset`, :func:`image_mask_folder_dataset` or
    :func:`segmentation_dataset`. Spatial quantities are in the axis order of the arrays after
    MONAI's ``Orientationd(axcodes=self.axcodes)`` (RAS for 3D NIfTI), spacings in millimetres
    (1 for PNG, which has no spacing).

    Attributes:
        root: the dataset folder.
        layout: ``"decathlon"`` or ``"folder"``.
        items: the labelled items ``{"image", "label", "id"}`` (sorted by ID; extra keys of the
            Decathlon entries, e.g. a patient ID to group a split by, are kept).
        test_items: the unlabelled items ``{"image", "id"}`` (Decathlon ``"test"``; empty for folders).
        class_names: the C class names, index 0 first (the background).
        modalities: one name per image channel (Decathlon ``"modality"``; ``"L"`` or ``"R", "G", "B"``
            for PNG).
        spatial_dims: 2 or 3.
        spacing: the median voxel spacing of the labelled images (mm), per axis.
        median_shape: the median spatial shape of the labelled images (voxels), per axis.
        label_values: the label values found in the label files (empty when they were not read).
        label_scale: 1, or 255 for binary ``{0, 255}`` masks.
        presence: ``{id: (present_0, ..., present_{C-1})}``, which classes each label map contains
            (empty when the labels were not read).
    """

    root: str
    layout: str
    items: list[dict[str, Any]]
    test_items: list[dict[str, Any]]
    class_names: tuple[str, ...]
    modalities: tuple[str, ...]
    spatial_dims: int
    spacing: tuple[float, ...]
    median_shape: tuple[int, ...]
    label_values: tuple[int, ...] = ()
    label_scale: int = 1
    presence: dict[str, tuple[bool, ...]] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        """C, the number of classes including the background."""
        return len(self.class_names)

    @property
    def in_channels(self) -> int:
        """The number of image channels (modalities)."""
        return len(self.modalities)

    @property
    def reader(self) -> str:
        """The MONAI image reader of both images and labels: ``"NibabelReader"`` or ``"PILReader"``."""
        return "NibabelReader" if self.layout == SegmentationLayout.DECATHLON else "PILReader"

    @property
    def unit(self) -> str:
        """The unit of distances on this data: ``"mm"`` (NIfTI), or ``"px"`` (PNG has no spacing)."""
        return "mm" if self.layout == SegmentationLayout.DECATHLON else "px"

    @property
    def prediction_extension(self) -> str:
        """The file extension predictions are written with: ``".nii.gz"``, or ``".png"`` for a 2D folder."""
        return ".nii.gz" if self.layout == SegmentationLayout.DECATHLON else ".png"

    @property
    def axcodes(self) -> str:
        """The orientation of ``Orientationd``: ``"RAS"`` in 3D, ``"RA"`` in 2D."""
        return "RAS"[: self.spatial_dims]

    def class_presence(self, items: Sequence[dict[str, Any]]) -> np.ndarray:
        """``(N, C)`` boolean: which classes each of ``items`` contains (the sets of stochastic TCE,
        :class:`monai_gamble.data.ClassConditionalBatchSampler`), in the order of ``items``.

        Raises:
            ValueError: when the labels were not read (``check_labels=False``) or an item is unknown.
        """
        if not self.presence:
            raise ValueError(f"the labels of {self.root} were not read (check_labels=False): no class presence.")
        unknown = [str(it.get("id")) for it in items if str(it.get("id")) not in self.presence]
        if unknown:
            raise ValueError(f"items {unknown[:5]} are not labelled items of {self.root}.")
        return np.array([self.presence[str(it["id"])] for it in items], dtype=bool).reshape(len(items), -1)

    def inference_items(self) -> list[dict[str, Any]]:
        """The items to predict: the unlabelled test images, or every labelled image when there are none."""
        if self.test_items:
            return list(self.test_items)
        logger.info("%s has no unlabelled test images: predicting its %d labelled images.", self.root, len(self.items))
        return [{"image": it["image"], "id": it["id"]} for it in self.items]

    def patch_size(
        self, max_size: int | Sequence[int] | None = None, divisor: int = 16, pixdim: Sequence[float] | None = None
    ) -> tuple[int, ...]:
        """A training patch size for this data: per axis, the median shape (resampled to ``pixdim``
        when given) rounded to the nearest multiple of ``divisor`` (at least ``divisor``), at most
        ``max_size``; the bundle pads smaller images to it.

        Args:
            max_size: the largest patch size per axis (one number or one per axis); default 96 in 3D,
                256 in 2D.
            divisor: every size is a multiple of it (16 for a U-Net of four down-samplings).
            pixdim: the spacing the images are resampled to (default: :attr:`spacing`).
        """
        if max_size is None:
            max_size = 96 if self.spatial_dims == 3 else 256
        limits = np.broadcast_to(np.asarray(max_size, dtype=int), (self.spatial_dims,))
        shape = np.asarray(self.median_shape, dtype=float)
        if pixdim is not None:
            shape = shape * np.asarray(self.spacing, dtype=float) / np.asarray(pixdim, dtype=float)[: self.spatial_dims]
        size = np.round(shape / divisor) * divisor
        limits = (limits // divisor) * divisor
        return tuple(int(v) for v in np.maximum(np.minimum(size, limits), divisor))

    def summary(self) -> str:
        """One line describing the dataset (it is logged when the dataset is read)."""
        n_test = f" and {len(self.test_items)} unlabelled test images" if self.test_items else ""
        classes = ", ".join(f"{i} {n}" for i, n in enumerate(self.class_names))
        found = f"; label values found {list(self.label_values)}" if self.label_values else ""
        scale = f" (binary masks {{0, {self.label_scale}}} mapped to {{0, 1}})" if self.label_scale != 1 else ""
        unit = " mm" if self.layout == SegmentationLayout.DECATHLON else " (pixels, PNG has no spacing)"
        return (
            f"{self.root}: {self.layout} layout, {self.spatial_dims}D, {len(self.items)} labelled images{n_test}; "
            f"{self.in_channels} channel(s) {list(self.modalities)}; {self.num_classes} classes ({classes}){found}"
            f"{scale}; median spacing {' x '.join(f'{s:.3g}' for s in self.spacing)}{unit}, median shape "
            f"{' x '.join(str(s) for s in self.median_shape)} ({self.axcodes} axis order)."
        )


def _names(values: Sequence[str], limit: int = 5) -> str:
    values = list(values)
    return ", ".join(values[:limit]) + (f" and {len(values) - limit} more" if len(values) > limit else "")


def _stem(path: str | os.PathLike) -> str:
    name = Path(path).name
    for suffix in _NIFTI_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def _indexed_map(meta: dict[str, Any], key: str, path: Path) -> dict[int, str] | None:
    """``{index: name}`` of a Decathlon ``"labels"`` / ``"modality"`` map, or None if absent."""
    raw = meta.get(key)
    if raw is None:
        return None
    if isinstance(raw, list):
        raw = {str(i): v for i, v in enumerate(raw)}
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f"{path}: {key!r} must be a non-empty map of index to name, e.g. {{'0': 'background'}}.")
    try:
        out = {int(k): str(v) for k, v in raw.items()}
    except ValueError:
        raise ValueError(f"{path}: the keys of {key!r} must be integers, got {sorted(raw)}.") from None
    if sorted(out) != list(range(len(out))):
        raise ValueError(f"{path}: the keys of {key!r} must be 0..{len(out) - 1} without gaps, got {sorted(out)}.")
    return out


def _ras_order(affine: np.ndarray, values: Sequence[float]) -> tuple[float, ...]:
    """Per-axis ``values`` (spacing or shape) in the axis order of the array reoriented to RAS."""
    ornt = nib.orientations.io_orientation(affine)
    out = [0.0] * len(values)
    for axis, (target, _) in enumerate(ornt[: len(values)]):
        out[int(target)] = float(values[axis])
    return tuple(out)


def _nifti_header(path: str) -> tuple[tuple[int, ...], np.ndarray, tuple[float, ...]]:
    try:
        img = nib.load(path)
    except Exception as e:  # nibabel raises several types for unreadable files
        raise ValueError(f"cannot read {path} as NIfTI: {e}") from e
    return tuple(int(s) for s in img.shape), np.asarray(img.affine, dtype=float), tuple(img.header.get_zooms())


def _label_values(data: np.ndarray, path: str) -> np.ndarray:
    """The distinct values of a label array (integers), or an error naming the file."""
    if np.issubdtype(data.dtype, np.floating):
        if not np.isfinite(data).all() or not np.array_equal(data, np.round(data)):
            bad = np.unique(data[~np.isfinite(data) | (data != np.round(data))])[:5]
            raise ValueError(
                f"label {path} holds non-integer values (e.g. {bad.tolist()}): labels must be class indices "
                "0..C-1 (was it resampled with linear interpolation? use nearest neighbour)."
            )
        data = data.astype(np.int64)
    elif not np.issubdtype(data.dtype, np.integer) and data.dtype != bool:
        raise ValueError(f"label {path} has dtype {data.dtype}; expected integer class indices.")
    flat = data.reshape(-1).astype(np.int64, copy=False)
    if flat.size and flat.min() >= 0 and flat.max() < 4096:
        counts = np.bincount(flat)
        return np.flatnonzero(counts)
    return np.unique(flat)


@dataclass
class _Checked:
    spatial_shape: tuple[int, ...]
    spacing: tuple[float, ...]
    values: np.ndarray | None


def _check_decathlon_item(
    item: dict[str, Any], spatial_dims: int | None, channels: int | None, read_label: bool, affine_atol: float
) -> _Checked:
    image, label = str(item["image"]), item.get("label")
    shape, affine, zooms = _nifti_header(image)
    if label is None:  # an unlabelled test image: the dataset's dimensionality
        sd = int(spatial_dims) if spatial_dims is not None else min(len(shape), 3)
    else:
        lshape, laffine, _ = _nifti_header(str(label))
        sd = len(lshape)
        if sd not in (2, 3):
            raise ValueError(f"label {label} has shape {lshape}: expected a 2D or 3D map of class indices.")
        if tuple(shape[:sd]) != lshape or len(shape) not in (sd, sd + 1):
            raise ValueError(
                f"label {label} has shape {lshape} but its image {image} has shape {shape}: the label must be on "
                f"the image's grid ({'x'.join(map(str, shape[:sd]))}, channels last for several modalities)."
            )
        if not np.allclose(affine[: sd + 1, : sd + 1], laffine[: sd + 1, : sd + 1], atol=affine_atol):
            raise ValueError(
                f"label {label} and image {image} have different affines (voxel-to-world matrices):\n{laffine}\n"
                f"{affine}\nresample the label onto the image's grid, or pass affine_atol=... if the difference is "
                "rounding."
            )
    if spatial_dims is not None and sd != spatial_dims:
        raise ValueError(f"{image} is {sd}D but the first images of the dataset are {spatial_dims}D.")
    n_channels = 1 if len(shape) == sd else shape[sd]
    if len(shape) > sd + 1:
        raise ValueError(f"image {image} has shape {shape}: expected {sd}D, or {sd}D + one axis of modalities.")
    if channels is not None and n_channels != channels:
        raise ValueError(
            f"image {image} has {n_channels} channel(s) but dataset.json declares {channels} modalities; every image "
            "must hold one channel per modality (channels last)."
        )
    values = None
    if read_label and label is not None:
        values = _label_values(np.asanyarray(nib.load(str(label)).dataobj), str(label))
    spacing = _ras_order(affine[: sd + 1, : sd + 1], zooms[:sd]) if sd == 3 else tuple(float(z) for z in zooms[:sd])
    spatial = _ras_order(affine[: sd + 1, : sd + 1], shape[:sd]) if sd == 3 else tuple(float(s) for s in shape[:sd])
    return _Checked(tuple(int(s) for s in spatial), spacing, values)


def _map_items(fn: Any, items: Sequence[Any], num_workers: int | None) -> list[Any]:
    workers = min(8, os.cpu_count() or 1) if num_workers is None else int(num_workers)
    if workers <= 1 or len(items) < 2:
        return [fn(it) for it in items]
    with ThreadPoolExecutor(workers) as pool:  # nibabel's gzip decompression releases the GIL
        return list(pool.map(fn, items))


def _check_files(items: list[dict[str, Any]], keys: Sequence[str], where: str) -> None:
    missing = [f"{k} {it[k]}" for it in items for k in keys if k in it and not Path(it[k]).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{where} names {len(missing)} file(s) that do not exist: {_names(missing)}. Fix the paths in the "
            "list (relative to the dataset folder) or add the files."
        )


def _check_values(found: dict[str, np.ndarray], class_names: Sequence[str], where: str) -> tuple[int, ...]:
    """The union of the label values found, checked against the declared classes."""
    num_classes = len(class_names)
    allowed = set(range(num_classes))
    for path, values in found.items():
        extra = sorted(set(values.tolist()) - allowed)
        if extra:
            raise ValueError(
                f"label {path} holds values {extra[:10]} outside the {num_classes} classes of {where} "
                f"({dict(enumerate(class_names))}): labels must be class indices 0..{num_classes - 1}. Remap the "
                "labels, or declare the classes."
            )
    union = sorted(set().union(*(set(v.tolist()) for v in found.values()))) if found else []
    return tuple(int(v) for v in union)


def decathlon_dataset(
    root: str | os.PathLike,
    datalist_file: str = "dataset.json",
    check_labels: bool = True,
    affine_atol: float = 1e-3,
    num_workers: int | None = None,
) -> SegmentationDataset:
    """Read and check a dataset in the Medical Segmentation Decathlon layout (see the module docstring).

    The lists come from MONAI's ``load_decathlon_datalist`` (``"training"``, and ``"test"`` when
    present, paths relative to ``root``). Every file must exist; every label must be a 2D or 3D map
    with the spatial shape and affine of its image; every image has one channel per entry of
    ``"modality"`` (a 4D NIfTI ``(X, Y, Z, M)`` for M > 1, as MONAI's ``NibabelReader`` loads it
    channel last); with ``check_labels`` every label file is read and its values must be class
    indices of the ``"labels"`` map (without one, ``0..max``). The result records the classes
    each label contains (for stochastic TCE), the median spacing and shape in RAS axis order, and is
    logged.

    Args:
        root: the dataset folder (holding ``datalist_file``).
        datalist_file: the name of the datalist JSON in ``root``.
        check_labels: read every label file and check its values (False: only the headers are read,
            for a quick look or for inference; then :meth:`SegmentationDataset.class_presence` is unavailable).
        affine_atol: tolerance (mm) of the comparison of an image's and its label's affine.
        num_workers: threads that read the files (default: up to 8).

    Returns:
        The :class:`SegmentationDataset`.

    Raises:
        FileNotFoundError: for a missing ``root`` or datalist, or entries naming missing files (listed).
        ValueError: for a malformed datalist, a label of another shape or affine than its image, an image
            with another number of channels than modalities, mixed 2D / 3D, non-integer label values,
            or label values outside the declared classes (naming the file and the values).

    Example:
        >>> ds = decathlon_dataset("/data/Task09_Spleen")
        >>> ds.num_classes, ds.spatial_dims, ds.spacing
        (2, 3, (0.79, 0.79, 5.0))
    """
    root = Path(root)
    path = root / datalist_file
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder {root} does not exist.")
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: a Decathlon-layout dataset needs a {datalist_file} listing 'training' "
            "(and 'test') files; for a folder of 2D image/ and mask/ pairs use layout='folder'."
        )
    from monai.data import load_decathlon_datalist

    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from e
    if not isinstance(meta.get("training"), list) or not meta["training"]:
        raise ValueError(f"{path} has no 'training' list of {{'image': ..., 'label': ...}} entries.")
    for i, entry in enumerate(meta["training"]):
        if not isinstance(entry, dict) or "image" not in entry or "label" not in entry:
            raise ValueError(f"{path}: 'training' entry {i} is {entry!r}; expected {{'image': ..., 'label': ...}}.")
        if not isinstance(entry["image"], str) or not isinstance(entry["label"], str):
            raise ValueError(
                f"{path}: 'training' entry {i} lists several files per image; write one 4D NIfTI per image "
                "(modalities channel last)."
            )
    items = load_decathlon_datalist(path, True, "training", root)
    tests = load_decathlon_datalist(path, False, "test", root) if meta.get("test") else []
    _check_files(items, ("image", "label"), f"{path} ('training')")
    _check_files(tests, ("image",), f"{path} ('test')")
    for it in (*items, *tests):
        it["id"] = _stem(it["image"])
    ids = [it["id"] for it in items]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"{path} lists the image ID(s) {_names(dup)} more than once.")

    labels_map = _indexed_map(meta, "labels", path)
    modality_map = _indexed_map(meta, "modality", path)
    channels = None if modality_map is None else len(modality_map)
    first = _check_decathlon_item(items[0], None, channels, False, affine_atol)
    spatial_dims = len(first.spatial_shape)

    def check(it: dict[str, Any]) -> _Checked:
        return _check_decathlon_item(it, spatial_dims, channels, check_labels, affine_atol)

    checked = _map_items(check, items, num_workers)
    _map_items(lambda it: _check_decathlon_item(it, spatial_dims, channels, False, affine_atol), tests, num_workers)
    if modality_map is None:
        n = 1 if len(_nifti_header(items[0]["image"])[0]) == spatial_dims else _nifti_header(items[0]["image"])[0][-1]
        modality_map = {i: f"channel{i}" for i in range(n)}
        logger.warning("%s declares no 'modality': assuming %d unnamed channel(s).", path, n)

    values: tuple[int, ...] = ()
    presence: dict[str, tuple[bool, ...]] = {}
    if check_labels:
        found = {str(it["label"]): c.values for it, c in zip(items, checked, strict=True)}
        if labels_map is None:
            top = max(int(v.max()) for v in found.values() if v.size)
            labels_map = {0: "background", **{i: f"class{i}" for i in range(1, top + 1)}}
            logger.warning("%s declares no 'labels': %d classes from the values found.", path, len(labels_map))
        class_names = tuple(labels_map[i] for i in range(len(labels_map)))
        values = _check_values(found, class_names, f"{path} 'labels'")
        for it, c in zip(items, checked, strict=True):
            presence[it["id"]] = tuple(bool(k in set(c.values.tolist())) for k in range(len(class_names)))
    else:
        if labels_map is None:
            raise ValueError(f"{path} declares no 'labels' and check_labels=False: the classes are unknown.")
        class_names = tuple(labels_map[i] for i in range(len(labels_map)))
    if len(class_names) < 2:
        raise ValueError(f"{path} declares {len(class_names)} class; a segmentation needs at least 2 (background).")

    ds = SegmentationDataset(
        root=str(root),
        layout=str(SegmentationLayout.DECATHLON),
        items=sorted(items, key=lambda it: it["id"]),
        test_items=sorted(tests, key=lambda it: it["id"]),
        class_names=class_names,
        modalities=tuple(modality_map[i] for i in range(len(modality_map))),
        spatial_dims=spatial_dims,
        spacing=tuple(float(v) for v in np.median([c.spacing for c in checked], axis=0)),
        median_shape=tuple(int(round(v)) for v in np.median([c.spatial_shape for c in checked], axis=0)),
        label_values=values,
        label_scale=1,
        presence=presence,
    )
    logger.info(ds.summary())
    return ds


def _list_folder(folder: Path, extensions: Sequence[str], suffix: str = "") -> dict[str, Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} does not exist or is not a folder.")
    out: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if not p.is_file() or p.suffix.lower() not in extensions or p.name.startswith("."):
            continue
        stem = p.stem[: -len(suffix)] if suffix and p.stem.endswith(suffix) else p.stem
        if stem in out:
            raise ValueError(f"{folder} holds two files for ID {stem!r}: {out[stem].name} and {p.name}.")
        out[stem] = p
    return out


def _read_mask(image_path: Path, mask_path: Path, read_values: bool) -> tuple[tuple[int, int], int, np.ndarray | None]:
    try:
        with Image.open(image_path) as im:
            size, mode = im.size, im.mode
        with Image.open(mask_path) as m:
            mask_size = m.size
            mask = np.asarray(m) if read_values else None
    except (OSError, SyntaxError) as e:  # PIL raises these for truncated or non-image files
        raise ValueError(f"cannot read {image_path} or {mask_path}: {e}") from e
    if size != mask_size:
        raise ValueError(
            f"mask {mask_path} is {mask_size[0]}x{mask_size[1]} (WxH) but its image {image_path.name} is "
            f"{size[0]}x{size[1]}: a mask must have its image's size."
        )
    if mask is not None and mask.ndim == 3:
        if not (mask == mask[..., :1]).all():
            raise ValueError(f"mask {mask_path} has {mask.shape[-1]} different channels; expected one (grey) channel.")
        mask = mask[..., 0]
    channels = {"L": 1, "I;16": 1, "I": 1, "F": 1, "P": 3, "RGB": 3, "RGBA": 3, "LA": 1}.get(mode, 3)
    values = None if mask is None else _label_values(mask, str(mask_path))
    return size, channels, values


def image_mask_folder_dataset(
    root: str | os.PathLike,
    image_dir: str = "image",
    mask_dir: str = "mask",
    mask_suffix: str = "",
    class_names: Sequence[str] | None = None,
    check_labels: bool = True,
    num_workers: int | None = None,
) -> SegmentationDataset:
    """Read and check a 2D dataset of ``image/<ID>.<ext>`` and ``mask/<ID><mask_suffix>.<ext>`` pairs.

    Images are PNG, JPEG, TIFF or BMP, grey (one channel) or colour (three, ``"R", "G", "B"``;
    every image of a folder must have the same number); masks are PNG, TIFF or BMP of the same
    size. Their values (all masks together) are detected: ``{0, 255}`` (and no other value) is a
    binary mask (``label_scale`` 255, mapped to ``{0, 1}`` by
    :class:`monai_gamble.transforms.ToClassIndicesd`); otherwise the values must be class indices
    ``0..C-1``, with ``C = len(class_names)`` when given, else ``C = max + 1`` and no class missing.

    Args:
        root: the dataset folder.
        image_dir: the images' sub-folder.
        mask_dir: the masks' sub-folder.
        mask_suffix: what a mask's stem adds to its image's (e.g. ``"_mask"``).
        class_names: the C class names (background first); default ``background, foreground`` for
            binary masks, ``background, class1, ...`` otherwise.
        check_labels: read every mask's values (False: sizes only, when ``class_names`` is given; without
            it the masks are read anyway, since they alone tell the classes).
        num_workers: threads that read the files (default: up to 8).

    Raises:
        FileNotFoundError: if the folders are missing or hold no image.
        ValueError: naming the files, for an image without a mask (or the reverse), a mask of another
            size, colour masks, images with different channel counts, or values that are neither
            ``{0, 255}`` nor class indices (e.g. ``{0, 128, 255}``, or indices with a gap).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder {root} does not exist.")
    images = _list_folder(root / image_dir, _FOLDER_IMAGE_EXTENSIONS)
    masks = _list_folder(root / mask_dir, _FOLDER_MASK_EXTENSIONS, mask_suffix)
    if not images:
        raise FileNotFoundError(f"{root / image_dir} holds no image ({', '.join(_FOLDER_IMAGE_EXTENSIONS)}).")
    if missing := sorted(set(images) - set(masks)):
        raise ValueError(
            f"{len(missing)} image(s) in {root / image_dir} have no mask in {root / mask_dir}: {_names(missing)}."
        )
    if orphans := sorted(set(masks) - set(images)):
        raise ValueError(
            f"{len(orphans)} mask(s) in {root / mask_dir} have no image in {root / image_dir}: {_names(orphans)}."
        )
    if not check_labels and class_names is None:
        logger.info("%s: no class_names given, so the masks are read to find the classes.", root)
        check_labels = True
    ids = sorted(images)
    results = _map_items(lambda i: _read_mask(images[i], masks[i], check_labels), ids, num_workers)
    chans = {r[1] for r in results}
    if len(chans) > 1:
        grey = [i for i, r in zip(ids, results, strict=True) if r[1] == 1]
        raise ValueError(
            f"{root / image_dir} mixes grey and colour images (grey: {_names(grey)}); convert them to one kind."
        )
    n_channels = chans.pop()
    scale, values = 1, ()
    presence: dict[str, tuple[bool, ...]] = {}
    if check_labels:
        found = {i: r[2] for i, r in zip(ids, results, strict=True)}
        union = sorted(set().union(*(set(v.tolist()) for v in found.values())))
        if BINARY_MASK_SCALE in union and set(union) <= {0, BINARY_MASK_SCALE}:
            scale = BINARY_MASK_SCALE
            names = tuple(class_names) if class_names is not None else ("background", "foreground")
            if len(names) != 2:
                raise ValueError(f"the masks of {root} are binary {{0, 255}} but class_names has {len(names)} names.")
        else:
            if class_names is not None:
                names = tuple(class_names)
            else:
                top = max(union) if union else 1
                names = ("background", *(f"class{k}" for k in range(1, top + 1)))
                if gaps := sorted(set(range(top + 1)) - set(union)):
                    who = next(m for m, v in found.items() if top in set(v.tolist()))
                    raise ValueError(
                        f"the masks of {root} hold the values {union[:12]} (e.g. {masks[who]}): neither a binary "
                        f"{{0, 255}} mask nor class indices 0..C-1 (values {gaps[:10]} never occur). Remap the masks "
                        "to class indices (or to {0, 255}), or give class_names to declare the classes."
                    )
        bad = {m: sorted(set(v.tolist()) - set(range(len(names)))) for m, v in found.items()}
        bad = {m: v for m, v in bad.items() if v}
        if scale == 1 and bad:
            m, v = next(iter(bad.items()))
            raise ValueError(
                f"mask {masks[m]} holds values {v[:10]} outside the {len(names)} classes {list(names)}: masks must "
                f"be class indices 0..{len(names) - 1}, or binary {{0, 255}}. Remap them (no threshold is applied)."
            )
        values = tuple(int(v) for v in union)
        for i, v in found.items():
            present = set((v // scale).tolist())
            presence[i] = tuple(k in present for k in range(len(names)))
    else:
        names = tuple(class_names)  # type: ignore[arg-type]
    items = [{"image": str(images[i]), "label": str(masks[i]), "id": i} for i in ids]
    sizes = np.array([r[0] for r in results], dtype=float)
    ds = SegmentationDataset(
        root=str(root),
        layout=str(SegmentationLayout.FOLDER),
        items=items,
        test_items=[],
        class_names=names,
        modalities=("L",) if n_channels == 1 else ("R", "G", "B"),
        spatial_dims=2,
        spacing=(1.0, 1.0),
        median_shape=tuple(int(round(v)) for v in np.median(sizes, axis=0)),
        label_values=values,
        label_scale=scale,
        presence=presence,
    )
    logger.info(ds.summary())
    return ds


def segmentation_dataset(
    root: str | os.PathLike,
    layout: SegmentationLayout | str = SegmentationLayout.AUTO,
    check_labels: bool = True,
    **kwargs: Any,
) -> SegmentationDataset:
    """Read and check a segmentation dataset of either layout (see :class:`SegmentationLayout`).

    Args:
        root: the dataset folder.
        layout: ``"auto"``, ``"decathlon"`` or ``"folder"``.
        check_labels: read every label file and check its values.
        kwargs: further arguments of :func:`decathlon_dataset` or :func:`image_mask_folder_dataset`.

    Raises:
        FileNotFoundError: when ``root`` does not exist or, with ``"auto"``, is in neither layout
            (the message describes both).
    """
    root = Path(root)
    layout = look_up_option(layout, SegmentationLayout)
    if layout == SegmentationLayout.AUTO:
        if not root.is_dir():
            raise FileNotFoundError(f"dataset folder {root} does not exist.")
        if (root / kwargs.get("datalist_file", "dataset.json")).is_file():
            layout = SegmentationLayout.DECATHLON
        elif (root / kwargs.get("image_dir", "image")).is_dir() and (root / kwargs.get("mask_dir", "mask")).is_dir():
            layout = SegmentationLayout.FOLDER
        else:
            raise FileNotFoundError(
                f"{root} is in neither layout: a Medical Segmentation Decathlon folder holds dataset.json "
                "(with 'training' image/label pairs, e.g. imagesTr/*.nii.gz and labelsTr/*.nii.gz); a 2D folder "
                "holds image/ and mask/ with one mask per image (same file names)."
            )
    if layout == SegmentationLayout.DECATHLON:
        return decathlon_dataset(root, check_labels=check_labels, **kwargs)
    return image_mask_folder_dataset(root, check_labels=check_labels, **kwargs)
