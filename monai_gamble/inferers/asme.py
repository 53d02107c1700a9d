"""Test-time ensembles of one model over invertible transforms: the mean (flip TTA) and ASME.

Adaptive single-model ensembling (ASME) is from Liao, Ng & Hung, "Ultrasound Nerve Segmentation"
(VRDL final project, NYCU 2022; their code: github.com/Jia-Wei-Liao/Ultrasound_Nerve_Segmentation).
"""

from __future__ import annotations

import csv
import logging
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from monai.inferers import Inferer
from monai.utils import StrEnum, look_up_option

__all__ = [
    "AdaptiveEnsembleInferer",
    "EnsembleActivation",
    "TransformEnsembleInferer",
    "asme_weights",
    "dice_similarity_matrix",
]

logger = logging.getLogger(__name__)

#: a transform of a test-time ensemble: the spatial axes to flip (``()``: identity), or a pair
#: ``(forward, inverse)`` of callables on batches ``(B, C, *spatial)``
TransformSpec = Sequence[int] | tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]


class EnsembleActivation(StrEnum):
    """How network outputs become probabilities: ``"softmax"`` over channels or ``"sigmoid"`` per channel."""

    SOFTMAX = "softmax"
    SIGMOID = "sigmoid"


def dice_similarity_matrix(masks: torch.Tensor) -> torch.Tensor:
    """Pairwise Dice similarity of N binary predictions of each image.

    .. math::

        A_{ij} = \\frac{2\\,|Y_i \\cap Y_j|}{|Y_i| + |Y_j|}, \\qquad A_{ij} = 1 \\text{ if } |Y_i| + |Y_j| = 0,

    averaged over the K channels (classes) given. Two empty predictions agree fully (1), as in the
    Dice of Kaggle's nerve challenge; the diagonal is 1. All pairs come from one batched matrix
    product of the flattened masks.

    Args:
        masks: ``(N, B, K, *spatial)`` binary predictions (bool or 0/1) of B images by N ensemble
            members, K foreground channels.

    Returns:
        ``(B, N, N)`` float32, symmetric, in [0, 1].

    Raises:
        ValueError: for fewer than three dimensions.
    """
    if masks.ndim < 3:
        raise ValueError(f"expected masks (N, B, K, *spatial), got shape {tuple(masks.shape)}.")
    n, b, k = masks.shape[:3]
    x = masks.reshape(n, b, k, -1).permute(1, 2, 0, 3).float()  # (B, K, N, S)
    inter = x @ x.transpose(-1, -2)  # (B, K, N, N)
    size = x.sum(-1)
    denom = size[..., :, None] + size[..., None, :]
    dice = torch.where(denom > 0, 2 * inter / denom.clamp_min(1), torch.ones_like(inter))
    return dice.mean(1)


def asme_weights(similarity_matrix: torch.Tensor, a: float = 100.0, atol: float = 1e-6) -> torch.Tensor:
    """ASME weights of an ensemble from the similarity matrix of its members' predictions.

    With :math:`v` the eigenvector of the largest eigenvalue of the similarity matrix :math:`A`
    (unit length, absolute values; by Perron-Frobenius it is non-negative for a non-negative
    :math:`A`), the weights are

    .. math::

        c_i = \\frac{a^{v_i}}{\\sum_k a^{v_k}} = \\operatorname{softmax}(v \\ln a)_i,

    computed as a softmax for stability (Liao, Ng & Hung 2022, sec. 3.9; ``a = 100``). A member
    that agrees with the others has a large :math:`v_i` and a large weight; an outlier's
    :math:`v_i` is near 0. When the largest eigenvalue is repeated (e.g. :math:`A = I`, no two
    members agree) its eigenvector is not unique: :math:`v` is then the projection of the uniform
    vector onto that eigenspace, so the weights never depend on the order of the members.

    Args:
        similarity_matrix: ``(N, N)`` or ``(B, N, N)``, symmetric, non-negative (e.g. from
            :func:`dice_similarity_matrix`).
        a: the base, > 0 (1 gives uniform weights; larger values favour the consensus more).
        atol: eigenvalues within ``atol`` of the largest count as equal to it.

    Returns:
        The weights, ``(N,)`` or ``(B, N)`` (float32, on the input's device), summing to 1.

    Raises:
        ValueError: for a non-square, non-symmetric, negative or non-finite matrix, or ``a <= 0``.

    Example:
        >>> A = torch.tensor([[1, 0, 0.52, 0.79], [0, 1, 0, 0], [0.52, 0, 1, 0.65], [0.79, 0, 0.65, 1]])
        >>> asme_weights(A)  # the example of the paper
        tensor([0.3291, 0.0227, 0.2651, 0.3831])
    """
    if not (math.isfinite(a) and a > 0):
        raise ValueError(f"a must be a positive number, got {a}.")
    s = torch.as_tensor(similarity_matrix)
    if s.ndim not in (2, 3) or s.shape[-1] != s.shape[-2] or s.shape[-1] < 1:
        raise ValueError(f"similarity_matrix must be (N, N) or (B, N, N), got shape {tuple(s.shape)}.")
    s64 = s.detach().double()
    if not torch.isfinite(s64).all():
        raise ValueError("similarity_matrix holds NaN or infinite values.")
    if (s64 < 0).any():
        raise ValueError("similarity_matrix must be non-negative (Dice similarities lie in [0, 1]).")
    if not torch.allclose(s64, s64.transpose(-1, -2), atol=1e-5):
        raise ValueError("similarity_matrix must be symmetric.")
    batched = s64.ndim == 3
    s64 = s64 if batched else s64[None]
    eigvals, eigvecs = torch.linalg.eigh(s64)  # ascending eigenvalues, orthonormal eigenvectors
    top = eigvals >= eigvals[..., -1:] - atol  # the eigenspace of the largest eigenvalue
    uniform = torch.full(s64.shape[:-1], 1.0 / math.sqrt(s64.shape[-1]), dtype=s64.dtype, device=s64.device)
    coeff = (eigvecs.transpose(-1, -2) @ uniform[..., None])[..., 0] * top
    v = (eigvecs @ coeff[..., None])[..., 0]
    norm = v.norm(dim=-1, keepdim=True)
    v = torch.where(norm > 1e-12, v / norm.clamp_min(1e-12), eigvecs[..., -1]).abs()
    weights = torch.softmax(v * math.log(a), dim=-1).float()
    return weights if batched else weights[0]


