"""A progress bar that MONAI workflows can attach from a bundle config."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from monai.utils import min_version, optional_import

if TYPE_CHECKING:
    from ignite.engine import Engine
    from ignite.handlers import ProgressBar as _IgniteProgressBar
else:
    Engine, _ = optional_import("ignite.engine", "0.4.11", min_version, "Engine")
    _IgniteProgressBar, _ = optional_import("ignite.handlers", "0.4.11", min_version, "ProgressBar")

__all__ = ["ProgressBar"]


class ProgressBar(_IgniteProgressBar):
    """Ignite's tqdm ``ProgressBar`` with its ``attach`` options given to the constructor.

    MONAI workflows attach handlers with ``handler.attach(engine)``, so what Ignite's progress bar
    takes in ``attach`` (the output to show, metric names) must be set beforehand; this class does
    only that.

    Args:
        output_transform: maps ``engine.state.output`` to a number or a dict of numbers to show, e.g.
            ``monai.handlers.from_engine(["loss"], first=True)`` for a MONAI trainer.
        metric_names: names of ``engine.state.metrics`` to show, or ``"all"``.
        persist: keep the bar on screen after each epoch.
        tqdm_kwargs: passed to ``tqdm`` (e.g. ``desc="train"``).
    """

    def __init__(
        self,
        output_transform: Callable[[Any], Any] | None = None,
        metric_names: str | list[str] | None = None,
        persist: bool = False,
        **tqdm_kwargs: Any,
    ) -> None:
        super().__init__(persist=persist, **tqdm_kwargs)
        self._output_transform = output_transform
        self._metric_names = metric_names

    def attach(self, engine: Engine, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """Attach to ``engine`` with the constructor's ``output_transform`` and ``metric_names``."""
        kwargs.setdefault("output_transform", self._output_transform)
        kwargs.setdefault("metric_names", self._metric_names)
        super().attach(engine, *args, **kwargs)
