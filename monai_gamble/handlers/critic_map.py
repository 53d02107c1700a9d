"""Put a critic's per-pixel map (a gambler's betting map, a confidence map) into an evaluator's output."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from monai.engines.utils import IterationEvents
from monai.utils import min_version, optional_import
from monai.utils.enums import CommonKeys as Keys
from torch import nn

from ..engines import CriticObjective

if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", "0.4.11", min_version, "Engine")

__all__ = ["CriticMapHandler"]


class CriticMapHandler:
    """After each forward pass of a MONAI evaluator (``IterationEvents.FORWARD_COMPLETED``, before
    decollation and post-processing), run the critic on the batch's image and the segmenter's
    logits and store its per-pixel map ``(B, 1, *spatial)`` in ``engine.state.output[output_key]``,
    so that post-processing, figures (:class:`SegmentationFigureHandler` with ``map_keys``) and
    writers can use it like the prediction. The gambler's betting map of
    :class:`~monai_gamble.engines.GamblingObjective` is the first such map.

    The critic runs in eval mode without gradient (its mode is restored afterwards).

    Args:
        critic: the trained critic network.
        objective: the objective that defines the map (:meth:`CriticObjective.critic_map`).
        output_key: where to store the map; default ``objective.map_name`` (e.g. ``"betting_map"``).

    Raises:
        ValueError: if the objective has no per-pixel map.
    """

    def __init__(self, critic: nn.Module, objective: CriticObjective, output_key: str | None = None) -> None:
        key = output_key or objective.map_name
        if key is None:
            raise ValueError(f"{type(objective).__name__} has no per-pixel map to show.")
        self.critic = critic
        self.objective = objective
        self.output_key = key

    def attach(self, engine: Engine) -> None:
        """Run after every forward pass of ``engine``."""
        engine.add_event_handler(IterationEvents.FORWARD_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        output = engine.state.output
        was_training = self.critic.training
        self.critic.eval()
        try:
            with torch.no_grad():
                m = self.objective.critic_map(self.critic, output[Keys.IMAGE], output[Keys.PRED])
        finally:
            self.critic.train(was_training)
        if m is None:
            raise ValueError(f"{type(self.objective).__name__}.critic_map returned no map.")
        output[self.output_key] = m.float()
