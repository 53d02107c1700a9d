"""The confidence network of adversarial confidence learning: :class:`~monai_gamble.networks.nets.Gambler`
under its other name.

The fully convolutional confidence network of Nie et al., "Difficulty-aware Attention Network with
Confidence Learning for Medical Image Segmentation" (AAAI 2019) and Nie & Shen, "Adversarial
Confidence Learning for Medical Image Segmentation and Synthesis" (IJCV 2020) is the same U-Net as the
gambler (image and a label map in, one channel of per-pixel logits out, at the input resolution); what
differs is its job, set by :class:`monai_gamble.engines.ConfidenceObjective`: it sees the ground truth
(one-hot) as *real* and the segmenter's softmax as *fake*, and its sigmoid is the confidence map that
re-weights the segmenter's cross-entropy. ``ConfidenceNetwork`` is therefore an alias of
:class:`~monai_gamble.networks.nets.Gambler` (same arguments, same checkpoints; ``type(net).__name__``
is ``"Gambler"``), not a subclass that adds nothing.

Shapes:
    ``forward(image (B, in_channels, *spatial), label_map (B, pred_channels, *spatial))`` returns
    logits ``(B, 1, *spatial)``.
"""

from __future__ import annotations

from .gambler import Gambler

__all__ = ["ConfidenceNetwork"]

#: The confidence network of Nie et al. (AAAI 2019; IJCV 2020): the :class:`Gambler` U-Net.
ConfidenceNetwork = Gambler
