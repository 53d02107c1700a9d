"""A progress bar that MONAI workflows can attach from a bundle config (with the whole run's ETA), and
:class:`RunEstimate`, which says at the start of training what runs where and for about how long."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from monai.utils import min_version, optional_import

if TYPE_CHECKING:
    from ignite.engine import Engine
    from ignite.handlers import ProgressBar as _IgniteProgressBar
else:
    Engine, _ = optional_import("ignite.engine", "0.4.11", min_version, "Engine")
    _IgniteProgressBar, _ = optional_import("ignite.handlers", "0.4.11", min_version, "ProgressBar")

__all__ = ["ProgressBar", "RunEstimate", "format_duration", "projected_seconds"]

logger = logging.getLogger(__name__)


def format_duration(seconds: float) -> str:
    """``H:MM:SS`` of a number of seconds (``"?"`` when it is not finite).

    Example:
        >>> format_duration(3725.4)
        '1:02:05'
    """
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def projected_seconds(elapsed: float, done: int, remaining: int) -> float:
    """The time left at a constant rate: ``elapsed / done * remaining`` seconds (``inf`` before any
    iteration is done).

    Example:
        >>> projected_seconds(elapsed=10.0, done=4, remaining=6)
        15.0
    """
    if done < 1:
        return math.inf
    return float(elapsed) / int(done) * max(int(remaining), 0)


class _RunClock:
    """Wall time of this process's iterations of an engine: the run's ETA from the mean time per iteration
    so far (validation, which runs between epochs, included)."""

    def __init__(self) -> None:
        self.start_time: float | None = None
        self.start_iteration = 0

    def __call__(self, engine: Engine) -> None:  # ITERATION_STARTED
        if self.start_time is None:
            self.start_time = time.perf_counter()
            self.start_iteration = engine.state.iteration - 1  # Ignite counts the iteration before it starts

    def remaining(self, engine: Engine) -> float:
        if self.start_time is None:
            return math.inf
        total = (engine.state.max_epochs or 1) * (engine.state.epoch_length or 0)
        done = engine.state.iteration - self.start_iteration
        return projected_seconds(time.perf_counter() - self.start_time, done, total - engine.state.iteration)


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
        run_eta: for an engine of more than one epoch, show the whole run's ETA (``run_eta 1:02:05``) next
            to the epoch's: the mean wall time per iteration so far (validation included) times the
            iterations left.
        tqdm_kwargs: passed to ``tqdm`` (e.g. ``desc="train"``).
    """

    def __init__(
        self,
        output_transform: Callable[[Any], Any] | None = None,
        metric_names: str | list[str] | None = None,
        persist: bool = False,
        run_eta: bool = True,
        **tqdm_kwargs: Any,
    ) -> None:
        super().__init__(persist=persist, **tqdm_kwargs)
        self._output_transform = output_transform
        self._metric_names = metric_names
        self.run_eta = run_eta
        self._clock = _RunClock()

    def attach(self, engine: Engine, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """Attach to ``engine`` with the constructor's ``output_transform`` and ``metric_names``."""
        transform = kwargs.get("output_transform", self._output_transform)
        if self.run_eta:
            from ignite.engine import Events

            engine.add_event_handler(Events.ITERATION_STARTED, self._clock)
            transform = self._with_run_eta(engine, transform)
        kwargs["output_transform"] = transform
        kwargs.setdefault("metric_names", self._metric_names)
        super().attach(engine, *args, **kwargs)

    def _with_run_eta(self, engine: Engine, transform: Callable[[Any], Any] | None) -> Callable[[Any], Any]:
        def shown(output: Any) -> Any:
            values = transform(output) if transform is not None else None
            if (engine.state.max_epochs or 1) <= 1:
                return values
            if values is None:
                values = {}
            elif not isinstance(values, dict):
                values = {"output": values}
            return {**values, "run_eta": format_duration(self._clock.remaining(engine))}

        return shown


class RunEstimate:
    """Say at the start of training what runs where, and for about how long.

    At the start (rank 0): the device, the number of training images, iterations per epoch and epochs.
    After ``measure_iterations`` iterations (fewer if the epoch is shorter; the first ``warmup_iterations`` not counted: they include
    one-off costs such as cuDNN autotuning or the first batch's caching), the projected time of the whole
    run, ``s/it x iterations left`` (:func:`projected_seconds`); and again at the start of the second epoch
    of this process, with the first epoch's validation included. When the projection exceeds
    ``cpu_warning_minutes`` on a CPU, a warning names the bundle's CPU setting (``cpu_config``).

    Args:
        cpu_config: the bundle's settings for a CPU (e.g. ``configs/demo.json``), named in the warning.
        cpu_warning_minutes: the projected minutes on a CPU above which to warn.
        warmup_iterations: iterations left out of the measurement.
        measure_iterations: iterations measured for the first projection.
        name: the logger's name.

    Example (a bundle's ``train#handlers``):
        ``{"_target_": "monai_gamble.handlers.RunEstimate", "cpu_config": "configs/demo.json"}``
    """

    def __init__(
        self,
        cpu_config: str | None = None,
        cpu_warning_minutes: float = 30.0,
        warmup_iterations: int = 1,
        measure_iterations: int = 5,
        name: str = "monai_gamble",
    ) -> None:
        if warmup_iterations < 0 or measure_iterations < 1:
            raise ValueError(
                f"RunEstimate: warmup_iterations must be >= 0 and measure_iterations >= 1, got "
                f"{warmup_iterations} and {measure_iterations}."
            )
        self.cpu_config = cpu_config
        self.cpu_warning_minutes = float(cpu_warning_minutes)
        self.warmup_iterations = int(warmup_iterations)
        self.measure_iterations = int(measure_iterations)
        self.logger = logging.getLogger(name)
        self.estimates: list[float] = []  # projected seconds left, as logged
        self._t0: float | None = None
        self._i0 = 0
        self._i_start = 0
        self._measured = False
        self._epoch_t0: float | None = None
        self._epoch_i0 = 0
        self._epoch_reported = False
        self._warned = False

    def attach(self, engine: Engine) -> None:
        """Log at STARTED, measure at ITERATION_COMPLETED, refine at EPOCH_STARTED."""
        from ignite.engine import Events

        engine.add_event_handler(Events.STARTED, self.started)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.iteration_completed)
        engine.add_event_handler(Events.EPOCH_STARTED, self.epoch_started)

    @staticmethod
    def _device(engine: Engine) -> str:
        device = getattr(engine.state, "device", None) or getattr(engine, "device", None)
        if device is None:
            return "unknown device"
        import torch

        device = torch.device(device)
        if device.type == "cuda" and torch.cuda.is_available():
            return f"{device} ({torch.cuda.get_device_name(device)})"
        return f"{device} ({torch.get_num_threads()} threads)" if device.type == "cpu" else str(device)

    @staticmethod
    def _is_cpu(engine: Engine) -> bool:
        device = getattr(engine.state, "device", None) or getattr(engine, "device", None)
        return device is None or str(device).startswith("cpu")

    def _total(self, engine: Engine) -> int:
        return int((engine.state.max_epochs or 1) * (engine.state.epoch_length or 0))

    def started(self, engine: Engine) -> None:
        """Log the device, the dataset and the run's length."""
        from ignite import distributed as idist

        self._i_start = engine.state.iteration
        if self.warmup_iterations == 0:
            self._t0, self._i0 = time.perf_counter(), engine.state.iteration
        if idist.get_rank() > 0:
            return
        loader = getattr(engine, "data_loader", None) or getattr(engine.state, "dataloader", None)
        dataset = getattr(loader, "dataset", None)
        try:
            images = f"{len(dataset)} training images"
        except TypeError:
            images = "a training set of unknown size"
        left = self._total(engine) - engine.state.iteration
        self.logger.info(
            "training on %s (%d process%s): %s, %d iterations per epoch, epochs %d-%d (%d iterations to run)",
            self._device(engine),
            idist.get_world_size(),
            "" if idist.get_world_size() == 1 else "es",
            images,
            engine.state.epoch_length or 0,
            engine.state.epoch + 1,
            engine.state.max_epochs or 1,
            left,
        )

    def iteration_completed(self, engine: Engine) -> None:
        """Start the clock after the warm-up; project the run after ``measure_iterations``."""
        now = time.perf_counter()
        if self._t0 is None:
            if engine.state.iteration - self._i_start >= self.warmup_iterations:
                self._t0, self._i0 = now, engine.state.iteration
            return
        done = engine.state.iteration - self._i0
        # an epoch shorter than warm-up + measurement: measure what the first epoch has
        target = min(self.measure_iterations, max(1, (engine.state.epoch_length or 1) - self.warmup_iterations))
        if done == target and not self._measured:
            self._measured = True
            left = projected_seconds(now - self._t0, done, self._total(engine) - engine.state.iteration)
            self._report(engine, left, (now - self._t0) / done, "validation not counted yet")

    def epoch_started(self, engine: Engine) -> None:
        """At the second epoch of this process: project from the whole first epoch (with its validation)."""
        now = time.perf_counter()
        if self._epoch_t0 is None:
            self._epoch_t0, self._epoch_i0 = now, engine.state.iteration
            return
        done = engine.state.iteration - self._epoch_i0
        if self._epoch_reported or done < 1:
            return
        self._epoch_reported = True
        left = projected_seconds(now - self._epoch_t0, done, self._total(engine) - engine.state.iteration)
        self._report(engine, left, (now - self._epoch_t0) / done, "from the first epoch, validation included")

    def _report(self, engine: Engine, left: float, per_iteration: float, note: str) -> None:
        from ignite import distributed as idist

        self.estimates.append(left)
        if idist.get_rank() > 0:
            return
        self.logger.info(
            "%.2f s per iteration: about %s left for the whole run (%s)", per_iteration, format_duration(left), note
        )
        if not self._warned and self._is_cpu(engine) and left > 60.0 * self.cpu_warning_minutes:
            self._warned = True
            hint = f" For a run of minutes on a CPU add {self.cpu_config} to --config_file." if self.cpu_config else ""
            self.logger.warning(
                "this run will take about %s on a CPU (over %g minutes).%s",
                format_duration(left),
                self.cpu_warning_minutes,
                hint,
            )
