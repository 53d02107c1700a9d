"""monai-gamble: adversarial hard-sample mining and fairness-aware training for MONAI.

The package is organised by layer, as MONAI is; each layer imports only from the layers
before it in this list:

``data`` -> ``transforms`` -> ``networks`` -> ``losses`` -> ``metrics`` -> ``visualize``
-> ``inferers`` -> ``engines`` -> ``handlers``.

``import monai_gamble`` imports every layer, so that a bundle config that starts with
``"$import monai_gamble"`` can name ``monai_gamble.losses.X`` in its ``_target_`` values.
"""

from __future__ import annotations

__version__ = "0.1.0"

from . import data, engines, handlers, inferers, losses, metrics, networks, transforms, visualize

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
    "visualize",
]