def _flip(axes: tuple[int, ...]) -> Callable[[torch.Tensor], torch.Tensor]:
    dims = [a + 2 for a in axes]
    return lambda x: torch.flip(x, dims) if dims else x


class TransformEnsembleInferer(Inferer):
    """Test-time augmentation by invertible transforms, with the mean of the soft predictions (flip TTA).

    The network runs on the image and on its transformed copies :math:`T_i(I)` in **one batched
    forward pass** (the copies concatenated along the batch dimension), each output is mapped
    back by :math:`T_i^{-1}`, turned into probabilities, and the probabilities are blended:

    .. math:: \\hat{Y} = \\sum_{i=0}^{N-1} c_i\\, \\sigma\\big(T_i^{-1}(f(T_i(I)))\\big),

    with :math:`c_i = 1/N` here (:class:`AdaptiveEnsembleInferer` adapts them). The default
    transforms are the identity and the flips of the first two spatial axes, one at a time and
    both; any list of axes to flip, or of ``(forward, inverse)`` callables, can be given (the
    transforms must keep the input's shape, so that the copies can be batched). In eval mode the
    batched forward gives each copy the output it would get alone.

    By default the result is returned in logit space (:math:`\\log \\hat{Y}` for softmax, whose
    softmax is :math:`\\hat{Y}` again; :math:`\\operatorname{logit}\\hat{Y}` for sigmoid), so the
    inferer replaces ``SimpleInferer`` before the same ``Activationsd`` post-processing.

    The weights of the last call are kept in ``last_weights`` ``(B, N)``, the pairwise Dice
    similarities of the members' hard predictions (:func:`dice_similarity_matrix`) in
    ``last_similarity`` ``(B, N, N)``, and every call's weights in ``weights_history`` (see
    :meth:`save_weights`); they are logged at DEBUG level on the ``monai_gamble.inferers.asme``
    logger and passed to ``callback``, if any.

    Args:
        transforms: the ensemble's transforms; each is a sequence of spatial axes to flip (``()``
            is the identity) or a ``(forward, inverse)`` pair of callables on ``(B, C, *spatial)``
            tensors. None: ``[(), (0,), (1,), (0, 1)]``.
        activation: ``"softmax"`` (over the channels; the hard prediction is the argmax and its
            foreground channels 1..C-1 are compared) or ``"sigmoid"`` (per channel, thresholded at
            ``threshold``; all channels are compared).
        threshold: the sigmoid threshold of the hard predictions.
        inferer: an inferer for the batched forward (e.g. ``SlidingWindowInferer``); None calls the
            network directly.
        return_logits: return the blend in logit space (True) or as probabilities (False).
        callback: called as ``callback(weights, similarity)`` after each call.
        names: names of the transforms (for :meth:`save_weights`); None: ``identity``,
            ``flip_0``, ``flip_1``, ``flip_0_1``, ... (``transform_<i>`` for callables).

    Raises:
        ValueError: for an empty list of transforms, a transform that is neither axes nor a pair of
            callables, negative or repeated axes, names of the wrong number, or an unknown activation.

    Example:
        >>> inferer = TransformEnsembleInferer()  # identity, two flips and both
        >>> with torch.no_grad():
        ...     logits = inferer(images, network.eval())  # (B, C, H, W), as the network's
    """

    def __init__(
        self,
        transforms: Sequence[TransformSpec] | None = None,
        activation: EnsembleActivation | str = EnsembleActivation.SOFTMAX,
        threshold: float = 0.5,
        inferer: Inferer | None = None,
        return_logits: bool = True,
        callback: Callable[[torch.Tensor, torch.Tensor], Any] | None = None,
        names: Sequence[str] | None = None,
    ) -> None:
        Inferer.__init__(self)
        specs = [(), (0,), (1,), (0, 1)] if transforms is None else list(transforms)
        if not specs:
            raise ValueError("transforms must hold at least one transform (() is the identity).")
        self._forward: list[Callable[[torch.Tensor], torch.Tensor]] = []
        self._inverse: list[Callable[[torch.Tensor], torch.Tensor]] = []
        default_names = []
        for i, spec in enumerate(specs):
            if isinstance(spec, (tuple, list)) and len(spec) == 2 and all(callable(f) for f in spec):
                self._forward.append(spec[0])
                self._inverse.append(spec[1])
                default_names.append(f"transform_{i}")
                continue
            try:
                axes = tuple(int(a) for a in spec)
            except (TypeError, ValueError):
                raise ValueError(
                    f"transform {i} ({spec!r}) must be a sequence of spatial axes to flip or a (forward, inverse) "
                    "pair of callables."
                ) from None
            if any(a < 0 for a in axes) or len(set(axes)) != len(axes):
                raise ValueError(f"transform {i}: the axes to flip must be distinct non-negative integers, got {spec}.")
            self._forward.append(_flip(axes))
            self._inverse.append(_flip(axes))
            default_names.append("identity" if not axes else "flip_" + "_".join(map(str, axes)))
        if names is not None and len(names) != len(specs):
            raise ValueError(f"names has {len(names)} entries for {len(specs)} transforms.")
        self.names = list(names) if names is not None else default_names
        self.activation = look_up_option(activation, EnsembleActivation)
        self.threshold = float(threshold)
        self.inferer = inferer
        self.return_logits = return_logits
        self.callback = callback
        self.last_weights: torch.Tensor | None = None
        self.last_similarity: torch.Tensor | None = None
        self.weights_history: list[torch.Tensor] = []

    @property
    def num_transforms(self) -> int:
        """N, the number of ensemble members."""
        return len(self._forward)

    def reset(self) -> None:
        """Forget the weights of the previous calls."""
        self.last_weights = self.last_similarity = None
        self.weights_history = []

    def ensemble_weights(self, similarity: torch.Tensor) -> torch.Tensor:
        """Weights ``(B, N)`` of the members from their similarity matrices ``(B, N, N)``: uniform here."""
        return torch.full(similarity.shape[:2], 1.0 / similarity.shape[-1], device=similarity.device)

    def __call__(self, inputs: torch.Tensor, network: Callable[..., Any], *args: Any, **kwargs: Any) -> torch.Tensor:
        """Run the ensemble.

        Args:
            inputs: ``(B, C_in, *spatial)``.
            network: the model (in eval mode); its output is ``(B, C, *spatial)``.
            args: positional arguments of the network (or of ``inferer``).
            kwargs: keyword arguments of the network (or of ``inferer``).

        Returns:
            ``(B, C, *spatial)``: the blend in logit space (``return_logits``) or as probabilities.

        Raises:
            ValueError: if a transform changes the input's shape or the network does not return one tensor.
        """
        n, b = self.num_transforms, inputs.shape[0]
        copies = [f(inputs) for f in self._forward]
        for i, c in enumerate(copies):
            if c.shape != inputs.shape:
                raise ValueError(
                    f"transform {self.names[i]} changes the input's shape {tuple(inputs.shape)} to {tuple(c.shape)}; "
                    "the copies must have one shape to run in one batch."
                )
        batch = torch.cat(copies, dim=0)
        out = (
            self.inferer(batch, network, *args, **kwargs)
            if self.inferer is not None
            else network(batch, *args, **kwargs)
        )
        if not isinstance(out, torch.Tensor):
            raise ValueError(f"the network must return one tensor (B, C, *spatial), got {type(out).__name__}.")
        out = out.reshape(n, b, *out.shape[1:])
        back = torch.stack([inv(out[i]) for i, inv in enumerate(self._inverse)]).float()  # (N, B, C, *spatial)
        if self.activation == EnsembleActivation.SOFTMAX:
            probs = torch.softmax(back, dim=2)
            c = probs.shape[2]
            hard = torch.nn.functional.one_hot(probs.argmax(2), c).movedim(-1, 2)[:, :, 1:] if c > 1 else probs > 0.5
        else:
            probs = torch.sigmoid(back)
            hard = probs > self.threshold
        similarity = dice_similarity_matrix(hard)
        weights = self.ensemble_weights(similarity).to(probs)
        blend = torch.einsum("bn,nb...->b...", weights, probs)
        self.last_weights, self.last_similarity = weights.detach().cpu(), similarity.detach().cpu()
        self.weights_history.append(self.last_weights)
        if logger.isEnabledFor(logging.DEBUG):
            for row in self.last_weights.tolist():
                logger.debug("%s weights %s", type(self).__name__, dict(zip(self.names, (round(w, 4) for w in row))))
        if self.callback is not None:
            self.callback(self.last_weights, self.last_similarity)
        if not self.return_logits:
            return blend
        tiny = torch.finfo(blend.dtype).tiny
        if self.activation == EnsembleActivation.SOFTMAX:
            return blend.clamp_min(tiny).log()
        return torch.logit(blend, eps=1e-7)

    def save_weights(self, path: str | os.PathLike, ids: Sequence[str] | None = None) -> dict[str, float]:
        """Write the weights of every image since the last :meth:`reset` to a CSV, one row per image.

        Args:
            path: the CSV (columns ``id`` and one per transform name).
            ids: the images' IDs in the order of the calls (e.g. the datalist's, with an unshuffled
                loader); None numbers them from 0.

        Returns:
            The mean weight of each transform.

        Raises:
            ValueError: if no weights were recorded or ``ids`` has another length.
        """
        if not self.weights_history:
            raise ValueError("no weights recorded: run the inferer first.")
        w = torch.cat(self.weights_history)
        ids = [str(i) for i in range(w.shape[0])] if ids is None else [str(i) for i in ids]
        if len(ids) != w.shape[0]:
            raise ValueError(f"{len(ids)} ids for {w.shape[0]} recorded images.")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["id", *self.names])
            writer.writerows([sid, *(f"{v:.6f}" for v in row)] for sid, row in zip(ids, w.tolist()))
        return dict(zip(self.names, w.mean(0).tolist()))


