import csv
import math

import numpy as np
import pytest
import torch
from ignite.engine import Engine, Events
from monai.handlers import MLFlowHandler
from monai.utils import path_to_sqlite_uri

from monai_gamble.handlers import (
    MMCL,
    BoundaryFScore,
    ChamferDistance,
    HausdorffDistance,
    MetricsReport,
    ProgressBar,
    SegmentationFigureHandler,
    format_summary_table,
    summarize,
)


def square(r0, c0, size=4, shape=(16, 16)):
    m = torch.zeros(1, *shape)
    m[0, r0 : r0 + size, c0 : c0 + size] = 1
    return torch.cat([1 - m, m])  # one-hot (2, H, W)


def make_batches():
    """Three one-image batches: perfect, shifted by one column, missed (empty prediction)."""
    gt = square(4, 4)
    preds = [square(4, 4), square(4, 5), torch.cat([torch.ones(1, 16, 16), torch.zeros(1, 16, 16)])]
    batches = []
    for i, p in enumerate(preds):
        prob = 0.9 * p + 0.05
        batches.append([{"image": torch.rand(1, 16, 16), "label": gt, "pred": p, "prob": prob, "id": f"case{i}"}])
    return batches


def run_evaluator(handlers, metrics):
    def step(engine, batch):
        engine.state.batch = batch  # decollated, as MONAI's evaluators leave it
        return [{k: v for k, v in item.items() if k != "id"} for item in batch]

    engine = Engine(step)
    for name, m in metrics.items():
        m.attach(engine, name)
    for h in handlers:
        h.attach(engine)
    engine.run(make_batches(), max_epochs=1)
    return engine


def all_metrics():
    from monai.handlers import from_engine

    ot = from_engine(["pred", "label"])
    return {
        "bf": BoundaryFScore(tolerance=1.0, output_transform=ot),
        "chamfer": ChamferDistance(output_transform=ot),
        "hd": HausdorffDistance(output_transform=ot),
        "mmcl": MMCL(output_transform=from_engine(["prob", "label"])),
    }


def test_metric_handlers_values():
    engine = run_evaluator([], all_metrics())
    m = engine.state.metrics
    assert m["bf"] == pytest.approx((1.0 + 0.5 + 0.0) / 3)
    assert math.isinf(m["chamfer"]) and math.isinf(m["hd"])
    assert m["mmcl"] == pytest.approx(0.95)
    assert engine.state.metric_details["chamfer"][:2, 0].tolist() == [0.0, 0.5]


def test_boundary_handlers_of_one_engine_compute_once_per_batch(monkeypatch):
    from monai.handlers import from_engine

    import monai_gamble.metrics.boundary as boundary_module
    from monai_gamble.handlers import shared_boundary_cache
    from monai_gamble.metrics import compute_boundary_metrics

    calls = []
    real = boundary_module.compute_boundary_distances

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(boundary_module, "compute_boundary_distances", counting)
    metrics = all_metrics()
    metrics["hd95"] = HausdorffDistance(percentile=95, output_transform=from_engine(["pred", "label"]))
    engine = run_evaluator([], metrics)
    assert len(calls) == 3  # three batches, four boundary handlers
    cache = shared_boundary_cache(engine)
    assert (cache.misses, cache.hits) == (3, 9)
    assert all(m.metric_fn.cache is cache for k, m in metrics.items() if k != "mmcl")
    # cleared at the end of the epoch: the last batch misses again (and is not kept alive)
    last_pred, last_label = from_engine(["pred", "label"])(engine.state.output)
    cache(last_pred, last_label, include_background=False)
    assert cache.misses == 4
    # the per-image values equal the one-call metrics of each batch
    batches = make_batches()
    expected = [
        compute_boundary_metrics(b[0]["pred"][None], b[0]["label"][None], tolerance=1.0, include_background=False)
        for b in batches
    ]
    for name, key in (("bf", "bf"), ("chamfer", "chamfer"), ("hd", "hausdorff"), ("hd95", "hausdorff95")):
        torch.testing.assert_close(engine.state.metric_details[name], torch.cat([e[key] for e in expected]))
    # another engine has its own cache
    assert shared_boundary_cache(Engine(lambda e, b: b)) is not cache


