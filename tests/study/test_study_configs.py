"""Every study config that ships with a bundle loads (known keys, methods and override files the
bundle has), and a real-data path in it points at the shared real data next to the repository."""

from pathlib import Path

import pytest

from monai_gamble.study.config import load_study_config

REPO = Path(__file__).resolve().parents[2]
STUDIES = sorted(REPO.glob("bundles/*/studies/*.json"))


def test_there_are_study_configs():
    assert any(p.name == "ddti_cpu.json" for p in STUDIES)


@pytest.mark.parametrize("path", STUDIES, ids=[f"{p.parents[1].name}/{p.stem}" for p in STUDIES])
def test_study_config_loads(path):
    config = load_study_config(path)
    assert config.methods and config.seeds
    assert Path(config.bundle).resolve() == path.parents[1].resolve()
    data = config.overrides.get("dataset_dir")
    if data:
        assert Path(data).resolve().is_relative_to((REPO.parent / "shared" / "realdata").resolve()), data
