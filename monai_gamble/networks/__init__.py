"""Networks: gamblers, discriminators and decoders on MONAI encoders (``monai_gamble.networks.nets``),
and the checkpoint initialisation of fine-tuning (:func:`load_pretrained`)."""

from . import nets
from .utils import checkpoint_state_dict, load_pretrained

__all__ = ["checkpoint_state_dict", "load_pretrained", "nets"]
