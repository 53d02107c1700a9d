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
