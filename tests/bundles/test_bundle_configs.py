"""What every bundle's configs and docs must satisfy: the metadata validates against MONAI's schema,
the configs declare rather than compute (at most five ``"$"`` expressions with logic per bundle,
counted by :mod:`config_checks`), and every key and metric that the docs name exists in the configs."""

import json
import warnings
from pathlib import Path

import jsonschema
import pytest
from config_checks import doc_keys, logic_expressions, logic_reasons

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "schemas" / "meta_schema_20240725.json"
#: the bundles these checks cover (bundles/generic_segmentation is added when it is finished)
BUNDLES = [
    "nerve_ultrasound_ems",
    "pathology_semisupervised_adversarial",
    "thyroid_ultrasound_gambling",
    "xray_pneumothorax",
]
#: at most this many "$" expressions with logic per bundle (the rest is declarations)
MAX_LOGIC_EXPRESSIONS = 5

#: per bundle, what the metadata adds to the schema: required packages, output channels
METADATA = {
    "nerve_ultrasound_ems": ({"monai-gamble"}, None),
    "pathology_semisupervised_adversarial": ({"monai-gamble"}, 4),
    "thyroid_ultrasound_gambling": ({"monai-gamble"}, None),
    "xray_pneumothorax": ({"monai-gamble", "pydicom", "itk"}, 1),
}

#: words that the docs name in backquotes or as ``--flags`` and that are not config keys, with why
NOT_KEYS = {
    # command-line arguments of other programs
    "config_file": "monai.bundle run's own argument",
    "nproc_per_node": "torchrun's argument",
    "config": "python -m monai_gamble.study's argument",
    "summarize": "python -m monai_gamble.study's --summarize-only",
    "methods": "python -m monai_gamble.study's --methods (a part of the grid)",
    "architectures": "python -m monai_gamble.study's --architectures (a part of the grid)",
    "seeds": "python -m monai_gamble.study's --seeds (a part of the grid)",
    "tracking": "monai.bundle run's own --tracking option",
    "backend": "mlflow ui's --backend-store-uri",
    # names that are not keys
    "init_process_group": "a torch.distributed function",
    "verify_net_in_out": "a MONAI bundle command",
    "verify_metadata": "a MONAI bundle command",
    "ckpt_export": "a MONAI bundle command",
    "required_packages_version": "a key of configs/metadata.json (not a config)",
    "monai_gamble_install": "a key of configs/metadata.json (not a config)",
    "hash_val": "a key of large_files.yml (not a config)",
    "update_bn": "a torch.optim.swa_utils function",
    "equalize_adapthist": "a scikit-image function",
    "MLFLOW_TRACKING_URI": "an environment variable",
    "model_final": "a checkpoint file name (models/model_final.pt)",
    "model_swa": "a checkpoint file name (models/model_swa.pt)",
    "test_two_process_training_on_cpu_gloo": "a test's name",
}
#: arguments of MONAI's bundle commands that every bundle's docs show (its "Model Zoo" section), with
#: the command they belong to; tests/bundles/test_model_zoo.py runs those commands
MONAI_BUNDLE_ARGS = {
    "filepath": "ckpt_export's output file; verify_metadata's schema file",
    "ckpt_file": "ckpt_export's checkpoint",
    "meta_file": "ckpt_export's and verify_metadata's metadata file",
    "key_in_ckpt": "ckpt_export's key of the segmenter in a nested checkpoint",
    "use_trace": "ckpt_export's option to trace instead of script",
}
#: per bundle, the command-line arguments of its benchmark scripts that its docs show
BENCHMARK_ARGS = {
    "nerve_ultrasound_ems": {"bundle", "demo", "fresh_subjects", "blend"},  # benchmarks/asme.py
    "pathology_semisupervised_adversarial": {"output", "fractions", "methods", "seeds"},  # labelled fraction
    # benchmarks/sim_to_real.py and benchmarks/thyroid_label_efficiency.py; a dataset folder's name
    "thyroid_ultrasound_gambling": {
        "real_dir",
        "threads",
        "output",
        "epochs",
        "sizes",
        "ultrasound_thyroid_ddti_tnscui",
    },
}
#: per bundle, option values that its docs name (of ``--layout``, ``--loss_name``, the objective's maps)
OPTION_VALUES = {
    "pathology_semisupervised_adversarial": {"tce_image", "tce_class", "sarder_frozen", "confidence_map"},
}
#: the dicts of metrics in a config: their keys are metric names
METRIC_DICTS = ("key_metric", "additional_metrics", "critic_metrics")


@pytest.mark.parametrize("bundle", BUNDLES)
def test_metadata_validates_against_monai_schema(bundle):
    meta = json.loads((REPO / "bundles" / bundle / "configs" / "metadata.json").read_text())
    jsonschema.validate(meta, json.loads(SCHEMA.read_text()))
    packages, channels = METADATA[bundle]
    assert packages <= set(meta["required_packages_version"])
    if channels is not None:
        assert meta["network_data_format"]["outputs"]["pred"]["num_channels"] == channels


