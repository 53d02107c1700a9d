"""Every training method of the package, selected by one name (a bundle's ``--method``).

A generic bundle trains any method on any data with one set of configs: the choice of the loss,
the objective, the critic (built for the data's dimensionality and channels) and the trainer is
made here, in named and tested functions, not in branches of the config. Each method is the
package's (or MONAI's) existing implementation; nothing is copied:

==================  ==================================================  =============================
method              segmenter's loss / objective                        critic
==================  ==================================================  =============================
``ce``              :class:`monai_gamble.losses.CrossEntropyLoss`        none
``focal``           MONAI ``FocalLoss`` (softmax, gamma 2)                none
``dice_ce``         MONAI ``DiceCELoss`` (softmax)                        none
``tce_image``       :class:`~monai_gamble.losses.TiltedCrossEntropyLoss`  none
                    at image level (:func:`~monai_gamble.losses.tilted_loss`)
``tce_class``       the same at class level                              none
``stochastic_tce``  cross-entropy on class-conditional batches           none (a batch sampler and
                    (Algorithm 1 of Szabo et al.)                        :class:`~monai_gamble.handlers.StochasticTCEHandler`)
``gambling``        :class:`GamblingObjective`                           :class:`~monai_gamble.networks.nets.Gambler`
``adversarial``     :class:`AdversarialObjective`                        MONAI ``PatchDiscriminator``
``confidence``      :class:`ConfidenceObjective`                         :class:`~monai_gamble.networks.nets.ConfidenceNetwork`
``segan``           :class:`SegANObjective`                              MONAI ``PatchDiscriminator``
==================  ==================================================  =============================

The methods with a critic train with :class:`SegmenterCriticTrainer`, the others with MONAI's
``SupervisedTrainer`` (:func:`segmentation_trainer` picks).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from monai.engines import SupervisedTrainer
from monai.handlers import from_engine
from monai.losses import DiceCELoss, FocalLoss
from monai.networks.nets import PatchDiscriminator
from monai.utils import StrEnum, look_up_option, min_version, optional_import
from torch import nn

from ..data.samplers import ClassConditionalBatchSampler
from ..losses import CrossEntropyLoss, tilted_loss
from ..networks.nets import ConfidenceNetwork, Gambler
from .objectives import AdversarialObjective, ConfidenceObjective, CriticObjective, GamblingObjective, SegANObjective
from .supervised import AmpSupervisedTrainer, amp_device_type
from .trainer import SegmenterCriticTrainer

Average, _ = optional_import("ignite.metrics", "0.4.11", min_version, "Average")

__all__ = [
    "MethodSpec",
    "SegmentationMethod",
    "checkpoint_dict",
    "critic_lr_scheduler",
    "critic_optimizer",
    "loss_metrics",
    "method_batch_sampler",
    "method_critic",
    "method_loss",
    "method_objective",
    "method_spec",
    "output_values",
    "segmentation_trainer",
    "to_device",
]


class SegmentationMethod(StrEnum):
    """The training methods of the package (see the module docstring)."""

    CE = "ce"
    FOCAL = "focal"
    DICE_CE = "dice_ce"
    TCE_IMAGE = "tce_image"
    TCE_CLASS = "tce_class"
    STOCHASTIC_TCE = "stochastic_tce"
    GAMBLING = "gambling"
    ADVERSARIAL = "adversarial"
    CONFIDENCE = "confidence"
    SEGAN = "segan"


@dataclass(frozen=True)
class MethodSpec:
    """What a method needs from a workflow.

    Attributes:
        method: the method.
        critic: the class name of its critic, or None.
        map_key: the key of its critic's per-pixel map in an evaluator's output (``"betting_map"``,
            ``"confidence_map"``), or None.
        loss_keys: the scalars of the trainer's output (``engine.state.output``) at every iteration.
        class_sampling: whether the training batches are drawn class-conditionally (stochastic TCE).
    """

    method: SegmentationMethod
    critic: str | None
    map_key: str | None
    loss_keys: tuple[str, ...]
    class_sampling: bool = False

    @property
    def has_critic(self) -> bool:
        """Whether the method trains a critic beside the segmenter."""
        return self.critic is not None

    @property
    def extra_loss_keys(self) -> tuple[str, ...]:
        """:attr:`loss_keys` without ``"loss"`` (the trainer's key metric logs that one)."""
        return tuple(k for k in self.loss_keys if k != "loss")

    def critic_map(self, enabled: bool = True) -> str | None:
        """:attr:`map_key` when ``enabled`` (a workflow's switch for the critic's map), else None."""
        return self.map_key if enabled else None

    def figure_map_keys(self, critic_map: bool = True) -> tuple[str, ...]:
        """The per-pixel maps worth drawing: the class probabilities (``"prob"``) and, with
        ``critic_map``, the critic's map (:attr:`map_key`) when the method has one."""
        key = self.critic_map(critic_map)
        return ("prob",) if key is None else ("prob", key)


_SPECS = {
    SegmentationMethod.GAMBLING: ("Gambler", "betting_map", ("loss", "critic_loss", "ce")),
    SegmentationMethod.ADVERSARIAL: ("PatchDiscriminator", None, ("loss", "critic_loss", "ce")),
    # ConfidenceNetwork is an alias of Gambler (the same U-Net): its class is named "Gambler"
    SegmentationMethod.CONFIDENCE: ("Gambler", "confidence_map", ("loss", "critic_loss")),
    SegmentationMethod.SEGAN: ("PatchDiscriminator", None, ("loss", "critic_loss")),
}


def method_spec(method: SegmentationMethod | str) -> MethodSpec:
    """The :class:`MethodSpec` of a method name.

    Raises:
        ValueError: for an unknown name (the message lists the methods).
    """
    m = look_up_option(method, SegmentationMethod)
    critic, map_key, keys = _SPECS.get(m, (None, None, ("loss",)))
    return MethodSpec(m, critic, map_key, keys, class_sampling=m == SegmentationMethod.STOCHASTIC_TCE)


def method_loss(
    method: SegmentationMethod | str,
    focal_gamma: float = 2.0,
    tce_t: float = 1.0,
    class_weight: Sequence[float] | None = None,
) -> nn.Module | None:
    """The loss a ``SupervisedTrainer`` trains a method with; None for the methods with a critic
    (their objective holds the loss, :func:`method_objective`).

    Inputs of every loss: logits ``(B, C, *spatial)`` and index labels ``(B, 1, *spatial)``.

    Args:
        method: the method name.
        focal_gamma: the focusing exponent of ``focal`` (Lin et al. 2017).
        tce_t: the tilt of ``tce_image``, ``tce_class`` and ``stochastic_tce`` (checked here; for
            ``stochastic_tce`` it acts through :class:`~monai_gamble.handlers.StochasticTCEHandler`).
        class_weight: optional class weights (C values) of the cross-entropy terms.

    Raises:
        ValueError: for an unknown method or a NaN/infinite tilt.
    """
    m = look_up_option(method, SegmentationMethod)
    weight = None if class_weight is None else torch.as_tensor(class_weight, dtype=torch.float32)
    if m == SegmentationMethod.CE:
        return CrossEntropyLoss(weight=weight)
    if m == SegmentationMethod.FOCAL:
        return FocalLoss(gamma=float(focal_gamma), to_onehot_y=True, use_softmax=True, weight=weight)
    if m == SegmentationMethod.DICE_CE:
        return DiceCELoss(to_onehot_y=True, softmax=True, weight=weight)
    if m in (SegmentationMethod.TCE_IMAGE, SegmentationMethod.TCE_CLASS, SegmentationMethod.STOCHASTIC_TCE):
        return tilted_loss(str(m), t=tce_t, weight=weight)
    return None


def method_objective(
    method: SegmentationMethod | str,
    lambda_ce: float = 1.0,
    lambda_bet: float = 1.0,
    beta: float = 0.02,
    bet_activation: str = "sigmoid",
    lambda_adv: float | None = None,
    confidence_gamma: float = 2.0,
    segan_clip: float | None = 0.05,
    lambda_dice: float = 1.0,
) -> CriticObjective | None:
    """The :class:`CriticObjective` of a method with a critic; None for the others.

    Args:
        method: the method name.
        lambda_ce: gambling: weight of the plain cross-entropy (:class:`~monai_gamble.losses.GamblingLoss`).
        lambda_bet: gambling: weight of the betting-map-weighted cross-entropy.
        beta: gambling: the betting map's smoothing.
        bet_activation: gambling: ``"sigmoid"`` or ``"exp"``.
        lambda_adv: adversarial / confidence: weight of the adversarial term (None: 0.01 for
            ``adversarial``, 0.05 for ``confidence``, the thyroid paper's values).
        confidence_gamma: confidence: focusing exponent of the confidence weight.
        segan_clip: SegAN: weight clipping bound of the critic.
        lambda_dice: SegAN: weight of the Dice term.

    Raises:
        ValueError: for an unknown method.
    """
    m = look_up_option(method, SegmentationMethod)
    if m == SegmentationMethod.GAMBLING:
        return GamblingObjective(lambda_ce=lambda_ce, lambda_bet=lambda_bet, beta=beta, activation=bet_activation)
    if m == SegmentationMethod.ADVERSARIAL:
        return AdversarialObjective(lambda_adv=0.01 if lambda_adv is None else lambda_adv)
    if m == SegmentationMethod.CONFIDENCE:
        return ConfidenceObjective(lambda_adv=0.05 if lambda_adv is None else lambda_adv, gamma=confidence_gamma)
    if m == SegmentationMethod.SEGAN:
        return SegANObjective(clip=segan_clip, lambda_dice=lambda_dice)
    return None


def method_critic(
    method: SegmentationMethod | str,
    spatial_dims: int,
    in_channels: int,
    num_classes: int,
    channels: Sequence[int] = (16, 32, 64, 128),
    norm: str | tuple = "instance",
) -> nn.Module | None:
    """The critic of a method, built for the data's dimensionality and channels; None without one.

    - ``gambling``: :class:`~monai_gamble.networks.nets.Gambler` ``(image, softmax) -> betting logits
      (B, 1, *spatial)``;
    - ``confidence``: :class:`~monai_gamble.networks.nets.ConfidenceNetwork` (the same U-Net);
    - ``adversarial``: MONAI's ``PatchDiscriminator`` on ``cat(image, softmax)``
      (``in_channels + num_classes`` channels), ``len(channels) - 1`` strided layers of
      ``channels[0]`` base channels;
    - ``segan``: the same on SegAN's masked images
      (:func:`~monai_gamble.losses.masked_critic_input`: ``in_channels * (num_classes - 1)`` channels).

    Args:
        method: the method name.
        spatial_dims: 2 or 3.
        in_channels: image channels (modalities).
        num_classes: C, the segmenter's output channels.
        channels: the critic's channels per level (at least two levels).
        norm: the normalisation layers (``"instance"`` suits the small batches of 3D patches).

    Raises:
        ValueError: for an unknown method, ``spatial_dims`` other than 2 or 3, or fewer than 2 levels.
    """
    m = look_up_option(method, SegmentationMethod)
    if int(spatial_dims) not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
    if len(channels) < 2:
        raise ValueError(f"the critic needs at least two levels of channels, got {channels}.")
    chans = tuple(int(c) for c in channels)
    if m in (SegmentationMethod.GAMBLING, SegmentationMethod.CONFIDENCE):
        cls = Gambler if m == SegmentationMethod.GAMBLING else ConfidenceNetwork
        return cls(
            spatial_dims=spatial_dims, in_channels=in_channels, pred_channels=num_classes, channels=chans, norm=norm
        )
    if m in (SegmentationMethod.ADVERSARIAL, SegmentationMethod.SEGAN):
        critic_in = (
            in_channels + num_classes if m == SegmentationMethod.ADVERSARIAL else in_channels * (num_classes - 1)
        )
        return PatchDiscriminator(
            spatial_dims=spatial_dims, channels=chans[0], in_channels=critic_in, out_channels=1,
            num_layers_d=len(chans) - 1, norm=norm,
        )  # fmt: skip
    return None


def to_device(module: nn.Module | None, device: str | torch.device, distributed: bool = False) -> nn.Module | None:
    """``module`` on ``device``, wrapped in ``DistributedDataParallel`` when ``distributed``
    (``device_ids`` on CUDA); None stays None (a method without a critic)."""
    if module is None:
        return None
    device = torch.device(device)
    module = module.to(device)
    if distributed:
        ids = [device] if device.type == "cuda" else None
        module = nn.parallel.DistributedDataParallel(module, device_ids=ids)
    return module


def critic_optimizer(critic: nn.Module | None, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer | None:
    """``torch.optim.AdamW`` over the critic's parameters; None when the method has no critic."""
    if critic is None:
        return None
    return torch.optim.AdamW(critic.parameters(), lr=lr, weight_decay=weight_decay)


def critic_lr_scheduler(
    optimizer: torch.optim.Optimizer | None, max_epochs: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """Cosine annealing of the critic's learning rate over ``max_epochs`` (stepped per epoch, as the
    segmenter's); None without a critic optimizer."""
    if optimizer is None:
        return None
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max_epochs)


def checkpoint_dict(**objects: Any) -> dict[str, Any]:
    """The ``save_dict`` / ``load_dict`` of MONAI's ``CheckpointSaver`` / ``CheckpointLoader``: the
    given objects without the None ones (``checkpoint_dict(model=net, critic=None) == {"model": net}``)."""
    return {k: v for k, v in objects.items() if v is not None}


def method_batch_sampler(
    method: SegmentationMethod | str,
    class_presence: Any,
    batch_size: int,
    num_batches: int | None = None,
    seed: int = 0,
) -> ClassConditionalBatchSampler | None:
    """The class-conditional batch sampler of ``stochastic_tce`` (lines 1, 3, 4 of Algorithm 1;
    sharded over the ranks under DDP); None for the other methods (plain shuffled batches).

    Args:
        method: the method name.
        class_presence: ``(N, C)`` booleans of the training items, e.g.
            :meth:`monai_gamble.data.SegmentationDataset.class_presence`; a callable is called first,
            so that the labels are looked at only for ``stochastic_tce``.
        batch_size: images per batch (per rank).
        num_batches: batches per epoch (default: one pass over the data).
        seed: the seed of the class and image draws.
    """
    if not method_spec(method).class_sampling:
        return None
    presence = class_presence() if callable(class_presence) else class_presence
    return ClassConditionalBatchSampler(presence, batch_size=batch_size, num_batches=num_batches, seed=seed)


class _OutputValues:
    """``output -> {key: float}`` of a MONAI engine's (decollated) output, for progress bars."""

    def __init__(self, keys: Sequence[str]) -> None:
        self.keys = tuple(keys)

    def __call__(self, output: Any) -> dict[str, float]:
        return {k: float(from_engine([k], first=True)(output)) for k in self.keys}


def output_values(keys: Sequence[str]) -> Callable[[Any], dict[str, float]]:
    """An ``output_transform`` that gives the scalars ``keys`` of a trainer's output as a dict
    (e.g. for :class:`monai_gamble.handlers.ProgressBar`)."""
    return _OutputValues(keys)


def loss_metrics(keys: Iterable[str], prefix: str = "train") -> dict[str, Any]:
    """Ignite ``Average`` metrics ``{"<prefix>_<key>": ...}`` of scalars of a trainer's output (e.g.
    ``critic_loss``), for a trainer's ``additional_metrics``: logged every epoch like the key metric."""
    return {f"{prefix}_{k}": Average(output_transform=from_engine([k], first=True)) for k in keys}


def segmentation_trainer(
    device: str | torch.device,
    max_epochs: int,
    train_data_loader: Iterable,
    network: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_function: Callable | None = None,
    critic: nn.Module | None = None,
    critic_optimizer: torch.optim.Optimizer | None = None,
    objective: CriticObjective | None = None,
    critic_warmup_iterations: int = 0,
    ce_only_epochs: int = 0,
    alternation: str = "iteration",
    fused: bool = False,
    **kwargs: Any,
) -> SupervisedTrainer:
    """The trainer of a method: :class:`SegmenterCriticTrainer` when there is an ``objective`` (a
    method with a critic), else MONAI's ``SupervisedTrainer`` with ``loss_function``; with ``amp`` on
    a device other than CUDA, :class:`~monai_gamble.engines.AmpSupervisedTrainer` instead (MONAI's
    trainer autocasts on CUDA only, and would train in float32 on a CPU).

    Args:
        device, max_epochs, train_data_loader, network, optimizer: as ``SupervisedTrainer``.
        loss_function: the loss of a method without a critic (:func:`method_loss`).
        critic: the critic (:func:`method_critic`), with ``objective``.
        critic_optimizer: the critic's optimizer, with ``objective``.
        objective: the method's objective (:func:`method_objective`), or None.
        critic_warmup_iterations, ce_only_epochs, alternation, fused: the schedule of
            :class:`SegmenterCriticTrainer` (ignored without a critic).
        kwargs: the other arguments of ``SupervisedTrainer`` (``inferer``, ``key_train_metric``,
            ``additional_metrics``, ``train_handlers``, ``amp``, ``metric_cmp_fn``, ...).

    Raises:
        ValueError: for an objective without a critic or its optimizer, or neither an objective nor a loss.
    """
    common = {"device": device, "max_epochs": max_epochs, "train_data_loader": train_data_loader}
    if objective is not None:
        if critic is None or critic_optimizer is None:
            raise ValueError(f"{type(objective).__name__} needs a critic and a critic_optimizer.")
        return SegmenterCriticTrainer(
            **common, network=network, optimizer=optimizer, critic=critic, critic_optimizer=critic_optimizer,
            objective=objective, critic_warmup_iterations=critic_warmup_iterations, ce_only_epochs=ce_only_epochs,
            alternation=alternation, fused=fused, **kwargs,
        )  # fmt: skip
    if loss_function is None:
        raise ValueError("a method without a critic needs a loss_function (see method_loss).")
    cls = AmpSupervisedTrainer if kwargs.get("amp") and amp_device_type(device) != "cuda" else SupervisedTrainer
    return cls(**common, network=network, optimizer=optimizer, loss_function=loss_function, **kwargs)
