"""Network architectures: critics for two-network training, and DeepLabV3+ / PSPNet on MONAI's encoders."""

from .confidence import ConfidenceNetwork
from .deeplab import ASPP, DeepLabV3Plus
from .discriminator import FCDiscriminator
from .encoders import build_encoder, dilate_resnet_encoder, encoder_channels, encoder_names
from .gambler import Gambler
from .pspnet import PSPNet, PyramidPooling
from .unetplusplus import UNetPlusPlus

__all__ = [
    "ASPP",
    "ConfidenceNetwork",
    "DeepLabV3Plus",
    "FCDiscriminator",
    "Gambler",
    "PSPNet",
    "PyramidPooling",
    "UNetPlusPlus",
    "build_encoder",
    "dilate_resnet_encoder",
    "encoder_channels",
    "encoder_names",
]
