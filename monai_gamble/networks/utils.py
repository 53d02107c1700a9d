"""Network utilities: initialising a network from a checkpoint of another run (fine-tuning), with checks
that say what differs, and the linear resizing of feature maps and logits in any spatial dimension."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from monai.utils import InterpolateMode
from torch import nn

__all__ = ["checkpoint_state_dict", "linear_interpolation_mode", "linear_resize", "load_pretrained", "set_bn_momentum"]

logger = logging.getLogger(__name__)

_LINEAR_MODES = {1: InterpolateMode.LINEAR, 2: InterpolateMode.BILINEAR, 3: InterpolateMode.TRILINEAR}


def linear_interpolation_mode(spatial_dims: int) -> InterpolateMode:
    """The (multi)linear mode of ``torch.nn.functional.interpolate`` for ``spatial_dims`` spatial axes:
    ``"linear"`` (1), ``"bilinear"`` (2) or ``"trilinear"`` (3), as MONAI's ``UpSample`` picks it.

    Raises:
        ValueError: for ``spatial_dims`` outside 1-3.
    """
    if spatial_dims not in _LINEAR_MODES:
        raise ValueError(f"linear interpolation needs 1, 2 or 3 spatial dims, got {spatial_dims}.")
    return _LINEAR_MODES[spatial_dims]


def linear_resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """``x`` ``(B, C, *spatial)`` resized to ``size`` by (bi/tri)linear interpolation
    (``align_corners=False``); returned unchanged when it already has that size.

    Used for decoder features (DeepLabV3+, PSPNet) and for critic logits at a lower resolution than the
    prediction (PatchGAN-like discriminators).

    Raises:
        ValueError: if ``size`` does not give one length per spatial axis of ``x``.
    """
    size = [int(s) for s in size]
    if len(size) != x.ndim - 2:
        raise ValueError(f"size {tuple(size)} must give one length per spatial axis of the input {tuple(x.shape)}.")
    return _linear_resize(x, size)


def _linear_resize(x: torch.Tensor, size: list[int]) -> torch.Tensor:
    """:func:`linear_resize` without its argument check, compilable by TorchScript (the networks'
    forwards call it with their own spatial sizes, so that ``torch.jit.script`` exports them)."""
    if list(x.shape[2:]) == size:
        return x
    if len(size) == 1:
        mode = "linear"
    elif len(size) == 2:
        mode = "bilinear"
    else:
        mode = "trilinear"
    return F.interpolate(x, size=size, mode=mode, align_corners=False)


#: Keys under which the bundles' checkpoints hold the segmenter's weights (a checkpoint of one
#: network, as Ignite's ``Checkpoint`` writes it for a single object, is the state dict itself).
SEGMENTER_KEYS = ("model", "network", "state_dict")


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _strip_module(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the ``module.`` prefix that ``DistributedDataParallel`` adds to every key."""
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module.") :]: v for k, v in state.items()}
    return dict(state)


def checkpoint_state_dict(
    checkpoint: Mapping[str, Any], key: str | Sequence[str] = SEGMENTER_KEYS, path: str | os.PathLike = "checkpoint"
) -> dict[str, torch.Tensor] | None:
    """The state dict stored under ``key`` in a loaded checkpoint, or None if it has none.

    A checkpoint is either a state dict itself (a network's parameters and buffers, as Ignite
    saves a single object) or a dict of state dicts (``{"model": ..., "critic": ...}`` as the
    two-network bundles save them, possibly beside optimizer and trainer states). ``key`` may list
    alternatives, tried in order; a flat state dict answers the segmenter's keys
    (:data:`SEGMENTER_KEYS`). ``DistributedDataParallel``'s ``module.`` prefix is removed.

    Args:
        checkpoint: the object ``torch.load`` returned.
        key: the key, or keys tried in order.
        path: the file's name, for error messages.

    Raises:
        ValueError: if the checkpoint is neither a state dict nor a dict.
    """
    keys = (key,) if isinstance(key, str) else tuple(key)
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f"{path} holds a {type(checkpoint).__name__}, not a state dict or a dict of state dicts.")
    if _is_state_dict(checkpoint):
        return _strip_module(checkpoint) if set(keys) & set(SEGMENTER_KEYS) else None
    for k in keys:
        if k in checkpoint and _is_state_dict(checkpoint[k]):
            return _strip_module(checkpoint[k])
    return None