class AdaptiveEnsembleInferer(TransformEnsembleInferer):
    """Adaptive single-model ensemble (ASME): test-time augmentation weighted by agreement.

    As :class:`TransformEnsembleInferer` (one batched forward over the image and its invertible
    transforms, default: identity, the two flips and both), but the soft predictions are blended
    with the weights of :func:`asme_weights`: the pairwise Dice similarity matrix :math:`A` of the
    N hard predictions (diagonal 1; two empty predictions agree), its leading eigenvector
    :math:`v` (absolute values), and :math:`c_i = a^{v_i} / \\sum_k a^{v_k}`. A transformed copy
    whose prediction disagrees with the others gets a small weight, where the plain mean is
    pulled towards it (Liao, Ng & Hung, "Ultrasound Nerve Segmentation", 2022, sec. 3.9, with
    a = 100; +1 to +3 points of private Dice on Kaggle's nerve challenge).

    The weights depend only on the set of transforms, not on their order (a repeated top
    eigenvalue is resolved without arbitrary choices, see :func:`asme_weights`).

    Args:
        transforms: as :class:`TransformEnsembleInferer`.
        a: the base of the weights (the paper's 100).
        activation: ``"softmax"`` or ``"sigmoid"``.
        threshold: the sigmoid threshold of the hard predictions.
        inferer: an inferer for the batched forward, or None.
        return_logits: return the blend in logit space (True) or as probabilities (False).
        callback: called as ``callback(weights, similarity)`` after each call.
        names: names of the transforms.

    Raises:
        ValueError: as :class:`TransformEnsembleInferer`, and for ``a <= 0``.

    Example:
        >>> inferer = AdaptiveEnsembleInferer(a=100.0)
        >>> logits = inferer(images, network.eval())
        >>> inferer.last_weights  # (B, 4): identity, flip_0, flip_1, flip_0_1
    """

    def __init__(
        self,
        transforms: Sequence[TransformSpec] | None = None,
        a: float = 100.0,
        activation: EnsembleActivation | str = EnsembleActivation.SOFTMAX,
        threshold: float = 0.5,
        inferer: Inferer | None = None,
        return_logits: bool = True,
        callback: Callable[[torch.Tensor, torch.Tensor], Any] | None = None,
        names: Sequence[str] | None = None,
    ) -> None:
        if not (math.isfinite(a) and a > 0):
            raise ValueError(f"a must be a positive number, got {a}.")
        super().__init__(transforms, activation, threshold, inferer, return_logits, callback, names)
        self.a = float(a)

    def ensemble_weights(self, similarity: torch.Tensor) -> torch.Tensor:
        """ASME weights ``(B, N)`` from the similarity matrices ``(B, N, N)`` (:func:`asme_weights`)."""
        return asme_weights(similarity, self.a)
