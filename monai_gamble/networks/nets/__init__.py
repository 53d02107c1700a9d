"""Network architectures: critics for two-network training (the segmenters are MONAI's)."""

from .confidence import ConfidenceNetwork
from .gambler import Gambler

__all__ = ["ConfidenceNetwork", "Gambler"]