def _describe(names: Sequence[str], limit: int = 5) -> str:
    names = sorted(names)
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def load_pretrained(
    network: nn.Module,
    checkpoint: str | os.PathLike | None,
    key: str | Sequence[str] = SEGMENTER_KEYS,
    required: bool = True,
    map_location: str | torch.device = "cpu",
    hint: str | None = None,
) -> nn.Module:
    """Initialise ``network`` from the weights of a checkpoint (fine-tuning), checking keys and shapes.

    With ``checkpoint`` None (or ``""``, ``"none"``: MONAI's command line drops a ``None``
    override, so ``--pretrained_critic_checkpoint none`` says it) the network is returned untouched, so that a bundle can
    declare ``"network": "$monai_gamble.networks.load_pretrained(@network_def, @pretrained_checkpoint)"``
    and a user opts in with ``--pretrained_checkpoint PATH``. The file is read with
    ``torch.load(weights_only=True)``; the state dict is found by :func:`checkpoint_state_dict`
    (``key``: ``"model"`` for the segmenter, ``"critic"`` for the critic of a two-network
    checkpoint). Every parameter and buffer must match in name and shape: a checkpoint of another
    architecture, or of the same one with other channels, is refused with the names that differ,
    never partially loaded.

    Args:
        network: the module to initialise (a ``DistributedDataParallel`` wrapper is loaded through
            its ``module``).
        checkpoint: path of the checkpoint, or None for no initialisation.
        key: where the state dict sits in a dict checkpoint (tried in order).
        required: if False, a checkpoint without ``key`` leaves the network as it is (and says so
            in the log) instead of raising, e.g. a cross-entropy checkpoint has no critic.
        map_location: where to load the tensors.
        hint: a sentence added to the error of a checkpoint that does not fit (how to opt out).

    Returns:
        ``network``, with the checkpoint's weights.

    Raises:
        FileNotFoundError: if the checkpoint does not exist.
        ValueError: naming the file, if it is empty or not a checkpoint, if it lacks ``key`` (when
            ``required``), or if its names or shapes differ from the network's.
    """
    if checkpoint is None or str(checkpoint).strip().lower() in ("", "none", "null"):
        return network
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained checkpoint {path} does not exist.")
    if path.stat().st_size == 0:
        raise ValueError(f"pretrained checkpoint {path} is empty (0 bytes): was its run killed while saving?")
    try:
        loaded = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises RuntimeError, pickle errors, EOFError... for a bad file
        raise ValueError(f"pretrained checkpoint {path} cannot be read as a PyTorch checkpoint: {e}") from e
    state = checkpoint_state_dict(loaded, key, path)
    target = network.module if isinstance(network, nn.parallel.DistributedDataParallel) else network
    what = key if isinstance(key, str) else key[0]
    if state is None:
        found = sorted(loaded) if isinstance(loaded, Mapping) else []
        if required:
            raise ValueError(f"pretrained checkpoint {path} has no {what!r} state dict (it holds {found}).")
        logger.info("pretrained checkpoint %s has no %r weights: %s keeps its initial weights.", path, what,
                    type(target).__name__)  # fmt: skip
        return network
    own = target.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in own.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing from the checkpoint ({_describe(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} not in the network ({_describe(unexpected)})")
        if shapes:
            parts.append(f"{len(shapes)} of other shape, checkpoint vs network ({_describe(shapes, 3)})")
        raise ValueError(
            f"pretrained checkpoint {path} ({what!r}) does not fit {type(target).__name__}: "
            + "; ".join(parts)
            + ". It was trained with another network; use the same network settings (e.g. the same "
            "configs/demo.json or --network_def overrides) as the run that wrote it." + (f" {hint}" if hint else "")
        )
    target.load_state_dict(state, strict=True)
    logger.info("%s initialised from %s (%r, %d tensors).", type(target).__name__, path, what, len(state))
    return network


def set_bn_momentum(network: nn.Module, momentum: float | None) -> int:
    """Set the ``momentum`` of every batch-norm layer of ``network`` (running statistics
    ``(1 - momentum) * running + momentum * batch``; PyTorch's default is 0.1, MONAI's EfficientNet
    encoders use 0.01, slow for short runs); None leaves them as they are.

    Returns:
        The number of layers changed.

    Raises:
        ValueError: for a momentum outside [0, 1].
    """
    if momentum is None:
        return 0
    if not 0.0 <= float(momentum) <= 1.0:
        raise ValueError(f"batch-norm momentum must lie in [0, 1], got {momentum}.")
    layers = [m for m in network.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in layers:
        m.momentum = float(momentum)
    return len(layers)
