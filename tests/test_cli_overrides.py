"""check_bundle_overrides: a mistyped ``--key`` of ``python -m monai.bundle run`` stops the run before
any work, naming the key and the closest ids; every bundle calls it first."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from monai_gamble.utils import check_bundle_overrides

REPO = Path(__file__).resolve().parents[1]
RUN = ["/env/lib/python3.11/site-packages/monai/bundle/__main__.py", "run"]
CONFIG = {
    "max_epochs": 60,
    "objective": {"_target_": "GamblingLoss", "beta": 0.02},
    "network_def": {"_target_": "UNet", "channels": [16, 32]},
    "train": {"transforms": [{"_target_": "RandFlipd", "prob": 0.5}]},
    "infer_net": {"channels": "%configs/train.json#network_def#channels"},
}


def test_known_keys_pass_and_are_returned():
    argv = [
        *RUN,
        "--config_file",
        "x.json",
        "--max_epochs",
        "2",
        "--objective#beta=0.1",
        "--network_def#channels#1",
        "8",
    ]
    assert check_bundle_overrides(argv, config=CONFIG) == ["max_epochs", "objective#beta", "network_def#channels#1"]
    # a new keyword argument of a component, and a list index counted from the end
    extra = [
        *RUN,
        "--objective#budget",
        "65536",
        "--train#transforms#-1#prob",
        "0.2",
        "--network_def#num_res_units",
        "2",
    ]
    assert check_bundle_overrides(extra, config=CONFIG) == [
        "objective#budget",  # GamblingLoss is not a name MONAI's locator resolves: accepted
        "train#transforms#-1#prob",
        "network_def#num_res_units",  # a parameter of monai.networks.nets.UNet
    ]
    # inside a macro (or a reference) nothing can be checked before MONAI parses it
    assert check_bundle_overrides([*RUN, "--infer_net#channels#0", "4"], config=CONFIG) == ["infer_net#channels#0"]


@pytest.mark.parametrize(
    "option, message",
    [
        ("--max_epoch", "the configs define no 'max_epoch'. Did you mean --max_epochs?"),
        ("--network_def#chanels", "no 'network_def#chanels'. Did you mean 'channels', 'in_channels'"),
        # a new argument of a component must be a parameter of its target (MONAI's UNet here)
        ("--network_def#num_res_unit", "Did you mean 'num_res_units'?"),
        ("--network_def#channels#2", "network_def#channels is a list of 2 items, so '2' is not an index of it"),
        ("--max_epochs#x", "max_epochs is a value (int), not a dict or a list"),
        ("--train#loader", "the configs define no 'train#loader'"),
    ],
)
def test_unknown_keys_stop_with_close_matches(option, message):
    with pytest.raises(SystemExit, match="nothing was run") as e:
        check_bundle_overrides([*RUN, option, "1"], config=CONFIG)
    assert message in str(e.value)


def test_not_a_bundle_run_is_not_checked():
    assert check_bundle_overrides(["pytest", "--max_epoch", "1"], config=CONFIG) == []
    assert check_bundle_overrides([RUN[0], "verify_metadata", "--max_epoch", "1"], config=CONFIG) == []


def test_config_files_and_args_file_from_the_command_line(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps({"max_epochs": 1}))
    b.write_text(json.dumps({"evaluation_dir": "x"}))
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"max_epochs": 3}))
    files = f"['{a}','{b}']"
    assert check_bundle_overrides([*RUN, "--config_file", files, "--evaluation_dir", "y"]) == ["evaluation_dir"]
    assert check_bundle_overrides([*RUN, "--config_file", files, "--args_file", str(args)]) == ["max_epochs"]
    args.write_text(json.dumps({"max_epoch": 3}))
    with pytest.raises(SystemExit, match="max_epoch"):
        check_bundle_overrides([*RUN, "--config_file", f"{a},{b}", "--args_file", str(args)])
    yaml_args = tmp_path / "args.yaml"  # MONAI's run also takes a YAML args file
    yaml_args.write_text("max_epochs: 2\n")
    assert check_bundle_overrides([*RUN, "--config_file", files, "--args_file", str(yaml_args)]) == ["max_epochs"]


BUNDLES = sorted(p.parent.parent for p in REPO.glob("bundles/*/configs/train.json"))


@pytest.mark.parametrize("bundle", BUNDLES, ids=[b.name for b in BUNDLES])
def test_every_bundle_checks_first(bundle):
    for name in ("train.json", "inference.json", "multi_gpu_train.json"):
        init = json.loads((bundle / "configs" / name).read_text())["initialize"]
        assert init[0] == "$monai_gamble.utils.check_bundle_overrides()", (bundle.name, name)


def test_a_mistyped_key_stops_the_thyroid_bundle_at_once(tmp_path):
    bundle = REPO / "bundles" / "thyroid_ultrasound_gambling"
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", "configs/train.json", "--max_epoch", "1",
           "--bundle_root", str(tmp_path), "--output_dir", str(tmp_path / "eval")]  # fmt: skip
    proc = subprocess.run(cmd, cwd=bundle, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "--max_epoch: the configs define no 'max_epoch'. Did you mean --max_epochs?" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "data").exists() and not (tmp_path / "eval").exists()  # nothing was run


@pytest.mark.parametrize(
    "args, message",
    [(["--image_size", "[100,100]"], "--image_size [100, 100] does not fit the network: UNet fails on it")],
)  # the other settings: tests/test_utils.py (the same function, in-process)
def test_a_bad_setting_stops_the_thyroid_bundle_with_one_line(tmp_path, args, message):
    bundle = REPO / "bundles" / "thyroid_ultrasound_gambling"
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", "configs/train.json", *args,
           "--bundle_root", str(tmp_path), "--output_dir", str(tmp_path / "eval")]  # fmt: skip
    proc = subprocess.run(cmd, cwd=bundle, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert f"Bad setting, nothing was run: {message}" in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "data").exists() and not (tmp_path / "models").exists()  # nothing was run


@pytest.mark.parametrize("value", ["false", "FALSE", "no", "off", " false"])
def test_a_false_word_is_refused_because_monai_reads_it_as_true_text(value):
    """Fire parses ``False`` to the boolean but leaves ``false`` text, which a config then takes as true
    (``--resume false`` resumed): refused with the spelling that works."""
    config = {**CONFIG, "resume": False}
    with pytest.raises(SystemExit, match="nothing was run") as e:
        check_bundle_overrides([*RUN, "--resume", value], config=config)
    assert f"--resume {value}: MONAI's command line reads {value!r} as text" in str(e.value)
    assert "Write --resume False." in str(e.value)
    with pytest.raises(SystemExit, match="--resume no: MONAI"):
        check_bundle_overrides([*RUN, "--resume=no"], config=config)


def test_false_true_and_text_values_that_mean_what_they_say_pass():
    config = {**CONFIG, "resume": False, "tracking_uri": "sqlite:///x.db", "norm": "batch"}
    argv = [*RUN, "--resume", "False", "--max_epochs", "true", "--tracking_uri", "false", "--norm", "instance"]
    assert check_bundle_overrides(argv, config=config) == ["resume", "max_epochs", "tracking_uri", "norm"]


def test_as_bool():
    from monai_gamble.utils import as_bool

    assert [as_bool(v) for v in (True, "true", " Yes", "on", 1, "1")] == [True] * 6
    assert [as_bool(v) for v in (False, "false", "NO", "off", 0, "0")] == [False] * 6
    for bad in ("maybe", 2, None, [True]):
        with pytest.raises(ValueError, match="resume must be true or false"):
            as_bool(bad, "resume")
