"""monai-gamble: adversarial hard-sample mining and fairness-aware training for MONAI.

The package is organised by layer, as MONAI is; each layer imports only from the layers
before it in this list:

``data`` -> ``transforms`` -> ``networks`` -> ``losses`` -> ``metrics`` -> ``visualize``
-> ``inferers`` -> ``engines`` -> ``handlers`` -> ``study``; ``utils`` (the workflow helpers that
bundle configs call: device, process group, run names, tracking URI) imports none of them.

``import monai_gamble`` imports every layer but ``study`` (the study runner, ``python -m
monai_gamble.study``), so that a bundle config that starts with
``"$import monai_gamble"`` can name ``monai_gamble.losses.X`` in its ``_target_`` values.
"""

from __future__ import annotations

__version__ = "0.1.0"

from . import data, engines, handlers, inferers, losses, metrics, networks, transforms, utils, visualize

__all__ = [
    "__version__",
    "data",
    "engines",
    "handlers",
    "inferers",
    "losses",
    "metrics",
    "networks",
    "transforms",
    "utils",
    "visualize",
]
