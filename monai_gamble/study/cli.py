"""The study runner's command line: ``python -m monai_gamble.study --config study.json``."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .config import PATH_OVERRIDES, load_study_config, parse_override
from .runner import run_study
from .summary import summarize_study

__all__ = ["main"]

_DESCRIPTION = """Run a study (methods x architectures x seeds through a bundle, tracked in MLflow) and
write its tables and figures; see monai_gamble.study.

    python -m monai_gamble.study --config study.json            # runs, resumes, summarises
    python -m monai_gamble.study --config study.json --summarize-only
"""


def main(argv: Sequence[str] | None = None, prog: str = "python -m monai_gamble.study") -> int:
    """Parse the command line and run (or only summarise) the study; returns the exit status.

    ``--override KEY=VALUE`` (repeatable) sets a bundle override of every run on top of the config's;
    a relative path in ``dataset_dir``, ``evaluation_dataset_dir`` or ``pretrained_checkpoint`` there is
    relative to the working directory (in the config file, to the config file).
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
    except (ValueError, OSError) as e:
        parser.error(str(e))
    if args.summarize_only:
        print(summarize_study(config)["tables"])
    else:
        run_study(config, resume=not args.no_resume)
    return 0
