"""Losses: pure functions of tensors (segmenter logits, labels, critic outputs)."""

from .adversarial import (
    adversarial_bce,
    confidence_weighted_cross_entropy,
    last_output,
    masked_critic_input,
    multiscale_l1,
    target_probabilities,
)
from .cross_entropy import CrossEntropyLoss, cross_entropy_map
from .gambling import BettingActivation, GamblingLoss, GamblingLossOutput, betting_map, class_probabilities
from .lovasz import LovaszHingeLoss, lovasz_grad, lovasz_hinge
from .tilted import TCEMethod, TiltedCrossEntropyLoss, TiltLevel, tilted_loss

__all__ = [
    "BettingActivation",
    "CrossEntropyLoss",
    "GamblingLoss",
    "GamblingLossOutput",
    "LovaszHingeLoss",
    "TCEMethod",
    "TiltLevel",
    "TiltedCrossEntropyLoss",
    "adversarial_bce",
    "betting_map",
    "class_probabilities",
    "confidence_weighted_cross_entropy",
    "cross_entropy_map",
    "last_output",
    "lovasz_grad",
    "lovasz_hinge",
    "masked_critic_input",
    "multiscale_l1",
    "target_probabilities",
    "tilted_loss",
]
