"""The study runner (monai_gamble.study): a tiny grid through the thyroid bundle, resume, tables, MLflow runs
tagged by id, bad configs, the pandas aggregation, the paired comparison and the command lines."""

import json
import math
import shutil
from pathlib import Path

import pytest

from monai_gamble.study import StudyConfig, load_study_config, main, run_study, summarize_study

REPO = Path(__file__).resolve().parents[2]
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
    assert "### Gambling adv. vs Cross-entropy, unet: paired over images" in tables and "Wilcoxon p" in tables
    paired = (config.output_dir / "paired.csv").read_text().splitlines()
    assert paired[0].startswith("architecture,method,baseline,metric,n_images") and len(paired) == 6

    client = mlflow.MlflowClient(config.tracking_uri)
    exp = client.get_experiment_by_name("tiny_study")
    runs = client.search_runs([exp.experiment_id])
    parent = [r for r in runs if r.data.tags.get("study_parent") == "true"]
    assert len(parent) == 1 and parent[0].info.status == "FINISHED"  # closed once the grid is complete
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


def test_a_part_of_the_grid_runs_and_the_summary_covers_every_finished_cell(tmp_path, bundle, monkeypatch, capsys):
    import monai_gamble.study.runner as runner
    from monai_gamble.study import select_cells

    config = load_study_config(write_config(tmp_path, bundle, seeds=[0, 1, 2]))
    assert select_cells(config) == config.grid and len(config.grid) == 6
    assert select_cells(config, seeds=[2, 0]) == [("ce", "unet", 0), ("ce", "unet", 2), ("gambling", "unet", 0),
                                                  ("gambling", "unet", 2)]  # fmt: skip
    assert select_cells(config, methods=["gambling"], seeds=[1]) == [("gambling", "unet", 1)]
    with pytest.raises(ValueError, match=r"seeds \[5\] are not in the study 'tiny_study', whose seeds are \[0, 1, 2\]"):
        select_cells(config, seeds=[5])
    with pytest.raises(ValueError, match=r"methods \['focal'\] are not in the study"):
        select_cells(config, methods=["focal"])
    with pytest.raises(ValueError, match="methods must be a non-empty list"):
        select_cells(config, methods="ce")
    with pytest.raises(ValueError, match="not in the grid"):
        run_study(config, cells=[("ce", "pspnet", 0)], log=None)

    ran = []

    def fake_run_one(config, method, arch, seed, parent_run_id=None):  # a cell without training
        ran.append((method, arch, seed))
        done = {"method": method, "architecture": arch, "seed": seed, "train_seconds": 1.0, "evaluate_seconds": 0.5}
        config.run_dir(method, arch, seed).mkdir(parents=True, exist_ok=True)
        (config.run_dir(method, arch, seed) / "done.json").write_text(json.dumps(done))
        return done

    monkeypatch.setattr(runner, "run_one", fake_run_one)
    monkeypatch.setattr(runner, "summarize_study", lambda config: {"tables": "", "files": []})
    fake_run_one(config, "ce", "unet", 1)  # a cell that another process finished
    ran.clear()
    result = run_study(config, cells=select_cells(config, seeds=[0]), log=None)
    assert ran == [("ce", "unet", 0), ("gambling", "unet", 0)]  # only the chosen cells run
    assert [(d["method"], d["seed"]) for d in result["timings"]] == [("ce", 0), ("ce", 1), ("gambling", 0)]
    timings = json.loads((config.output_dir / "timings.json").read_text())
    assert timings["total_seconds"] == 4.5 and len(timings["runs"]) == 3
    import mlflow

    client = mlflow.MlflowClient(config.tracking_uri)
    exp = client.get_experiment_by_name("tiny_study")
    parent = client.search_runs([exp.experiment_id], filter_string="tags.study_parent = 'true'")[0]
    assert parent.info.status == "RUNNING"  # the grid is not complete yet
    ran.clear()
    main(["--config", str(config_path := tmp_path / "study.json"), "--seeds", "1,2", "--methods", "gambling"])
    assert ran == [("gambling", "unet", 1), ("gambling", "unet", 2)]
    main(["--config", str(config_path), "--seeds", "2"])  # gambling seed 2 is done: only CE's runs
    assert ran[2:] == [("ce", "unet", 2)]
    parent = client.get_run(parent.info.run_id)
    assert parent.info.status == "FINISHED"  # every cell of the grid has finished, in whichever process
    for bad, message in ((["--seeds", "one"], "--seeds takes integers"), (["--methods", "focal"], "not in the study"),
                         (["--seeds", "0", "--summarize-only"], "--summarize-only summarises every finished cell")):  # fmt: skip
        with pytest.raises(SystemExit):
            main(["--config", str(config_path), *bad])
        assert message in capsys.readouterr().err


