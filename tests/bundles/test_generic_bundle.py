"""The generic segmentation bundle: metadata, properties, network I/O; a one-epoch run per method
family in 3D on tiny volumes; the 2D folder path; train / evaluate / sliding-window inference
(NIfTI with the input's affine) end to end on the embedded synthetic default; two-process training."""

import csv
import json
import warnings
from pathlib import Path

import jsonschema
import nibabel as nib
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

from monai_gamble.data import make_synthetic_volumes, make_thyroid_ultrasound

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "generic_segmentation"
SCHEMA = REPO / "schemas" / "meta_schema_20240725.json"
EXPERIMENT = "generic_segmentation"
# tiny: the synthetic volumes resampled to 6 mm voxels (about 25 x 20 x 16), a small U-Net and critic, one epoch
TINY = {
    "pixdim": [6.0, 6.0, 6.0],
    "network_def#channels": [4, 8, 16, 32],
    "network_def#strides": [2, 2, 2],
    "network_def#num_res_units": 0,
    "critic_channels": [4, 8, 16],
    "split_fractions": [0.5, 0.17, 0.33],  # 3, 1 and 2 of the 6 cases
    "num_samples": 1,
    "max_epochs": 1,
    "val_interval": 1,
}
SYNTHETIC = {"synthetic_num_cases": 6, "synthetic_num_test": 2}


def cli(overrides: dict) -> list[str]:
    return [a for k, v in overrides.items() for a in (f"--{k}", json.dumps(v) if not isinstance(v, str) else v)]


@pytest.fixture(scope="module")
def volumes(tmp_path_factory) -> Path:
    """Six synthetic CT cases (and two test images) in the Decathlon layout, shared by the in-process runs."""
    return make_synthetic_volumes(tmp_path_factory.mktemp("vol") / "organ", num_cases=6, num_test=2, seed=0)


