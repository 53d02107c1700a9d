"""The thyroid bundle: metadata schema, properties, network I/O, and real runs of
``python -m monai.bundle run`` (train, evaluate, inference, two-process training)."""

import csv
import json
import warnings
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

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "thyroid_ultrasound_gambling"
# a tiny, fast setting: 12 synthetic images of 64x64, a small U-Net, one epoch
TINY = [
    "--synthetic_num_images", "12",
    "--image_size", "[64,64]",
    "--network_def#channels", "[4,8,16,32,64]",
    "--network_def#num_res_units", "0",
    "--batch_size", "4",
    "--val_batch_size", "4",
]  # fmt: skip


def bundle_copy(tmp_path: Path) -> Path:
    return copy_bundle(BUNDLE, tmp_path)


def mlflow_runs(bundle: Path):
    return recorded_runs(bundle, "thyroid_ultrasound_gambling")


def test_check_properties_and_net_in_out(tmp_path, monkeypatch):
    bundle = bundle_copy(tmp_path)
    monkeypatch.chdir(bundle)  # bundle_root is "."; the properties resolve the (tiny) synthetic dataset there
    assert initialized_workflow(BUNDLE, ["train.json"], synthetic_num_images=12).check_properties() == []
    baseline = initialized_workflow(BUNDLE, ["train.json", "train_ce.json"], synthetic_num_images=12)
    assert baseline.check_properties() == []
    assert type(baseline.parser.get_parsed_content("train#trainer")).__name__ == "AmpSupervisedTrainer"
    data = next((bundle / "data").glob("synthetic_tnscui_n12_*"))
    assert initialized_workflow(BUNDLE, ["inference.json"], "infer", dataset_dir=str(data)).check_properties() == []
    verify_inference_network(BUNDLE)
    assert not any((REPO / d).exists() for d in ("data", "eval", "models")), "the test wrote into the repository"


