"""Class-conditional minibatch sampling: lines 1, 3 and 4 of Algorithm 1 (stochastic TCE).

Szabó, Jamali-Rad & Mannava, "Tilted Cross-Entropy (TCE): Promoting Fairness in Semantic
Segmentation" (CVPR Workshops 2021), Algorithm 1: the training set is divided once into the
(overlapping) sets :math:`\\mathcal{D}_c` of the images that contain class c; every iteration draws a
class :math:`c \\sim \\mathrm{Categorical}(w)` and then a minibatch from :math:`\\mathcal{D}_c`. The
weights :math:`w_c` are updated after each iteration from the tilted class losses by
:class:`monai_gamble.handlers.StochasticTCEHandler`, which calls :meth:`ClassConditionalBatchSampler.set_weights`.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Sampler

__all__ = ["ClassConditionalBatchSampler", "class_presence"]


def _as_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def class_presence(
    labels: Iterable[Any], num_classes: int, ignore_index: int | None = None, key: str | None = None
) -> np.ndarray:
    """Which classes each label map contains: the sets :math:`\\mathcal{D}_c` of Algorithm 1 as a matrix.

    Args:
        labels: one label map per image, channel first as MONAI's dictionary transforms give them:
            index labels ``(1, *spatial)`` with values in ``0..num_classes-1`` (or ``ignore_index``),
            or one-hot / probability maps ``(num_classes, *spatial)`` (a class is present where its
            channel is > 0). Arrays or tensors, 2D or 3D. With ``key``, items holding them instead
            (e.g. a MONAI dataset of ``{"image", "label"}`` dicts).
        num_classes: the number of classes C (including the background).
        ignore_index: label value of pixels that count for no class.
        key: the key of the label map in each item of ``labels`` (None: ``labels`` are the maps).

    Returns:
        ``(N, C)`` boolean array: ``presence[i, c]`` is True when image i has a pixel of class c.

    Raises:
        ValueError: for an index label outside ``[0, C - 1]``, non-integer index labels, or a map
            whose first dimension is neither 1 nor C.

    Example:
        >>> class_presence([np.array([[[0, 2]]]), np.array([[[1, 1]]])], num_classes=3)
        array([[ True, False,  True],
               [False,  True, False]])
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}.")
    rows = []
    for i, label in enumerate(labels):
        if key is not None:
            label = label[key]
        a = _as_numpy(label)
        if a.ndim < 2:
            raise ValueError(f"label {i} has shape {a.shape}: expected channel-first (1, *spatial) or (C, *spatial).")
        if a.shape[0] == num_classes and num_classes > 1:
            rows.append(a.reshape(num_classes, -1).max(axis=1) > 0)
            continue
        if a.shape[0] != 1:
            raise ValueError(
                f"label {i} has {a.shape[0]} channels: expected index labels (1, *spatial) or {num_classes} "
                "one-hot channels (apply EnsureChannelFirstd first)."
            )
        flat = a.reshape(-1)
        if ignore_index is not None:
            flat = flat[flat != ignore_index]
        if flat.size and np.issubdtype(flat.dtype, np.floating) and not np.all(flat == np.round(flat)):
            raise ValueError(f"label {i} holds non-integer values: index labels must be whole numbers.")
        flat = flat.astype(np.int64)
        if flat.size and (flat.min() < 0 or flat.max() >= num_classes):
            raise ValueError(
                f"label {i} holds values in [{flat.min()}, {flat.max()}]: class indices must lie in "
                f"[0, {num_classes - 1}]{' or equal ignore_index' if ignore_index is not None else ''}."
            )
        rows.append(np.bincount(flat, minlength=num_classes)[:num_classes] > 0)
    if not rows:
        raise ValueError("no labels given.")
    return np.stack(rows)


def _dist_defaults(num_replicas: int | None, rank: int | None) -> tuple[int, int]:
    initialized = torch.distributed.is_available() and torch.distributed.is_initialized()
    if num_replicas is None:
        num_replicas = torch.distributed.get_world_size() if initialized else 1
    if rank is None:
        rank = torch.distributed.get_rank() if initialized else 0
    if num_replicas < 1 or not 0 <= rank < num_replicas:
        raise ValueError(f"need num_replicas >= 1 and 0 <= rank < num_replicas, got {num_replicas} and {rank}.")
    return int(num_replicas), int(rank)


