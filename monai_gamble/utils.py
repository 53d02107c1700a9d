"""Workflow helpers that the bundle configs call, so that the configs declare and Python computes: the
device of a (possibly distributed) run, the process group, run and folder names, the MLflow tracking
URI, the choice of a learning-rate schedule by name, and the check of a bundle command line's
override keys (:func:`check_bundle_overrides`).

Each replaces an expression that the configs used to spell out (``torch.device('cuda:0' if
torch.cuda.is_available() else 'cpu')``, ``'train_' + time.strftime(...)``, a dict of lambdas, ...).
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import inspect
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from monai.utils import StrEnum, look_up_option, min_version, optional_import, path_to_sqlite_uri

idist, _ = optional_import("ignite", "0.4.11", min_version, "distributed")

__all__ = [
    "as_bool",
    "LRSchedule",
    "atomic_copy",
    "announce_run",
    "atomic_save",
    "bound_onednn_cache",
    "check_bundle_overrides",
    "check_tracking_uri",
    "check_training_settings",
    "checkpoint_path",
    "cli_overrides",
    "dataset_digest",
    "error_summary",
    "install_error_summary",
    "file_lock",
    "git_commit",
    "merged_config",
    "tracking_off",
    "latest_run",
    "new_run_name",
    "publish_latest",
    "resume_checkpoint",
    "ddp_device_ids",
    "default_device",
    "default_tracking_uri",
    "init_distributed",
    "finish_distributed",
    "join_name",
    "lr_scheduler",
    "timestamped_name",
    "training_run_of",
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


def finish_distributed() -> None:
    """Leave the process group, if one was joined: a barrier first, so that every rank has finished
    its last collective (the final all-reduce of a metric, the checkpoint rank 0 writes) before any
    rank tears Gloo or NCCL down. Without it a rank that reaches ``destroy_process_group`` first can
    take the communicator away from one still inside a collective, and the slower rank aborts at
    exit (``terminate called without an active exception``) after a run that otherwise succeeded.
    A no-op without ``torch.distributed`` or outside a process group (single-process runs)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return
    dist.barrier()
    dist.destroy_process_group()


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
    ``<output_dir>/mlruns.db`` (MONAI 1.6 rejects plain paths and ``file://`` URIs).

    A new SQLite store is created here, once, under a lock (:func:`file_lock`): MLflow creates its
    tables with Alembic migrations that two processes creating one store at the same time break
    for good (``table _alembic_tmp_tags already exists``). A run started while another creates the
    store waits for it, then finds the store ready.
    """
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    path = os.path.join(os.path.abspath(output_dir), "mlruns.db")
    uri = path_to_sqlite_uri(path)
    ensure_sqlite_store(path, uri)
    return uri


def ensure_sqlite_store(path: str | os.PathLike, uri: str | None = None) -> None:
    """Create the MLflow SQLite store ``path`` (its tables) once, under ``<path>.lock``.

    A store that another process is creating is waited for; one that exists is left alone (an
    existing store is only read by MLflow's migrations check, which is safe in parallel).
    """
    path = Path(path)
    ready = path.with_name(path.name + ".ready")
    if ready.is_file() and path.is_file():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(path.with_name(path.name + ".lock")):
        if ready.is_file() and path.is_file():
            return
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=uri or path_to_sqlite_uri(str(path)))
        client.search_experiments(max_results=1)  # creates and migrates the tables
        store = getattr(getattr(client, "_tracking_client", None), "store", None)
        engine = getattr(store, "engine", None)
        if engine is not None:
            engine.dispose()
        ready.write_text("created by monai_gamble.utils.ensure_sqlite_store\n")


@contextlib.contextmanager
def file_lock(path: str | os.PathLike, timeout: float = 600.0, poll: float = 0.1) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if needed) for the ``with`` block: processes that
    share a folder (two bundle runs started together) take turns through it.

    Uses ``fcntl.flock`` (released by the OS when a process dies, so a killed run never leaves a
    stale lock); where ``fcntl`` is missing (Windows) the block runs unlocked.

    Raises:
        TimeoutError: when the lock is not free after ``timeout`` seconds; the message names the file.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        deadline = time.monotonic() + float(timeout)
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{path} is still locked by another process after {timeout:.0f} s.") from None
                time.sleep(poll)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj, path)`` written to a temporary file of the same folder, then renamed over
    ``path``: a process killed during the save leaves the previous file whole, never a truncated one.

    Returns:
        ``path`` as a ``Path``.
    """

    def write(handle: Any) -> None:
        torch.save(obj, handle)
        handle.flush()
        os.fsync(handle.fileno())

    return _replace_atomically(path, write)


def atomic_copy(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Copy ``src`` to ``dst`` through a temporary file renamed over ``dst`` (see :func:`atomic_save`)."""
    return _replace_atomically(dst, lambda handle: _copy_into(src, handle))


def _copy_into(src: str | os.PathLike, handle: Any) -> None:
    with open(src, "rb") as source:
        shutil.copyfileobj(source, handle)


def _replace_atomically(path: str | os.PathLike, write: Any) -> Path:
    """``write(handle)`` into a temporary file of ``path``'s folder, then rename it over ``path``
    (readable by all, 0o644); on any error the temporary file is removed and ``path`` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    return path


#: the file of a run folder that holds the full training state (see ``handlers.TrainingCheckpoint``)
LAST_CHECKPOINT = "last.pt"
#: the file of a run folder that says which run it is (name, MLflow run id, status)
RUN_RECORD = "run.json"


def new_run_name(runs_dir: str | os.PathLike, *parts: object, resume: bool = False) -> str:
    """The name of a training run, and its folder ``<runs_dir>/<name>`` claimed for it.

    A new run (``resume=False``) is named by :func:`timestamped_name` (``gambling_train_20260101_120000``)
    and its folder is created with ``os.mkdir``, which only one process can do: a second run
    started in the same second gets ``..._2`` (and so on), so two runs never share a folder.
    With ``resume=True`` the latest run of ``runs_dir`` that has a last checkpoint
    (:func:`latest_run`) is continued: its name is returned and nothing is created. Under
    ``torch.distributed`` rank 0 chooses and the name is broadcast to every process.

    Raises:
        FileNotFoundError: ``resume=True`` and no run of ``runs_dir`` has a last checkpoint.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        # every process of a torchrun job resolves the name: rank 0 claims it, the others take its name
        found = [_claim_run_name(Path(runs_dir), parts, resume) if dist.get_rank() == 0 else None]
        dist.broadcast_object_list(found, src=0)
        return str(found[0])
    return _claim_run_name(Path(runs_dir), parts, resume)


def _claim_run_name(runs_dir: Path, parts: Sequence[object], resume: bool) -> str:
    if as_bool(resume, "resume"):
        return latest_run(runs_dir).name
    runs_dir.mkdir(parents=True, exist_ok=True)
    base = timestamped_name(*parts)
    for i in range(1, 1000):
        name = base if i == 1 else f"{base}_{i}"
        try:
            os.mkdir(runs_dir / name)
        except FileExistsError:
            continue
        return name
    raise FileExistsError(f"could not claim a new run folder {base}_<n> in {runs_dir}.")  # pragma: no cover


def publish_latest(run_dir: str | os.PathLike, name: str = "latest") -> Path:
    """Point ``<parent of run_dir>/<name>`` at the finished run ``run_dir``: a relative symbolic link,
    replaced atomically (a temporary link renamed over the old one), so that ``eval/inference/latest``
    always opens the last inference run that finished, whole, while every run keeps its own folder.

    Where links cannot be made (Windows without the privilege, a file system without them), or where
    ``<name>`` is a real folder, it writes the run's folder name into ``<name>.txt`` instead. Under
    ``torchrun`` only rank 0 writes.

    Args:
        run_dir: the run's folder (a folder claimed with :func:`new_run_name`).
        name: the pointer's name in the parent folder.

    Returns:
        The pointer written (the link, or the text file).

    Raises:
        FileNotFoundError: if ``run_dir`` is not a folder.
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise FileNotFoundError(f"cannot point {name} at {run}: no such run folder.")
    link = run.parent / name
    if idist.get_rank() != 0:
        return link
    if not (link.exists() and not link.is_symlink()):
        tmp = run.parent / f".{name}.{os.getpid()}.tmp"
        try:
            if tmp.is_symlink():
                tmp.unlink()
            os.symlink(run.name, tmp, target_is_directory=True)
            os.replace(tmp, link)
            return link
        except OSError:
            if tmp.is_symlink():
                tmp.unlink()
    text = run.parent / f"{name}.txt"
    _replace_atomically(text, lambda handle: handle.write(f"{run.name}\n".encode()))
    return text


def latest_run(runs_dir: str | os.PathLike) -> Path:
    """The folder of the latest run in ``runs_dir`` that can be resumed: the one whose
    ``last.pt`` was written last.

    Raises:
        FileNotFoundError: when no ``<runs_dir>/*/last.pt`` exists (the message names the folder and
            the runs found without one).
    """
    runs_dir = Path(runs_dir)
    found = sorted(runs_dir.glob(f"*/{LAST_CHECKPOINT}"), key=lambda p: p.stat().st_mtime)
    if not found:
        others = sorted(p.name for p in runs_dir.glob("*") if p.is_dir()) if runs_dir.is_dir() else []
        raise FileNotFoundError(
            f"--resume true: no run to resume in {runs_dir} (no */{LAST_CHECKPOINT}"
            + (f"; run folders without one: {others}" if others else "")
            + "). Start a new run without --resume."
        )
    return found[-1].parent


def resume_checkpoint(run_dir: str | os.PathLike, resume: bool) -> str | None:
    """The last checkpoint of ``run_dir`` when ``resume`` is true, else None (a new run).

    Raises:
        FileNotFoundError: ``resume`` and ``<run_dir>/last.pt`` does not exist.
    """
    if not as_bool(resume, "resume"):
        return None
    path = Path(run_dir) / LAST_CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(f"--resume true: {path} does not exist; nothing to resume.")
    return str(path)


def training_run_of(checkpoint: str | os.PathLike) -> dict[str, str]:
    """What is known of the training run that wrote ``checkpoint``: the ``run.json`` next to it, or
    the ``<name>.json`` record that :class:`~monai_gamble.handlers.TrainingCheckpoint` writes next to
    a published copy (``models/model.pt`` -> ``models/model.json``). Keys ``training_run_name``,
    ``training_run_id`` and ``checkpoint`` where known; an empty dict else."""
    path = Path(checkpoint)
    for record in (path.with_suffix(".json"), path.parent / RUN_RECORD):
        if record.is_file():
            try:
                data = json.loads(record.read_text())
            except (OSError, ValueError):
                continue
            out = {"checkpoint": str(path.resolve())}
            if data.get("run_name"):
                out["training_run_name"] = str(data["run_name"])
            if data.get("mlflow_run_id"):
                out["training_run_id"] = str(data["mlflow_run_id"])
            return out
    return {"checkpoint": str(path.resolve())} if path.exists() else {}


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


#: override values that a user means as false but MONAI's command line (Fire) reads as non-empty text,
#: which Python takes as true (``--resume false`` would resume); compared case-insensitively
FALSE_WORDS = frozenset({"false", "no", "off"})
#: the keys where such a word is a value of its own (``--tracking_uri false`` turns tracking off)
TEXT_KEYS = frozenset({"tracking_uri"})


def as_bool(value: Any, name: str = "value") -> bool:
    """A config's boolean as it may come from MONAI's command line: a bool, 0 / 1, or the text ``true`` /
    ``false`` / ``yes`` / ``no`` / ``on`` / ``off`` (any case; Fire leaves lowercase ``true`` as text).

    Raises:
        ValueError: for anything else, naming ``name`` and the value.

    Example:
        >>> as_bool("true"), as_bool(False), as_bool("OFF"), as_bool(1)
        (True, False, False, True)
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in ("true", "yes", "on", "1"):
            return True
        if word in FALSE_WORDS | {"0"}:
            return False
    raise ValueError(f"{name} must be true or false, got {value!r}.")


def _false_word_message(key: str, value: str | None) -> str | None:
    """The refusal of ``--key false`` (or ``no``, ``off``): Fire parses ``False`` to the boolean and leaves
    ``false`` a string, so a config's ``@key`` would be the truthy text ``'false'``."""
    if key in TEXT_KEYS or not isinstance(value, str) or value == "False":
        return None
    if value.strip().lower() not in FALSE_WORDS:
        return None
    return (
        f"--{key} {value}: MONAI's command line reads {value!r} as text, and any text counts as true "
        f"(the opposite of what it says). Write --{key} False."
    )


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

    A bundle run also gets :func:`install_error_summary`: an error of the package's checks met later
    (a truncated image, a bad split) is shown last, as its own message, not under MONAI's wrappers.

    Raises:
        SystemExit: naming each unknown key with the closest ids (``difflib``), e.g.
            ``--max_epoch: the configs define no 'max_epoch'. Did you mean --max_epochs?``; for a value
            ``false`` / ``no`` / ``off`` (:data:`FALSE_WORDS`), which MONAI's command line passes as truthy
            text (write ``False``; ``true`` is truthy text and means what it says); and for MONAI's
            ``--tracking mlflow``, which would log every metric a second time next to the bundle's own handlers.

    Example:
        >>> check_bundle_overrides(["monai/bundle/__main__.py", "run", "--max_epochs", "2"],
        ...                        config={"max_epochs": 60})
        ['max_epochs']
    """
    argv = list(sys.argv if argv is None else argv)
    if not _is_bundle_run(argv):
        return []
    if argv is sys.argv or argv == sys.argv:
        install_error_summary()
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
    if options.get("tracking") not in (None, "", "none", "None"):
        raise SystemExit(
            f"--tracking {options['tracking']}: this bundle tracks every run in MLflow itself (its MLflowRun handlers), "
            "and MONAI's --tracking adds a second MLflow handler that logs the same metrics again (train_loss steps "
            "1, 2, 3, 1, 1). Nothing was run. Leave --tracking out; choose the store with --tracking_uri URI, or turn "
            "tracking off with --tracking_uri none."
        )
    keys = [k for k in options if k not in RUN_ARGUMENTS and k not in set(allowed)]
    known = sorted(config)
    problems = [m for k in keys if (m := _unknown_key_message(k, config, known))]
    problems += [m for k in keys if (m := _false_word_message(k, options[k]))]
    if problems:
        raise SystemExit("Unknown or misread override(s), nothing was run:\n  " + "\n  ".join(problems))
    return keys


def _first_conv(network: torch.nn.Module) -> torch.Tensor | None:
    for p in network.parameters():
        if p.ndim >= 3:
            return p
    return None


def check_training_settings(
    network: torch.nn.Module | None = None,
    image_size: Sequence[int] | None = None,
    num_classes: int | None = None,
    val_interval: int | None = None,
    max_epochs: int | None = None,
    batch_size: int | None = None,
    stages: Sequence[Any] | None = None,
    exit_on_error: bool = False,
    image_size_key: str = "image_size",
) -> None:
    """Check a bundle's training settings before any work, with one line that names the key.

    - ``num_classes`` >= 2 (the bundles segment with a softmax over background and foreground: a
      binary task has 2 classes), ``val_interval``, ``max_epochs`` and ``batch_size`` >= 1;
    - ``stages`` (progressive resizing) not empty, each stage valid
      (:class:`~monai_gamble.handlers.ResizeStage`);
    - ``image_size`` (or each stage's ``spatial_size``) fits ``network``: one forward pass of a
      zero image of that size (in eval mode, without gradient) must give an output of the same
      size. A U-Net with four stride-2 levels, for example, needs sizes divisible by 16.

    Args:
        exit_on_error: raise ``SystemExit`` with the message instead of ``ValueError`` (what the
            bundles' ``initialize`` does: one line, no traceback, before any work).
        image_size_key: the bundle's key of ``image_size``, as the message names it (the generic
            bundle's is ``patch_size``).

    Raises:
        ValueError: naming the key (``--num_classes``, ``--image_size``, ...) and what it must be.
    """
    try:
        _check_training_settings(
            network, image_size, num_classes, val_interval, max_epochs, batch_size, stages, image_size_key
        )
    except ValueError as e:
        if exit_on_error:
            raise SystemExit(f"Bad setting, nothing was run: {e}") from None
        raise


def _check_training_settings(
    network: torch.nn.Module | None,
    image_size: Sequence[int] | None,
    num_classes: int | None,
    val_interval: int | None,
    max_epochs: int | None,
    batch_size: int | None,
    stages: Sequence[Any] | None,
    image_size_key: str = "image_size",
) -> None:
    def whole(name: str, value: Any, minimum: int) -> None:
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or value < minimum:
            raise ValueError(f"--{name} must be a whole number >= {minimum}, got {value!r}.")

    whole("val_interval", val_interval, 1)
    whole("max_epochs", max_epochs, 1)
    whole("batch_size", batch_size, 1)
    if num_classes is not None:
        if isinstance(num_classes, bool) or int(num_classes) != num_classes or num_classes < 2:
            raise ValueError(
                f"--num_classes must be at least 2, got {num_classes!r}: the bundles segment with a softmax "
                "over the classes, background included (a binary task has 2)."
            )
    sizes: list[tuple[str, Sequence[int]]] = []
    if stages is not None:
        from .handlers.progressive import ResizeStage

        if len(stages) == 0:
            raise ValueError(
                "--stages must hold at least one stage, e.g. [{'epochs': 10, 'spatial_size': [256, 256]}]."
            )
        for i, stage in enumerate(stages):
            try:
                s = ResizeStage(i, stage)
            except (ValueError, TypeError, KeyError) as e:
                raise ValueError(f"--stages: stage {i} ({stage!r}) is not valid: {e}") from e
            sizes.append((f"stages#{i}#spatial_size", s["spatial_size"]))
    if image_size is not None:
        sizes.append((image_size_key, image_size))
    if network is None or not sizes:
        return
    conv = _first_conv(getattr(network, "module", network))
    if conv is None:
        return
    in_channels, spatial_dims = int(conv.shape[1]), conv.ndim - 2
    checked: set[tuple[int, ...]] = set()
    for key, size in sizes:
        size = [int(size)] * spatial_dims if isinstance(size, (int, float)) else [int(v) for v in size]
        if tuple(size) in checked:
            continue
        checked.add(tuple(size))
        if len(size) != spatial_dims or min(size) < 1:
            raise ValueError(
                f"--{key} must be {spatial_dims} positive sizes for this {spatial_dims}D network, got {size}."
            )
        x = torch.zeros(1, in_channels, *size, device=conv.device)
        was_training = network.training
        network.eval()
        try:
            with torch.no_grad():
                out = network(x)
            problem = None
            out = out[0] if isinstance(out, (list, tuple)) else out
            if list(out.shape[2:]) != size:
                problem = f"gives an output of size {list(out.shape[2:])}"
        except RuntimeError as e:
            problem = f"fails on it ({str(e).splitlines()[0]})"
        finally:
            network.train(was_training)
        if problem is not None:
            strides = getattr(getattr(network, "module", network), "strides", None)
            hint = ""
            if strides:
                factor = int(torch.tensor([s if isinstance(s, int) else max(s) for s in strides]).prod())
                hint = f" Use sizes divisible by {factor} (the product of the network's strides)."
            raise ValueError(
                f"--{key} {size} does not fit the network: {type(getattr(network, 'module', network)).__name__} {problem}.{hint}"
            )


#: ``--tracking_uri`` values that turn MLflow tracking off (compared case-insensitively; Fire reads ``None`` as None)
TRACKING_OFF = frozenset({"", "none", "off", "false", "no"})


def tracking_off(uri: str | None) -> bool:
    """Whether ``--tracking_uri`` turns MLflow tracking off: None, or one of :data:`TRACKING_OFF`
    (``--tracking_uri none``). The bundles' MLflow handlers (:class:`monai_gamble.handlers.MLflowRun`)
    then log nothing and create no store; the figures and reports are still written to disk.

    Example:
        >>> tracking_off("none"), tracking_off(None), tracking_off("sqlite:///eval/mlruns.db")
        (True, True, False)
    """
    return uri is None or (isinstance(uri, str) and uri.strip().lower() in TRACKING_OFF)


def cli_overrides(argv: Sequence[str] | None = None) -> dict[str, str | None]:
    """The ``--key value`` overrides of a ``python -m monai.bundle run`` command line, as typed.

    The arguments of ``run`` itself (``--config_file``, ``--meta_file``, ``--run_id``, ...) are left out;
    the options of an ``--args_file`` are included (the command line wins). Anything that is not a bundle
    run (a test, a notebook, ``ConfigWorkflow``) has no overrides: ``{}``.

    Args:
        argv: the command line (default ``sys.argv``).

    Returns:
        ``{key: value}`` with the raw text of each value (None for a bare flag, which Fire reads as True).

    Example:
        >>> cli_overrides(["monai/bundle/__main__.py", "run", "--config_file", "c.json", "--network_def#channels", "[8,16]"])
        {'network_def#channels': '[8,16]'}
    """
    argv = list(sys.argv if argv is None else argv)
    if not _is_bundle_run(argv):
        return {}
    options = _cli_options(argv[2:])
    args_file = options.get("args_file")
    if args_file:
        from monai.bundle import ConfigParser

        options = {**{k: str(v) for k, v in ConfigParser.load_config_file(args_file).items()}, **options}
    return {k: v for k, v in options.items() if k not in RUN_ARGUMENTS}


def merged_config(argv: Sequence[str] | None = None) -> dict | None:
    """The config that a ``python -m monai.bundle run`` command line runs: its ``--config_file`` files
    merged (later files win, as MONAI merges them) with every ``--key value`` override applied, the values
    read as MONAI's ``run`` reads them (Fire's parser: ``[8,16]`` is a list, ``2`` an int).

    References (``@id``) and expressions (``$...``) are kept as they are, so the result is a config that
    ``python -m monai.bundle run --config_file config.json`` runs again with the same settings (from the same
    ``bundle_root``).

    Returns:
        The merged config, or None when ``argv`` is not a bundle run or names no ``--config_file``.
    """
    argv = list(sys.argv if argv is None else argv)
    if not _is_bundle_run(argv):
        return None
    files = _cli_options(argv[2:]).get("config_file")
    if files is None:
        return None
    from fire.parser import DefaultParseValue
    from monai.bundle import ConfigParser

    parser = ConfigParser(ConfigParser.load_config_files(_config_files(files)))
    for key, value in cli_overrides(argv).items():
        parser[key.replace("::", "#")] = True if value is None else DefaultParseValue(value)
    return parser.get()


def git_commit(path: str | os.PathLike | None = None) -> str | None:
    """The git commit of the checkout that holds ``path`` (default: this package), with ``-dirty``
    appended when tracked files have uncommitted changes; None when it is not a git checkout (an installed
    wheel) or git is missing.

    Example:
        >>> git_commit()  # doctest: +SKIP
        '4c1d2e9f0a...'
    """
    import subprocess

    where = str(Path(path if path is not None else __file__).resolve())
    where = where if os.path.isdir(where) else os.path.dirname(where)
    try:
        run = dict(cwd=where, capture_output=True, text=True, timeout=10, check=True)
        commit = subprocess.run(["git", "rev-parse", "HEAD"], **run).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], **run).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}-dirty" if dirty else commit or None


def dataset_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """A digest of a dataset's content: every file under ``path`` (sorted by relative path), hashed by its
    relative path, its size and its bytes, so that two copies of one dataset give one digest and a changed,
    added, removed or renamed file gives another. Hidden files and folders (``.lock``, ``.ready``) are left
    out. A single file is hashed the same way.

    Args:
        path: a dataset folder (or file).
        algorithm: a ``hashlib`` algorithm name.

    Returns:
        ``"<algorithm>:<hex digest>"``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
    """
    import hashlib

    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"dataset_digest: {root} does not exist.")
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    digest = hashlib.new(algorithm)
    for file in files:
        relative = file.name if file == root else file.relative_to(root).as_posix()
        if any(part.startswith(".") for part in Path(relative).parts):
            continue
        digest.update(f"{relative}\0{file.stat().st_size}\0".encode())
        with open(file, "rb") as handle:
            digest.update(hashlib.file_digest(handle, algorithm).digest())
    return f"{algorithm}:{digest.hexdigest()}"


def check_tracking_uri(uri: str | None, timeout: float = 5.0, exit_on_error: bool = False) -> str | None:
    """Check that an MLflow tracking server can be reached, within ``timeout`` seconds, before any work.

    MLflow retries an unreachable server for minutes (about 267 s with its defaults) before it fails,
    after the data is prepared and the networks are built. For ``http(s)://`` URIs this asks the
    server's ``/health`` endpoint once; any HTTP answer counts as reachable (a proxy may answer 404),
    a refused or timed-out connection does not. Other URIs (a SQLite store, None) are returned as
    they are.

    Args:
        uri: the tracking URI (``--tracking_uri``).
        timeout: seconds to wait for the server.
        exit_on_error: raise ``SystemExit`` with the message (what the bundles do) instead of ``ValueError``.

    Returns:
        ``uri``.

    Raises:
        ValueError: the server cannot be reached (the message names it and how to fix it).
    """
    if tracking_off(uri) or not str(uri).lower().startswith(("http://", "https://")):
        return uri
    import urllib.error
    import urllib.request

    url = str(uri).rstrip("/") + "/health"
    try:
        urllib.request.urlopen(url, timeout=float(timeout)).close()
    except urllib.error.HTTPError:
        pass  # it answered
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        message = (
            f"--tracking_uri {uri}: no MLflow server answers there within {timeout:g} s ({reason}). Start it "
            "(mlflow server --host 127.0.0.1 --port 5000), leave --tracking_uri out for the local SQLite store, or turn "
            "tracking off with --tracking_uri none."
        )
        if exit_on_error:
            raise SystemExit(f"Bad setting, nothing was run: {message}") from None
        raise ValueError(message) from None
    return uri


#: the oneDNN primitive cache size that :func:`bound_onednn_cache` sets by default
ONEDNN_CACHE_CAPACITY = 256


def bound_onednn_cache(capacity: int = ONEDNN_CACHE_CAPACITY) -> int:
    """Bound the CPU memory that oneDNN (PyTorch's CPU convolutions) keeps per input shape.

    oneDNN caches a compiled primitive for every shape a convolution sees (1024 by default, about
    1 MB each): inference on images of many sizes (the anti-aliasing of ``Resized`` convolves each
    image at its own size) then grows by about a megabyte per new size. This sets
    ``ONEDNN_PRIMITIVE_CACHE_CAPACITY`` (an LRU cache) to ``capacity`` unless the user set it;
    oneDNN reads it once, at the first convolution of the process, so call it before any (the
    bundles call it first in ``initialize``). ``capacity`` should exceed the primitives of one
    forward pass of the network (a few per layer), or each pass recompiles them.

    Returns:
        the capacity in effect (the user's, if set).

    Raises:
        ValueError: for a capacity below 0.
    """
    if int(capacity) < 0:
        raise ValueError(f"capacity must be >= 0, got {capacity}.")
    value = os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(int(capacity)))
    return int(value)


def announce_run(run_name: str) -> str:
    """Log the run's name at the start (the folder ``models/<run_name>/`` that ``--resume true``
    continues). The bundles call it in ``initialize``, so that every process of a ``torchrun`` job
    resolves the name at the same point (:func:`new_run_name` broadcasts it from rank 0)."""
    import logging

    logging.getLogger("monai_gamble").info("run %s", run_name)
    return run_name


#: set to 1 to print the whole traceback of an error that :func:`error_summary` shortens
TRACEBACK_ENV = "MONAI_GAMBLE_TRACEBACK"
_PACKAGE_DIR = Path(__file__).resolve().parent
_TRACEBACK_HEAD = "Traceback (most recent call last):"


def _raised_here(filename: str) -> bool:
    """Whether a traceback frame's file lies in this package."""
    try:
        return Path(filename).resolve().is_relative_to(_PACKAGE_DIR)
    except (OSError, ValueError):
        return False


def _worker_error(message: str) -> str | None:
    """The innermost-raised error of this package in the text of an error that a ``DataLoader`` worker
    passed on (torch re-raises it in the main process as ``Caught <Error> in DataLoader worker process
    0.\\nOriginal Traceback (most recent call last): ...``, the worker's whole traceback as text)."""
    if _TRACEBACK_HEAD not in message:
        return None
    # one section per exception of the worker's chain, the innermost first and the one raised last at the end
    for section in reversed(message.split(_TRACEBACK_HEAD)[1:]):
        lines = section.strip("\n").splitlines()
        frames = [i for i, line in enumerate(lines) if line.lstrip().startswith('File "')]
        if not frames:
            continue
        filename = lines[frames[-1]].split('"')[1]
        if not _raised_here(filename):
            continue
        tail = [line for line in lines[frames[-1] + 1 :] if line and not line.startswith(" ")]
        # the chain's separator ("The above exception was the direct cause ...") ends a section
        tail = [line for line in tail if not line.startswith(("The above exception", "During handling"))]
        if tail:
            return "\n".join(tail)
    return None


def error_summary(error: BaseException) -> str | None:
    """The message of the error that this package raised for a bad input, found in ``error``'s chain.

    The package's checks raise errors written for the user (``cannot load the image file
    data/image/1.PNG (CheckedPILReader): ... truncated``), but a bundle run shows them under MONAI's
    and Ignite's wrappers (``RuntimeError: Failed to instantiate component
    'monai.data.dataset.CacheDataset'``, ``RuntimeError: applying transform ...``) and a
    ``DataLoader`` worker's re-raise, 100 lines of traceback with the one line that matters in the
    middle. This walks ``error``, then its ``__cause__`` / ``__context__``, outermost first, and
    returns ``"<Type>: <message>"`` of the first one whose last traceback frame lies in
    ``monai_gamble`` (for a worker's re-raise, the first such error in the worker's traceback text).

    Returns:
        The line(s) to show, or None when no error of the chain was raised by this package (a bug or
        a third-party failure: the whole traceback is what helps then).

    Example:
        >>> try:
        ...     try:
        ...         as_bool("maybe", "--resume")
        ...     except ValueError as e:
        ...         raise RuntimeError("Failed to instantiate component 'monai_gamble.utils.as_bool'") from e
        ... except RuntimeError as wrapped:
        ...     print(error_summary(wrapped))
        ValueError: --resume must be true or false, got 'maybe'.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        worker = _worker_error(str(current))
        if worker is not None:
            return worker
        frames = traceback.extract_tb(current.__traceback__)
        if frames and _raised_here(frames[-1].filename):
            return f"{type(current).__name__}: {current}"
        current = current.__cause__ or current.__context__
    return None


def _join_pool_threads(timeout: float = 60.0) -> list[str]:
    """Wait (up to ``timeout`` seconds in all) for the worker threads of ``multiprocessing`` thread
    pools that are still running; return the names of those still alive after it.

    MONAI's ``CacheDataset`` caches with a ``ThreadPool``: when one item fails, the error leaves the pool
    while its other threads are still in PyTorch code. If the interpreter then exits, CPython (before
    3.14) ends each such daemon thread with ``pthread_exit`` as it retakes the GIL, and that unwind
    through PyTorch's C++ frames calls ``std::terminate``: ``terminate called without an active
    exception``, exit code 134, after the error was printed. A terminated pool's threads finish
    their current item and end, so waiting for them avoids it.
    """
    import threading
    from multiprocessing.dummy import DummyProcess

    deadline = time.monotonic() + timeout
    for thread in threading.enumerate():
        if isinstance(thread, DummyProcess) and thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))
    return [t.name for t in threading.enumerate() if isinstance(t, DummyProcess) and t.is_alive()]


def install_error_summary() -> None:
    """Show an error of this package's checks as its own message, last, instead of under MONAI's
    wrappers (:func:`error_summary`); any other error keeps Python's whole traceback.

    Installed as ``sys.excepthook`` by :func:`check_bundle_overrides`, the first call of every
    bundle's ``initialize``, for ``python -m monai.bundle run`` only. The process still exits with
    code 1; ``MONAI_GAMBLE_TRACEBACK=1`` prints the whole traceback above the message. The engines'
    logs (MONAI's ``StatsHandler`` logs an exception with its traceback) are not changed.

    Before anything is printed, the hook waits for the threads of a ``CacheDataset``'s caching pool
    that are still running (:func:`_join_pool_threads`): exiting while they run PyTorch code aborts
    the process (``terminate called without an active exception``, exit code 134) on CPython 3.11
    to 3.13.
    """
    previous = sys.excepthook
    if getattr(previous, "_monai_gamble", False):
        return

    def hook(kind: type[BaseException], error: BaseException, tb: Any) -> None:
        _join_pool_threads()  # an exit with pool threads in PyTorch code aborts (rc 134)
        summary = error_summary(error) if isinstance(error, Exception) else None
        if summary is None or os.environ.get(TRACEBACK_ENV, "") not in ("", "0"):
            previous(kind, error, tb)
        if summary is not None:
            print(
                f"The run stopped on a checked error ({TRACEBACK_ENV}=1 prints the whole traceback):\n{summary}",
                file=sys.stderr,
            )

    hook._monai_gamble = True  # type: ignore[attr-defined]
    sys.excepthook = hook
