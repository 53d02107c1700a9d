"""``python -m monai_gamble.study``: the study runner's command line (:func:`monai_gamble.study.cli.main`)."""

import sys

from .cli import main

sys.exit(main())
