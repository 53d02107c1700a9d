"""Checkpoints that survive a crash and resume a run where it stopped.

- :class:`AtomicCheckpointSaver`: MONAI's ``CheckpointSaver``, with every file written to a temporary
  file and renamed into place (a kill during a save leaves the previous file whole), and its
  best-metric bookkeeping available as ``state_dict`` so that a resumed run does not replace the best
  model with a worse one.
- :class:`TrainingCheckpoint`: the whole training state every epoch (``last.pt``): the networks, the
  trainer's optimisers, AMP scalers and state, the learning-rate schedulers of its
  ``LrScheduleHandler``\\ s, the state of every stateful handler of the trainer and of its validators
  (best-metric savers, early stopping, SWA, progressive resizing, stochastic TCE), the engines' best
  metrics and the random states (Python, NumPy, torch, and every random transform of the training
  data and of a semi-supervised trainer's unlabelled data). With ``resume_from`` it loads such a
  file when the run starts; on SIGTERM / Ctrl-C it stops at the end of the iteration, saves, and
  marks the MLflow run ``KILLED``; a crash marks it ``FAILED``;
  at the end it publishes the run's best model to a stable path (``models/model.pt``).

A resumed run on the CPU with the same settings and one thread ends with the same weights, bit for
bit, as the run that was not interrupted, when the kill came between two epochs (the test
``tests/test_resume.py`` checks it with ``kill -9``). A run stopped in the middle of an epoch
(SIGTERM) resumes at that iteration with a new shuffle of the epoch's batches: the same number of
iterations, not the same batches.
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.handlers import CheckpointLoader, CheckpointSaver
from monai.transforms import Randomizable
from monai.utils import min_version, optional_import

from ..utils import LAST_CHECKPOINT, RUN_RECORD, atomic_copy, atomic_save

Events, _ = optional_import("ignite.engine", "0.4.11", min_version, "Events")
Engine, _ = optional_import("ignite.engine", "0.4.11", min_version, "Engine")
DiskSaver, _ = optional_import("ignite.handlers", "0.4.11", min_version, "DiskSaver")
idist, _ = optional_import("ignite", "0.4.11", min_version, "distributed")
Metric, _has_metric = optional_import("ignite.metrics", "0.4.11", min_version, "Metric")
Metric = Metric if _has_metric else None

logger = logging.getLogger(__name__)

__all__ = [
    "AtomicCheckpointSaver",
    "CheckedCheckpointLoader",
    "RNGState",
    "TrainingCheckpoint",
    "check_checkpoint_file",
    "randomizable_transforms",
]


def check_checkpoint_file(path: str | os.PathLike, hint: str = "") -> Path:
    """Check that ``path`` can be a PyTorch checkpoint before it is loaded, with an error that names it.

    A checkpoint written by ``torch.save`` is a zip archive (PyTorch >= 1.6) or a pickle (older): an
    empty file, a file cut short (a copy or a download that stopped: its zip directory, at the end, is
    missing) or another kind of file is refused here, instead of failing deep in ``torch.load``.

    Args:
        path: the checkpoint file.
        hint: a sentence added to the message of a missing file (e.g. how to train one).

    Returns:
        ``path`` as a ``Path``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` is empty, truncated or not a checkpoint.
    """
    import zipfile

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist." + (f" {hint}" if hint else ""))
    size = path.stat().st_size
    if size == 0:
        raise ValueError(f"checkpoint {path} is empty (0 bytes): it is not a checkpoint.")
    with open(path, "rb") as f:
        head = f.read(4)
    if head.startswith(b"PK"):
        if not zipfile.is_zipfile(path):
            raise ValueError(f"checkpoint {path} is truncated or damaged ({size} bytes, no zip directory).")
    elif not head.startswith(b"\x80"):
        raise ValueError(f"{path} is not a PyTorch checkpoint (it starts with {head!r}).")
    return path


class CheckedCheckpointLoader(CheckpointLoader):
    """MONAI's :class:`~monai.handlers.CheckpointLoader` that checks the file first
    (:func:`check_checkpoint_file`) and names it in every error: a missing, empty, truncated or foreign
    file, or one whose weights do not fit the network (MONAI's message, with the file's name)."""

    def __call__(self, engine: Any) -> None:
        check_checkpoint_file(self.load_path, hint="Train a model first, or pass the checkpoint to read.")
        try:
            super().__call__(engine)
        except (RuntimeError, KeyError, ValueError) as e:
            raise ValueError(f"checkpoint {self.load_path} could not be loaded: {e}") from e


class _AtomicFixedNameSaver(DiskSaver):
    """Ignite's ``DiskSaver`` with ``atomic=True``; with a fixed ``filename`` every save replaces that
    file by a rename, and removing the previous one is skipped (the rename replaces it, so there is
    never a moment without the file)."""

    def __init__(self, dirname: str | os.PathLike, filename: str | None = None) -> None:
        super().__init__(dirname=str(dirname), atomic=True, require_empty=False, create_dir=True)
        self.filename = filename

    def __call__(self, checkpoint: Mapping, filename: str, metadata: Mapping | None = None) -> None:
        super().__call__(checkpoint, self.filename or filename, metadata)

    def remove(self, filename: str) -> None:
        if self.filename is None:
            super().remove(filename)


class AtomicCheckpointSaver(CheckpointSaver):
    """MONAI's :class:`~monai.handlers.CheckpointSaver`, crash-safe and resumable.

    It takes the same arguments and saves the same files, with two changes:

    - every file is written to a temporary file of ``save_dir`` and renamed over the target (Ignite's
      ``DiskSaver(atomic=True)``; files keep group/other read permission). MONAI's saver writes in
      place, after removing the previous best file: a kill in between leaves no best model, or a
      truncated one.
    - :meth:`state_dict` / :meth:`load_state_dict` hold the best key metric seen so far, so that
      :class:`TrainingCheckpoint` can save it and a resumed run only replaces ``model.pt`` with a
      better model.
    """

    def __init__(self, save_dir: str, save_dict: dict, **kwargs: Any) -> None:
        super().__init__(save_dir=save_dir, save_dict=save_dict, **kwargs)
        for attr in ("_final_checkpoint", "_key_metric_checkpoint", "_interval_checkpoint"):
            checkpoint = getattr(self, attr)
            if checkpoint is not None:
                fixed = getattr(checkpoint.save_handler, "filename", None)
                checkpoint.save_handler = _AtomicFixedNameSaver(self.save_dir, fixed)

    def state_dict(self) -> dict[str, Any]:
        """The best-metric bookkeeping: ``{"key_metric": Checkpoint.state_dict()}`` (empty without
        ``save_key_metric``)."""
        if self._key_metric_checkpoint is None:
            return {}
        return {"key_metric": self._key_metric_checkpoint.state_dict()}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore what :meth:`state_dict` returned."""
        if self._key_metric_checkpoint is not None and "key_metric" in state_dict:
            self._key_metric_checkpoint.load_state_dict(state_dict["key_metric"])


def randomizable_transforms(transform: Any) -> list[Randomizable]:
    """Every MONAI ``Randomizable`` object reachable from ``transform`` (a ``Compose`` and what it holds,
    the array transforms inside dictionary transforms, ...), once each, in a fixed order.

    Objects that share one random state (the class-level default of transforms never seeded) appear
    once per state, so that saving and restoring the list restores each state once.
    """
    found: list[Randomizable] = []
    states: set[int] = set()
    seen: set[int] = set()

    def walk(obj: Any, depth: int) -> None:
        if id(obj) in seen or depth > 8:
            return
        seen.add(id(obj))
        if isinstance(obj, Randomizable) and id(obj.R) not in states:
            states.add(id(obj.R))
            found.append(obj)
        children: list[Any] = []
        if isinstance(obj, (list, tuple)):
            children = list(obj)
        elif hasattr(obj, "__dict__") and (isinstance(obj, Randomizable) or hasattr(obj, "transforms")):
            for value in vars(obj).values():
                if isinstance(value, (list, tuple)):
                    children.extend(v for v in value if callable(v) and hasattr(v, "__dict__"))
                elif isinstance(value, Randomizable) or hasattr(value, "transforms"):
                    children.append(value)
        for child in children:
            walk(child, depth + 1)

    walk(transform, 0)
    return found


def _numpy_state(state: tuple) -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = state
    return {
        "name": name,
        "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached": float(cached),
    }


def _to_numpy_state(state: Mapping[str, Any]) -> tuple:
    keys = state["keys"].numpy().astype(np.uint32)
    return (state["name"], keys, int(state["pos"]), int(state["has_gauss"]), float(state["cached"]))


class RNGState:
    """The random states a training run draws from, as one ``state_dict``: Python's ``random``, NumPy's
    global state, torch's CPU generator (and every CUDA device's), and the state of each MONAI random
    transform of ``transforms`` (:func:`randomizable_transforms`).

    Restored at the start of a resumed run, they make the next epoch draw the same shuffle and the same
    augmentations as the run that was not interrupted (with ``num_workers=0``, or with workers that are
    not persistent: their seeds come from torch's generator).

    Args:
        transforms: the training data's transforms (e.g. ``dataset.transform``), or None.

    Raises (on load):
        ValueError: when the saved states do not match the transforms (another pipeline).
    """

    def __init__(self, transforms: Any = None) -> None:
        self.transforms = [] if transforms is None else randomizable_transforms(transforms)

    def state_dict(self) -> dict[str, Any]:
        """The states (tensors, ints and tuples only, so that ``torch.load(weights_only=True)`` reads them)."""
        out: dict[str, Any] = {
            "python": random.getstate(),
            "numpy": _numpy_state(np.random.get_state()),  # noqa: NPY002 - the global state MONAI seeds
            "torch": torch.get_rng_state(),
            "transforms": [_numpy_state(t.R.get_state()) for t in self.transforms],
        }
        if torch.cuda.is_available():
            out["cuda"] = torch.cuda.get_rng_state_all()
        return out

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        saved = list(state.get("transforms", []))
        if len(saved) != len(self.transforms):
            raise ValueError(
                f"the checkpoint holds the random states of {len(saved)} random transforms, the training "
                f"pipeline has {len(self.transforms)}: it was written by another configuration."
            )
        random.setstate(state["python"])
        np.random.set_state(_to_numpy_state(state["numpy"]))  # noqa: NPY002
        torch.set_rng_state(state["torch"])
        if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state["cuda"])
        for t, s in zip(self.transforms, saved):
            t.R.set_state(_to_numpy_state(s))


class _EngineBest:
    """The best metric an engine tracked (``state.best_metric`` / ``best_metric_epoch``) as a state."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def state_dict(self) -> dict[str, Any]:
        state = self.engine.state
        return {
            "best_metric": float(getattr(state, "best_metric", -1)),
            "best_metric_epoch": int(getattr(state, "best_metric_epoch", -1)),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.engine.state.best_metric = float(state["best_metric"])
        self.engine.state.best_metric_epoch = int(state["best_metric_epoch"])


class _StateOf:
    """A handler whose state lives in an inner object (MONAI's ``EarlyStopHandler`` -> Ignite's
    ``EarlyStopping``), created when the handler is attached."""

    def __init__(self, owner: Any, attr: str) -> None:
        self.owner, self.attr = owner, attr

    def state_dict(self) -> dict[str, Any]:
        inner = getattr(self.owner, self.attr, None)
        return {} if inner is None else dict(inner.state_dict())

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        inner = getattr(self.owner, self.attr, None)
        if inner is not None and state:
            inner.load_state_dict(state)


def _handler_objects(engine: Any) -> list[Any]:
    """The handler objects attached to ``engine``, once each, in the order they were attached."""
    out: list[Any] = []
    seen: set[int] = set()
    for entries in list(engine._event_handlers.values()):
        for fn, _args, _kwargs in entries:
            parent = getattr(fn, "_parent", None)
            fn = parent() if callable(parent) else fn
            obj = getattr(fn, "__self__", fn)
            if obj is engine or id(obj) in seen:
                continue
            seen.add(id(obj))
            out.append(obj)
    return out


def _is_stateful(obj: Any) -> bool:
    if Metric is not None and isinstance(obj, Metric):  # metrics restart every epoch
        return False
    return callable(getattr(obj, "state_dict", None)) and callable(getattr(obj, "load_state_dict", None))


def _mlflow_handlers(engine: Any) -> list[Any]:
    """MONAI's ``MLFlowHandler`` objects attached to ``engine`` (also subclasses such as ``MLflowRun``),
    except those with tracking turned off (``enabled`` False)."""
    return [
        h
        for h in _handler_objects(engine)
        if any(c.__name__ == "MLFlowHandler" for c in type(h).__mro__) and getattr(h, "enabled", True)
    ]


class TrainingCheckpoint:
    """Save the whole training state at the end of every epoch, resume from it, stop cleanly on a
    signal, and publish the run's best model when it ends.

    **What is saved** in ``<save_dir>/last.pt`` (written atomically, :func:`~monai_gamble.utils.atomic_save`):
    ``save_dict`` (the networks, e.g. ``{"model": network, "critic": critic}``), ``trainer`` (Ignite's
    engine state: epoch, iteration), every optimiser and AMP scaler of the trainer (attributes
    ``optimizer``, ``critic_optimizer``, ``scaler``, ...), the scheduler of every ``LrScheduleHandler``,
    the state of every handler of the trainer and of each ``ValidationHandler``'s validator that has
    ``state_dict`` / ``load_state_dict`` (:class:`AtomicCheckpointSaver`'s best metric,
    :class:`StochasticWeightAveraging`, :class:`ProgressiveResizing`, :class:`StochasticTCEHandler`,
    MONAI's ``EarlyStopHandler``), the engines' best metrics, and :class:`RNGState` of the training
    data's transforms. A ``run.json`` next to it records the run's name, MLflow run id and status.

    **Resume.** With ``resume_from`` (a ``last.pt``), the state is loaded when the trainer starts,
    before any other handler, and training continues with the next epoch (or the next iteration after
    a stop in the middle of an epoch). ``max_epochs`` may be raised to train longer; it must exceed the
    epochs already done. MONAI's ``MLFlowHandler`` continues the MLflow run of the same name that is
    not finished (the interrupted one): its metrics go on from the next epoch's step.

    **Signals.** While training, SIGTERM and SIGINT (Ctrl-C) ask the run to stop at the end of the
    current iteration: the state is saved, the MLflow run and ``run.json`` are marked ``KILLED``, and
    ``SystemExit(128 + signal)`` (``KeyboardInterrupt`` for Ctrl-C) ends the run. A second Ctrl-C stops
    at once. Any other exception marks the run ``FAILED`` and is raised again.

    **Publish.** When training completes, each of ``publish_files`` found in ``save_dir`` (the best
    model, ``model.pt``) is copied atomically to ``publish_dir`` (the stable path that inference and
    evaluation read, e.g. ``models/model.pt``) with a ``<name>.json`` record of the run it came from
    (:func:`~monai_gamble.utils.training_run_of` reads it). Earlier runs' folders are never touched.

    Only rank 0 writes; every rank loads.

    Args:
        save_dir: the run's folder (``models/<run_name>``).
        save_dict: the networks (and any other objects with ``state_dict``) to save by name.
        resume_from: a ``last.pt`` to resume from, or None for a new run.
        publish_dir: where the finished run's ``publish_files`` are copied; None: not published.
        publish_files: the files of ``save_dir`` to publish.
        handle_signals: install the SIGTERM / SIGINT handlers (main thread only).
        map_location: ``torch.load``'s ``map_location`` for ``resume_from``.

    Raises:
        ValueError: (at load) a checkpoint whose objects do not match this run's (names listed), or whose
            epoch is not below ``max_epochs``.
        FileNotFoundError: ``resume_from`` does not exist.
    """

    def __init__(
        self,
        save_dir: str | os.PathLike,
        save_dict: Mapping[str, Any],
        resume_from: str | os.PathLike | None = None,
        publish_dir: str | os.PathLike | None = None,
        publish_files: Sequence[str] = ("model.pt",),
        handle_signals: bool = True,
        map_location: Any = None,
    ) -> None:
        self.save_dir = Path(save_dir)
        self.save_dict = {k: v for k, v in dict(save_dict).items() if v is not None}
        if not self.save_dict:
            raise ValueError("TrainingCheckpoint needs save_dict, e.g. {'model': network}.")
        self.resume_from = None if resume_from is None else Path(resume_from)
        if self.resume_from is not None and not self.resume_from.is_file():
            raise FileNotFoundError(f"resume_from: {self.resume_from} does not exist.")
        self.publish_dir = None if publish_dir is None else Path(publish_dir)
        self.publish_files = list(publish_files)
        self.handle_signals = bool(handle_signals)
        self.map_location = map_location
        self.objects: dict[str, Any] = {}
        self.engine: Any = None
        self._stop_signal: int | None = None
        self._previous_handlers: dict[int, Any] = {}
        self.resumed_epoch: int | None = None
        self._run_id: str | None = None

    # ------------------------------------------------------------------ what is saved
    def _collect(self, engine: Any) -> dict[str, Any]:
        objects: dict[str, Any] = dict(self.save_dict)
        objects["trainer"] = engine
        objects["trainer_best"] = _EngineBest(engine)
        for name, value in sorted(vars(engine).items()):
            if isinstance(value, (torch.optim.Optimizer, torch.amp.GradScaler)) and name not in objects:
                objects[name] = value

        def add_handlers(eng: Any, prefix: str) -> None:
            counts: dict[str, int] = {}
            for obj in _handler_objects(eng):
                if obj is self:
                    continue
                kind = type(obj).__name__
                index = counts[kind] = counts.get(kind, -1) + 1
                key = f"{prefix}{kind}_{index}"
                if kind == "LrScheduleHandler":
                    objects[key] = obj.lr_scheduler
                elif kind == "ValidationHandler":
                    validator = obj.validator
                    if validator is not None:
                        objects[f"{key}_best"] = _EngineBest(validator)
                        add_handlers(validator, f"{key}.")
                elif kind == "EarlyStopHandler":
                    objects[key] = _StateOf(obj, "_handler")
                elif kind == "CheckpointSaver":
                    logger.warning(
                        "%s: MONAI's CheckpointSaver keeps no best-metric state; use "
                        "monai_gamble.handlers.AtomicCheckpointSaver so that a resumed run keeps its best model.",
                        key,
                    )
                elif _is_stateful(obj) and not isinstance(obj, torch.nn.Module):
                    objects[key] = obj

        add_handlers(engine, "")
        # the random transforms of the training data, and of a semi-supervised trainer's unlabelled data
        loaders = (getattr(engine, "data_loader", None), getattr(engine, "unlabeled_data_loader", None))
        transforms = [getattr(getattr(loader, "dataset", None), "transform", None) for loader in loaders]
        objects["rng"] = RNGState([t for t in transforms if t is not None] or None)
        return objects

    def attach(self, engine: Any) -> None:
        """Register on ``engine`` (the trainer): load first at start, save after every epoch."""
        self.engine = engine
        engine.add_event_handler(Events.STARTED, self.started)
        # run before every other STARTED / EXCEPTION_RAISED handler (MLflow's start, StatsHandler's raise)
        for event in (Events.STARTED,):
            entries = engine._event_handlers[event]
            entries.insert(0, entries.pop())
        engine.add_event_handler(Events.EXCEPTION_RAISED, self.exception_raised)
        entries = engine._event_handlers[Events.EXCEPTION_RAISED]
        entries.insert(0, entries.pop())
        engine.add_event_handler(Events.EPOCH_STARTED, self.epoch_started)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.iteration_completed)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.epoch_completed)
        engine.add_event_handler(Events.COMPLETED, self.completed)

    # ------------------------------------------------------------------ events
    def started(self, engine: Any) -> None:
        """Collect the objects to save (every handler is attached by now), load ``resume_from``,
        install the signal handlers."""
        self.objects = self._collect(engine)
        if self.resume_from is not None:
            self.load(engine, self.resume_from)
        self._install_signals()

    def load(self, engine: Any, path: str | os.PathLike) -> None:
        """Load a ``last.pt`` into this run's objects (see the class docstring)."""
        path = Path(path)
        if path.stat().st_size == 0:
            raise ValueError(f"{path} is empty (0 bytes): not a checkpoint.")
        try:
            check_checkpoint_file(path)
            checkpoint = torch.load(path, map_location=self.map_location, weights_only=True)
        except Exception as e:
            raise ValueError(f"{path} could not be read as a checkpoint ({type(e).__name__}: {e}).") from e
        state = checkpoint.get("state", {}) if isinstance(checkpoint, Mapping) else {}
        missing = sorted(set(self.objects) - set(state))
        unexpected = sorted(set(state) - set(self.objects))
        if unexpected and idist.get_rank() > 0:
            # rank 0 wrote the file, with the state of handlers that only rank 0 runs (the best-model
            # savers of a torchrun job): the other ranks have nothing to load them into
            logger.debug("rank %d: not loading %s (rank 0's handlers)", idist.get_rank(), unexpected)
            unexpected = []
        if missing or unexpected:
            raise ValueError(
                f"{path} was written by another configuration: this run has {missing} that the checkpoint "
                f"lacks, the checkpoint has {unexpected} that this run lacks."
            )
        max_epochs = engine.state.max_epochs
        meta = checkpoint.get("meta", {}) if isinstance(checkpoint, Mapping) else {}
        self._reopen_mlflow_run(engine, meta.get("mlflow_run_id"))
        for name, obj in self.objects.items():
            try:
                obj.load_state_dict(state[name])
            except Exception as e:
                raise ValueError(f"{path}: could not load '{name}' ({type(e).__name__}: {e}).") from e
        done = int(engine.state.epoch)
        if max_epochs is not None:
            if done >= int(max_epochs) and engine.state.iteration >= int(max_epochs) * engine.state.epoch_length:
                raise ValueError(
                    f"{path}: the run already trained {done} epochs, max_epochs is {max_epochs}; "
                    f"pass --max_epochs larger than {done} to train longer."
                )
            engine.state.max_epochs = int(max_epochs)
        self.resumed_epoch = done
        logger.info("resumed from %s: epoch %d, iteration %d", path, done, engine.state.iteration)

    def epoch_started(self, engine: Any) -> None:
        """Note the MLflow run id (MLflow's handler starts its run after this handler's start)."""
        self._current_run_id(engine)

    def _reopen_mlflow_run(self, engine: Any, run_id: str | None) -> None:
        """Make MONAI's ``MLFlowHandler`` continue the interrupted MLflow run ``run_id``: it continues the
        unfinished run of the same name, so the run (``RUNNING`` after ``kill -9``, ``KILLED`` or
        ``FAILED`` after this handler) is set back to ``RUNNING``. A ``FINISHED`` run (a finished run
        trained longer) is left closed: MLflow's handler starts a new run of the same name.

        Raises:
            ValueError: when the run was logged with other parameter values than this run's (MLflow
                refuses to change a logged parameter): the message lists them.
        """
        if not run_id or idist.get_rank() > 0:
            return
        for handler in _mlflow_handlers(engine):
            try:
                run = handler.client.get_run(run_id)
            except Exception:  # another tracking store: MLflow's handler starts a new run
                continue
            if run.info.status == "FINISHED":
                return
            logged = run.data.params
            wanted = {k: str(v) for k, v in (getattr(handler, "experiment_param", None) or {}).items()}
            changed = {k: (logged[k], v) for k, v in wanted.items() if k in logged and logged[k] != v}
            if changed:
                raise ValueError(
                    f"--resume true continues MLflow run {run_id}, which was logged with other values: "
                    + ", ".join(f"{k}={old!r} (now {new!r})" for k, (old, new) in sorted(changed.items()))
                    + ". Resume with the same settings (MLflow cannot change a logged parameter)."
                )
            handler.client.update_run(run_id, status="RUNNING")
            self._run_id = run_id
            return

    def iteration_completed(self, engine: Any) -> None:
        """Stop cleanly if a signal asked for it (after the iteration, so that the state is whole)."""
        if self._stop_signal is None:
            return
        signum = self._stop_signal
        self.save(engine, status="KILLED")
        self._set_mlflow_status(engine, "KILLED")
        self._restore_signals()
        logger.warning(
            "stopped by signal %d at epoch %d, iteration %d; state saved in %s",
            signum,
            engine.state.epoch,
            engine.state.iteration,
            self.save_dir / LAST_CHECKPOINT,
        )
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + signum)

    def epoch_completed(self, engine: Any) -> None:
        """Save ``last.pt`` (after every other end-of-epoch handler: validation, best model, logs)."""
        self.save(engine, status="RUNNING")

    def completed(self, engine: Any) -> None:
        """Mark the run finished and publish its best model."""
        self._restore_signals()
        self._write_record(engine, "FINISHED")
        if self.publish_dir is None or idist.get_rank() > 0:
            return
        record = self._record(engine, "FINISHED")
        for name in self.publish_files:
            source = self.save_dir / name
            files = sorted(p for p in source.rglob("*.pt")) if source.is_dir() else [source]
            for file in files:
                if not file.is_file():
                    continue
                target = atomic_copy(file, self.publish_dir / file.relative_to(self.save_dir))
                tmp = target.with_suffix(".json.tmp")
                tmp.write_text(json.dumps(dict(record, source=str(file.resolve())), indent=1))
                os.replace(tmp, target.with_suffix(".json"))
                logger.info("published %s -> %s", file, target)

    def exception_raised(self, engine: Any, e: BaseException) -> None:
        """Mark the run FAILED (KILLED for a signal or Ctrl-C) and raise ``e`` again."""
        self._restore_signals()
        status = "KILLED" if isinstance(e, (KeyboardInterrupt, SystemExit)) else "FAILED"
        self._write_record(engine, status)
        self._set_mlflow_status(engine, status)
        raise e

    # ------------------------------------------------------------------ helpers
    def save(self, engine: Any, status: str = "RUNNING") -> None:
        """Write ``last.pt`` and ``run.json`` (rank 0 only)."""
        if idist.get_rank() > 0:
            return
        if not self.objects:
            self.objects = self._collect(engine)
        state = {name: obj.state_dict() for name, obj in self.objects.items()}
        meta = self._record(engine, status)
        atomic_save({"state": state, "meta": meta}, self.save_dir / LAST_CHECKPOINT)
        self._write_record(engine, status)

    def _current_run_id(self, engine: Any) -> str | None:
        for handler in _mlflow_handlers(engine):
            run = getattr(handler, "cur_run", None)
            if run is not None:
                self._run_id = run.info.run_id
        return self._run_id

    def _record(self, engine: Any, status: str) -> dict[str, Any]:
        from .. import __version__

        return {
            "run_name": self.save_dir.name,
            "mlflow_run_id": self._current_run_id(engine),
            "status": status,
            "epoch": int(engine.state.epoch),
            "iteration": int(engine.state.iteration),
            "max_epochs": None if engine.state.max_epochs is None else int(engine.state.max_epochs),
            "resumed_from_epoch": self.resumed_epoch,
            "time": time.strftime("%Y-%m-%d %H:%M:%S"),
            "monai_gamble_version": __version__,
        }

    def _write_record(self, engine: Any, status: str) -> None:
        if idist.get_rank() > 0:
            return
        self.save_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.save_dir / f".{RUN_RECORD}.tmp"
        tmp.write_text(json.dumps(self._record(engine, status), indent=1))
        os.replace(tmp, self.save_dir / RUN_RECORD)

    def _set_mlflow_status(self, engine: Any, status: str) -> None:
        if idist.get_rank() > 0:
            return
        for handler in _mlflow_handlers(engine):
            run = getattr(handler, "cur_run", None)
            if run is None:
                continue
            try:
                handler.client.set_terminated(run.info.run_id, status)
                handler.cur_run = None
            except Exception as err:  # the run's state on disk is what matters; say why MLflow was not updated
                logger.warning("could not mark MLflow run %s %s: %s", run.info.run_id, status, err)

    def _install_signals(self) -> None:
        if not self.handle_signals or threading.current_thread() is not threading.main_thread():
            return

        def request_stop(signum: int, frame: Any) -> None:
            if self._stop_signal is not None and signum == signal.SIGINT:
                self._restore_signals()
                raise KeyboardInterrupt
            self._stop_signal = signum
            logger.warning("signal %d: stopping at the end of this iteration (Ctrl-C again to stop now)", signum)

        for signum in (signal.SIGTERM, signal.SIGINT):
            self._previous_handlers[signum] = signal.signal(signum, request_stop)

    def _restore_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum, previous in self._previous_handlers.items():
            signal.signal(signum, previous)
        self._previous_handlers = {}
