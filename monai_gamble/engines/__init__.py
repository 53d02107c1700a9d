"""Ignite engines for two-network (segmenter + critic) training, in MONAI's style."""

from .objectives import (
    AdversarialObjective,
    ConfidenceObjective,
    CriticObjective,
    GamblingObjective,
    ObjectiveOutput,
    SegANObjective,
)
from .semi_supervised import (
    DiscriminatorTarget,
    SemiSupervisedAdversarialObjective,
    SemiSupervisedAdversarialTrainer,
    SemiSupervisedSchedule,
    correctness_target,
)
from .trainer import Alternation, SegmenterCriticTrainer, frozen

__all__ = [
    "AdversarialObjective",
    "Alternation",
    "ConfidenceObjective",
    "CriticObjective",
    "DiscriminatorTarget",
    "GamblingObjective",
    "ObjectiveOutput",
    "SegANObjective",
    "SegmenterCriticTrainer",
    "SemiSupervisedAdversarialObjective",
    "SemiSupervisedAdversarialTrainer",
    "SemiSupervisedSchedule",
    "correctness_target",
    "frozen",
]
