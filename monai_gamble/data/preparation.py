"""Preparing a bundle's dataset: the real one when a ``dataset_dir`` is given, else the synthetic
stand-in that the bundle generates on first run (and says so in the log), and the folders an
inference run reads.

These replace the "synthetic or real dataset" ternaries of the bundle configs::

    "synthetic_dataset_dir": "$monai_gamble.data.synthetic_dataset_dir(@bundle_root, 'tnscui', n=200, seed=0)",
    "dataset_dir": "@synthetic_dataset_dir",
    "prepared_dataset_dir": {
        "_target_": "monai_gamble.data.prepare_dataset",
        "dataset_dir": "@dataset_dir",
        "synthetic_dir": "@synthetic_dataset_dir",
        "make_synthetic": "$monai_gamble.data.make_thyroid_ultrasound",
        "num_images": 200, "seed": 0
    }
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["input_folder", "prepare_dataset", "synthetic_dataset_dir"]

logger = logging.getLogger(__name__)


def synthetic_dataset_dir(bundle_root: str | os.PathLike, name: str, **parameters: Any) -> str:
    """The folder of a bundle's synthetic stand-in: ``<bundle_root>/data/synthetic_<name>_<key><value>...``
    in the order of the parameters, e.g. ``synthetic_dataset_dir(".", "tnscui", n=200, seed=0,
    noise=0.05) == "./data/synthetic_tnscui_n200_seed0_noise0.05"``. One folder per set of
    parameters, so that changing one generates a new dataset instead of reusing a stale one."""
    return os.path.join(bundle_root, "data", "_".join(["synthetic", name, *(f"{k}{v}" for k, v in parameters.items())]))


def _same_folder(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    return os.path.abspath(a) == os.path.abspath(b)


def prepare_dataset(
    dataset_dir: str | os.PathLike | None,
    synthetic_dir: str | os.PathLike,
    make_synthetic: Callable[..., Any],
    **synthetic_kwargs: Any,
) -> str:
    """The folder a bundle reads its data from.

    When no ``dataset_dir`` is given (None, or the bundle's default, ``synthetic_dir`` itself), the
    synthetic stand-in: ``make_synthetic(synthetic_dir, **synthetic_kwargs)`` writes it on first use
    (the generators are seeded and write a folder once, then find it again), and the log says that the
    run uses synthetic data and how to point it at the real dataset. Otherwise ``dataset_dir`` as given:
    the bundle's datalist reader checks it (and names it if it does not exist).

    Args:
        dataset_dir: the real dataset's folder (a user's ``--dataset_dir``), or None.
        synthetic_dir: the synthetic stand-in's folder (:func:`synthetic_dataset_dir`).
        make_synthetic: the generator, e.g. :func:`monai_gamble.data.make_thyroid_ultrasound`.
        synthetic_kwargs: the generator's arguments (number of images, seed, ...).

    Returns:
        The folder, as a string.
    """
    if dataset_dir is not None and not _same_folder(dataset_dir, synthetic_dir):
        return str(dataset_dir)
    logger.info(
        "no dataset_dir given: using the synthetic stand-in in %s (%s, %s; written on first use); "
        "pass --dataset_dir to train on the real dataset.",
        os.path.abspath(synthetic_dir),
        getattr(make_synthetic, "__name__", make_synthetic),
        ", ".join(f"{k}={v}" for k, v in synthetic_kwargs.items()) or "defaults",
    )
    return str(make_synthetic(synthetic_dir, **synthetic_kwargs))


def input_folder(root: str | os.PathLike, *subfolders: str) -> str:
    """The folder of an inference run's images: the first of ``root/<subfolder>`` that exists (a dataset
    in its own layout, e.g. ``test/`` of the Kaggle nerve data), else ``root`` itself (a folder of images).

    Example:
        >>> input_folder("/data/siim", "dicom-images-test")  # "/data/siim/dicom-images-test" if it exists
    """
    for sub in subfolders:
        if (Path(root) / sub).is_dir():
            return os.path.join(root, sub)
    return str(root)