@pytest.mark.parametrize(
    "expression, reasons",
    [
        ("$@network.parameters()", []),
        ("$import os", []),
        ("$len(@datalist['training'])", []),
        ("$monai.handlers.from_engine(['loss'], first=True)", []),
        ("$os.path.join(@ckpt_dir, 'model.pt')", []),
        ("$@critic is None", []),  # a _disabled_ condition: a value
        ("$not @stain_normalization", []),
        ("$sorted(glob.glob(os.path.join(@bundle_root, 'configs', '*.json'))) + [@a]", []),
        ("$@ckpt_dir + '/model.pt'", ["string building"]),  # a path join counts
        ("$'train_' + time.strftime('%Y%m%d')", ["string building"]),
        ("$'{}x{}'.format(@a, @b)", ["string building"]),
        ("$', '.join(@names)", ["string building"]),
        ("$f'{@a}'", ["string building"]),
        ("$lambda x: x", ["lambda"]),
        ("$[m for m in @network.modules()]", ["comprehension"]),
        ("$torch.device('cuda' if torch.cuda.is_available() else 'cpu')", ["if-expression"]),
        ("$print(@run_name, flush=True)", ["print"]),
        ("$open(@path, 'w').write('x')", ["open"]),
        ("$[setattr(m, 'momentum', 0.1) for m in @net.modules()]", ["comprehension", "setattr"]),
    ],
)
def test_logic_classifier(expression, reasons):
    assert logic_reasons(expression) == reasons


@pytest.mark.parametrize("bundle", BUNDLES)
def test_configs_declare_with_at_most_five_logic_expressions(bundle):
    found = logic_expressions(REPO / "bundles" / bundle)
    listing = "\n".join(f"  {f}:{key} [{', '.join(r)}] {expr}" for f, key, r, expr in found)
    print(f"{bundle}: {len(found)} '$' expressions with logic\n{listing}")
    assert len(found) <= MAX_LOGIC_EXPRESSIONS, (
        f"{bundle} has {len(found)} '$' expressions with logic (at most {MAX_LOGIC_EXPRESSIONS}); move them into "
        f"named, tested functions, transforms or handlers:\n{listing}"
    )


def _config_ids(bundle: Path) -> tuple[set[str], set[str], set[str]]:
    """``(ids, key names, string values)`` of every config of a bundle: ids at every depth (a flat key
    ``a#b`` of an override file and what lies under it included), the names of all keys, all strings."""
    ids: set[str] = set()
    names: set[str] = set()
    values: set[str] = set()

    def walk(value, prefix):
        if isinstance(value, dict):
            for k, v in value.items():
                key = f"{prefix}#{k}" if prefix else k
                ids.add(key)
                names.add(k.split("#")[-1])
                walk(v, key)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, f"{prefix}#{i}")
        elif isinstance(value, str):
            values.add(value)

    for path in sorted((bundle / "configs").glob("*.json")):
        if path.name != "metadata.json":
            walk(json.loads(path.read_text()), "")
    return ids, names, values


def _metric_names(bundle: Path, ids: set[str]) -> set[str]:
    """The names of the metrics that the bundle's training and evaluation attach: the keys of their metric
    dicts (resolved when they are expressions, e.g. ``monai_gamble.engines.loss_metrics``), in
    ``train.json`` and in ``train.json`` + ``evaluate.json``."""
    from monai.bundle import ConfigParser

    train = bundle / "configs" / "train.json"
    evaluate = bundle / "configs" / "evaluate.json"
    names = set()
    for files in ([train], [train, evaluate] if evaluate.is_file() else []):
        if not files:
            continue
        parser = ConfigParser()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parser.read_config([str(f) for f in files])
        for key in sorted(ids):
            if key.rsplit("#", 1)[-1] not in METRIC_DICTS:
                continue
            try:
                value = parser[key]
            except (KeyError, IndexError, TypeError, ValueError):
                continue
            if isinstance(value, str) and value.startswith("$"):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    value = parser.get_parsed_content(key)
            if isinstance(value, dict):
                names |= set(value)
    return names


@pytest.mark.parametrize("bundle", BUNDLES)
def test_every_key_the_docs_name_exists(bundle):
    """Every ``--key`` of the docs' command lines is a config id; every backquoted word that looks like a
    key (``a_b`` or ``a#b``) is an id, a key name, an option value of the configs, or a metric the bundle
    logs (``train_*``, ``val_*``, ``test_*`` only the latter); the rest is listed in ``NOT_KEYS``."""
    root = REPO / "bundles" / bundle
    found = doc_keys(root / "docs" / "README.md")
    ids, names, values = _config_ids(root)
    metrics = _metric_names(root, ids)
    allowed = set(NOT_KEYS) | set(MONAI_BUNDLE_ARGS) | BENCHMARK_ARGS.get(bundle, set())
    allowed |= OPTION_VALUES.get(bundle, set()) | {bundle}
    bad_flags = sorted(k for k in found["flags"] if k not in ids and k not in allowed)
    prefixed = {k for k in found["quoted"] if k.startswith(("train_", "val_", "test_")) and k not in allowed}
    bad_metrics = sorted(prefixed - metrics)
    bad_words = sorted(
        k
        for k in found["quoted"]
        if k not in prefixed
        and k not in ids
        and k not in names
        and k not in allowed
        and not any(k in v for v in values)
    )
    assert not (bad_flags or bad_metrics or bad_words), (
        f"{bundle}/docs/README.md names what its configs lack: flags {bad_flags}, metrics {bad_metrics} "
        f"(logged: {sorted(metrics)}), keys {bad_words}"
    )


@pytest.mark.parametrize("bundle", BUNDLES)
def test_inference_reuses_train_through_macros(bundle):
    """``inference.json`` takes the network and the device from ``train.json`` with MONAI's
    ``%configs/train.json#...`` macros (one macro per argument of ``network_def``, so that
    ``--network_def#<arg>`` overrides work on inference too), instead of copies to keep in sync."""
    configs = REPO / "bundles" / bundle / "configs"
    train = json.loads((configs / "train.json").read_text())
    infer = json.loads((configs / "inference.json").read_text())
    assert infer["network_def"] == {k: f"%configs/train.json#network_def#{k}" for k in train["network_def"]}
    assert infer["device"] == "%configs/train.json#device" and infer["output_dir"] == "%configs/train.json#output_dir"
    assert infer["dataset_dir"] == "%configs/train.json#synthetic_dataset_dir"
