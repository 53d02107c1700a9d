"""Inferers: test-time ensembles of one model over invertible transforms (flip TTA, ASME)."""

from .asme import (
    AdaptiveEnsembleInferer,
    EnsembleActivation,
    TransformEnsembleInferer,
    asme_weights,
    dice_similarity_matrix,
)

__all__ = [
    "AdaptiveEnsembleInferer",
    "EnsembleActivation",
    "TransformEnsembleInferer",
    "asme_weights",
    "dice_similarity_matrix",
]
