"""The pathology bundle: metadata schema, properties, network I/O, every training config, and real runs of
``python -m monai.bundle run`` (train, evaluate, inference, two-process training) on synthetic and real tiles."""

import json
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

from monai_gamble.data import PATHOLOGY_CLASSES, ClassConditionalBatchSampler

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "pathology_semisupervised_adversarial"
# a tiny, fast setting: 10 synthetic labelled and 4 unlabelled tiles of 64x64, a small DeepLabV3+ and discriminator
TINY = {
    "synthetic_num_labelled": 10,
    "synthetic_num_unlabelled": 4,
    "synthetic_tile_size": 64,
    "image_size": [64, 64],
    "backbone": "resnet10",
    "aspp_channels": 8,
    "decoder_channels": 8,
    "critic_channels": [4, 4, 4, 4],
    "batch_size": 2,
    "val_batch_size": 2,
}
TINY_ARGS = [
    a for k, v in TINY.items() for a in (f"--{k}", v if isinstance(v, str) else json.dumps(v).replace(" ", ""))
]


def bundle_copy(tmp_path: Path) -> Path:
    return copy_bundle(BUNDLE, tmp_path)


def mlflow_runs(bundle: Path):
    return recorded_runs(bundle, "pathology_semisupervised_adversarial")


def workflow(files, workflow_type="train", **overrides):
    return initialized_workflow(BUNDLE, files, workflow_type, **overrides)


def test_check_properties_net_in_out_and_every_training_config(tmp_path, monkeypatch):
    bundle = bundle_copy(tmp_path)
    monkeypatch.chdir(bundle)  # bundle_root is "."; the (tiny) synthetic dataset is generated there
    expected = {
        (): ("SemiSupervisedAdversarialTrainer", "FCDiscriminator", "CrossEntropyLoss"),
        ("train_supervised.json",): ("AmpSupervisedTrainer", None, "CrossEntropyLoss"),
        ("train_adversarial.json",): ("SemiSupervisedAdversarialTrainer", "FCDiscriminator", "CrossEntropyLoss"),
        ("critic_patchgan.json",): ("SemiSupervisedAdversarialTrainer", "PatchDiscriminator", "TiltedCrossEntropyLoss"),
    }
    for files, (trainer, critic, loss) in expected.items():
        extra = {"loss_name": "tce_class"} if critic == "PatchDiscriminator" else {}
        wf = workflow(["train.json", *files], **TINY, **extra, max_epochs=1, epoch_length=1)
        assert wf.check_properties() == []
        engine = wf.parser.get_parsed_content("train#trainer")
        assert type(engine).__name__ == trainer and type(wf.parser.get_parsed_content("loss")).__name__ == loss
        assert (critic is None) == (wf.parser.get_parsed_content("critic") is None)
        if critic:
            assert type(engine.critic).__name__ == critic
            assert engine.unlabeled_batches == (0 if files == ("train_adversarial.json",) else 1)
        if files == ("critic_patchgan.json",):  # one iteration of the PatchGAN + TCE variant
            engine.run()
            assert np.isfinite(engine.state.metrics["train_critic_loss"])
    assert wf.parser.get_parsed_content("num_classes") == 4
    objective = wf.parser.get_parsed_content("objective")  # the default: Hung's schedule, a correctness target
    assert (objective.discriminator_target, objective.schedule, objective.semi_threshold) == (
        "correctness",
        "interleaved",
        0.9,
    )
    # the report's variants, options of the same objective: a labelled epoch, then an unlabelled one
    wf = workflow(
        ["train.json"], **TINY, discriminator_target="real_fake", semi_threshold=0.2, semi_schedule="two_stage",
        labeled_stage_epochs=1, max_epochs=2, epoch_length=1,
    )  # fmt: skip
    assert wf.check_properties() == []
    engine = wf.parser.get_parsed_content("train#trainer")
    assert engine.objective.map_name == "confidence_map"
    assert wf.parser.get_parsed_content("figure_map_keys") == ["prob", "confidence_map"]
    engine.run()
    assert [engine.stage(i) for i in (1, 2)] == ["labeled", "unlabeled"]
    assert np.isfinite(engine.state.metrics["train_critic_loss"]) and engine.state.output[0]["unlabeled_adv"] > 0
    # stochastic TCE: the class-conditional batch sampler feeds the labelled loader, the handler updates it
    for files, key in (((), "supervised"), (("train_supervised.json",), "loss")):
        wf = workflow(["train.json", *files], **TINY, loss_name="stochastic_tce", tce_gamma=0.5, max_epochs=1,
                      epoch_length=3)  # fmt: skip
        assert wf.check_properties() == []
        sampler = wf.parser.get_parsed_content("train#batch_sampler")
        assert isinstance(sampler, ClassConditionalBatchSampler) and len(sampler) == 3
        assert wf.parser.get_parsed_content("train#dataloader").batch_sampler is sampler
        assert wf.parser.get_parsed_content("stce_loss_key") == key
        engine = wf.parser.get_parsed_content("train#trainer")
        engine.run()
        assert sum(engine.state.metrics[f"stce_draws_{c}"] for c in PATHOLOGY_CLASSES) == 3
        weights = [engine.state.metrics[f"stce_weight_{c}"] for c in PATHOLOGY_CLASSES]
        assert np.isclose(sum(weights), 1.0) and len(set(np.round(weights, 6))) > 1  # moved away from uniform
    with pytest.raises(RuntimeError) as err:
        workflow(["train.json"], **TINY, loss_name="tce_foo").parser.get_parsed_content("loss")
    assert "Unsupported option 'tce_foo'" in str(err.value.__cause__)
    infer = workflow(
        ["inference.json"],
        "infer",
        dataset_dir=str(next((bundle / "data").glob("synthetic_podocyte_*"))),
        backbone="resnet10",
        aspp_channels=8,
        decoder_channels=8,
    )
    assert infer.check_properties() == []
    assert len(infer.parser.get_parsed_content("datalist")) == 4  # the unlabelled tiles
    verify_inference_network(BUNDLE, n=2, backbone="resnet10")
    assert not any((REPO / d).exists() for d in ("data", "eval", "models")), "the test wrote into the repository"


