"""Every bundle follows the MONAI Model Zoo's conventions, checked offline as the zoo's
``ci/verify_bundle.py`` checks them: the files it requires (``configs/metadata.json``, ``LICENSE``)
and prefers (``configs/inference.json``; ``models/model.pt`` through ``large_files.yml``), a
``version`` listed in ``changelog``, ``verify_metadata`` against the schema (the repository's copy,
no download), and ``ckpt_export`` of the network to TorchScript.

The export and metadata commands are the ones each bundle's ``docs/README.md`` shows, parsed from
it and run in-process through ``fire`` as ``python -m monai.bundle`` runs them; the exported model
is compared with the network on a random input. The zoo's ``check_properties`` step runs only for
the apps of ``supported_apps``, which every bundle leaves empty (the bundles' own tests check the
inference workflows' properties on data)."""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import socket
import warnings
from pathlib import Path

import fire
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser, ckpt_export, verify_metadata
from PIL import Image

import monai_gamble

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "schemas" / "meta_schema_20240725.json"
BUNDLES = sorted(p.name for p in (REPO / "bundles").iterdir() if (p / "configs" / "metadata.json").is_file())
#: md5 of the Apache License 2.0 text as the ASF publishes it (https://www.apache.org/licenses/LICENSE-2.0.txt)
APACHE_2_MD5 = "3b83ef96387f14655fc854ddc3c6bd57"
#: the arguments of ``ckpt_export`` common to every bundle's command
EXPORT = (
    "python -m monai.bundle ckpt_export network_def --filepath models/model.ts --ckpt_file {ckpt} "
    "--meta_file configs/metadata.json --config_file {configs}"
)
#: per bundle, the export commands its docs must show: ``{"model": ..., "critic": ...}`` checkpoints
#: need ``--key_in_ckpt model``; the generic bundle's network is sized by its dataset
EXPECTED_EXPORTS = {
    "generic_segmentation": [
        EXPORT.format(ckpt="models/gambling/model.pt", configs="configs/inference.json")
        + " --key_in_ckpt model --dataset_dir /path/to/the/training/dataset"
    ],
    "nerve_ultrasound_ems": [EXPORT.format(ckpt="models/model.pt", configs="configs/inference.json")],
    "pathology_semisupervised_adversarial": [
        EXPORT.format(ckpt="models/model.pt", configs="configs/inference.json") + " --key_in_ckpt model"
    ],
    "thyroid_ultrasound_gambling": [
        EXPORT.format(ckpt="models/model.pt", configs="configs/inference.json") + " --key_in_ckpt model",
        EXPORT.format(ckpt="models/model.pt", configs="\"['configs/inference.json','configs/arch_pspnet.json']\"")
        + " --key_in_ckpt model",
    ],
    "xray_pneumothorax": [EXPORT.format(ckpt="models/model.pt", configs="configs/inference.json")],
}
#: the checkpoint each bundle's training saves: the keys of its saver's ``save_dict`` (one object is saved flat)
CHECKPOINT_KEYS = {
    "generic_segmentation": ["model", "critic"],
    "nerve_ultrasound_ems": ["model"],
    "pathology_semisupervised_adversarial": ["model", "critic"],
    "thyroid_ultrasound_gambling": ["model", "critic"],
    "xray_pneumothorax": ["model"],
}
VERIFY_METADATA = (
    "python -m monai.bundle verify_metadata --meta_file configs/metadata.json "
    "--filepath ../../schemas/meta_schema_20240725.json"
)
INSTALL_LINES = ("pip install torch==2.13.0", "pip install /path/to/monai-gamble")
#: the commands of ``python -m monai.bundle`` that the docs show, as its ``fire.Fire()`` finds them
COMMANDS = {"ckpt_export": ckpt_export, "verify_metadata": verify_metadata}


def doc_commands(bundle: str, command: str) -> list[str]:
    """The lines of ``bundles/<bundle>/docs/README.md`` that run ``python -m monai.bundle <command>``."""
    text = (REPO / "bundles" / bundle / "docs" / "README.md").read_text()
    return [line.strip() for line in text.splitlines() if line.strip().startswith(f"python -m monai.bundle {command} ")]


def run_monai_bundle(line: str, **replace: str) -> None:
    """Run a ``python -m monai.bundle ...`` line in-process, parsed by ``fire`` as the module's
    ``__main__`` parses it, with the values of the ``--<key>`` arguments in ``replace`` replaced."""
    argv = shlex.split(line)
    assert argv[:3] == ["python", "-m", "monai.bundle"], line
    args = argv[3:]
    for key, value in replace.items():
        i = args.index(f"--{key}")
        args[i + 1] = value
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI warns that "$" expressions run code
        fire.Fire(COMMANDS, command=args)


def _arg(line: str, key: str) -> str:
    argv = shlex.split(line)
    return argv[argv.index(f"--{key}") + 1]


