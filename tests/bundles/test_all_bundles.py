"""What every bundle of the repository must satisfy: its configs import the package and name only
public, importable ``monai_gamble`` targets."""

import json
import sys
from pathlib import Path

import pytest

BUNDLES = sorted(
    p.parent.parent for p in (Path(__file__).resolve().parents[2] / "bundles").glob("*/configs/train.json")
)


def test_the_four_workflows_are_there():
    names = {b.name for b in BUNDLES}
    assert {"thyroid_ultrasound_gambling", "nerve_ultrasound_ems", "xray_pneumothorax",
            "pathology_semisupervised_adversarial"} <= names  # fmt: skip


@pytest.mark.parametrize("bundle", BUNDLES, ids=[b.name for b in BUNDLES])
def test_configs_name_public_targets_and_import_the_package(bundle):
    for name in ("train.json", "inference.json"):
        cfg = json.loads((bundle / "configs" / name).read_text())
        assert "$import monai_gamble" in cfg["imports"], (bundle.name, name)
    text = "".join(p.read_text() for p in (bundle / "configs").glob("*.json"))
    targets = {t for t in text.split('"') if t.startswith("monai_gamble.")}
    assert targets, "the bundle uses nothing of monai_gamble?"
    for target in targets:
        module, _, attr = target.rpartition(".")
        assert not attr.startswith("_"), target
        __import__(module)
        assert hasattr(sys.modules[module], attr), target


# the outputs of an inference run, per bundle (the keys its inference.json defines)
INFERENCE_OUTPUTS = ("prediction_dir", "submission_csv", "ensemble_weights_path")


@pytest.mark.parametrize("bundle", BUNDLES, ids=[b.name for b in BUNDLES])
def test_each_inference_run_writes_into_a_folder_of_its_own(bundle, tmp_path, monkeypatch):
    """Two inference runs of one bundle folder: every output of each (masks, submission, ensemble weights)
    lies in its own claimed ``eval/inference/<run>`` folder, so the second never replaces the first's."""
    import shutil

    from monai.bundle import ConfigParser

    shutil.copytree(bundle / "configs", tmp_path / "configs")
    monkeypatch.chdir(tmp_path)  # bundle_root "." and the %configs/train.json macros, as a user runs it
    runs = []
    for _ in range(2):
        parser = ConfigParser()
        parser.read_config("configs/inference.json")
        paths = {k: Path(parser.get_parsed_content(k)) for k in INFERENCE_OUTPUTS if k in parser}
        run_dir = Path(parser.get_parsed_content("inference_run_dir"))
        assert run_dir.parent.resolve() == (tmp_path / "eval" / "inference").resolve() and run_dir.is_dir()
        assert all(run_dir in p.parents for p in paths.values()), paths
        runs.append(run_dir)
    assert runs[0] != runs[1]