def test_boundary_handlers_share_one_pass_per_image_in_batches_of_several():
    """Ignite 0.5 feeds a handler a decollated batch one image at a time: the cache is per image."""
    from monai.handlers import from_engine

    from monai_gamble.handlers import shared_boundary_cache
    from monai_gamble.metrics import compute_boundary_metrics

    torch.manual_seed(0)
    batches = []
    for _ in range(2):  # two batches of three images
        preds = [(torch.rand(1, 16, 16) > 0.5).float() for _ in range(3)]
        labels = [(torch.rand(1, 16, 16) > 0.5).float() for _ in range(3)]
        batches.append([{"pred": torch.cat([1 - p, p]), "label": torch.cat([1 - g, g])} for p, g in zip(preds, labels)])
    engine = Engine(lambda e, batch: batch)
    ot = from_engine(["pred", "label"])
    handlers = {"bf": BoundaryFScore(output_transform=ot), "chamfer": ChamferDistance(output_transform=ot),
                "hd": HausdorffDistance(output_transform=ot)}  # fmt: skip
    for name, h in handlers.items():
        h.attach(engine, name)
    engine.run(batches, max_epochs=1)
    cache = shared_boundary_cache(engine)
    assert (cache.misses, cache.hits) == (6, 12)  # six images, each computed once and found twice
    expected = compute_boundary_metrics(
        torch.stack([i["pred"] for b in batches for i in b]),
        torch.stack([i["label"] for b in batches for i in b]),
        ("bf", "chamfer", "hausdorff"),
        include_background=False,
    )
    for name, key in (("bf", "bf"), ("chamfer", "chamfer"), ("hd", "hausdorff")):
        assert torch.equal(engine.state.metric_details[name], expected[key])


def test_metrics_report_writes_csv_and_markdown(tmp_path, capsys):
    report = MetricsReport(tmp_path, metric_names={"bf": "BF-score", "chamfer": "Chamfer"}, title="demo")
    run_evaluator([report], all_metrics())
    rows = list(csv.DictReader(open(tmp_path / "metrics_per_image.csv")))
    assert [r["id"] for r in rows] == ["case0", "case1", "case2"]
    assert [float(r["BF-score"]) for r in rows] == [1.0, 0.5, 0.0]
    assert [r["Chamfer"] for r in rows] == ["0", "0.5", "inf"]
    md = (tmp_path / "metrics_summary.md").read_text()
    assert "| BF-score | 0.5000 |" in md and "| Chamfer | inf | inf | 0.5000 |" in md
    assert "demo" in capsys.readouterr().out
    assert report.summary["Chamfer"]["n_inf"] == 1


def test_metrics_report_is_monais_metrics_saver_with_json_and_titles(tmp_path, capsys):
    import json

    from monai.handlers import MetricsSaver

    report = MetricsReport(tmp_path, metric_names={"bf": "BF-score"}, title=["demo", "split"], title_note="test")
    assert isinstance(report, MetricsSaver)
    run_evaluator([report], all_metrics())
    # MONAI's write_metrics_reports: the dataset-level values and each metric's per-image values
    assert "bf," in (tmp_path / "metrics.csv").read_text()
    raw = (tmp_path / "bf_raw.csv").read_text().splitlines()
    assert raw[0] == "filename,class0,mean" and raw[1] == "case0,1.0,1.0"
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["title"] == "demo, split (3 images, test)" and record["num_images"] == 3
    assert record["metrics"]["BF-score"]["mean"] == pytest.approx(0.5)
    assert record["dataset_metrics"]["bf"] == pytest.approx(0.5) and record["dataset_metrics"]["chamfer"] == "inf"
    assert "demo, split (3 images, test)" in capsys.readouterr().out


def test_metrics_report_missing_details(tmp_path):
    report = MetricsReport(tmp_path, metric_names=["nope"])
    with pytest.raises(KeyError, match="nope"):
        run_evaluator([report], all_metrics())