def test_stain_normalization_option_on_real_tiles(realdata, tmp_path, monkeypatch):
    import torch

    monkeypatch.chdir(bundle_copy(tmp_path))
    root = realdata / "pathology_glomeruli_sarder_frozen"
    outs = {}
    for flag in (False, True):
        wf = workflow(["train.json"], dataset_dir=str(root), stain_normalization=flag, image_size=[64, 64])
        item = wf.parser.get_parsed_content("datalist")["training"][0]
        outs[flag] = wf.parser.get_parsed_content("validate#preprocessing")(item)
    for out in outs.values():
        assert out["image"].shape == (3, 64, 64) and out["label"].shape == (1, 64, 64)
        assert 0 <= out["image"].min() and out["image"].max() <= 1 and set(out["label"].unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(outs[True]["label"], outs[False]["label"])
    assert (outs[True]["image"] - outs[False]["image"]).abs().mean() > 0.01  # Macenko changes the colours


@pytest.mark.slow
def test_train_evaluate_infer_end_to_end(tmp_path):
    import torch

    bundle = bundle_copy(tmp_path)
    # 1. semi-supervised (the default): one epoch on the embedded synthetic dataset (generated on this first run)
    out = run_bundle(bundle, ["train.json"], *TINY_ARGS, "--max_epochs", "1", mlflow_model=True)
    ckpt = torch.load(bundle / "models" / "model.pt", weights_only=True)
    assert set(ckpt) == {"model", "critic"}
    client, runs = mlflow_runs(bundle)
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    run = runs[0]
    assert run.info.run_name.startswith("semi_supervised_train_")
    for key in ("train_loss", "train_critic_loss", "train_supervised", "train_adv", "train_unlabeled_loss",
                "train_unlabeled_adv", "train_correct_fraction", "val_miou", "val_miou_iou_podocyte",
                "val_miou_worst_iou", "val_mean_dice"):  # fmt: skip
        assert key in run.data.metrics, (key, sorted(run.data.metrics))
    assert run.data.metrics["train_unlabeled_adv"] > 0 and 0 <= run.data.metrics["val_miou"] <= 1
    params = run.data.params
    assert params["objective"] == "SemiSupervisedAdversarialObjective" and params["critic"] == "FCDiscriminator"
    assert params["num_unlabeled_tiles"] == "4" and params["labeled_fraction"] == "1.0"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"model.pt", "config", "figures"} <= artifacts, artifacts
    assert_reproducible_run(client, run, bundle, {})
    assert (bundle / "eval" / "figures" / "semi_supervised" / "validation_epoch001.png").is_file()
    assert "unlabeled_loss=" in out  # the progress bar

    # 2. the supervised-only baseline: its own checkpoint folder and run
    run_bundle(bundle, ["train.json", "train_supervised.json"], *TINY_ARGS, "--max_epochs", "1")
    assert "critic" not in torch.load(bundle / "models" / "supervised" / "model.pt", weights_only=True)

    # 3. evaluate both: per-class IoU / precision / recall / F1 with means, fairness, comparison
    run_bundle(bundle, ["train.json", "train_supervised.json", "evaluate.json"], *TINY_ARGS)
    out = run_bundle(bundle, ["train.json", "evaluate.json"], *TINY_ARGS)
    report = bundle / "eval" / "evaluation_test"
    table = (report / "semi_supervised" / "per_class_metrics.md").read_text()
    for row in ("| background |", "| glomeruli |", "| podocyte |", "| non-podocyte |", "| mean |"):
        assert row in table and row in out
    assert "| class | IoU | precision | recall | F1 |" in table and "sorted 25% bottom" in table
    metrics = json.loads((report / "semi_supervised" / "metrics.json").read_text())["dataset_metrics"]  # its twin
    assert f"| mean | {metrics['test_iou']:.4f} | {metrics['test_mean_precision']:.4f} |" in table
    assert "| metric | semi_supervised | supervised |" in (report / "comparison.md").read_text()
    assert (report / "semi_supervised" / "test_epoch001.png").is_file()
    client, runs = mlflow_runs(bundle)
    ev = runs[-1]
    assert ev.info.run_name.startswith("semi_supervised_evaluate_") and ev.info.status == "FINISHED"
    for key in ("test_iou", "test_iou_iou_podocyte", "test_precision_podocyte", "test_mean_f1", "test_dice"):
        assert key in ev.data.metrics, key
    assert "evaluation/per_class_metrics.md" in {a.path for a in client.list_artifacts(ev.info.run_id, "evaluation")}

    # 4. inference writes a class-index mask per unlabelled tile, at the tile's size
    data = next((bundle / "data").glob("synthetic_podocyte_*"))
    run_bundle(bundle, ["inference.json"], "--dataset_dir", str(data), *TINY_ARGS[6:14])
    preds = sorted((inference_run(bundle) / "predictions").glob("*.png"))
    assert [p.stem for p in preds] == ["u0001", "u0002", "u0003", "u0004"]
    mask = np.asarray(Image.open(preds[0]))
    assert mask.shape == (64, 64) and set(np.unique(mask)) <= {0, 1, 2, 3}


