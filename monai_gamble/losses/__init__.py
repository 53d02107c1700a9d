"""Losses: pure functions of tensors (segmenter logits, labels, critic outputs)."""

from .cross_entropy import CrossEntropyLoss, cross_entropy_map

__all__ = ["CrossEntropyLoss", "cross_entropy_map"]