@pytest.mark.slow
def test_train_evaluate_infer_end_to_end(tmp_path, realdata):
    import torch

    bundle = bundle_copy(tmp_path)
    # 1. gambling (the default): one epoch on the embedded synthetic dataset (generated on this first run)
    out = run_bundle(bundle, ["train.json"], *TINY, "--max_epochs", "1", mlflow_model=True)
    ckpt = torch.load(bundle / "models" / "model.pt", weights_only=True)
    assert set(ckpt) == {"model", "critic"}  # both networks; inference needs only "model"
    assert list((bundle / "data").glob("synthetic_tnscui_n12_*/image/*.PNG"))
    client, runs = mlflow_runs(bundle)
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    run = runs[0]
    assert run.info.run_name.startswith("gambling_train_")
    for key in ("train_loss", "train_critic_loss", "train_ce", "val_dice", "val_jaccard", "val_bf_score",
                "val_chamfer", "val_hausdorff", "val_mmcl"):  # fmt: skip
        assert key in run.data.metrics, (key, sorted(run.data.metrics))
        assert client.get_metric_history(run.info.run_id, key)[0].step == 1
    assert run.data.metrics["train_critic_loss"] < 0 < run.data.metrics["train_ce"]
    assert 0.0 <= run.data.metrics["val_dice"] <= 1.0 and 0.5 <= run.data.metrics["val_mmcl"] <= 1.0
    params = run.data.params
    assert params["learning_rate"] == "0.002" and params["image_size"] == "[64, 64]"
    assert params["loss"] == "GamblingObjective" and params["beta"] == "0.02" and params["fused"] == "False"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"model.pt", "config", "figures"} <= artifacts, artifacts
    config = assert_reproducible_run(client, run, bundle, {"image_size": "[64,64]", "batch_size": "4"}, (2, 1, 64, 96))
    assert config["image_size"] == [64, 64] and config["network_def"]["channels"] == [4, 8, 16, 32, 64]
    assert client.list_artifacts(run.info.run_id, "figures/validation")
    assert (bundle / "eval" / "figures" / "gambling" / "validation_epoch001.png").is_file()
    assert "critic_loss=" in out  # the progress bar

    # 2. the cross-entropy baseline, its own checkpoint folder and run
    run_bundle(bundle, ["train.json", "train_ce.json"], *TINY, "--max_epochs", "1")
    ce_ckpt = torch.load(bundle / "models" / "ce" / "model.pt", weights_only=True)
    assert "critic" not in ce_ckpt and "model.0.conv.weight" in ce_ckpt  # one network: MONAI saves its state dict
    client, runs = mlflow_runs(bundle)
    assert runs[-1].info.run_name.startswith("ce_train_") and runs[-1].data.params["loss"] == "CrossEntropyLoss"
    assert "train_critic_loss" not in runs[-1].data.metrics and "val_dice" in runs[-1].data.metrics

    # 3. evaluate both checkpoints on the real DDTI images (original resolution, per-image CSV), compared
    real = realdata / "ultrasound_thyroid_ddti_tnscui"
    run_bundle(bundle, ["train.json", "train_ce.json", "evaluate.json"], *TINY, "--dataset_dir", str(real))
    out = run_bundle(bundle, ["train.json", "evaluate.json"], *TINY, "--dataset_dir", str(real))
    report = bundle / "eval" / "evaluation_test"
    for method in ("ce", "gambling"):
        rows = list(csv.DictReader(open(report / method / "metrics_per_image.csv")))
        assert len(rows) == 4
        assert set(rows[0]) == {"id", "Dice", "Jaccard", "BF-score", "Chamfer", "Hausdorff", "MMCL"}
    md = (report / "gambling" / "metrics_summary.md").read_text()
    for name in ("Dice", "Jaccard", "BF-score", "Chamfer", "Hausdorff", "MMCL"):
        assert f"| {name} |" in md and f"| {name} |" in out
    comparison = (report / "comparison.md").read_text()
    assert "| metric | ce | gambling |" in comparison and "| metric | ce | gambling |" in out
    assert (report / "comparison.png").is_file()
    assert "MLflow: sqlite:///" in out and "checkpoint:" in out
    client, runs = mlflow_runs(bundle)
    eval_run = runs[-1]
    assert eval_run.info.run_name.startswith("gambling_evaluate_") and "test_dice" in eval_run.data.metrics
    assert {a.path for a in client.list_artifacts(eval_run.info.run_id, "evaluation")} == {
        "evaluation/metrics_per_image.csv",
        "evaluation/metrics_summary.md",
        "evaluation/metrics.json",
        "evaluation/comparison.md",
        "evaluation/comparison.png",
    }
    summary = json.loads((report / "gambling" / "metrics.json").read_text())
    assert summary["num_images"] == 4 and set(summary["metrics"]) == {
        "Dice", "Jaccard", "BF-score", "Chamfer", "Hausdorff", "MMCL"}  # fmt: skip
    assert summary["metrics"]["Dice"]["mean"] == pytest.approx(float(eval_run.data.metrics["test_dice"]), abs=1e-6)

    # 4. inference writes a {0, 255} mask and a betting map per real image, at the original size
    run_bundle(bundle, ["inference.json", "inference_betting_maps.json"], *TINY[2:8], "--dataset_dir", str(real))
    run = inference_run(bundle)
    preds = sorted((run / "predictions").glob("*.png"))
    bets = sorted((run / "betting_maps").glob("*.png"))
    assert len(preds) == len(bets) == 40
    for p, b in zip(preds[:5], bets[:5], strict=True):
        src = Image.open(real / "image" / f"{p.stem}.PNG")
        assert Image.open(p).size == Image.open(b).size == src.size
        assert set(np.unique(np.asarray(Image.open(p)))) <= {0, 255}
        assert 40 < np.asarray(Image.open(b)).mean() < 90  # stakes average 1, written as 64


