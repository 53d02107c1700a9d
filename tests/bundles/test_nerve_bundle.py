"""The nerve bundle: metadata schema, properties, network I/O, and real runs of
``python -m monai.bundle run`` (train, evaluate with ASME, inference with a Kaggle submission,
two-process training)."""

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from bundle_helpers import (
    assert_reproducible_run,
    copy_bundle,
    inference_run,
    initialized_workflow,
    recorded_runs,
    run_bundle,
    verify_inference_network,
)
from PIL import Image

from monai_gamble.data import rle_decode

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "nerve_ultrasound_ems"
NET = ["--image_size", "[64,64]", "--backbone", "efficientnet-b0", "--network_def#decoder_channels", "[32,16,16,8,8]"]
# a tiny, fast setting: 4 synthetic subjects of 4 frames, a small EfficientNet-b0 U-Net at 64x64
TINY = [
    "--synthetic_num_subjects", "4",
    "--synthetic_images_per_subject", "4",
    "--synthetic_num_test_images", "2",
    *NET,
    "--batch_size", "4",
    "--val_batch_size", "4",
]  # fmt: skip


def bundle_copy(tmp_path: Path) -> Path:
    return copy_bundle(BUNDLE, tmp_path)


def mlflow_runs(bundle: Path):
    return recorded_runs(bundle, "nerve_ultrasound_ems")


def test_configs_name_public_targets_and_follow_the_issue():
    for name in ("train.json", "inference.json"):
        cfg = json.loads((BUNDLE / "configs" / name).read_text())
        assert "$import monai_gamble" in cfg["imports"]
    text = "".join(p.read_text() for p in (BUNDLE / "configs").glob("*.json"))
    for target in {t for t in text.split('"') if t.startswith("monai_gamble.")}:
        module, _, attr = target.rpartition(".")
        assert not attr.startswith("_"), target
        __import__(module)
        assert hasattr(sys.modules[module], attr), target
    train = json.loads((BUNDLE / "configs" / "train.json").read_text())
    # the documented defaults are the authors'
    assert train["image_size"] == [576, 448] and train["backbone"] == "efficientnet-b1" and train["batch_size"] == 8
    assert train["learning_rate"] == 5e-4 and train["weight_decay"] == 1e-4 and train["lr_schedule"] == "cosine"
    assert train["network_def"]["upsample"] == "nontrainable" and train["network_def"]["interp_mode"] == "nearest"
    assert train["loss"]["to_onehot_y"] is False and train["train"]["ems_transform"]["background_channel"] is True
    # the ensembles blend the network's outputs (the ASME paper's formula); the area rule judges the emitted blend
    evaluate = json.loads((BUNDLE / "configs" / "evaluate.json").read_text())
    assert evaluate["ensemble"] == "asme" and evaluate["ensemble_blend"] == "logits"
    assert evaluate["area_rule_on"] == "ensemble"


def test_check_properties_and_net_in_out(tmp_path, monkeypatch):
    bundle = bundle_copy(tmp_path)
    monkeypatch.chdir(bundle)  # bundle_root is "."; the properties resolve the (tiny) synthetic dataset there
    # 4 x 4 images (as TINY): a synthetic set whose validation split is not empty (checked in initialize)
    tiny = {"synthetic_num_subjects": 4, "synthetic_images_per_subject": 4, "synthetic_num_test_images": 1}
    assert initialized_workflow(BUNDLE, ["train.json"], **tiny).check_properties() == []
    data = next((bundle / "data").glob("synthetic_nerve_s4_i4_*"))
    assert initialized_workflow(BUNDLE, ["inference.json"], "infer", dataset_dir=str(data)).check_properties() == []
    verify_inference_network(BUNDLE)
    assert not any((REPO / d).exists() for d in ("data", "eval", "models")), "the test wrote into the repository"


