"""Segmentation metric handlers in physical units: spacing from the label's affine, per class and
averaged per image, one shared boundary pass."""

import numpy as np
import pytest
import torch
from ignite.engine import Engine
from monai.data import MetaTensor
from monai.metrics import compute_dice

from monai_gamble.handlers import (
    SegmentationMetricHandler,
    metric_display_names,
    segmentation_metric_handlers,
    shared_boundary_cache,
    spacing_from_affine,
)
from monai_gamble.metrics import compute_boundary_metrics


def _onehot(index: np.ndarray, c: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.as_tensor(index).long(), c).movedim(-1, 0).float()


def _pair(shift_z: int = 1):
    """A 3-class (C, X, Y, Z) reference and a prediction whose lesion is shifted by ``shift_z`` slices."""
    gt = np.zeros((16, 16, 12), int)
    gt[2:14, 2:14, 2:10] = 1
    gt[6:10, 6:10, 4:7] = 2
    pred = gt.copy()
    pred[gt == 2] = 1
    pred[6:10, 6:10, 4 + shift_z : 7 + shift_z] = 2
    return _onehot(pred, 3), _onehot(gt, 3)


def _run(handlers, batches):
    engine = Engine(lambda e, b: b)
    for name, h in handlers.items():
        h.attach(engine, name)
    engine.run(batches, max_epochs=1)
    return engine


def test_distances_are_in_mm_from_the_affine():
    pred, gt = _pair(shift_z=1)
    affine = torch.diag(torch.tensor([0.8, 0.8, 5.0, 1.0], dtype=torch.float64))
    y = [MetaTensor(gt, affine=affine)]
    handlers = {
        "hd": SegmentationMetricHandler("hausdorff", classes=2),
        "hd_px": SegmentationMetricHandler("hausdorff", classes=2, spacing=None),
        "dice": SegmentationMetricHandler("dice"),
        "dice_lesion": SegmentationMetricHandler("dice", classes=2),
        "bf": SegmentationMetricHandler("bf_score", classes=[1, 2], tolerance=1.0),
    }
    engine = _run(handlers, [([pred], y)])
    m = engine.state.metrics
    assert m["hd"] == pytest.approx(5.0) and m["hd_px"] == pytest.approx(1.0)  # one slice of 5 mm
    dice = compute_dice(pred[None], gt[None], include_background=True, ignore_empty=False)[0]
    assert m["dice_lesion"] == pytest.approx(float(dice[2])) and m["dice"] == pytest.approx(float(dice[1:].mean()))
    ref = compute_boundary_metrics(pred[None], gt[None], ["bf"], tolerance=1.0, spacing=(0.8, 0.8, 5.0))["bf"][0]
    assert m["bf"] == pytest.approx(float(ref[1:].mean()))
    assert engine.state.metric_details["dice"].shape == (1, 1)  # one value per image: one report column


def test_one_boundary_pass_per_batch_and_fixed_spacing():
    pred, gt = _pair()
    handlers = segmentation_metric_handlers(
        ["background", "organ", "lesion"], prefix="val", metrics=("hd95", "chamfer", "bf_score", "assd"),
        spacing=(1.0, 1.0, 2.0),
    )  # fmt: skip
    assert set(handlers) == {
        f"val_{m}{c}" for m in ("hd95", "chamfer", "bf_score", "assd") for c in ("", "_organ", "_lesion")
    }
    engine = _run(handlers, [(pred[None].clone(), gt[None].clone()) for _ in range(2)])
    cache = shared_boundary_cache(engine)
    assert cache.misses == 2 and cache.hits == 2 * (len(handlers) - 1)
    ref = compute_boundary_metrics(pred[None], gt[None], ["hausdorff95"], spacing=(1.0, 1.0, 2.0))["hausdorff95"]
    assert engine.state.metrics["val_hd95_lesion"] == pytest.approx(float(ref[0, 2]))


def test_missed_class_is_inf_and_names():
    pred, gt = _pair()
    pred[1] += pred[2]
    pred[2] = 0  # the lesion is missed
    engine = _run({"hd": SegmentationMetricHandler("hd95", spacing=None)}, [(pred[None], gt[None])])
    assert engine.state.metrics["hd"] == float("inf")
    names = metric_display_names(["background", "organ", "Lesion 2"], prefix="test", metrics=("dice", "hd95"))
    assert names == {"test_dice": "Dice", "test_dice_organ": "Dice organ", "test_dice_lesion_2": "Dice Lesion 2",
                     "test_hd95": "HD95 (mm)", "test_hd95_organ": "HD95 organ (mm)",
                     "test_hd95_lesion_2": "HD95 Lesion 2 (mm)"}  # fmt: skip
    two = segmentation_metric_handlers(["background", "fg"], skip=["val_dice"])
    assert set(two) == {"val_hd95", "val_chamfer", "val_bf_score"}  # no per-class copies of one class


def test_spacing_needs_an_affine_and_classes_must_fit():
    with pytest.raises(ValueError, match="no affine"):
        spacing_from_affine([torch.zeros(1, 4, 4)])
    assert spacing_from_affine(
        MetaTensor(torch.zeros(2, 1, 4, 4), affine=torch.diag(torch.tensor([2.0, 3.0, 1.0])))
    ) == [
        (2.0, 3.0),
        (2.0, 3.0),
    ]
    pred, gt = _pair()
    with pytest.raises(ValueError, match="do not fit"):
        _run({"d": SegmentationMetricHandler("dice", classes=5, spacing=None)}, [(pred[None], gt[None])])
    with pytest.raises(ValueError, match="spacing must be"):
        SegmentationMetricHandler("dice", spacing="voxels")