@pytest.mark.slow
def test_two_process_training_on_cpu_gloo(tmp_path, realdata):
    bundle = bundle_copy(tmp_path)
    real = realdata / "ultrasound_thyroid_ddti_tnscui"
    run_bundle(
        bundle,
        ["train.json", "multi_gpu_train.json"],
        *TINY,
        "--dataset_dir",
        str(real),
        "--max_epochs",
        "2",
        torchrun=2,
    )
    assert (bundle / "models" / "model.pt").is_file()
    _, runs = mlflow_runs(bundle)
    assert len(runs) == 1  # only rank 0 tracks
    assert {"val_dice", "train_loss", "train_critic_loss"} <= set(runs[0].data.metrics)


@pytest.mark.slow
def test_external_evaluation_and_fine_tuning(tmp_path, realdata):
    """``--evaluation_dataset_dir`` evaluates every image of another folder; ``--pretrained_checkpoint``
    initialises the networks of a new run from an earlier one, and refuses a checkpoint of another network."""
    import torch

    bundle = bundle_copy(tmp_path)
    run_bundle(bundle, ["train.json"], *TINY, "--max_epochs", "1")
    external = tmp_path / "external"  # five real images in the TN-SCUI layout (links, not copies)
    real = realdata / "ultrasound_thyroid_ddti_tnscui"
    for sub in ("image", "mask"):
        (external / sub).mkdir(parents=True)
        for sid in ("1", "2", "3", "10004", "20012"):
            (external / sub / f"{sid}.PNG").symlink_to(real / sub / f"{sid}.PNG")
    out = run_bundle(bundle, ["train.json", "evaluate.json"], *TINY, "--evaluation_dataset_dir", str(external))
    report = bundle / "eval" / "evaluation_external_external" / "gambling"
    rows = list(csv.DictReader(open(report / "metrics_per_image.csv")))
    assert sorted(r["id"] for r in rows) == ["1", "10004", "2", "20012", "3"]  # every image, no split
    assert json.loads((report / "metrics.json").read_text())["num_images"] == 5
    assert "external_external (5 images" in out
    _, runs = mlflow_runs(bundle)
    assert runs[-1].data.params["evaluation_dataset_dir"] == str(external)
    (tmp_path / "flat").mkdir()
    with pytest.raises(AssertionError, match=r"evaluation_dataset_dir .*flat cannot be read .*image does not exist"):
        run_bundle(bundle, ["train.json", "evaluate.json"], *TINY, "--evaluation_dataset_dir", str(tmp_path / "flat"))

    # fine-tuning: both networks of the gambling checkpoint initialise a new gambling run (0 epochs: no update)
    first = torch.load(bundle / "models" / "model.pt", weights_only=True)
    out = run_bundle(bundle, ["train.json"], *TINY, "--max_epochs", "1", "--learning_rate", "0",
                     "--critic_learning_rate", "0", "--weight_decay", "0", "--ckpt_dir", "models/tuned",
                     "--pretrained_checkpoint", "models/model.pt")  # fmt: skip
    assert "UNet initialised from models/model.pt ('model', " in out and "Gambler initialised" in out
    tuned = torch.load(bundle / "models" / "tuned" / "model.pt", weights_only=True)
    for net in ("model", "critic"):  # learning rate 0: only batch-norm statistics move
        for k, v in first[net].items():
            if "running" not in k and "num_batches" not in k:
                assert torch.equal(v, tuned[net][k]), (net, k)
    # the CE baseline takes the segmenter only; another architecture is refused, naming what differs
    out = run_bundle(bundle, ["train.json", "train_ce.json"], *TINY, "--max_epochs", "1",
                     "--pretrained_checkpoint", "models/model.pt")  # fmt: skip
    assert "UNet initialised from models/model.pt" in out
    with pytest.raises(AssertionError, match=r"does not fit UNet: .*of other shape"):
        run_bundle(bundle, ["train.json"], *TINY, "--network_def#channels", "[8,16,32,64,128]", "--max_epochs", "1",
                   "--pretrained_checkpoint", "models/model.pt")  # fmt: skip
    with pytest.raises(AssertionError, match=r"does not fit PatchDiscriminator.*--pretrained_critic_checkpoint none"):
        run_bundle(bundle, ["train.json", "train_adversarial.json"], *TINY, "--max_epochs", "1",
                   "--pretrained_checkpoint", "models/model.pt")  # fmt: skip
    out = run_bundle(bundle, ["train.json", "train_adversarial.json"], *TINY, "--max_epochs", "1",
                     "--pretrained_checkpoint", "models/model.pt", "--pretrained_critic_checkpoint", "none")  # fmt: skip
    assert "UNet initialised" in out and "PatchDiscriminator initialised" not in out