@pytest.mark.slow
def test_train_evaluate_infer_end_to_end(tmp_path, realdata):
    bundle = bundle_copy(tmp_path)
    # 1. train one epoch on the embedded synthetic dataset (generated on this first run)
    out = run_bundle(bundle, ["train.json"], *TINY, "--max_epochs", "1", mlflow_model=True)
    assert (bundle / "models" / "model.pt").is_file()
    data = next((bundle / "data").glob("synthetic_nerve_s4_i4_*"))
    assert len(list((data / "train").glob("*_mask.tif"))) == 16 and (data / "train_masks.csv").is_file()
    client, runs = mlflow_runs(bundle)
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    run = runs[0]
    for key in ("train_loss", "val_dice", "val_dice_no_area_rule"):
        assert key in run.data.metrics, (key, sorted(run.data.metrics))
        assert client.get_metric_history(run.info.run_id, key)[0].step == 1
    assert 0.0 <= run.data.metrics["val_dice"] <= 1.0
    assert run.data.params["learning_rate"] == "0.0005" and run.data.params["image_size"] == "[64, 64]"
    assert run.data.params["loss"] == "DiceFocalLoss" and run.data.params["network"] == "FlexibleUNet"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"model.pt", "config", "figures"} <= artifacts, artifacts
    assert_reproducible_run(client, run, bundle, {})
    assert client.list_artifacts(run.info.run_id, "figures/validation")
    assert "train" in out  # the progress bar

    # 2. evaluate that checkpoint with ASME on the five real frames (580x420, competition Dice)
    real = realdata / "ultrasound_nerve_kaggle"
    real_args = ["--dataset_dir", str(real), "--csv_name", "train_masks_subject1.csv", "--balance", "False"]
    out = run_bundle(bundle, ["train.json", "evaluate.json"], *TINY, *real_args, "--split_fractions", "[0,0,1]")
    report = bundle / "eval" / "evaluation_test_asme"
    rows = list(csv.DictReader(open(report / "metrics_per_image.csv")))
    assert [r["id"] for r in rows] == ["1_1", "1_2", "1_3", "1_4", "1_5"]
    assert set(rows[0]) == {"id", "Dice", "Dice without area rule"}
    weights = list(csv.DictReader(open(report / "ensemble_weights.csv")))
    assert [w["id"] for w in weights] == [r["id"] for r in rows]
    for w in weights:
        assert sum(float(w[k]) for k in ("identity", "flip_0", "flip_1", "flip_0_1")) == pytest.approx(1.0, abs=1e-5)
    assert "| Dice |" in out and "Mean ensemble weights (asme): identity" in out
    client, runs = mlflow_runs(bundle)
    eval_run = runs[-1]
    assert eval_run.info.run_name.startswith("evaluate_asme_") and eval_run.info.status == "FINISHED"
    assert {"test_dice", "test_dice_no_area_rule", "ensemble_weight_identity"} <= set(eval_run.data.metrics)
    assert eval_run.data.params["ensemble_blend"] == "logits" and eval_run.data.params["area_rule_on"] == "ensemble"
    assert {a.path for a in client.list_artifacts(eval_run.info.run_id, "evaluation")} == {
        "evaluation/ensemble_weights.csv",
        "evaluation/metrics.json",
        "evaluation/metrics_per_image.csv",
        "evaluation/metrics_summary.md",
    }

    # the authors' variant: the area rule judged on the uniform blend, inside the inferer
    run_bundle(
        bundle,
        ["train.json", "evaluate.json"],
        *TINY,
        *real_args,
        "--split_fractions",
        "[0,0,1]",
        "--area_rule_on",
        "uniform",
    )
    assert mlflow_runs(bundle)[1][-1].data.params["area_rule_on"] == "uniform"

    # 3. inference: 580x420 masks of the real frames and a submission CSV whose RLEs decode to them
    run_bundle(bundle, ["inference.json"], *NET, "--dataset_dir", str(real / "train"), "--ensemble", "mean")
    run = inference_run(bundle)
    sub = list(csv.DictReader(open(run / "submission.csv")))
    assert [r["img"] for r in sub] == ["1_1", "1_2", "1_3", "1_4", "1_5"]
    for r in sub:
        mask = np.asarray(Image.open(run / "predictions" / f"{r['img']}_mask.tif"))
        assert mask.shape == (420, 580) and set(np.unique(mask)) <= {0, 255}
        np.testing.assert_array_equal(rle_decode(r["pixels"], (420, 580)), mask > 0)


@pytest.mark.slow
def test_two_process_training_on_cpu_gloo(tmp_path):
    bundle = bundle_copy(tmp_path)
    run_bundle(bundle, ["train.json", "multi_gpu_train.json"], *TINY, "--max_epochs", "1", torchrun=2)
    assert (bundle / "models" / "model.pt").is_file()
    _, runs = mlflow_runs(bundle)
    assert len(runs) == 1  # only rank 0 tracks
    assert {"val_dice", "train_loss"} <= set(runs[0].data.metrics)


def test_bad_options_are_clear_errors(tmp_path):
    bundle = bundle_copy(tmp_path)
    with pytest.raises(AssertionError, match="nerve dataset folder .*nope does not exist"):
        run_bundle(bundle, ["train.json"], *TINY, "--dataset_dir", str(tmp_path / "nope"), "--max_epochs", "1")
    with pytest.raises(AssertionError, match="Unsupported option 'blobs'"):
        run_bundle(bundle, ["train.json"], *TINY, "--area_rule", "blobs", "--max_epochs", "1")