@pytest.fixture
def offline(monkeypatch):
    """No network connection can be opened."""

    def refuse(*args, **kwargs):
        raise OSError("no network in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def tiny_image_mask_folder(root: Path) -> Path:
    """Two 32 x 32 grey PNGs with {0, 255} masks: a dataset that sizes the generic bundle's network
    (2D, one channel, two classes)."""
    rng = np.random.default_rng(0)
    for d in ("image", "mask"):
        (root / d).mkdir(parents=True)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (32, 32), dtype=np.uint8)).save(root / "image" / f"c{i}.png")
        mask = np.zeros((32, 32), np.uint8)
        mask[8:20, 6:24] = 255
        Image.fromarray(mask).save(root / "mask" / f"c{i}.png")
    return root


def test_every_bundle_is_covered():
    assert BUNDLES == sorted(EXPECTED_EXPORTS) == sorted(CHECKPOINT_KEYS)


@pytest.mark.parametrize("bundle", BUNDLES)
def test_docs_show_the_tested_export_and_metadata_commands(bundle):
    assert doc_commands(bundle, "ckpt_export") == EXPECTED_EXPORTS[bundle]
    assert doc_commands(bundle, "verify_metadata") == [VERIFY_METADATA]
    readme = (REPO / "bundles" / bundle / "docs" / "README.md").read_text()
    for line in INSTALL_LINES:
        assert line in readme, f"{bundle}/docs/README.md does not say how to install monai-gamble: {line!r}"
    assert (REPO / "bundles" / bundle / _arg(VERIFY_METADATA, "filepath")).resolve() == SCHEMA


@pytest.mark.parametrize("bundle", BUNDLES)
def test_checkpoint_keys_are_what_training_saves(bundle):
    """The savers of ``train.json`` (best model by the key metric, and the published ``models/model.pt``)
    save the objects of :data:`CHECKPOINT_KEYS`; the docs' commands give ``--key_in_ckpt model``
    exactly when there are several."""
    train = json.loads((REPO / "bundles" / bundle / "configs" / "train.json").read_text())
    handlers = train["train"]["handlers"] + train["validate"]["handlers"]
    savers = [
        h for h in handlers if h["_target_"].rsplit(".", 1)[-1] in ("AtomicCheckpointSaver", "TrainingCheckpoint")
    ]
    assert len(savers) >= 2  # the key-metric model.pt and the published copy (x-ray: also model_final.pt)
    for saver in savers:
        save_dict = saver["save_dict"]
        if save_dict == "@checkpoint_dict":
            save_dict = train["checkpoint_dict"]
        assert [k for k in save_dict if k != "_target_"] == CHECKPOINT_KEYS[bundle]
    nested = len(CHECKPOINT_KEYS[bundle]) > 1
    for line in EXPECTED_EXPORTS[bundle]:
        assert ("--key_in_ckpt model" in line) == nested


def _export_case(bundle: str, line: str, tmp_path: Path) -> tuple[torch.nn.Module, dict[str, str]]:
    """The bundle's network as the export command's configs define it, with random weights saved in
    ``tmp_path`` in the bundle's checkpoint format; and the command's replaced arguments."""
    overrides = {}
    if "--dataset_dir" in line:
        overrides["dataset_dir"] = str(tiny_image_mask_folder(tmp_path / "dataset"))
    parser = ConfigParser()
    config_arg = _arg(line, "config_file")
    files = json.loads(config_arg.replace("'", '"')) if config_arg.startswith("[") else [config_arg]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parser.read_config(files)
        parser.read_meta(_arg(line, "meta_file"))
        for key, value in overrides.items():
            parser[key] = value
        torch.manual_seed(0)
        net = parser.get_parsed_content("network_def")
    ckpt = tmp_path / "model.pt"
    if len(CHECKPOINT_KEYS[bundle]) > 1:
        critic = torch.nn.Conv2d(3, 1, 3)  # any state dict: the export takes the segmenter's
        torch.save({"model": net.state_dict(), "critic": critic.state_dict()}, ckpt)
    else:
        torch.save(net.state_dict(), ckpt)
    return net.eval(), {"filepath": str(tmp_path / "model.ts"), "ckpt_file": str(ckpt), **overrides}


def _random_input(bundle: str, net: torch.nn.Module) -> torch.Tensor:
    """Two images of the metadata's channels at n = 2 of its spatial shape (``32*n`` -> 64); the
    generic bundle's tiny dataset is 2D with one channel, 32 x 32."""
    if bundle == "generic_segmentation":
        return torch.rand(2, 1, 32, 32)
    meta = json.loads((REPO / "bundles" / bundle / "configs" / "metadata.json").read_text())
    image = meta["network_data_format"]["inputs"]["image"]
    spatial = [int(str(s).replace("*n", "")) * 2 for s in image["spatial_shape"]]
    return torch.rand(2, image["num_channels"], *spatial)