@pytest.mark.slow
def test_trains_on_the_real_ddti_images(tmp_path, realdata):
    """A few iterations on a handful of the 517 real DDTI images, half-scan pairs detected and grouped."""
    src = realdata / "ultrasound_thyroid_ddti"
    present = sorted(int(p.stem) for p in (src / "image").glob("*.PNG"))
    whole = [i for i in present if i < 10000][:10]
    lefts = [i for i in present if 10000 <= i < 20000 and i + 10000 in present][:5]
    ids = [str(i) for i in whole + lefts + [i + 10000 for i in lefts]]
    data = tmp_path / "ddti_sample"
    for sub in ("image", "mask"):
        (data / sub).mkdir(parents=True)
        for sid in ids:
            (data / sub / f"{sid}.PNG").symlink_to(src / sub / f"{sid}.PNG")
    bundle = bundle_copy(tmp_path)
    out = run_bundle(bundle, ["train.json"], *TINY, "--dataset_dir", str(data), "--max_epochs", "2")
    assert "looks like DDTI in the TN-SCUI layout: 5 half-scan images" in out
    assert "ddti_sample: 20 images split" in out
    _, runs = mlflow_runs(bundle)
    metrics = runs[-1].data.metrics
    assert np.isfinite(metrics["train_loss"]) and 0 <= metrics["val_dice"] <= 1
    assert runs[-1].data.params["split_groups"] == "auto"


def test_bad_dataset_dir_is_a_clear_error(tmp_path):
    bundle = bundle_copy(tmp_path)
    with pytest.raises(AssertionError, match="TN-SCUI dataset folder .*nope does not exist"):
        run_bundle(bundle, ["train.json"], *TINY, "--dataset_dir", str(tmp_path / "nope"), "--max_epochs", "1")


@pytest.mark.parametrize(
    "files, trainer, critic",
    [
        (["train_ce.json"], "AmpSupervisedTrainer", None),
        (["train_ce.json", "train_focal.json"], "AmpSupervisedTrainer", None),
        (["train_adversarial.json"], "SegmenterCriticTrainer", "PatchDiscriminator"),
        (["train_segan.json"], "SegmenterCriticTrainer", "PatchDiscriminator"),
        (["train_confidence.json"], "SegmenterCriticTrainer", "Gambler"),  # ConfidenceNetwork is an alias
        ([], "SegmenterCriticTrainer", "Gambler"),
    ],
    ids=["ce", "focal", "adversarial", "segan", "confidence", "gambling"],
)
def test_every_method_config_trains(tmp_path, monkeypatch, files, trainer, critic):
    import torch
    from monai.bundle import ConfigWorkflow

    bundle = bundle_copy(tmp_path)
    monkeypatch.chdir(bundle)
    tiny = {"synthetic_num_images": 12, "image_size": [64, 64], "network_def#channels": [4, 8, 16, 32, 64],
            "network_def#num_res_units": 0, "batch_size": 4, "val_batch_size": 4, "max_epochs": 1}  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wf = ConfigWorkflow(config_file=["configs/train.json", *(f"configs/{f}" for f in files)], **tiny)
        wf.initialize()
        wf.run()
        wf.finalize()
    engine = wf.parser.get_parsed_content("train#trainer")
    assert type(engine).__name__ == trainer
    assert np.isfinite(engine.state.metrics["train_loss"])
    method = wf.parser.get_parsed_content("method")
    ckpt = torch.load(Path(wf.parser.get_parsed_content("ckpt_dir")) / "model.pt", weights_only=True)
    if critic is None:
        assert "critic" not in ckpt
    else:
        assert type(engine.critic).__name__ == critic and set(ckpt) == {"model", "critic"}
        assert np.isfinite(engine.state.metrics["train_critic_loss"])
    assert (bundle / "eval" / "figures" / method / "validation_epoch001.png").is_file()


