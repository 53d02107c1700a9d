"""The chest X-ray pneumothorax bundle: metadata schema, the issue's defaults, properties, network I/O,
and real runs of ``python -m monai.bundle run`` (train with progressive resizing and SWA, evaluate and
infer on the real SIIM-ACR sample DICOMs with both readers, two-process training)."""

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
BUNDLE = REPO / "bundles" / "xray_pneumothorax"
SIIM = "chest_xray_siim_pneumothorax/sample_images"
NET = ["--features", "[4,4,8,8,16,4]"]
STAGES = "[{'epochs':1,'spatial_size':[32,32],'batch_size':4},{'epochs':1,'spatial_size':[64,64],'batch_size':2,'accumulation_steps':2}]"
# a tiny, fast setting: 12 synthetic radiographs of 64 px, a small UNet++, two one-epoch stages 32 -> 64
TINY = [
    "--synthetic_num_images", "12",
    "--synthetic_image_size", "64",
    "--synthetic_num_test_images", "2",
    "--synthetic_positive_fraction", "0.5",
    *NET,
    "--stages", STAGES,
    "--val_batch_size", "2",
]  # fmt: skip
REAL = ["--csv_name", "train-rle-sample.csv", "--image_dir", ".", "--split_fractions", "[0,1,0]"]


def bundle_copy(tmp_path: Path) -> Path:
    return copy_bundle(BUNDLE, tmp_path)


def mlflow_runs(bundle: Path):
    return recorded_runs(bundle, "xray_pneumothorax")


