"""Inferers: test-time ensembles of one model over invertible transforms (flip TTA, ASME)."""

from .asme import (
    AdaptiveEnsembleInferer,
    AreaRuleOn,
    EnsembleActivation,
    EnsembleBlend,
    EnsembleMethod,
    TransformEnsembleInferer,
    asme_weights,
    dice_similarity_matrix,
    make_ensemble_inferer,
)

__all__ = [
    "AdaptiveEnsembleInferer",
    "AreaRuleOn",
    "EnsembleActivation",
    "EnsembleBlend",
    "EnsembleMethod",
    "TransformEnsembleInferer",
    "asme_weights",
    "dice_similarity_matrix",
    "make_ensemble_inferer",
]
