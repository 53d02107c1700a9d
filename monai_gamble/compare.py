"""Deprecated: the study runner is :mod:`monai_gamble.study` (one module per job).

``python -m monai_gamble.compare ...`` and ``from monai_gamble.compare import ...`` keep working and
forward to it; use ``python -m monai_gamble.study ...`` and ``from monai_gamble.study import ...``.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence

from .study import (
    ARCHITECTURE_CONFIGS,
    METHOD_CONFIGS,
    TABLE_METRICS,
    StudyConfig,
    load_study_config,
    paired_comparison,
    run_study,
    summarize_study,
)
from .study import main as _study_main

__all__ = [
    "ARCHITECTURE_CONFIGS",
    "METHOD_CONFIGS",
    "TABLE_METRICS",
    "StudyConfig",
    "load_study_config",
    "main",
    "paired_comparison",
    "run_study",
    "summarize_study",
]

_NOTE = "monai_gamble.compare is deprecated: use monai_gamble.study (python -m monai_gamble.study)."
warnings.warn(_NOTE, DeprecationWarning, stacklevel=2)


def main(argv: Sequence[str] | None = None) -> int:
    """The study runner's command line (:func:`monai_gamble.study.main`), with the deprecation note on stderr."""
    print(_NOTE, file=sys.stderr)
    return _study_main(argv, prog="python -m monai_gamble.compare")


if __name__ == "__main__":
    sys.exit(main())
