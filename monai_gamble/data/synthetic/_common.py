"""The helpers that the generators of :mod:`monai_gamble.data.synthetic` share: smooth random fields and
contours, a seeded process-pool map, and the atomic, parameter-checked writing of a dataset folder."""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from ...utils import file_lock

logger = logging.getLogger("monai_gamble")

__all__ = ["MARKER", "map_jobs", "radius_profile", "smooth_noise", "write_once"]

#: the file that every generator writes into its dataset folder: the parameters (and the generator's version)
MARKER = "synthetic.json"


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise normalised to zero mean and unit standard deviation.

    Wide filters are applied on a coarse grid and interpolated back (the field is smooth at that
    scale anyway), which keeps the cost independent of ``sigma``.
    """
    factor = max(1, int(sigma // 3))
    coarse = tuple(-(-n // factor) + 1 for n in shape) if factor > 1 else shape
    field = ndimage.gaussian_filter(rng.standard_normal(coarse), sigma=sigma / factor, mode="reflect")
    if factor > 1:
        field = ndimage.zoom(field, factor, order=1)[: shape[0], : shape[1]]
    return (field - field.mean()) / (field.std() + 1e-8)


def radius_profile(
    rng: np.random.Generator, irregularity: float, n_harmonics: int = 5
) -> Callable[[np.ndarray], np.ndarray]:
    """A random star-shaped contour ``r(theta) = 1 + sum_k a_k cos(k theta + phi_k)`` (k = 2..n)."""
    ks = np.arange(2, n_harmonics + 1)
    amps = rng.uniform(0.0, irregularity, size=ks.size) / ks**0.8
    phases = rng.uniform(0.0, 2 * np.pi, size=ks.size)

    def profile(theta: np.ndarray) -> np.ndarray:
        r = 1.0 + np.sum(amps[:, None] * np.cos(ks[:, None] * theta.ravel()[None] + phases[:, None]), axis=0)
        return np.clip(r, 0.35, None).reshape(theta.shape)

    return profile


def map_jobs(
    fn: Callable[[Any], Any], jobs: list[Any], num_workers: int | None, desc: str = "synthetic data"
) -> list[Any]:
    """``[fn(j) for j in jobs]``, in worker processes (forked) when there are several CPUs and jobs, with a
    ``tqdm`` progress bar (``desc``) on stderr.

    Every job carries its own seed, so the result does not depend on the number of workers.
    """
    from tqdm.auto import tqdm

    workers = min(os.cpu_count() or 1, 8) if num_workers is None else int(num_workers)
    bar = {"total": len(jobs), "desc": desc, "unit": "item", "mininterval": 1.0}
    if workers <= 1 or len(jobs) < 8 or "fork" not in mp.get_all_start_methods():
        return [fn(j) for j in tqdm(jobs, **bar)]
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("fork")) as pool:
        return list(tqdm(pool.map(fn, jobs, chunksize=max(1, len(jobs) // (4 * workers))), **bar))


def _distributed_rank() -> tuple[int, bool]:
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover - torch is a dependency
        return 0, False
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), True
    return 0, False


def write_once(root: Path, params: dict[str, Any], writer: Callable[[Path], None], overwrite: bool) -> Path:
    """Write a dataset atomically into ``root``, or reuse it if it was written with the same parameters.

    Under ``torch.distributed`` only rank 0 writes; the other ranks wait at a barrier.
    """
    rank, distributed = _distributed_rank()
    if rank == 0:
        root.parent.mkdir(parents=True, exist_ok=True)
        # two runs started together in one bundle folder: the second waits for the first to finish
        # writing, then finds the dataset (never replaces the folder the first one is reading)
        with file_lock(root.parent / f".{root.name}.lock"):
            _write_once_locked(root, params, writer, overwrite)
    if distributed:
        import torch.distributed as dist

        dist.barrier()
    return root


def _write_once_locked(root: Path, params: dict[str, Any], writer: Callable[[Path], None], overwrite: bool) -> None:
    marker = root / MARKER
    if root.exists() and not overwrite:
        if not marker.is_file():
            raise FileExistsError(
                f"{root} exists and was not written by this generator (no {MARKER}); "
                "choose another folder or pass overwrite=True."
            )
        found = json.loads(marker.read_text())
        if found.get("generator") == params.get("generator") and found.get("version") != params.get("version"):
            raise FileExistsError(
                f"{root} holds a dataset of version {found.get('version', 1)} of {params.get('generator')}, "
                f"which now draws other images (version {params.get('version')}); delete it or pass "
                "overwrite=True to replace it."
            )
        if found != params:
            raise FileExistsError(
                f"{root} holds a synthetic dataset made with other parameters ({found}, asked {params}); "
                "pass overwrite=True to replace it."
            )
    else:
        root.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
        start = time.perf_counter()
        logger.info(
            "writing a synthetic dataset (%s, %s) to %s: once, later runs reuse it",
            params.get("generator", "generator"),
            ", ".join(f"{k}={v}" for k, v in params.items() if k not in ("generator", "version")),
            root,
        )
        try:
            writer(tmp)
            (tmp / MARKER).write_text(json.dumps(params, indent=1))
            if root.exists():
                shutil.rmtree(root)
            os.replace(tmp, root)
            files = sum(1 for p in root.rglob("*") if p.is_file())
            logger.info("wrote %d files to %s in %.1f s", files, root, time.perf_counter() - start)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
