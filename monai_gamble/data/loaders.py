"""A training ``DataLoader`` that takes either shuffled batches, a sampler (DDP) or a batch sampler
(stochastic TCE), so that one bundle config serves all three."""

from __future__ import annotations

from typing import Any

from monai.data import DataLoader
from torch.utils.data import Dataset, Sampler

__all__ = ["training_dataloader"]


def training_dataloader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool = True,
    sampler: Sampler | None = None,
    batch_sampler: Sampler | None = None,
    num_workers: int = 0,
    **kwargs: Any,
) -> DataLoader:
    """MONAI's ``DataLoader`` over ``dataset`` with the batching that was given.

    - ``batch_sampler`` (e.g. :class:`monai_gamble.data.ClassConditionalBatchSampler`, which shards
      itself over DDP ranks): it decides every batch; ``batch_size``, ``shuffle`` and ``sampler`` are
      not used (PyTorch forbids them beside a batch sampler).
    - else ``sampler`` (e.g. MONAI's ``DistributedSampler``): batches of ``batch_size`` in its order.
    - else batches of ``batch_size``, shuffled when ``shuffle``.

    Args:
        dataset: the training dataset.
        batch_size: items per batch (without a batch sampler).
        shuffle: shuffle (without a sampler or batch sampler).
        sampler: a sampler, or None.
        batch_sampler: a batch sampler, or None.
        num_workers: loader processes.
        kwargs: further ``DataLoader`` arguments (``pin_memory``, ...).
    """
    if batch_sampler is not None:
        return DataLoader(dataset, batch_sampler=batch_sampler, num_workers=num_workers, **kwargs)
    if sampler is not None:
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers, **kwargs)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers, **kwargs)
