"""Networks: gamblers, discriminators and decoders on MONAI encoders (``monai_gamble.networks.nets``),
the checkpoint initialisation of fine-tuning (:func:`load_pretrained`), and small utilities
(:func:`linear_resize`, :func:`set_bn_momentum`)."""

from . import nets
from .utils import checkpoint_state_dict, linear_interpolation_mode, linear_resize, load_pretrained, set_bn_momentum

__all__ = [
    "checkpoint_state_dict",
    "linear_interpolation_mode",
    "linear_resize",
    "load_pretrained",
    "nets",
    "set_bn_momentum",
]