class ClassConditionalBatchSampler(Sampler[list[int]]):
    """Batch sampler of stochastic TCE (Algorithm 1 of Szabó et al., CVPR-W 2021, lines 1, 3, 4).

    Each batch: draw a class :math:`c` with probability :math:`w_c / \\sum_l w_l` (over the classes
    that some image contains), then ``batch_size`` images from :math:`\\mathcal{D}_c`, the images that
    contain class c (the sets overlap; built once, from ``class_presence``). Images are drawn without
    replacement within a batch, with replacement when the (shard of the) set is smaller than the batch.

    Use it as the ``batch_sampler`` of a ``torch.utils.data.DataLoader`` (then leave ``batch_size``,
    ``shuffle``, ``sampler`` and ``drop_last`` at their defaults), e.g. in a MONAI ``SupervisedTrainer``;
    attach :class:`monai_gamble.handlers.StochasticTCEHandler` to the trainer to update the weights.
    Weights start uniform.

    **Which class was drawn.** :attr:`last_class` is the class of the batch drawn most recently.
    A ``DataLoader`` with workers draws batches ahead of the training loop, so the handler uses
    :meth:`consume_class`, which returns the classes in the order they were drawn: the k-th call
    gives the class of the k-th batch the loop receives (``DataLoader`` keeps the order). Batches
    drawn ahead are drawn with the weights known at that time (``prefetch_factor * num_workers``
    iterations old at most). A new epoch (a new iterator) forgets the classes of batches that
    were drawn but never delivered.

    **Sharding** (DDP), as ``torch.utils.data.DistributedSampler``: every rank draws the *same*
    class sequence (the class generator depends only on ``seed``, and the handler keeps the weights
    equal on all ranks by averaging the batch loss across ranks), and each rank draws its minibatch
    from its own shard of :math:`\\mathcal{D}_c`: the sorted set, padded by repeating its first
    elements to a multiple of ``num_replicas``, then every ``num_replicas``-th element from ``rank``.
    The shards of a set are disjoint when its size is a multiple of ``num_replicas`` (they share
    only the padding otherwise), and the global batch of ``num_replicas * batch_size`` images is a
    minibatch of class c. MONAI's ``Workflow`` calls ``set_epoch`` only on a ``DistributedSampler``;
    this sampler needs none.

    Args:
        class_presence: ``(N, C)`` boolean matrix, True where image i contains class c (see
            :func:`class_presence` and :meth:`from_labels`). A class that no image contains is never
            drawn; a column of False values excludes a class (e.g. the background) from the draws.
        batch_size: images per batch (per rank).
        num_batches: batches per epoch (per rank); default ``ceil(N / (batch_size * num_replicas))``,
            one pass over the data.
        weights: initial class weights ``(C,)``, non-negative; default uniform.
        num_replicas: number of processes; default the world size of ``torch.distributed`` (1 if not
            initialised).
        rank: rank of this process; default the ``torch.distributed`` rank (0 if not initialised).
        seed: seed of the class draws (the same on every rank) and of the minibatch draws (combined
            with ``rank``). The same seed, weights and updates give the same batches.

    Raises:
        ValueError: for a presence matrix that is not 2-D or has no class present in any image,
            a non-positive ``batch_size`` or ``num_batches``, bad weights, or a bad ``rank``.

    Example:
        >>> presence = class_presence([d["label"] for d in datalist], num_classes=4)
        >>> sampler = ClassConditionalBatchSampler(presence, batch_size=8, seed=0)
        >>> loader = DataLoader(dataset, batch_sampler=sampler, num_workers=2)
    """

    def __init__(
        self,
        class_presence: np.ndarray | torch.Tensor | Sequence[Sequence[bool]],
        batch_size: int,
        num_batches: int | None = None,
        weights: Sequence[float] | np.ndarray | torch.Tensor | None = None,
        num_replicas: int | None = None,
        rank: int | None = None,
        seed: int = 0,
    ) -> None:
        presence = _as_numpy(class_presence).astype(bool)
        if presence.ndim != 2 or presence.shape[0] == 0:
            raise ValueError(f"class_presence must be an (N images, C classes) matrix, got shape {presence.shape}.")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
        self.num_replicas, self.rank = _dist_defaults(num_replicas, rank)
        self.num_images, self.num_classes = presence.shape
        self.batch_size = int(batch_size)
        if num_batches is None:
            num_batches = math.ceil(self.num_images / (self.batch_size * self.num_replicas))
        if num_batches < 1:
            raise ValueError(f"num_batches must be at least 1, got {num_batches}.")
        self.num_batches = int(num_batches)
        #: line 1 of Algorithm 1: the sorted image indices of each class, D_c
        self.class_indices: list[np.ndarray] = [np.flatnonzero(presence[:, c]) for c in range(self.num_classes)]
        self.available = np.array([idx.size > 0 for idx in self.class_indices])
        if not self.available.any():
            raise ValueError("no image contains any class: class_presence is all False.")
        #: this rank's shard of each D_c (DistributedSampler-style padding, then rank::num_replicas)
        self.shard_indices: list[np.ndarray] = [self._shard(idx) for idx in self.class_indices]
        self.seed = int(seed)
        self._class_rng = np.random.default_rng([self.seed, 0])
        self._batch_rng = np.random.default_rng([self.seed, 1, self.rank])
        self._weights = np.ones(self.num_classes)
        self.set_weights(np.ones(self.num_classes) if weights is None else weights)
        self._pending: deque[int] = deque()
        self.last_class: int | None = None

    @classmethod
    def from_labels(
        cls, labels: Iterable[Any], num_classes: int, batch_size: int, ignore_index: int | None = None, **kwargs: Any
    ) -> ClassConditionalBatchSampler:
        """Build the sampler from the label maps of the dataset, in dataset order (see
        :func:`class_presence`); ``kwargs`` go to the constructor."""
        return cls(class_presence(labels, num_classes, ignore_index), batch_size=batch_size, **kwargs)

    @classmethod
    def from_dataset(
        cls,
        dataset: Sequence[Any],
        num_classes: int,
        batch_size: int,
        label_key: str = "label",
        ignore_index: int | None = None,
        **kwargs: Any,
    ) -> ClassConditionalBatchSampler:
        """Build the sampler from ``dataset[i][label_key]`` for every item (this loads and transforms
        each item once; with random crops the sets describe one random crop: prefer
        :meth:`from_labels` on the full label maps then)."""
        labels = (dataset[i][label_key] for i in range(len(dataset)))
        return cls.from_labels(labels, num_classes, batch_size, ignore_index=ignore_index, **kwargs)

    def _shard(self, idx: np.ndarray) -> np.ndarray:
        if idx.size == 0 or self.num_replicas == 1:
            return idx
        total = math.ceil(idx.size / self.num_replicas) * self.num_replicas
        padded = np.resize(idx, total)  # repeats the first elements, as DistributedSampler pads
        return padded[self.rank :: self.num_replicas]

    @property
    def weights(self) -> np.ndarray:
        """The class probabilities :math:`w_c` of the next draw, ``(C,)``, zero for classes no image contains."""
        return self._weights.copy()

    def set_weights(self, weights: Sequence[float] | np.ndarray | torch.Tensor) -> None:
        """Set the class weights (line 8 of Algorithm 1); they are normalised over the classes that
        some image contains.

        Raises:
            ValueError: unless there are C finite non-negative values with a positive sum over the
                available classes.
        """
        w = _as_numpy(weights).astype(np.float64).reshape(-1)
        if w.size != self.num_classes:
            raise ValueError(f"weights must have one value per class ({self.num_classes}), got {w.size}.")
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise ValueError(f"class weights must be finite and non-negative, got {w.tolist()}.")
        w = np.where(self.available, w, 0.0)
        if w.sum() <= 0:
            raise ValueError(f"class weights {w.tolist()} give no weight to any class that an image contains.")
        self._weights = w / w.sum()

    def draw_class(self) -> int:
        """Line 3 of Algorithm 1: a class drawn from ``Categorical(weights)``."""
        return int(self._class_rng.choice(self.num_classes, p=self._weights))

    def draw_batch(self, c: int) -> list[int]:
        """Line 4 of Algorithm 1: ``batch_size`` image indices from this rank's shard of :math:`\\mathcal{D}_c`."""
        shard = self.shard_indices[c]
        replace = shard.size < self.batch_size
        return [int(i) for i in self._batch_rng.choice(shard, size=self.batch_size, replace=replace)]

    def consume_class(self) -> int:
        """The class of the oldest batch drawn and not yet consumed (first in, first out).

        Raises:
            RuntimeError: when no batch is pending, e.g. the ``DataLoader`` does not use this
                sampler as its ``batch_sampler``.
        """
        if not self._pending:
            raise RuntimeError(
                "no drawn batch is pending: give this sampler to the DataLoader as batch_sampler=..., "
                "and call consume_class() once per batch."
            )
        return self._pending.popleft()

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator[list[int]]:
        self._pending.clear()  # batches drawn ahead in the previous epoch were never delivered
        for _ in range(self.num_batches):
            c = self.draw_class()
            batch = self.draw_batch(c)
            self.last_class = c
            self._pending.append(c)
            yield batch

    def state_dict(self) -> dict[str, Any]:
        """Weights and generator states, to resume a run exactly."""
        return {
            "weights": self._weights.tolist(),
            "class_rng": self._class_rng.bit_generator.state,
            "batch_rng": self._batch_rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved."""
        self.set_weights(state["weights"])
        self._class_rng.bit_generator.state = state["class_rng"]
        self._batch_rng.bit_generator.state = state["batch_rng"]
