"""The handlers that replaced the bundle configs' programs: the output summary, the ensemble weights report,
the per-class metrics table, and the progressive-resizing schedule helpers."""

import csv
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from ignite.engine import Engine
from monai.handlers import from_engine

from monai_gamble.handlers import (
    ClassFairness,
    EnsembleWeightsReport,
    OutputSummary,
    PerClassMetrics,
    describe_stages,
    total_epochs,
)
from monai_gamble.inferers import TransformEnsembleInferer


def test_output_summary_prints_absolute_paths_counts_and_mlflow(capsys):
    engine = Engine(lambda e, b: b)
    engine.data_loader = torch.utils.data.DataLoader(list(range(3)))
    summary = OutputSummary("run_1", {"masks": "eval/predictions"}, tracking_uri="sqlite:///x.db", experiment_name="e")
    summary.attach(engine)
    engine.run(engine.data_loader, max_epochs=1)
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "Outputs of run_1 (3 images):"
    assert f"  masks: {os.path.abspath('eval/predictions')}" in out
    assert "MLflow: sqlite:///x.db (experiment e; browse with: mlflow ui --backend-store-uri sqlite:///x.db)" in out
    assert OutputSummary("inference", {}, num_images=5)() == "Outputs of inference (5 images):"


def test_ensemble_weights_report_writes_prints_and_counts_the_ids(tmp_path, capsys):
    inferer = TransformEnsembleInferer(transforms=[[], [0]])
    net = torch.nn.Conv2d(1, 2, 1)
    batches = [[{"image": torch.rand(1, 8, 8), "id": f"case{i}"}] for i in range(3)]

    def step(engine, batch):
        engine.state.batch = batch
        return inferer(torch.stack([b["image"] for b in batch]), net)

    engine = Engine(step)
    report = EnsembleWeightsReport(inferer, tmp_path / "weights.csv", name="mean")
    report.attach(engine)
    engine.run(batches, max_epochs=1)
    rows = list(csv.DictReader(open(tmp_path / "weights.csv")))
    assert [r["id"] for r in rows] == ["case0", "case1", "case2"]
    assert report.means == pytest.approx({"identity": 0.5, "flip_0": 0.5})
    assert "Mean ensemble weights (mean): identity 0.5000, flip_0 0.5000" in capsys.readouterr().out
    engine.run(batches[:1], max_epochs=1)  # a new run starts afresh
    assert len(list(csv.DictReader(open(tmp_path / "weights.csv")))) == 1
    with pytest.raises(TypeError, match="records no ensemble weights"):
        EnsembleWeightsReport(torch.nn.Identity(), tmp_path / "w.csv")


def onehot(labels, num_classes):
    return F.one_hot(torch.as_tensor(labels).long(), num_classes).movedim(-1, 0).float()


def test_per_class_metrics_are_dataset_level_and_tabled_with_the_fairness_iou(tmp_path, capsys):
    gt = [torch.tensor([[0, 0, 1, 1]]), torch.tensor([[2, 2, 2, 0]])]
    pred = [torch.tensor([[0, 1, 1, 1]]), torch.tensor([[2, 0, 0, 0]])]
    batches = [[{"pred": onehot(p, 3), "label": onehot(g, 3)}] for p, g in zip(pred, gt)]
    engine = Engine(lambda e, batch: batch)
    fairness = ClassFairness(class_names=["bg", "a", "b"], output_transform=from_engine(["pred", "label"]))
    fairness.attach(engine, "test_iou")
    PerClassMetrics(["bg", "a", "b"], fairness, output_path=tmp_path / "t.md", title="demo", fairness_row="m").attach(
        engine
    )
    engine.run(batches, max_epochs=1)
    m = engine.state.metrics
    # dataset-level counts: class a has tp 2, fp 1, fn 0; class b tp 1, fp 0, fn 2
    assert m["test_precision_a"] == pytest.approx(2 / 3) and m["test_recall_a"] == pytest.approx(1.0)
    assert m["test_recall_b"] == pytest.approx(1 / 3) and m["test_f1_b"] == pytest.approx(0.5)
    precision = [m[f"test_precision_{n}"] for n in ("bg", "a", "b")]
    assert m["test_mean_precision"] == pytest.approx(np.nanmean(precision))
    text = (tmp_path / "t.md").read_text()
    assert text.startswith("## Per-class metrics, demo (dataset-level counts)")
    assert "| a | 0.6667 | 0.6667 | 1.0000 | 0.8000 |" in text and "| mean |" in text and "| m |" in text
    assert "| a | 0.6667 |" in capsys.readouterr().out
    with pytest.raises(TypeError, match="ClassFairness"):
        PerClassMetrics(["bg"], fairness=object())


def test_schedule_helpers():
    stages = [{"epochs": 2, "spatial_size": 16}, {"epochs": 3, "spatial_size": 32, "loss_function": torch.nn.BCELoss()}]
    assert total_epochs(stages) == 5
    assert describe_stages(stages)[1] == {"epochs": 3, "spatial_size": 32, "loss_function": "BCELoss"}
    with pytest.raises(ValueError, match="stage 0 has no 'epochs'"):
        total_epochs([{"spatial_size": 8}])