def test_palette_and_16_bit_pngs_train_on_their_grey_values(tmp_path):
    """A palette PNG trained on its palette indices (correlation -0.98 with the grey image) and a 16-bit
    PNG saturated (52% of pixels at 1.0) with MONAI's PILReader: the bundle reads both by their grey values."""
    from monai.bundle import ConfigParser
    from monai.transforms import Compose

    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (32, 32), dtype=np.uint8)
    palette_img = Image.fromarray(255 - grey, mode="L").convert("P")  # indices = 255 - grey value
    palette_img.putpalette([v for i in range(256) for v in (255 - i,) * 3])
    palette_img.save(tmp_path / "palette.png")
    Image.fromarray(grey.astype(np.uint16) * 16).save(tmp_path / "deep.png")  # 16-bit, up to 4080 of 65535
    Image.fromarray(np.where(grey > 128, 255, 0).astype(np.uint8)).save(tmp_path / "mask.png")
    assert Image.open(tmp_path / "palette.png").mode == "P" and Image.open(tmp_path / "deep.png").mode.startswith("I")

    parser = ConfigParser()
    parser.read_config(str(BUNDLE / "configs" / "train.json"))
    parser["image_size"] = [32, 32]
    load = Compose(parser.get_parsed_content("train#deterministic_transforms"))
    out = load({"image": str(tmp_path / "palette.png"), "label": str(tmp_path / "mask.png")})
    image = out["image"][0].numpy().T  # MONAI's (W, H) order back to the file's rows
    assert np.corrcoef(image.ravel(), grey.ravel())[0, 1] > 0.99
    assert set(np.unique(out["label"].numpy())) == {0.0, 1.0}
    deep = load({"image": str(tmp_path / "deep.png"), "label": str(tmp_path / "mask.png")})["image"][0].numpy().T
    assert (deep >= 0.999).mean() == 0 and deep.max() < 0.07  # 4080 / 65535, not saturated
    assert np.corrcoef(deep.ravel(), grey.ravel())[0, 1] > 0.99
    # a mask saved as {0, 1}: a threshold at 127.5 made it all background; now an error naming the file
    Image.fromarray((grey > 128).astype(np.uint8)).save(tmp_path / "mask01.png")
    with pytest.raises(RuntimeError, match="ToClassIndicesd") as err:  # MONAI's wrapper of a transform's error
        load({"image": str(tmp_path / "palette.png"), "label": str(tmp_path / "mask01.png")})
    assert "mask01.png holds label values [1.0]; expected only [0, 255]" in str(err.value.__cause__)


@pytest.mark.slow
def test_tracking_uri_none_turns_mlflow_off(tmp_path):
    """``--tracking_uri none``: training and evaluation run, write their checkpoints and reports, and no
    MLflow store is created."""
    bundle = bundle_copy(tmp_path)
    out = run_bundle(bundle, ["train.json"], *TINY, "--max_epochs", "1", "--tracking_uri", "none")
    assert "MLflow tracking is off" in out and "training on cpu" in out and "per iteration" in out
    assert (bundle / "models" / "model.pt").is_file()
    out = run_bundle(bundle, ["train.json", "evaluate.json"], *TINY, "--tracking_uri", "none")
    assert (bundle / "eval" / "evaluation_test" / "gambling" / "metrics.json").is_file()
    assert "MLflow:" not in out
    assert not list((bundle / "eval").glob("mlruns*")) and not (bundle / "mlruns.db").exists()
    # MONAI's --tracking mlflow: tests/handlers/test_tracking.py (check_bundle_overrides, which every bundle
    # runs first: tests/test_cli_overrides.py)