@pytest.mark.slow
def test_two_processes_share_one_new_study(tmp_path, bundle):
    """Two processes started together on other seeds of a study with no MLflow store yet: one store, one
    parent run, every cell (without the lock, sqlite's first migration raced: duplicate column name)."""
    import os
    import subprocess
    import sys

    import mlflow

    path = write_config(tmp_path, bundle)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    env.pop("MLFLOW_TRACKING_URI", None)
    cmd = [sys.executable, "-m", "monai_gamble.study", "--config", str(path), "--seeds"]
    procs = [subprocess.Popen([*cmd, s], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for s in ("0", "1")]  # fmt: skip
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-3000:] for o in outs)
    config = load_study_config(path)
    assert all(config.is_done(*c) for c in config.grid)
    client = mlflow.MlflowClient(config.tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("tiny_study").experiment_id])
    parents = [r for r in runs if r.data.tags.get("study_parent") == "true"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED" and len(runs) == 1 + 2 * 4
    assert "| 2 |" in (config.output_dir / "tables.md").read_text()  # both seeds in the last summary


def test_summarize_without_runs_is_a_clear_error(tmp_path, bundle):
    config = load_study_config(write_config(tmp_path, bundle))
    with pytest.raises(FileNotFoundError, match="run the study first"):
        summarize_study(config)


def test_table_cells_show_spread_only_over_several_seeds():
    from monai_gamble.study import format_cell

    assert format_cell(0.5, math.nan, 0, 3, False) == "0.500"  # one seed: the sample std is undefined
    assert format_cell(0.5, 0.1, 2, 3, True) == "**0.500 ± 0.100** †2"
    assert format_cell(math.nan, math.nan, 20, 3, False) == "nan †20"


class TestPairedComparison:
    @staticmethod
    def runs(*columns):
        """One run per column: ``{image id: {"Dice": value}}`` for images "a", "b", ..."""
        return [{chr(97 + i): {"Dice": v} for i, v in enumerate(col)} for col in columns]

    def test_hand_computed_case(self):
        from scipy.stats import wilcoxon

        from monai_gamble.study import paired_comparison

        # values exact in binary, so that the differences tie exactly where they should
        method = self.runs(
            [1.0, 0.75, 0.5, 0.5, 0.5], [0.5, 0.75, 1.0, 0.5, 0.75]
        )  # image means 0.75,0.75,0.75,0.5,0.625
        base = self.runs([0.625, 0.75, 0.375, 0.625, 0.375])
        r = paired_comparison(method, base, "Dice", bootstrap_samples=2000)
        d = [0.125, 0.0, 0.375, -0.125, 0.25]
        assert r["n_images"] == 5 and r["n_excluded"] == 0
        assert r["mean_method"] == pytest.approx(0.675) and r["mean_baseline"] == pytest.approx(0.55)
        assert r["mean_diff"] == pytest.approx(0.125)
        assert (r["wins"], r["ties"], r["losses"]) == (3, 1, 1)
        assert r["p_wilcoxon"] == pytest.approx(wilcoxon([0.125, 0.375, -0.125, 0.25]).pvalue)
        assert min(d) <= r["ci_low"] < 0.125 < r["ci_high"] <= max(d)

    def test_lower_is_better_and_infinite_distances(self):
        from monai_gamble.study import paired_comparison

        method = [{"a": {"Chamfer": 2.0}, "b": {"Chamfer": math.inf}, "c": {"Chamfer": 3.0}}]
        base = [{"a": {"Chamfer": 4.0}, "b": {"Chamfer": 1.0}, "c": {"Chamfer": 5.0}}]
        r = paired_comparison(method, base, "Chamfer", higher_is_better=False, bootstrap_samples=500)
        assert r["n_images"] == 2 and r["n_excluded"] == 1  # the missed nodule is counted, not averaged
        assert r["mean_diff"] == pytest.approx(-2.0) and (r["wins"], r["losses"]) == (2, 0)

    def test_different_images_are_refused(self):
        from monai_gamble.study import paired_comparison

        with pytest.raises(ValueError, match="different images"):
            paired_comparison(self.runs([0.5, 0.6]), self.runs([0.5, 0.6, 0.7]), "Dice")
        with pytest.raises(ValueError, match="at least one run"):
            paired_comparison([], self.runs([0.5]), "Dice")


def test_paired_and_base_configs_are_checked(tmp_path, bundle):
    config = load_study_config(write_config(tmp_path, bundle))
    assert config.paired == [["gambling", "ce"]]  # every method against CE by default
    with pytest.raises(ValueError, match=r"paired names \['focal'\]"):
        load_study_config(write_config(tmp_path, bundle, paired=[["focal", "ce"]]))
    with pytest.raises(ValueError, match="base_configs names configs/nope.json"):
        load_study_config(write_config(tmp_path, bundle, base_configs=["nope.json"]))


def test_command_line_overrides():
    from monai_gamble.study import parse_override

    assert parse_override("max_epochs=3") == ("max_epochs", 3)
    assert parse_override("image_size=[96, 96]") == ("image_size", [96, 96])
    assert parse_override("dataset_dir=/data/ddti") == ("dataset_dir", "/data/ddti")
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_override("max_epochs")


def test_path_overrides_are_relative_to_the_study_config(tmp_path, bundle):
    config = load_study_config(write_config(tmp_path, bundle, overrides={**TINY, "dataset_dir": "data/ddti"}))
    assert config.overrides["dataset_dir"] == str(tmp_path / "data" / "ddti")
    assert config.overrides["max_epochs"] == 1


def test_aggregation_is_a_groupby_over_seeds_with_finite_means_and_inf_counts():
    import numpy as np
    import pandas as pd

    from monai_gamble.study import aggregate_runs

    per_run = pd.DataFrame(
        [
            ("ce", "unet", 0, "Dice", 0.5, 0),
            ("ce", "unet", 1, "Dice", 0.7, 0),
            ("ce", "unet", 0, "Chamfer", 3.0, 1),
            ("ce", "unet", 1, "Chamfer", math.nan, 4),  # every image infinite: no finite mean
            ("gambling", "unet", 0, "Dice", 0.9, 0),
        ],
        columns=["method", "architecture", "seed", "metric", "value", "n_inf"],
    )
    agg = aggregate_runs(per_run)
    assert list(agg.index) == [("ce", "unet", "Chamfer"), ("ce", "unet", "Dice"), ("gambling", "unet", "Dice")]
    dice = agg.loc[("ce", "unet", "Dice")]
    assert dice["mean"] == pytest.approx(0.6) and dice["std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    chamfer = agg.loc[("ce", "unet", "Chamfer")]
    assert chamfer["mean"] == 3.0 and math.isnan(chamfer["std"]) and chamfer["n_runs"] == 2 and chamfer["n_inf"] == 5
    assert math.isnan(agg.loc[("gambling", "unet", "Dice"), "std"])  # one seed: no spread


def test_run_metrics_reads_ids_as_text_and_counts_inf(tmp_path):
    from monai_gamble.study import read_per_image, run_metrics

    path = tmp_path / "metrics_per_image.csv"
    path.write_text("id,Dice,Chamfer\n007,0.5,2\n010,0.7,inf\n")
    assert list(read_per_image(path).index) == ["007", "010"]
    m = run_metrics(path)
    assert m.loc["Dice", "value"] == pytest.approx(0.6) and m.loc["Chamfer", "value"] == 2.0
    assert m.loc["Chamfer", "n_inf"] == 1 and m.loc["Dice", "n_inf"] == 0


def test_child_runs_are_created_and_tagged_by_id_and_stale_ones_renamed(tmp_path, bundle):
    import mlflow

    from monai_gamble.study import finish_run, start_child_run

    config = load_study_config(write_config(tmp_path, bundle))
    client = mlflow.MlflowClient(config.tracking_uri)
    stale = start_child_run(config, "ce_unet_seed0_train", {"method": "ce"})  # left RUNNING by a crash
    run_id = start_child_run(config, "ce_unet_seed0_train", {"method": "ce", "seed": "0"})
    assert client.get_run(stale).info.status == "FAILED"
    assert client.get_run(stale).info.run_name == "ce_unet_seed0_train_interrupted"
    run = client.get_run(run_id)
    assert run.info.status == "RUNNING" and run.data.tags["seed"] == "0"
    finish_run(config, run_id)
    assert client.get_run(run_id).info.status == "FINISHED"
    # a finished run of the same name (an earlier study) is left as it is
    again = start_child_run(config, "ce_unet_seed0_train", {"method": "ce"})
    assert client.get_run(run_id).info.run_name == "ce_unet_seed0_train" and again != run_id


@pytest.mark.parametrize("module", ["monai_gamble.study", "monai_gamble.compare"])
def test_both_command_lines_work(module):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "--override KEY=VALUE" in proc.stdout
    if module.endswith("compare"):
        assert "deprecated: use monai_gamble.study" in proc.stderr


def test_the_old_module_forwards_with_a_deprecation_warning():
    import importlib
    import sys

    sys.modules.pop("monai_gamble.compare", None)
    with pytest.warns(DeprecationWarning, match="use monai_gamble.study"):
        compare = importlib.import_module("monai_gamble.compare")
    import monai_gamble.study as study

    assert compare.run_study is study.run_study and compare.load_study_config is study.load_study_config
