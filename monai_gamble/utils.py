"""Workflow helpers that the bundle configs call, so that the configs declare and Python computes: the
device of a (possibly distributed) run, the process group, run and folder names, the MLflow tracking
URI, and the choice of a learning-rate schedule by name.

Each replaces an expression that the configs used to spell out (``torch.device('cuda:0' if
torch.cuda.is_available() else 'cpu')``, ``'train_' + time.strftime(...)``, a dict of lambdas, ...).
"""

from __future__ import annotations

import os
import time

import torch
from monai.utils import StrEnum, look_up_option, min_version, optional_import, path_to_sqlite_uri

idist, _ = optional_import("ignite", "0.4.11", min_version, "distributed")

__all__ = [
    "LRSchedule",
    "checkpoint_path",
    "ddp_device_ids",
    "default_device",
    "default_tracking_uri",
    "init_distributed",
    "join_name",
    "lr_scheduler",
    "timestamped_name",
]


def default_device() -> torch.device:
    """``cuda:<LOCAL_RANK>`` when CUDA is available (``LOCAL_RANK`` as ``torchrun`` sets it, 0 without
    it), else the CPU: the device of a bundle run, single-process or one process per GPU."""
    if torch.cuda.is_available():
        return torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}")
    return torch.device("cpu")


def ddp_device_ids(device: str | torch.device) -> list[torch.device] | None:
    """``DistributedDataParallel``'s ``device_ids`` for a module on ``device``: ``[device]`` on CUDA, None
    on the CPU (where DDP takes none)."""
    device = torch.device(device)
    return [device] if device.type == "cuda" else None


def init_distributed() -> None:
    """Join the process group that ``torchrun`` describes (environment variables), if not joined yet:
    NCCL on CUDA (and the process's GPU selected, :func:`default_device`), Gloo on the CPU; then
    ``ignite.distributed.sync()``, without which MONAI's handlers wait forever under DDP."""
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    if torch.cuda.is_available():
        torch.cuda.set_device(default_device())
    idist.sync()


def join_name(*parts: object, sep: str = "_") -> str:
    """The parts as one name, e.g. ``join_name("evaluation", "test", "asme") == "evaluation_test_asme"``
    (a folder or run name made of config values)."""
    return sep.join(str(p) for p in parts)


def timestamped_name(*parts: object) -> str:
    """A run name: the parts and the local time, ``"gambling_train_20260101_120000"``."""
    return join_name(*parts, time.strftime("%Y%m%d_%H%M%S"))


def checkpoint_path(ckpt_dir: str | os.PathLike, name: str) -> str:
    """The file of a checkpoint named in a config: ``<ckpt_dir>/<name>.pt`` (a name may hold a
    sub-folder, ``stages/stage2_192x192``; a name that ends with ``.pt`` is taken as it is)."""
    return os.path.join(ckpt_dir, name if str(name).endswith(".pt") else f"{name}.pt")


def default_tracking_uri(output_dir: str | os.PathLike) -> str:
    """The MLflow tracking URI of a bundle: ``MLFLOW_TRACKING_URI`` if set, else a SQLite store
    ``<output_dir>/mlruns.db`` (MONAI 1.6 rejects plain paths and ``file://`` URIs)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or path_to_sqlite_uri(
        os.path.join(os.path.abspath(output_dir), "mlruns.db")
    )


class LRSchedule(StrEnum):
    """Learning-rate schedules of :func:`lr_scheduler`, stepped once per epoch.

    - ``"cosine"``: cosine annealing to 0 over the run (``CosineAnnealingLR``, ``T_max=max_epochs``);
    - ``"step"``: multiplied by ``gamma`` after every epoch (``StepLR(step_size=1)``);
    - ``"constant"``: unchanged (``ConstantLR(factor=1)``).
    """

    COSINE = "cosine"
    STEP = "step"
    CONSTANT = "constant"


def lr_scheduler(
    optimizer: torch.optim.Optimizer, schedule: LRSchedule | str, max_epochs: int, gamma: float = 0.95
) -> torch.optim.lr_scheduler.LRScheduler:
    """The learning-rate scheduler named ``schedule`` (:class:`LRSchedule`) for ``optimizer``.

    Raises:
        ValueError: for an unknown schedule (the message lists the valid ones).
    """
    schedule = look_up_option(schedule, LRSchedule)
    if schedule == LRSchedule.COSINE:
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max_epochs)
    if schedule == LRSchedule.STEP:
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=gamma)
    return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
