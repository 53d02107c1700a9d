"""Workflow helpers that the bundle configs call, so that the configs declare and Python computes: the
device of a (possibly distributed) run, the process group, run and folder names, the MLflow tracking
URI, the choice of a learning-rate schedule by name, and the check of a bundle command line's
override keys (:func:`check_bundle_overrides`).

Each replaces an expression that the configs used to spell out (``torch.device('cuda:0' if
torch.cuda.is_available() else 'cpu')``, ``'train_' + time.strftime(...)``, a dict of lambdas, ...).
"""

from __future__ import annotations

import ast
import difflib
import inspect
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from monai.utils import StrEnum, look_up_option, min_version, optional_import, path_to_sqlite_uri

idist, _ = optional_import("ignite", "0.4.11", min_version, "distributed")

__all__ = [
    "LRSchedule",
    "check_bundle_overrides",
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


#: the keyword arguments of ``monai.bundle run`` itself (not config overrides)
RUN_ARGUMENTS = frozenset(
    {"run_id", "init_id", "final_id", "meta_file", "config_file", "logging_file", "tracking", "args_file"}
)


def _is_bundle_run(argv: Sequence[str]) -> bool:
    """Whether ``argv`` is ``python -m monai.bundle run ...`` (also under ``torchrun -m``)."""
    return len(argv) > 1 and Path(argv[0]).parts[-3:] == ("monai", "bundle", "__main__.py") and argv[1] == "run"


def _cli_options(argv: Sequence[str]) -> dict[str, str | None]:
    """``{key: value}`` of the ``--key value`` / ``--key=value`` options of a command line (Fire's syntax)."""
    options: dict[str, str | None] = {}
    i = 0
    while i < len(argv):
        token = argv[i]
        if token.startswith("--") and len(token) > 2:
            key, eq, value = token[2:].partition("=")
            if eq:
                options[key] = value
            elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                options[key] = argv[i + 1]
                i += 1
            else:
                options[key] = None  # a flag: Fire reads it as True
        i += 1
    return options


def _config_files(value: Any) -> Any:
    """The ``--config_file`` value as MONAI's ``ConfigParser.load_config_files`` takes it (a list literal
    such as ``"['a.json','b.json']"`` is read as a list)."""
    if isinstance(value, str) and value.strip().startswith("["):
        return ast.literal_eval(value)
    return value


def _parameters(target: Any) -> set[str] | None:
    """The keyword parameters of a config component's ``_target_`` (None: unknown, or ``**kwargs``)."""
    if not isinstance(target, str) or target.startswith(("$", "@", "%")):
        return None
    try:
        import pydoc

        from monai.bundle.config_item import ComponentLocator

        found = pydoc.locate(target) if "." in target else None
        if found is None:
            module = ComponentLocator().get_component_module_name(target)
            if isinstance(module, str):
                found = getattr(sys.modules.get(module) or __import__(module, fromlist=[target]), target, None)
        if found is None:
            return None
        signature = inspect.signature(found)
    except Exception:  # an unresolvable or unsignable target: accept, MONAI reports it when built
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()):
        return None
    return set(signature.parameters)


def _unknown_key_message(key: str, config: dict, known: list[str]) -> str | None:
    """None if overriding ``key`` is meaningful for ``config``, else the reason with close matches."""
    parts = key.replace("::", "#").split("#")
    node: Any = config
    for depth, part in enumerate(parts):
        here = "#".join(parts[: depth + 1])
        if isinstance(node, dict):
            if part in node:
                node = node[part]
                continue
            if depth > 0 and "_target_" in node:  # a new argument of a component ("--objective#budget 65536")
                params = _parameters(node["_target_"])
                if params is None or part in params:
                    return None
                options = sorted(set(node) | params - {"self"})
            else:
                options = list(node) if depth > 0 else known
        elif isinstance(node, list):
            if part.lstrip("-").isdigit() and -len(node) <= int(part) < len(node):
                node = node[int(part)]
                continue
            return (
                f"--{key}: {'#'.join(parts[:depth])} is a list of {len(node)} items, so {part!r} is not an index of it."
            )
        elif isinstance(node, str) and node.startswith(("%", "@", "$")):
            return None  # a macro, reference or expression: what it holds is known only once parsed
        else:
            return f"--{key}: {'#'.join(parts[:depth])} is a value ({type(node).__name__}), not a dict or a list."
        close = difflib.get_close_matches(here if depth == 0 else part, options, n=5, cutoff=0.6)
        hint = f" Did you mean {', '.join('--' + c if depth == 0 else repr(c) for c in close)}?" if close else ""
        return f"--{key}: the configs define no {here!r}.{hint}"
    return None


def check_bundle_overrides(
    argv: Sequence[str] | None = None, config: dict | None = None, allowed: Sequence[str] = ()
) -> list[str]:
    """Refuse a mistyped override key of ``python -m monai.bundle run`` before any work is done.

    MONAI's ``run`` adds any ``--key value`` to the config, so ``--max_epoch 1`` (for ``max_epochs``)
    silently trains the default number of epochs. The bundles call this first in their
    ``initialize`` list: every override key must name an id of the merged ``--config_file`` files
    (``a#b#c``: ``a#b`` must exist; the last part may be new only where ``a#b`` is a component, a
    dict with ``_target_``, and then it must be a parameter of that target's signature, unless the
    target takes ``**kwargs`` or cannot be resolved; an index of a list must lie in it).

    Args:
        argv: the command line (default ``sys.argv``); anything but ``python -m monai.bundle run ...``
            (a test, a notebook, ``ConfigWorkflow``) is not checked.
        config: the merged config (default: read from the command line's ``--config_file``).
        allowed: more keys to accept (e.g. ones only a tracking setting reads).

    Returns:
        The override keys that were checked (empty when ``argv`` is not a bundle run).

    Raises:
        SystemExit: naming each unknown key with the closest ids (``difflib``), e.g.
            ``--max_epoch: the configs define no 'max_epoch'. Did you mean --max_epochs?``.

    Example:
        >>> check_bundle_overrides(["monai/bundle/__main__.py", "run", "--max_epochs", "2"],
        ...                        config={"max_epochs": 60})
        ['max_epochs']
    """
    argv = list(sys.argv if argv is None else argv)
    if not _is_bundle_run(argv):
        return []
    options = _cli_options(argv[2:])
    if config is None:
        from monai.bundle import ConfigParser

        files = options.get("config_file")
        if files is None:
            return []  # from an args_file: MONAI reports what is missing
        config = ConfigParser.load_config_files(_config_files(files))
    args_file = options.get("args_file")
    if args_file:  # JSON or YAML, as MONAI's run reads it
        from monai.bundle import ConfigParser

        options = {**ConfigParser.load_config_file(args_file), **options}
    keys = [k for k in options if k not in RUN_ARGUMENTS and k not in set(allowed)]
    known = sorted(config)
    problems = [m for k in keys if (m := _unknown_key_message(k, config, known))]
    if problems:
        raise SystemExit("Unknown override(s), nothing was run:\n  " + "\n  ".join(problems))
    return keys
