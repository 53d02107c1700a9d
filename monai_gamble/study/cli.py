"""The study runner's command line: ``python -m monai_gamble.study --config study.json``."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .config import PATH_OVERRIDES, load_study_config, parse_override
from .runner import run_study, select_cells
from .summary import summarize_study

__all__ = ["main"]

_DESCRIPTION = """Run a study (methods x architectures x seeds through a bundle, tracked in MLflow) and
write its tables and figures; see monai_gamble.study.

    python -m monai_gamble.study --config study.json            # runs, resumes, summarises
    python -m monai_gamble.study --config study.json --summarize-only
    python -m monai_gamble.study --config study.json --seeds 1,2 --methods gambling   # a part of the grid
"""


def _names(text: str) -> list[str]:
    """``"a,b"`` -> ``["a", "b"]`` (the value of ``--methods`` or ``--architectures``)."""
    return [t.strip() for t in text.split(",") if t.strip()]


def _seeds(text: str) -> list[int]:
    """``"0,2"`` -> ``[0, 2]`` (the value of ``--seeds``); argparse reports a ValueError as a bad value."""
    try:
        return [int(t) for t in _names(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds takes integers separated by commas, got {text!r}") from None


def main(argv: Sequence[str] | None = None, prog: str = "python -m monai_gamble.study") -> int:
    """Parse the command line and run (or only summarise) the study; returns the exit status.

    ``--override KEY=VALUE`` (repeatable) sets a bundle override of every run on top of the config's;
    a relative path in ``dataset_dir``, ``evaluation_dataset_dir`` or ``pretrained_checkpoint`` there is
    relative to the working directory (in the config file, to the config file). ``--methods``,
    ``--architectures`` and ``--seeds`` (comma-separated) run only that part of the grid
    (:func:`~monai_gamble.study.select_cells`): two processes on other cells share one study, and the
    tables of either cover every finished cell.
    """
    parser = argparse.ArgumentParser(
        prog=prog, description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", required=True, help="the study config (JSON)")
    parser.add_argument("--output_dir", help="replace the config's output_dir")
    parser.add_argument("--summarize-only", action="store_true", help="only write the tables of the finished runs")
    parser.add_argument("--no-resume", action="store_true", help="run the finished runs again")
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a bundle override of every run (VALUE is JSON, or a plain string), e.g. "
        "--override dataset_dir=/data/ddti; repeatable",
    )
    for key, kind, example in (("methods", _names, "ce,gambling"), ("architectures", _names, "unet"),
                               ("seeds", _seeds, "0,1")):  # fmt: skip
        parser.add_argument(f"--{key}", type=kind, help=f"run only these {key} of the grid, e.g. {example}")
    args = parser.parse_args(argv)
    changes: dict[str, Any] = {"output_dir": str(Path(args.output_dir).resolve())} if args.output_dir else {}
    try:
        extra = dict(parse_override(o) for o in args.override)
        for k in PATH_OVERRIDES:  # relative to where the command runs, not to the config file
            if isinstance(extra.get(k), str) and extra[k]:
                extra[k] = str(Path(extra[k]).resolve())
        if extra:
            raw = json.loads(Path(args.config).read_text())
            changes["overrides"] = {**raw.get("overrides", {}), **extra}
        config = load_study_config(args.config, **changes)
        cells = select_cells(config, args.methods, args.architectures, args.seeds)
        if args.summarize_only and cells != config.grid:
            raise ValueError(
                "--summarize-only summarises every finished cell of the grid: drop --methods, --architectures "
                "and --seeds, or make a study config of that part."
            )
    except (ValueError, OSError) as e:
        parser.error(str(e))
    if args.summarize_only:
        print(summarize_study(config)["tables"])
    else:
        run_study(config, resume=not args.no_resume, cells=cells)
    return 0
