"""The study config: the bundle, the grid of methods x architectures x seeds and the overrides of every
run (:class:`StudyConfig`, read from JSON by :func:`load_study_config`)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "ARCHITECTURE_CONFIGS",
    "METHOD_CONFIGS",
    "PATH_OVERRIDES",
    "StudyConfig",
    "load_study_config",
    "parse_override",
]

#: Override files (in the bundle's ``configs/``) that turn ``train.json`` into each method.
METHOD_CONFIGS: dict[str, list[str]] = {
    "ce": ["train_ce.json"],
    "focal": ["train_ce.json", "train_focal.json"],
    "adversarial": ["train_adversarial.json"],
    "segan": ["train_segan.json"],
    "confidence": ["train_confidence.json"],
    "gambling": [],
}
#: Override files that replace the segmenter.
ARCHITECTURE_CONFIGS: dict[str, list[str]] = {
    "unet": [],
    "pspnet": ["arch_pspnet.json"],
    "deeplabv3plus": ["arch_deeplabv3plus.json"],
}
#: Overrides that name a folder or a file: a relative path is relative to the study config (on the
#: command line, to the working directory).
PATH_OVERRIDES = ("dataset_dir", "evaluation_dataset_dir", "pretrained_checkpoint")
#: Bundle ids that the study sets for every run itself.
_RESERVED = ("seed", "bundle_root", "ckpt_dir", "output_dir", "tracking_uri", "experiment_name", "run_name")


def _check_names(kind: str, names: Any, known: Mapping[str, list[str]], bundle: Path) -> None:
    if isinstance(names, str) or not isinstance(names, Sequence) or not names:
        raise ValueError(f"{kind} must be a non-empty list, got {names!r}.")
    if len(set(names)) != len(names):
        raise ValueError(f"{kind} lists a name twice: {names}.")
    if unknown := [n for n in names if n not in known]:
        raise ValueError(f"unknown {kind} {unknown}; known: {sorted(known)}.")
    for n in names:
        for f in known[n]:
            if not (bundle / "configs" / f).is_file():
                raise ValueError(f"{kind[:-1]} {n!r} needs configs/{f}, which {bundle} lacks.")


@dataclass
class StudyConfig:
    """A study: the bundle, the grid and the settings of every run (see :mod:`monai_gamble.study`).

    Attributes:
        bundle: the bundle folder (holding ``configs/train.json`` and ``configs/evaluate.json``).
        output_dir: where the runs, tables and figures go.
        methods: method names (keys of ``method_configs``).
        architectures: architecture names (keys of ``architecture_configs``).
        seeds: training seeds (the bundle's ``seed``: initialisation and augmentation; the data
            and its split stay the same).
        overrides: bundle overrides applied to every run (``{"max_epochs": 30, ...}``).
        name: the MLflow experiment and the parent run's name.
        tracking_uri: MLflow tracking URI (default: SQLite in ``output_dir``).
        evaluation_split: the split of the evaluation (``"test"``).
        method_configs: override files per method (default :data:`METHOD_CONFIGS`).
        architecture_configs: override files per architecture (default :data:`ARCHITECTURE_CONFIGS`).
        figure_images: test images in the Fig. 2 grid.
        base_configs: override files (in the bundle's ``configs/``) applied to every run right after
            ``train.json``, before the method's and the architecture's files (e.g.
            ``["real_cpu.json"]``, the recipe of the real data).
        paired: ``[method, baseline]`` pairs compared image by image
            (:func:`~monai_gamble.study.paired_comparison`); None: every method against ``"ce"`` when
            the grid has it.
        bootstrap_samples: resamples of the paired comparison's bootstrap confidence interval.

    Raises:
        ValueError: naming the entry, for a bundle without ``configs/train.json``, unknown or repeated
            methods or architectures (or one whose override files the bundle lacks), seeds that are not
            distinct integers, overrides that are not a mapping or set what the study sets
            (``seed``, ``bundle_root``, ``ckpt_dir``, ``output_dir``, ``tracking_uri``,
            ``experiment_name``, ``run_name``), a negative ``figure_images``, missing
            ``base_configs`` files, bad ``paired`` pairs or fewer than 100 ``bootstrap_samples``.
    """

    bundle: Path
    output_dir: Path
    methods: list[str]
    architectures: list[str] = field(default_factory=lambda: ["unet"])
    seeds: list[int] = field(default_factory=lambda: [0])
    overrides: dict[str, Any] = field(default_factory=dict)
    name: str = "study"
    tracking_uri: str | None = None
    evaluation_split: str = "test"
    method_configs: dict[str, list[str]] = field(default_factory=lambda: dict(METHOD_CONFIGS))
    architecture_configs: dict[str, list[str]] = field(default_factory=lambda: dict(ARCHITECTURE_CONFIGS))
    figure_images: int = 4
    base_configs: list[str] = field(default_factory=list)
    paired: list[list[str]] | None = None
    bootstrap_samples: int = 10000

    def __post_init__(self) -> None:
        self.bundle = Path(self.bundle).resolve()
        self.output_dir = Path(self.output_dir).resolve()
        if not (self.bundle / "configs" / "train.json").is_file():
            raise ValueError(f"bundle {self.bundle} has no configs/train.json.")
        _check_names("methods", self.methods, self.method_configs, self.bundle)
        _check_names("architectures", self.architectures, self.architecture_configs, self.bundle)
        if (
            isinstance(self.seeds, str)
            or not isinstance(self.seeds, Sequence)
            or not self.seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in self.seeds)
            or len(set(self.seeds)) != len(self.seeds)
        ):
            raise ValueError(f"seeds must be a non-empty list of distinct integers, got {self.seeds!r}.")
        if not isinstance(self.overrides, Mapping):
            raise ValueError(
                f"overrides must be a mapping of bundle ids to values, got {type(self.overrides).__name__}."
            )
        if clash := sorted(set(_RESERVED) & set(self.overrides)):
            raise ValueError(f"overrides may not set {clash}: the study sets them for every run.")
        if int(self.figure_images) < 0:
            raise ValueError(f"figure_images must be non-negative, got {self.figure_images}.")
        if isinstance(self.base_configs, str) or not isinstance(self.base_configs, Sequence):
            raise ValueError(f"base_configs must be a list of file names, got {self.base_configs!r}.")
        for f in self.base_configs:
            if not (self.bundle / "configs" / f).is_file():
                raise ValueError(f"base_configs names configs/{f}, which {self.bundle} lacks.")
        if self.paired is None:
            self.paired = [[m, "ce"] for m in self.methods if m != "ce"] if "ce" in self.methods else []
        for pair in self.paired:
            if not isinstance(pair, Sequence) or isinstance(pair, str) or len(pair) != 2:
                raise ValueError(f"paired must list [method, baseline] pairs, got {pair!r}.")
            if unknown := [m for m in pair if m not in self.methods]:
                raise ValueError(f"paired names {unknown}, which are not among the methods {self.methods}.")
        if int(self.bootstrap_samples) < 100:
            raise ValueError(f"bootstrap_samples must be at least 100, got {self.bootstrap_samples}.")
        if self.tracking_uri is None:
            self.tracking_uri = "sqlite:///" + str(self.output_dir / "mlruns.db")

    @property
    def grid(self) -> list[tuple[str, str, int]]:
        """All (method, architecture, seed) of the study, in run order."""
        return [(m, a, s) for a in self.architectures for m in self.methods for s in self.seeds]

    def run_dir(self, method: str, architecture: str, seed: int) -> Path:
        """The folder of one run: ``<output_dir>/runs/<method>-<architecture>-seed<seed>``."""
        return self.output_dir / "runs" / f"{method}-{architecture}-seed{seed}"

    def config_files(self, method: str, architecture: str) -> list[str]:
        """The bundle config files of one run, in the order they are merged."""
        return [
            "train.json",
            *self.base_configs,
            *self.method_configs[method],
            *self.architecture_configs[architecture],
        ]

    def is_done(self, method: str, architecture: str, seed: int) -> bool:
        """Whether the run finished (it left ``done.json``)."""
        return (self.run_dir(method, architecture, seed) / "done.json").is_file()


def _resolve_path_overrides(overrides: Mapping[str, Any], base: Path) -> dict[str, Any]:
    """``overrides`` with the relative paths of :data:`PATH_OVERRIDES` made absolute against ``base``."""
    out = dict(overrides)
    for key in PATH_OVERRIDES:
        value = out.get(key)
        if isinstance(value, str) and value and not Path(value).is_absolute():
            out[key] = str((base / value).resolve())
    return out


def load_study_config(path: str | os.PathLike, **changes: Any) -> StudyConfig:
    """Read a study config (JSON); ``changes`` replace its top-level entries.

    ``bundle`` and ``output_dir``, and the overrides ``dataset_dir``, ``evaluation_dataset_dir`` and
    ``pretrained_checkpoint``, may be relative to the config file.

    Raises:
        ValueError: for an unreadable file, unknown keys or a bad grid (see :class:`StudyConfig`).
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read the study config {path}: {e}") from e
    if not isinstance(raw, dict):
        raise ValueError(f"{path} must hold a JSON object.")
    raw.update(changes)
    known = set(StudyConfig.__dataclass_fields__)
    if unknown := sorted(set(raw) - known):
        raise ValueError(f"{path}: unknown keys {unknown}; known: {sorted(known)}.")
    for key in ("bundle", "output_dir"):
        if key not in raw:
            raise ValueError(f"{path}: {key!r} is required.")
        if not Path(raw[key]).is_absolute():
            raw[key] = path.parent / raw[key]
    if isinstance(raw.get("overrides"), Mapping):
        raw["overrides"] = _resolve_path_overrides(raw["overrides"], path.parent)
    return StudyConfig(**raw)


def parse_override(text: str) -> tuple[str, Any]:
    """``"key=value"`` as ``(key, value)``, the value read as JSON when it is JSON, else kept as a string.

    Raises:
        ValueError: without an ``=`` or a key.
    """
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"--override {text!r}: expected KEY=VALUE.")
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value
