"""Networks: gamblers, discriminators and decoders on MONAI encoders (``monai_gamble.networks.nets``)."""

from . import nets

__all__ = ["nets"]
