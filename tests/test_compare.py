"""The study runner: a tiny grid through the thyroid bundle, resume, tables, MLflow tags, bad configs."""

import json
import math
import shutil
from pathlib import Path

import pytest

from monai_gamble.compare import StudyConfig, load_study_config, main, run_study, summarize_study

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundles" / "thyroid_ultrasound_gambling"
TINY = {
    "synthetic_num_images": 12,
    "image_size": [64, 64],
    "network_def#channels": [4, 8, 16, 32, 64],
    "network_def#num_res_units": 0,
    "critic_def#channels": [4, 8, 16, 32],
    "batch_size": 4,
    "val_batch_size": 4,
    "max_epochs": 1,
}


@pytest.fixture
def bundle(tmp_path):
    dst = tmp_path / "bundle"
    shutil.copytree(BUNDLE, dst, ignore=shutil.ignore_patterns("models", "eval", "data"))
    return dst


def write_config(tmp_path, bundle, **changes):
    cfg = {"bundle": str(bundle), "output_dir": "study", "name": "tiny_study", "methods": ["ce", "gambling"],
           "architectures": ["unet"], "seeds": [0, 1], "overrides": TINY, **changes}  # fmt: skip
    path = tmp_path / "study.json"
    path.write_text(json.dumps(cfg))
    return path


@pytest.mark.slow
def test_tiny_study_runs_resumes_and_writes_the_tables(tmp_path, bundle):
    import mlflow

    config = load_study_config(write_config(tmp_path, bundle))
    assert config.output_dir == tmp_path / "study"  # relative to the config file
    lines = []
    result = run_study(config, log=lambda *a, **k: lines.append(" ".join(map(str, a))))
    assert len(result["timings"]) == 4 and all((config.output_dir / "runs").glob("*/done.json"))
    tables = (config.output_dir / "tables.md").read_text()
    assert "## Table 1: unet" in tables and "## Table 2: MMCL" in tables
    assert "| Cross-entropy |" in tables and "| Gambling adv. |" in tables
    for k in ("Dice", "Jaccard", "BF-score", "Chamfer", "Hausdorff"):
        assert k in tables
    assert tables.count("**") >= 2 * 5  # the best mean of each column is bold
    rows = (config.output_dir / "results.csv").read_text().splitlines()
    assert rows[0] == "method,architecture,metric,mean,std,n_runs,n_inf"
    assert any(r.startswith("gambling,unet,Dice,") and r.split(",")[5] == "2" for r in rows)  # two seeds
    assert (config.output_dir / "metrics_unet.png").stat().st_size > 1000

    client = mlflow.MlflowClient(config.tracking_uri)
    exp = client.get_experiment_by_name("tiny_study")
    runs = client.search_runs([exp.experiment_id])
    parent = [r for r in runs if r.data.tags.get("study_parent") == "true"]
    assert len(parent) == 1
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent[0].info.run_id]
    assert len(children) == 8  # a training and an evaluation run per grid point
    assert {(r.data.tags["method"], r.data.tags["seed"]) for r in children} == {
        ("ce", "0"), ("ce", "1"), ("gambling", "0"), ("gambling", "1")
    }  # fmt: skip
    assert {a.path for a in client.list_artifacts(parent[0].info.run_id, "study")} >= {
        "study/tables.md", "study/results.csv", "study/metrics_unet.png", "study/timings.json"
    }  # fmt: skip

    # resume: nothing runs again; a bigger grid runs only what is new
    stamp = (config.run_dir("ce", "unet", 0) / "done.json").stat().st_mtime
    lines.clear()
    run_study(config, log=lambda *a, **k: lines.append(" ".join(map(str, a))))
    assert sum("skipped" in line for line in lines) == 4
    assert (config.run_dir("ce", "unet", 0) / "done.json").stat().st_mtime == stamp
    grown = load_study_config(write_config(tmp_path, bundle, methods=["ce", "gambling", "focal"], seeds=[0]))
    lines.clear()
    run_study(grown, log=lambda *a, **k: lines.append(" ".join(map(str, a))))
    assert sum("skipped" in line for line in lines) == 2 and any(
        "focal" in line and "training" in line for line in lines
    )
    assert "| Focal loss |" in (grown.output_dir / "tables.md").read_text()


def test_bad_study_configs(tmp_path, bundle):
    with pytest.raises(ValueError, match=r"unknown methods \['gamblin'\]"):
        load_study_config(write_config(tmp_path, bundle, methods=["gamblin"]))
    with pytest.raises(ValueError, match="methods must be a non-empty list"):
        load_study_config(write_config(tmp_path, bundle, methods=[]))
    with pytest.raises(ValueError, match="lists a name twice"):
        load_study_config(write_config(tmp_path, bundle, architectures=["unet", "unet"]))
    with pytest.raises(ValueError, match="distinct integers"):
        load_study_config(write_config(tmp_path, bundle, seeds=[0, "1"]))
    with pytest.raises(ValueError, match="may not set"):
        load_study_config(write_config(tmp_path, bundle, overrides={"seed": 3}))
    with pytest.raises(ValueError, match="unknown keys"):
        load_study_config(write_config(tmp_path, bundle, epochs=3))
    with pytest.raises(ValueError, match="no configs/train.json"):
        StudyConfig(bundle=tmp_path, output_dir=tmp_path / "o", methods=["ce"])
    (bundle / "configs" / "train_segan.json").unlink()
    with pytest.raises(ValueError, match="needs configs/train_segan.json"):
        load_study_config(write_config(tmp_path, bundle, methods=["segan"]))
    with pytest.raises(ValueError, match="cannot read"):
        load_study_config(tmp_path / "missing.json")
    with pytest.raises(SystemExit):  # the command line reports the error and exits
        main(["--config", str(write_config(tmp_path, bundle, methods=["nope"]))])


def test_summarize_without_runs_is_a_clear_error(tmp_path, bundle):
    config = load_study_config(write_config(tmp_path, bundle))
    with pytest.raises(FileNotFoundError, match="run the study first"):
        summarize_study(config)


def test_table_cells_show_spread_only_over_several_seeds():
    from monai_gamble.compare import _cell

    assert _cell(0.5, math.nan, 0, 3, False) == "0.500"  # one seed: the sample std is undefined
    assert _cell(0.5, 0.1, 2, 3, True) == "**0.500 ± 0.100** †2"
    assert _cell(math.nan, math.nan, 20, 3, False) == "nan †20"
