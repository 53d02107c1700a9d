"""training_dataloader: shuffled batches, a sampler, or a batch sampler (stochastic TCE)."""

import numpy as np
import torch

from monai_gamble.data import ClassConditionalBatchSampler, training_dataloader


def test_the_three_batchings():
    data = [{"x": torch.tensor([i])} for i in range(6)]
    assert [b["x"].shape[0] for b in training_dataloader(data, 4)] == [4, 2]
    sampler = torch.utils.data.SequentialSampler(range(6))
    assert [b["x"].flatten().tolist() for b in training_dataloader(data, 3, sampler=sampler)] == [[0, 1, 2], [3, 4, 5]]
    presence = np.array([[True, i % 2 == 0] for i in range(6)])
    batches = list(training_dataloader(data, 99, batch_sampler=ClassConditionalBatchSampler(presence, 2, seed=0)))
    assert len(batches) == 3 and all(b["x"].shape[0] == 2 for b in batches)