def _macros(value):
    """``value`` with every ``%configs/<file>#a#b`` macro replaced by ``<file>["a"]["b"]`` (recursively)."""
    if isinstance(value, dict):
        return {k: _macros(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_macros(v) for v in value]
    if isinstance(value, str) and value.startswith("%configs/"):
        path, *keys = value[1:].split("#")
        found = json.loads((BUNDLE / path).read_text())
        for key in keys:
            found = found[key]
        return _macros(found)
    return value


def test_configs_name_public_targets_and_follow_the_issue():
    for name in ("train.json", "inference.json"):
        cfg = json.loads((BUNDLE / "configs" / name).read_text())
        assert "$import monai_gamble" in cfg["imports"]
    text = "".join(p.read_text() for p in (BUNDLE / "configs").glob("*.json"))
    for target in {t for t in text.split('"') if t.startswith("monai_gamble.")}:
        module, _, attr = target.rpartition(".")
        assert not attr.startswith("_") and not module.rpartition(".")[2].startswith("_"), target
        __import__(module)
        assert hasattr(sys.modules[module], attr), target
    train = json.loads((BUNDLE / "configs" / "train.json").read_text())
    infer = json.loads((BUNDLE / "configs" / "inference.json").read_text())
    evaluate = json.loads((BUNDLE / "configs" / "evaluate.json").read_text())
    for key in ("network_def", "features", "norm", "deep_supervision", "threshold", "min_component_area"):
        assert _macros(infer[key]) == train[key], key
    assert infer["final_image_size"] == train["stages"][-1]["spatial_size"]
    # the report's schedule: stratified 85/15, 256 -> 512 -> 768, batch 16/4/2 with accumulation 2/8/12,
    # BCE + Dice then Dice + focal to finish, Adam with cosine annealing, SWA over the last 3 epochs
    assert train["split_fractions"] == [0.85, 0.15, 0.0]
    stages = train["stages"]
    assert [s["spatial_size"] for s in stages] == [[256, 256], [512, 512], [768, 768], [768, 768]]
    assert [(s["batch_size"], s["accumulation_steps"]) for s in stages] == [(16, 2), (4, 8), (2, 12), (2, 12)]
    assert stages[-1]["loss_function"] == "@finish_loss" and all("loss_function" not in s for s in stages[:-1])
    assert (train["loss_name"], train["finish_loss_name"]) == ("bce_dice", "dice_focal")
    assert train["loss_functions"]["bce_dice"]["loss"]["_target_"] == "DiceCELoss"
    assert train["loss_functions"]["lovasz"]["loss"]["_target_"] == "monai_gamble.losses.LovaszHingeLoss"
    assert train["optimizer_name"] == "adam" and "CosineAnnealingLR" in train["lr_scheduler"]["_target_"]
    assert train["swa_epochs"] == 3 and train["dicom_reader"] == "PydicomReader"
    assert train["network_def"]["_target_"].endswith("UNetPlusPlus") and train["network_def"]["out_channels"] == 1
    assert train["threshold"] == 0.5 and train["min_component_area"] == 2000
    assert train["area_reference_size"] == [1024, 1024]
    assert evaluate["tta_flips"] == _macros(infer["tta_flips"]) == [[], [0]]  # identity and the horizontal flip
    assert train["synthetic_image_size"] == 1024 and train["synthetic_positive_fraction"] == 0.22


def test_check_properties_and_net_in_out(tmp_path, monkeypatch):
    bundle = bundle_copy(tmp_path)
    monkeypatch.chdir(bundle)  # bundle_root is "."; the properties resolve the (tiny) synthetic dataset there
    tiny = {"synthetic_num_images": 4, "synthetic_image_size": 64, "synthetic_num_test_images": 1,
            "synthetic_positive_fraction": 0.5, "features": [4, 4, 8, 8, 16, 4]}  # fmt: skip
    assert initialized_workflow(BUNDLE, ["train.json"], **tiny).check_properties() == []
    data = next((bundle / "data").glob("synthetic_siim_n4_*"))
    assert initialized_workflow(BUNDLE, ["inference.json"], "infer", dataset_dir=str(data)).check_properties() == []
    verify_inference_network(BUNDLE)
    assert not any((REPO / d).exists() for d in ("data", "eval", "models")), "the test wrote into the repository"


@pytest.mark.slow
def test_train_evaluate_infer_end_to_end(tmp_path, realdata):
    bundle = bundle_copy(tmp_path)
    # 1. two one-epoch stages (32 then 64 px) on the embedded synthetic dataset, SWA over both epochs
    out = run_bundle(bundle, ["train.json"], *TINY, "--swa_epochs", "2", mlflow_model=True)
    models = bundle / "models"
    for name in ("model.pt", "model_swa.pt", "model_final.pt", "stages/stage0_32x32.pt", "stages/stage1_64x64.pt"):
        assert (models / name).is_file(), name
    assert (
        "stage 0, size 32x32, batch 4, accumulation 1" in out and "stage 1, size 64x64, batch 2, accumulation 2" in out
    )
    data = next((bundle / "data").glob("synthetic_siim_n12_s64_*"))
    assert len(list((data / "dicom-images-train").glob("*/*/*.dcm"))) == 12 and (data / "train-rle.csv").is_file()
    client, runs = mlflow_runs(bundle)
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    run = runs[0]
    for key in ("train_loss", "val_competition_dice", "val_competition_dice_no_filter", "val_dice_positive"):
        assert key in run.data.metrics, (key, sorted(run.data.metrics))
        assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == [1, 2]
    assert 0.0 <= run.data.metrics["val_competition_dice"] <= 1.0
    assert run.data.params["network"] == "UNetPlusPlus" and run.data.params["loss"] == "bce_dice"
    assert run.data.params["max_epochs"] == "2" and "64, 64" in run.data.params["stages"]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"model.pt", "model_swa.pt", "config", "figures"} <= artifacts, artifacts
    assert_reproducible_run(client, run, bundle, {})
    assert len(client.list_artifacts(run.info.run_id, "figures/validation")) == 2

    # 2. evaluate the SWA checkpoint on the ten real SIIM-ACR DICOMs (1024x1024, JPEG) read by ITK (the
    #    default reader, pydicom, reads them in the inference below; both give the same images:
    #    tests/transforms/test_dicom.py)
    real = ["--dataset_dir", str(realdata / SIIM), *REAL, *NET, "--stages", STAGES, "--checkpoint_name", "model_swa"]
    out = run_bundle(bundle, ["train.json", "evaluate.json"], *real, "--dicom_reader", "ITKReader")
    assert "| Competition Dice |" in out
    report = bundle / "eval" / "evaluation_validation_model_swa" / "metrics_per_image.csv"
    rows = list(csv.DictReader(open(report)))
    assert len(rows) == 10 and set(rows[0]) == {
        "id", "Competition Dice", "Competition Dice without component filter", "Dice (positive images)"
    }  # fmt: skip
    assert {r["id"] for r in rows} == {p.stem for p in (realdata / SIIM).glob("*.dcm")}
    assert sum(r["Dice (positive images)"] == "nan" for r in rows) == 5  # the five images without pneumothorax
    for r in rows:  # an image without pneumothorax scores 1 (nothing predicted) or 0 (anything predicted)
        assert 0.0 <= float(r["Competition Dice"]) <= 1.0
        if r["Dice (positive images)"] == "nan":
            assert float(r["Competition Dice"]) in (0.0, 1.0)
    client, runs = mlflow_runs(bundle)
    eval_run = runs[-1]
    assert eval_run.info.run_name.startswith("evaluate_model_swa_") and eval_run.info.status == "FINISHED"
    assert {"test_competition_dice", "test_competition_dice_no_filter", "test_dice_positive"} <= set(
        eval_run.data.metrics
    )
    assert eval_run.data.params["dicom_reader"] == "ITKReader"

    # 3. inference: 1024x1024 masks of the real DICOMs and a submission whose RLEs decode to them
    run_bundle(bundle, ["inference.json"], *NET, "--final_image_size", "[64,64]", "--dataset_dir", str(realdata / SIIM))
    run = inference_run(bundle)
    sub = list(csv.DictReader(open(run / "submission.csv")))
    assert len(sub) == 10 and set(sub[0]) == {"ImageId", "EncodedPixels"}
    ids = {p.stem for p in (realdata / SIIM).glob("*.dcm")}
    assert {r["ImageId"] for r in sub} == ids
    for r in sub:
        mask = np.asarray(Image.open(run / "predictions" / f"{r['ImageId']}_mask.png"))
        assert mask.shape == (1024, 1024) and set(np.unique(mask)) <= {0, 255}
        assert (r["EncodedPixels"] == "-1") == (not mask.any())
        np.testing.assert_array_equal(rle_decode(r["EncodedPixels"], (1024, 1024), "siim"), mask > 0)


@pytest.mark.slow
def test_two_process_training_on_cpu_gloo(tmp_path):
    bundle = bundle_copy(tmp_path)
    run_bundle(bundle, ["train.json", "multi_gpu_train.json"], *TINY, "--max_epochs", "1", torchrun=2)
    assert (bundle / "models" / "model.pt").is_file() and (bundle / "models" / "model_swa.pt").is_file()
    _, runs = mlflow_runs(bundle)
    assert len(runs) == 1  # only rank 0 tracks
    assert {"val_competition_dice", "train_loss"} <= set(runs[0].data.metrics)


def test_bad_options_are_clear_errors(tmp_path):
    bundle = bundle_copy(tmp_path)
    with pytest.raises(AssertionError, match="SIIM dataset folder .*nope does not exist"):
        run_bundle(bundle, ["train.json"], *TINY, "--dataset_dir", str(tmp_path / "nope"), "--max_epochs", "1")
    with pytest.raises(AssertionError, match="Unsupported option 'dice'"):
        run_bundle(bundle, ["train.json"], *TINY, "--loss_name", "dice", "--max_epochs", "1")