@pytest.mark.parametrize(
    "bundle, index", [(b, i) for b in sorted(EXPECTED_EXPORTS) for i in range(len(EXPECTED_EXPORTS[b]))]
)
def test_exported_torchscript_equals_the_network(bundle, index, tmp_path, monkeypatch, offline):
    monkeypatch.chdir(REPO / "bundles" / bundle)  # inference.json reads configs/train.json from the working dir
    line = doc_commands(bundle, "ckpt_export")[index]
    net, replace = _export_case(bundle, line, tmp_path)
    run_monai_bundle(line, **replace)
    extra = {"metadata.json": "", "inference.json": ""}
    scripted = torch.jit.load(replace["filepath"], _extra_files=extra)
    assert isinstance(scripted, torch.jit.ScriptModule)
    meta = json.loads((REPO / "bundles" / bundle / "configs" / "metadata.json").read_text())
    assert json.loads(extra["metadata.json"])["version"] == meta["version"]
    assert json.loads(extra["inference.json"]) == json.loads(Path("configs/inference.json").read_text())
    x = _random_input(bundle, net)
    with torch.no_grad():
        expected = net(x)
        out = scripted(x)
    assert out.shape == expected.shape and out.shape[0] == 2 and out.shape[2:] == x.shape[2:]
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_nested_key_also_exports_a_flat_checkpoint(tmp_path, monkeypatch, offline):
    """The generic bundle saves flat without a critic (``--method ce``): ``--key_in_ckpt model`` still
    loads it (Ignite's ``Checkpoint.load_objects`` takes a flat checkpoint for a single key)."""
    monkeypatch.chdir(REPO / "bundles" / "generic_segmentation")
    line = doc_commands("generic_segmentation", "ckpt_export")[0]
    net, replace = _export_case("generic_segmentation", line, tmp_path)
    torch.save(net.state_dict(), replace["ckpt_file"])  # flat
    run_monai_bundle(line, **replace)
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.load(replace["filepath"])(x), net(x), rtol=1e-5, atol=1e-5)


def test_export_without_the_key_fails_on_a_nested_checkpoint(tmp_path, monkeypatch, offline):
    """Why the docs give ``--key_in_ckpt model``: without it the nested checkpoint does not load."""
    monkeypatch.chdir(REPO / "bundles" / "thyroid_ultrasound_gambling")
    line = doc_commands("thyroid_ultrasound_gambling", "ckpt_export")[0]
    _, replace = _export_case("thyroid_ultrasound_gambling", line, tmp_path)
    with pytest.raises(RuntimeError, match="Missing key"):
        run_monai_bundle(line.replace(" --key_in_ckpt model", ""), **replace)


@pytest.mark.parametrize("bundle", BUNDLES)
def test_model_zoo_layout_offline(bundle, monkeypatch, offline):
    root = REPO / "bundles" / bundle
    for name in ("configs/metadata.json", "configs/inference.json", "LICENSE", "docs/README.md", "large_files.yml"):
        assert (root / name).is_file(), f"{bundle}: the Model Zoo needs {name}"
    assert hashlib.md5((root / "LICENSE").read_bytes()).hexdigest() == APACHE_2_MD5, "LICENSE is not Apache-2.0"

    meta = json.loads((root / "configs" / "metadata.json").read_text())
    assert meta["version"] in meta["changelog"]
    assert meta["supported_apps"] == {}  # so the zoo's check_properties step has no app to check
    assert meta["required_packages_version"]["monai-gamble"] == monai_gamble.__version__
    assert "not on the package index" in meta["monai_gamble_install"]
    assert "clone of this repository" in meta["monai_gamble_install"]
    assert "monai_gamble_install" in meta["description"]
    monkeypatch.chdir(root)
    run_monai_bundle(VERIFY_METADATA)  # the shipped schema; offline (a download would fail)

    terms = (root / "docs" / "data_license.txt").read_text()
    generator = re.search(r"monai_gamble\.data\.make_\w+", meta["data_source"]).group(0)
    assert generator in terms, f"{bundle}/docs/data_license.txt does not name the synthetic stand-in {generator}"
    assert "Apache License 2.0" in terms

    large = ConfigParser.load_config_file(root / "large_files.yml")
    assert list(large) == ["large_files"]
    assert large["large_files"] == [{"path": "models/model.pt", "url": "", "hash_val": "", "hash_type": "md5"}]


@pytest.mark.filterwarnings("ignore:No hash value provided")
def test_verify_metadata_rejects_metadata_without_a_required_key(tmp_path, offline):
    """The offline check is a real one: metadata without ``network_data_format`` fails against the shipped schema."""
    meta = json.loads((REPO / "bundles" / "xray_pneumothorax" / "configs" / "metadata.json").read_text())
    del meta["network_data_format"]
    path = tmp_path / "metadata.json"
    path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="'network_data_format' is a required property"):
        verify_metadata(meta_file=str(path), filepath=str(SCHEMA))