@pytest.fixture(scope="module")
def tracking(tmp_path_factory) -> str:
    """One MLflow store for the in-process runs (its tables are created once)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlruns.db'}"


def train_in_process(bundle: Path, files: list[str], **overrides):
    """Initialise, run and finalise a train workflow of ``bundle`` (cwd must be ``bundle``)."""
    from monai.bundle import ConfigWorkflow

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wf = ConfigWorkflow(config_file=[f"configs/{f}" for f in files], workflow_type="train", **overrides)
        wf.initialize()
        wf.run()
        wf.finalize()
    return wf


def _strings(cfg):
    if isinstance(cfg, dict):
        return [s for v in cfg.values() for s in _strings(v)]
    if isinstance(cfg, list):
        return [s for v in cfg for s in _strings(v)]
    return [cfg] if isinstance(cfg, str) else []


def test_metadata_validates_and_inference_reuses_train():
    meta = json.loads((BUNDLE / "configs" / "metadata.json").read_text())
    jsonschema.validate(meta, json.loads(SCHEMA.read_text()))
    assert "monai-gamble" in meta["required_packages_version"] and "nibabel" in meta["required_packages_version"]
    infer = json.loads((BUNDLE / "configs" / "inference.json").read_text())
    train = json.loads((BUNDLE / "configs" / "train.json").read_text())
    assert set(infer["network_def"]) == set(train["network_def"])
    assert all(v.startswith("%configs/train.json#") for v in infer["network_def"].values())
    for key in ("pixdim", "patch_size", "num_classes", "spatial_dims", "in_channels", "inferer"):
        assert infer[key] == f"%configs/train.json#{key}" or infer[key] == "%configs/train.json#validate#inferer"
    expressions = [s for p in (BUNDLE / "configs").glob("*.json") for s in _strings(json.loads(p.read_text()))]
    assert not [e for e in expressions if e.startswith("$") and ("lambda" in e or " for " in e)]  # Python computes


def test_check_properties_and_net_in_out(tmp_path, monkeypatch, volumes):
    bundle = copy_bundle(BUNDLE, tmp_path)
    monkeypatch.chdir(bundle)
    for method in ("gambling", "ce", "stochastic_tce"):
        wf = initialized_workflow(bundle, ["train.json"], dataset_dir=str(volumes), method=method, **TINY)
        assert wf.check_properties() == []
    parser = wf.parser
    assert parser.get_parsed_content("num_classes") == 3 and parser.get_parsed_content("spatial_dims") == 3
    assert parser.get_parsed_content("patch_size") == (32, 16, 16)
    assert type(parser.get_parsed_content("train#batch_sampler")).__name__ == "ClassConditionalBatchSampler"
    infer = initialized_workflow(bundle, ["inference.json"], "infer", dataset_dir=str(volumes), **TINY)
    assert infer.check_properties() == []
    assert [it["id"] for it in infer.parser.get_parsed_content("datalist")] == ["organ_006", "organ_007"]
    verify_inference_network(bundle, n=2, dataset_dir=str(volumes))
    with pytest.raises(RuntimeError, match="segmentation_dataset") as err:  # in initialize (check_splits)
        initialized_workflow(bundle, ["train.json"], dataset_dir=str(tmp_path / "nope"))
    assert "dataset folder" in str(err.value.__cause__) and "nope does not exist" in str(err.value.__cause__)


@pytest.mark.slow
@pytest.mark.parametrize(
    "method, trainer, critic",
    [
        ("ce", "SupervisedTrainer", None),
        ("tce_class", "SupervisedTrainer", None),
        ("adversarial", "SegmenterCriticTrainer", "PatchDiscriminator"),
    ],
)
def test_one_epoch_per_method_family_in_3d(tmp_path, monkeypatch, volumes, tracking, method, trainer, critic):
    import torch

    bundle = copy_bundle(BUNDLE, tmp_path)
    monkeypatch.chdir(bundle)
    wf = train_in_process(
        bundle, ["train.json"], dataset_dir=str(volumes), method=method, tracking_uri=tracking, **TINY
    )
    engine = wf.parser.get_parsed_content("train#trainer")
    assert type(engine).__name__ == trainer and np.isfinite(engine.state.metrics["train_loss"])
    val = wf.parser.get_parsed_content("validate#evaluator").state.metrics
    assert 0 <= val["val_dice_lesion"] <= 1 and val["val_hd95_organ"] > 0
    ckpt = torch.load(bundle / "models" / method / "model.pt", weights_only=True)
    if critic is None:
        assert "critic" not in ckpt
    else:
        assert type(engine.critic).__name__ == critic and set(ckpt) == {"model", "critic"}
        assert np.isfinite(engine.state.metrics["train_critic_loss"])
    assert (bundle / "eval" / "figures" / method / "validation_epoch001.png").is_file()


@pytest.mark.slow
def test_2d_image_mask_folder(tmp_path, monkeypatch, tracking):
    folder = make_thyroid_ultrasound(tmp_path / "thyroid", num_images=8, seed=0, size_range=(64, 80))
    bundle = copy_bundle(BUNDLE, tmp_path)
    monkeypatch.chdir(bundle)
    tiny2d = {**TINY, "pixdim": [1.0, 1.0], "max_patch_size": 64, "network_def#channels": [4, 8, 16, 32]}
    wf = train_in_process(bundle, ["train.json"], dataset_dir=str(folder), method="confidence", tracking_uri=tracking,
                          **tiny2d)  # fmt: skip
    p = wf.parser
    assert p.get_parsed_content("spatial_dims") == 2 and p.get_parsed_content("label_scale") == 255
    assert p.get_parsed_content("image_reader") == "PILReader" and p.get_parsed_content("patch_size") == (64, 64)
    engine = p.get_parsed_content("train#trainer")
    assert type(engine.critic).__name__ == "Gambler" and engine.critic.spatial_dims == 2  # ConfidenceNetwork is Gambler
    val = p.get_parsed_content("validate#evaluator").state.metrics
    assert 0 <= val["val_dice"] <= 1 and "val_dice_foreground" not in val  # one foreground class: no copies
    assert (bundle / "eval" / "figures" / "confidence" / "validation_epoch001.png").is_file()
    # inference on the folder: PNG masks of the images' size, {0, 255} as the masks were
    from monai.bundle import ConfigWorkflow
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = {k: v for k, v in tiny2d.items() if k.startswith("network_def") or k in ("pixdim", "max_patch_size")}
        infer = ConfigWorkflow(config_file="configs/inference.json", workflow_type="infer", dataset_dir=str(folder),
                               method="confidence", **net)  # fmt: skip
        infer.initialize()
        infer.run()
    preds = sorted((inference_run(bundle) / "predictions").glob("*.png"))
    assert len(preds) == 8
    for pred in preds[:3]:
        src = next((folder / "image").glob(pred.stem + ".*"))
        assert Image.open(pred).size == Image.open(src).size
        assert set(np.unique(np.asarray(Image.open(pred)))) <= {0, 255}


@pytest.mark.slow
def test_train_evaluate_infer_end_to_end(tmp_path):
    import torch

    bundle = copy_bundle(BUNDLE, tmp_path)
    args = cli({**SYNTHETIC, **TINY})
    # 1. gambling (the default) on the embedded synthetic dataset, generated on this first run
    out = run_bundle(bundle, ["train.json"], *args, mlflow_model=True)
    assert "no --dataset_dir given: generating a synthetic Decathlon-layout dataset" in out
    assert "3D, 6 labelled images and 2 unlabelled test images; 1 channel(s) ['CT']; 3 classes" in out
    data = next((bundle / "data").glob("synthetic_organ_n6_seed0_CT"))
    assert set(torch.load(bundle / "models" / "gambling" / "model.pt", weights_only=True)) == {"model", "critic"}
    client, runs = recorded_runs(bundle, EXPERIMENT)
    run = runs[-1]
    assert run.info.status == "FINISHED" and run.info.run_name.startswith("gambling_train_")
    for key in ("train_loss", "train_critic_loss", "train_ce", "val_dice", "val_dice_organ", "val_dice_lesion",
                "val_hd95", "val_hd95_lesion", "val_chamfer", "val_bf_score"):  # fmt: skip
        assert key in run.data.metrics, (key, sorted(run.data.metrics))
    params = run.data.params
    assert params["spatial_dims"] == "3" and params["num_classes"] == "3" and params["critic"] == "Gambler"
    assert params["pixdim"] == "[6.0, 6.0, 6.0]" and params["patch_size"] == "(32, 16, 16)"
    assert {"model.pt", "config", "figures"} <= {a.path for a in client.list_artifacts(run.info.run_id)}
    assert_reproducible_run(client, run, bundle, {})
    assert (bundle / "eval" / "figures" / "gambling" / "validation_epoch001.png").is_file()

    # 2. evaluation on the test split at the original resolution: per-image CSV (mm), summary, metrics.json
    out = run_bundle(bundle, ["train.json", "evaluate.json"], *args)
    report = bundle / "eval" / "evaluation_test" / "gambling"
    rows = list(csv.DictReader(open(report / "metrics_per_image.csv")))
    assert len(rows) == 2 and {"Dice organ", "Dice lesion", "HD95 lesion (mm)", "Chamfer (mm)", "BF-score"} <= set(
        rows[0]
    )
    summary = json.loads((report / "metrics.json").read_text())
    assert summary["num_images"] == 2 and "HD95 (mm)" in summary["metrics"]
    assert "| HD95 organ (mm) |" in out and (report / "test_epoch001.png").is_file()

    # 3. sliding-window inference: NIfTI predictions on the input's grid, with its affine
    out = run_bundle(bundle, ["inference.json"], *cli({k: v for k, v in TINY.items() if k.startswith("network")}),
                     *cli({"synthetic_num_cases": SYNTHETIC["synthetic_num_cases"], "pixdim": TINY["pixdim"]}))  # fmt: skip
    assert "Predicted segmentations (2 images)" in out
    for name in ("organ_006", "organ_007"):
        pred, src = (
            nib.load(inference_run(bundle) / "predictions" / f"{name}.nii.gz"),
            nib.load(data / "imagesTs" / f"{name}.nii.gz"),
        )
        assert pred.shape == src.shape and np.allclose(pred.affine, src.affine)
        assert set(np.unique(np.asarray(pred.dataobj))) <= {0, 1, 2}


@pytest.mark.slow
def test_two_process_training_on_cpu_gloo(tmp_path, volumes):
    bundle = copy_bundle(BUNDLE, tmp_path)
    # two validation cases: one per rank (MONAI's DistributedSampler needs at least one each)
    args = cli({**TINY, "split_fractions": [0.5, 0.33, 0.17], "dataset_dir": str(volumes), "method": "stochastic_tce"})
    run_bundle(bundle, ["train.json", "multi_gpu_train.json"], *args, torchrun=2)
    assert (bundle / "models" / "stochastic_tce" / "model.pt").is_file()
    _, runs = recorded_runs(bundle, EXPERIMENT)
    assert len(runs) == 1  # only rank 0 tracks
    metrics = runs[0].data.metrics
    assert {"train_loss", "val_dice", "stce_weight_lesion", "stce_weight_organ"} <= set(metrics)