def test_summarize_conventions():
    s = summarize([1.0, 2.0, 3.0, float("nan")])
    assert s["mean"] == 2.0 and s["std"] == pytest.approx(np.std([1, 2, 3])) and s["n_nan"] == 1 and s["n"] == 4
    s = summarize([1.0, float("inf")])
    assert math.isinf(s["mean"]) and math.isinf(s["std"]) and s["median"] == math.inf and s["n_inf"] == 1
    assert math.isnan(summarize([float("nan")])["mean"])
    assert "| x | 2.0000 |" in format_summary_table({"x": summarize([1.0, 3.0])})


def test_figure_handler_saves_and_logs_to_mlflow(tmp_path):
    uri = path_to_sqlite_uri(tmp_path / "mlruns.db")
    mlflow_handler = MLFlowHandler(tracking_uri=uri, experiment_name="t", run_name="r", iteration_log=False)
    fig = SegmentationFigureHandler(tmp_path / "figs", num_images=2, map_keys=["prob"], mlflow_handler=mlflow_handler)
    engine = run_evaluator([mlflow_handler, fig], {})
    assert fig.last_figure_path == tmp_path / "figs" / "validation_epoch001.png"
    assert fig.last_figure_path.stat().st_size > 1000
    client = mlflow_handler.client
    run_id = mlflow_handler.cur_run.info.run_id
    assert [a.path for a in client.list_artifacts(run_id, "figures/validation")] == [
        "figures/validation/validation_epoch001.png"
    ]
    assert engine.state.epoch == 1
    mlflow_handler.close()


def test_figure_handler_bad_key(tmp_path):
    fig = SegmentationFigureHandler(tmp_path, map_keys=["betting_map"])
    with pytest.raises(KeyError, match="betting_map.*neither"):
        run_evaluator([fig], {})
    with pytest.raises(ValueError, match="num_images"):
        SegmentationFigureHandler(tmp_path, num_images=0)


def test_progress_bar_attaches_with_constructor_options():
    bar = ProgressBar(output_transform=lambda out: {"loss": 0.5}, desc="train")
    engine = Engine(lambda e, b: None)
    bar.attach(engine)
    assert engine.has_event_handler(bar._close, Events.EPOCH_COMPLETED) or engine._event_handlers
    engine.run([0, 1], max_epochs=1)


def write_per_image(folder, rows):
    folder.mkdir(parents=True)
    with open(folder / "metrics_per_image.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "Dice", "Chamfer"])
        w.writerows(rows)


def test_compare_reports_table_figure_and_inf(tmp_path, capsys):
    from monai_gamble.handlers import compare_reports

    assert compare_reports(tmp_path) is None  # nothing to compare
    write_per_image(tmp_path / "ce", [["a", 0.5, 2.0], ["b", 0.7, 4.0]])
    assert compare_reports(tmp_path) is None  # one method only
    write_per_image(tmp_path / "gambling", [["a", 0.8, 1.0], ["b", 0.0, "inf"]])
    table = compare_reports(tmp_path)
    lines = table.splitlines()
    assert lines[0] == "| metric | ce | gambling |"
    assert lines[2] == "| Dice | 0.6000 ± 0.1000 | 0.4000 ± 0.4000 |"  # population std
    assert lines[3] == "| Chamfer | 3.0000 ± 1.0000 | inf (1 inf) |"
    assert (tmp_path / "comparison.png").stat().st_size > 1000
    assert "Comparison of ce, gambling (ce: 2 images, gambling: 2 images)" in (tmp_path / "comparison.md").read_text()
    assert table in capsys.readouterr().out


def test_plot_metric_comparison_errors_and_inf():
    from monai_gamble.visualize import plot_metric_comparison

    s = {"a": {"Dice": {"mean": 0.5, "std": 0.1}, "HD": {"mean": math.inf, "std": math.inf}}}
    fig = plot_metric_comparison(s, higher_is_better={"Dice": True, "HD": False})
    assert [ax.get_title() for ax in fig.axes] == ["Dice \u2191", "HD \u2193"]
    with pytest.raises(ValueError, match="nothing to compare"):
        plot_metric_comparison({})
    with pytest.raises(ValueError, match="no metric"):
        plot_metric_comparison({"a": {}})