@pytest.mark.slow
def test_real_glomeruli_tiles_binary_train_evaluate_infer(tmp_path, realdata):
    bundle = bundle_copy(tmp_path)
    real = str(realdata / "pathology_glomeruli_sarder_frozen")
    tiny = [*TINY_ARGS[6:], "--dataset_dir", real, "--max_epochs", "1"]
    # all 16 training tiles labelled: no unlabelled tile, a clear error for the semi-supervised method
    with pytest.raises(AssertionError, match="the unlabelled data loader is empty"):
        run_bundle(bundle, ["train.json"], *tiny)
    # half of them used as unlabelled tiles
    run_bundle(bundle, ["train.json"], *tiny, "--labeled_fraction", "0.5")
    out = run_bundle(bundle, ["train.json", "evaluate.json"], *tiny, "--labeled_fraction", "0.5")
    assert "| glomerulus |" in out and "| podocyte |" not in out
    _, runs = mlflow_runs(bundle)
    assert runs[0].data.params["num_classes"] == "2" and runs[0].data.params["num_unlabeled_tiles"] == "8"
    run_bundle(bundle, ["inference.json"], "--dataset_dir", real, "--num_classes", "2", "--output_scale", "255",
               *TINY_ARGS[6:14])  # fmt: skip
    preds = sorted((inference_run(bundle) / "predictions").glob("*.png"))
    assert len(preds) == 20 and preds[0].stem.startswith("slide_O27_")
    mask = np.asarray(Image.open(preds[0]))
    assert mask.shape == (256, 256) and set(np.unique(mask)) <= {0, 255}


@pytest.mark.slow
def test_two_process_training_on_cpu_gloo(tmp_path):
    """Two processes (gloo) with stochastic TCE: the semi-supervised trainer under DDP, as with plain
    cross-entropy, plus the class-conditional sampler that shards itself and the per-class weights."""
    loss_name = "stochastic_tce"
    bundle = bundle_copy(tmp_path)
    args = [
        "--synthetic_num_labelled",
        "20",
        *TINY_ARGS[2:],
        "--loss_name",
        loss_name,
    ]  # 2 validation tiles: one per rank
    run_bundle(bundle, ["train.json", "multi_gpu_train.json"], *args, "--max_epochs", "2", torchrun=2)
    assert (bundle / "models" / "model.pt").is_file()
    _, runs = mlflow_runs(bundle)
    assert len(runs) == 1  # only rank 0 tracks
    metrics = runs[0].data.metrics
    assert {"val_miou", "train_loss", "train_unlabeled_loss"} <= set(metrics)
    # the class-conditional sampler shards itself; weights logged per class
    assert np.isclose(sum(metrics[f"stce_weight_{c}"] for c in PATHOLOGY_CLASSES), 1.0, atol=1e-4)


def test_bad_dataset_dir_is_a_clear_error(tmp_path):
    bundle = bundle_copy(tmp_path)
    with pytest.raises(AssertionError, match="pathology dataset folder .*nope does not exist"):
        run_bundle(bundle, ["train.json"], *TINY_ARGS, "--dataset_dir", str(tmp_path / "nope"), "--max_epochs", "1")
