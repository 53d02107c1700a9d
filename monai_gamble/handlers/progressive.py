"""Progressive resizing: a schedule of training resolutions (and batch sizes, accumulation, losses)
applied between epochs of one Ignite trainer."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from monai.data import CacheDataset
from monai.transforms import Compose, RandomizableTrait, Transform
from monai.utils import min_version, optional_import

Events, _ = optional_import("ignite.engine", "0.4.11", min_version, "Events")
Checkpoint, _ = optional_import("ignite.handlers", "0.4.11", min_version, "Checkpoint")
DiskSaver, _ = optional_import("ignite.handlers", "0.4.11", min_version, "DiskSaver")
idist, _ = optional_import("ignite", "0.4.11", min_version, "distributed")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", "0.4.11", min_version, "Engine")

__all__ = ["ProgressiveResizing", "ResizeStage", "describe_stages", "total_epochs"]

logger = logging.getLogger(__name__)

#: the settings a stage may change
STAGE_KEYS = ("epochs", "spatial_size", "batch_size", "accumulation_steps", "loss_function")


class ResizeStage(dict):
    """One stage of :class:`ProgressiveResizing` (a dict with checked keys).

    Keys: ``epochs`` (int >= 1, required), ``spatial_size`` (an int for every spatial axis, or one
    int per axis; required),
    ``batch_size`` (int >= 1), ``accumulation_steps`` (int >= 1), ``loss_function`` (a callable, or
    for a :class:`~monai_gamble.engines.SegmenterCriticTrainer` an objective, which is its loss).

    Raises:
        ValueError: for unknown or missing keys and bad values, naming the stage.
    """

    def __init__(self, index: int, stage: Mapping[str, Any]) -> None:
        unknown = sorted(set(stage) - set(STAGE_KEYS))
        if unknown:
            raise ValueError(f"stage {index}: unknown key(s) {unknown}; a stage may set {list(STAGE_KEYS)}.")
        for key in ("epochs", "spatial_size"):
            if key not in stage:
                raise ValueError(f"stage {index} has no {key!r}: each stage needs 'epochs' and 'spatial_size'.")
        super().__init__(stage)
        for key in ("epochs", "batch_size", "accumulation_steps"):
            if key in self and (int(self[key]) != self[key] or int(self[key]) < 1):
                raise ValueError(f"stage {index}: {key} must be a positive integer, got {self[key]!r}.")
        size = self["spatial_size"]
        sizes = [size] if isinstance(size, int) else list(size)
        if not sizes or any(int(s) != s or int(s) < 1 for s in sizes):
            raise ValueError(f"stage {index}: spatial_size must be positive integers, got {self['spatial_size']!r}.")
        # an int is every spatial axis' size, as MONAI's Resize takes it
        self["spatial_size"] = int(size) if isinstance(size, int) else tuple(int(s) for s in sizes)
        loss = self.get("loss_function")
        if loss is not None and not (callable(loss) or _is_objective(loss)):
            raise ValueError(
                f"stage {index}: loss_function must be callable (or a CriticObjective for a SegmenterCriticTrainer), "
                f"got {type(loss).__name__}."
            )

    @property
    def size_name(self) -> str:
        """The spatial size as ``"HxW"`` (or one number for an int)."""
        size = self["spatial_size"]
        return str(size) if isinstance(size, int) else "x".join(map(str, size))


def total_epochs(stages: Sequence[Mapping[str, Any]]) -> int:
    """The length of a schedule of :class:`ProgressiveResizing` (the sum of its stages' ``epochs``): a
    trainer's ``max_epochs`` that runs every stage once.

    Raises:
        ValueError: for a bad stage (see :class:`ResizeStage`).
    """
    return sum(int(ResizeStage(i, s)["epochs"]) for i, s in enumerate(stages))


def describe_stages(stages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A schedule as plain values, for logging it as a parameter: each stage's settings, a
    ``loss_function`` by its class name."""
    return [{k: type(v).__name__ if callable(v) else v for k, v in s.items()} for s in stages]


def _is_objective(obj: Any) -> bool:
    """Whether ``obj`` is an objective of :class:`~monai_gamble.engines.SegmenterCriticTrainer` (duck-typed:
    the handlers do not import the engines)."""
    return callable(getattr(obj, "segmenter_loss", None)) and callable(getattr(obj, "critic_loss", None))


def _resizer(transform: Any) -> Any:
    """The object whose ``spatial_size`` sets the output size: ``Resized.resizer`` or the transform itself."""
    inner = getattr(transform, "resizer", transform)
    if not hasattr(inner, "spatial_size"):
        raise ValueError(
            f"{type(transform).__name__} has no spatial_size to set; give ProgressiveResizing MONAI's Resize or "
            "Resized (or any transform with a spatial_size attribute)."
        )
    return inner


def _cached_transforms(dataset: Any) -> list[Any]:
    """The transforms that a ``CacheDataset`` applies before caching (up to the first random one)."""
    transform = getattr(dataset, "transform", None)
    transforms = transform.transforms if isinstance(transform, Compose) else [transform]
    out = []
    for t in transforms:
        if isinstance(t, RandomizableTrait) or not isinstance(t, Transform):
            break
        out.append(t)
    return out


class ProgressiveResizing:
    """Train at increasing resolutions in one run: a schedule of stages applied between epochs.

    The report on SIIM-ACR pneumothorax (Balezo 2019, sec. 4.1.2-4.1.3) trained at 256x256, then
    512x512, then 768x768, each stage starting from the previous one's weights, with batches of 4
    (512) and 2 (768) and gradient accumulation over 8 and 12 batches: learning at a low resolution
    is fast and transfers to higher ones. Here the trainer is not rebuilt: at the start of the first
    epoch of each stage the handler

    - sets the ``spatial_size`` of the given resize transforms (MONAI ``Resize``/``Resized``), for
      training and, if given, validation;
    - re-fills every ``CacheDataset`` in ``datasets`` whose cached part holds one of those
      transforms (``set_data``), so that cached images have the new size;
    - rebuilds the trainer's data loader with the stage's ``batch_size`` (same dataset, sampler,
      workers and collation; ``engine.set_data``), sets ``engine.state.epoch_length`` to its length
      and re-bases ``engine.state.iteration`` to ``(epoch - 1) * epoch_length``, because Ignite's
      progress bar and MONAI's gradient accumulation find an iteration's place in its epoch as
      ``(iteration - 1) % epoch_length`` (the count of iterations is then in units of the current
      stage's batches);
    - sets the trainer's ``accumulation_steps`` (MONAI's ``SupervisedTrainer``) and, if given, its
      ``loss_function`` (e.g. BCE + Dice, then focal to finish, as the report did; for a
      :class:`~monai_gamble.engines.SegmenterCriticTrainer` an objective, which that trainer refuses
      to replace by a plain loss);
    - with ``save_dir``, saves ``save_dict`` at the end of each stage (``stage<k>_<HxW>.pt``) with
      Ignite's ``Checkpoint`` (atomic writes; ``DistributedDataParallel`` modules saved unwrapped; a
      ``save_dict`` of one object is saved as its state dict, as MONAI's ``CheckpointSaver`` does, and
      MONAI's ``CheckpointLoader`` reads both forms).

    The network, optimiser and learning-rate schedule carry over: the checkpoint of one stage is the
    start of the next. Stages are ``epochs`` long in order; epochs after the last stage stay in it,
    and a run shorter than the schedule stops in the middle. ``persistent_workers`` loaders are
    rebuilt at each stage, so their workers see the new transforms.

    Args:
        stages: the schedule, e.g. ``[{"epochs": 20, "spatial_size": [256, 256], "batch_size": 16,
            "accumulation_steps": 2}, {"epochs": 15, "spatial_size": [512, 512], "batch_size": 4,
            "accumulation_steps": 8}, ...]`` (see :class:`ResizeStage`).
        transforms: the resize transforms whose ``spatial_size`` follows the schedule.
        datasets: datasets to re-cache when their cached transforms include one of ``transforms``.
        save_dir: folder of the per-stage checkpoints (None: none are saved). Only rank 0 saves.
        save_dict: objects with a ``state_dict`` to save, e.g. ``{"model": network}``.

    Raises:
        ValueError: for an empty schedule, a bad stage, a transform without ``spatial_size``, or
            ``save_dir`` without ``save_dict``.

    Example:
        >>> resize = Resized(["image", "label"], spatial_size=(256, 256))
        >>> ProgressiveResizing([{"epochs": 2, "spatial_size": 256}, {"epochs": 2, "spatial_size": 512}],
        ...                     transforms=[resize], datasets=[train_ds]).attach(trainer)
    """

    def __init__(
        self,
        stages: Sequence[Mapping[str, Any]],
        transforms: Sequence[Any] = (),
        datasets: Sequence[Any] = (),
        save_dir: str | os.PathLike | None = None,
        save_dict: Mapping[str, Any] | None = None,
    ) -> None:
        if not stages:
            raise ValueError("stages must hold at least one stage.")
        self.stages = [ResizeStage(i, s) for i, s in enumerate(stages)]
        self.transforms = list(transforms)
        self._resizers = [_resizer(t) for t in self.transforms]
        self.datasets = list(datasets)
        if save_dir is not None and not save_dict:
            raise ValueError("save_dir needs save_dict, the objects to save (e.g. {'model': network}).")
        self.save_dir = None if save_dir is None else Path(save_dir)
        self.save_dict = dict(save_dict or {})
        ends = torch.cumsum(torch.tensor([s["epochs"] for s in self.stages]), 0).tolist()
        self.stage_ends = [int(e) for e in ends]
        self.current: int | None = None
        #: ``(epoch, stage, spatial_size, batch_size)`` of each stage change, for logs and tests
        self.history: list[tuple[int, int, int | tuple[int, ...], int | None]] = []

    def stage_of(self, epoch: int) -> int:
        """The index of the stage of (1-based) ``epoch``."""
        for i, end in enumerate(self.stage_ends):
            if epoch <= end:
                return i
        return len(self.stages) - 1

    def state_dict(self) -> dict[str, Any]:
        """The stage changes so far (``history``). The stage itself follows from the epoch: a resumed run
        applies the stage of its next epoch when that epoch starts."""
        return {
            "history": [
                list(h[:2]) + [list(h[2]) if isinstance(h[2], (list, tuple)) else h[2], h[3]] for h in self.history
            ]
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.history = [(int(e), int(i), tuple(s) if isinstance(s, list) else s, b) for e, i, s, b in state["history"]]
        self.current = None

    def attach(self, engine: Engine) -> None:
        """Apply the stage of each epoch when it starts, and save each stage's checkpoint when it ends."""
        engine.add_event_handler(Events.EPOCH_STARTED, self.epoch_started)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.epoch_completed)

    def _needs_recache(self, dataset: Any) -> bool:
        if not isinstance(dataset, CacheDataset):
            return False
        cached = _cached_transforms(dataset)
        return any(t is c for t in self.transforms for c in cached)

    def _rebuild_loader(self, engine: Engine, batch_size: int | None, keep_random_state: bool = False) -> None:
        """Give ``engine`` a data loader like its own with ``batch_size``. With ``keep_random_state``,
        the random states that building it changes (MONAI's ``DataLoader`` re-seeds the dataset's random
        transforms and resets torch's generator) are put back before the engine takes it, so that its
        iterator draws its seed from the states a resumed run restored."""
        loader = engine.state.dataloader
        states = saved = None
        if keep_random_state:
            from .checkpoint import RNGState

            states = RNGState(getattr(loader.dataset, "transform", None))
            saved = states.state_dict()
        if not isinstance(loader, torch.utils.data.DataLoader):
            raise ValueError(
                f"ProgressiveResizing needs a torch DataLoader to resize batches, got {type(loader).__name__}."
            )
        size = loader.batch_size if batch_size is None else int(batch_size)
        new = type(loader)(
            loader.dataset,
            batch_size=size,
            sampler=loader.sampler,
            num_workers=loader.num_workers,
            collate_fn=loader.collate_fn,
            pin_memory=loader.pin_memory,
            drop_last=loader.drop_last,
            timeout=loader.timeout,
            worker_init_fn=loader.worker_init_fn,
            multiprocessing_context=loader.multiprocessing_context,
            generator=loader.generator,
            prefetch_factor=loader.prefetch_factor,
            persistent_workers=loader.persistent_workers,
        )
        if states is not None:
            states.load_state_dict(saved)
        engine.set_data(new)
        engine.state.epoch_length = len(new)
        # Ignite's progress bar and MONAI's gradient accumulation take the index of an iteration in its
        # epoch as (iteration - 1) % epoch_length: re-base the count as if every epoch had this length
        engine.state.iteration = (engine.state.epoch - 1) * len(new)
        if getattr(engine, "data_loader", None) is loader:
            engine.data_loader = new

    def epoch_started(self, engine: Engine) -> None:
        """Switch to the stage of ``engine.state.epoch`` if it differs from the current one.

        A resumed run (``load_state_dict``, then its first epoch) does what the run that was not
        interrupted did at that epoch, so that both draw the same random numbers: at a stage change it
        rebuilds the data loader, as that run did (MONAI's ``DataLoader`` re-seeds the dataset's random
        transforms and resets torch's generator when it is built); within a stage, it only applies the
        stage's settings, and a loader rebuilt for the stage's ``batch_size`` keeps the random states
        that the checkpoint restored.
        """
        epoch = engine.state.epoch
        index = self.stage_of(epoch)
        if index == self.current:
            return
        resumed = self.current is None and epoch > 1
        changed = self.current is not None or (resumed and self.stage_of(epoch - 1) != index)
        stage = self.stages[index]
        size = stage["spatial_size"]
        for resizer in self._resizers:
            ndim = len(resizer.spatial_size) if isinstance(resizer.spatial_size, Sequence) else 1
            resizer.spatial_size = (size,) * ndim if isinstance(size, int) else size
        for dataset in self.datasets:
            if self._needs_recache(dataset):
                dataset.set_data(dataset.data)
        if changed or (not resumed and "batch_size" in stage):
            self._rebuild_loader(engine, stage.get("batch_size"))
        elif "batch_size" in stage:  # resumed within the stage: the loader as it was, random states kept
            self._rebuild_loader(engine, stage.get("batch_size"), keep_random_state=True)
        if "accumulation_steps" in stage:
            engine.accumulation_steps = int(stage["accumulation_steps"])
        if "loss_function" in stage:
            engine.loss_function = stage["loss_function"]
        self.current = index
        batch = getattr(engine.state.dataloader, "batch_size", None)
        if not resumed or changed:  # the history holds the stage changes, as the uninterrupted run's does
            self.history.append((engine.state.epoch, index, stage["spatial_size"], batch))
        if idist.get_rank() == 0:
            logger.info(
                "progressive resizing: epoch %d, stage %d, size %s, batch %s, accumulation %s",
                engine.state.epoch,
                index,
                stage.size_name,
                batch,
                getattr(engine, "accumulation_steps", 1),
            )

    def epoch_completed(self, engine: Engine) -> None:
        """Save the checkpoint of a stage that ends with this epoch (with ``save_dir``, on rank 0)."""
        if self.save_dir is None or idist.get_rank() > 0:
            return
        index = self.stage_of(engine.state.epoch)
        if engine.state.epoch != self.stage_ends[index] and not engine.state.epoch == engine.state.max_epochs:
            return
        name = f"stage{index}_{self.stages[index].size_name}.pt"
        saver = DiskSaver(str(self.save_dir), require_empty=False, create_dir=True)
        Checkpoint(self.save_dict, saver, filename_pattern=name, n_saved=None)(engine)
