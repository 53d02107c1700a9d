"""Helpers of the bundle tests: a clean copy of a bundle, ``python -m monai.bundle run`` in a
subprocess (optionally under ``torchrun``), and the MLflow runs a bundle recorded."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def copy_bundle(bundle: Path, tmp_path: Path) -> Path:
    """Copy ``bundle`` to ``tmp_path/bundle`` without its outputs (models, eval, data)."""
    dst = tmp_path / "bundle"
    shutil.copytree(bundle, dst, ignore=shutil.ignore_patterns("models", "eval", "data"))
    return dst


def run_bundle(
    cwd: Path, configs: list[str], *args: str, torchrun: int = 0, timeout: int = 600, mlflow_model: bool = False
) -> str:
    """Run ``python -m monai.bundle run`` with ``configs/<c>`` files in ``cwd``; return its output.

    A training run logs no MLflow Model (``--mlflow_model False``, about 5 s a run) unless ``mlflow_model``:
    the tests that check the logged model ask for it.

    Raises:
        AssertionError: with the tail of stdout and stderr when the command fails.
    """
    config_arg = "[" + ",".join(f"'configs/{c}'" for c in configs) + "]"
    if torchrun:
        head = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={torchrun}", "--standalone", "-m"]
    else:
        head = [sys.executable, "-m"]
    cmd = [*head, "monai.bundle", "run", "--config_file", config_arg, *args]
    if "train.json" in configs and not mlflow_model and "--mlflow_model" not in args:
        cmd += ["--mlflow_model", "False"]
    # one thread per process: on a shared 2-core machine oversubscribed OpenMP threads are many times slower
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env |= {"PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
        )
    return proc.stdout + proc.stderr


def recorded_runs(bundle: Path, experiment: str):
    """``(client, runs)``: the MLflow runs of ``experiment`` in ``bundle/eval/mlruns.db``, oldest first."""
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{bundle / 'eval' / 'mlruns.db'}")
    exp = client.get_experiment_by_name(experiment)
    return client, client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])


def initialized_workflow(bundle: Path, files: list[str], workflow_type: str = "train", **overrides):
    """A MONAI ``ConfigWorkflow`` of ``bundle/configs/<files>`` with ``overrides``, initialised."""
    import warnings

    from monai.bundle import ConfigWorkflow

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI warns on every parse that "$" expressions run code
        wf = ConfigWorkflow(
            config_file=[str(bundle / "configs" / f) for f in files],
            meta_file=str(bundle / "configs" / "metadata.json"),
            workflow_type=workflow_type,
            **overrides,
        )
        wf.initialize()
    return wf


def verify_inference_network(bundle: Path, n: int = 4, **overrides) -> None:
    """MONAI's ``verify_net_in_out`` on the bundle's ``inference.json`` and ``metadata.json``."""
    import warnings

    from monai.bundle import verify_net_in_out

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        verify_net_in_out(
            net_id="network_def",
            meta_file=str(bundle / "configs" / "metadata.json"),
            config_file=str(bundle / "configs" / "inference.json"),
            n=n,
            **overrides,
        )


def assert_reproducible_run(client, run, bundle: Path, overrides: dict[str, str], predict_shape=None) -> dict:
    """Check what :class:`monai_gamble.handlers.MLflowRun` records for a bundle's training run: the tags,
    every override as a parameter, the merged config (with the overrides applied) as ``config/config.json``,
    and the segmenter as an MLflow Model (``runs:/<id>/model``); with ``predict_shape`` the model is loaded
    with ``mlflow.pyfunc`` and predicts on an array of that shape. Returns the merged config."""
    import json

    import mlflow
    import numpy as np

    tags, params = run.data.tags, run.data.params
    assert tags["bundle"] == bundle.name and tags["dataset_digest"].startswith("sha256:"), tags
    for name in ("bundle_version", "dataset_dir", "monai_gamble_version", "torch_version", "device"):
        assert tags.get(name), (name, tags)
    for key, value in overrides.items():
        assert params["override/" + key.replace("#", "/")] == value, (key, params)
    assert {"config/config.json", "config/command.json"} == {
        a.path for a in client.list_artifacts(run.info.run_id, "config")
    }
    config = json.loads(open(client.download_artifacts(run.info.run_id, "config/config.json")).read())
    assert not any(a.path.endswith(".json") for a in client.list_artifacts(run.info.run_id))  # no unmerged configs
    from monai_gamble.handlers.tracking import fluent_tracking_uri

    # not mlflow.set_tracking_uri: it sets MLFLOW_TRACKING_URI for every later test of this process
    with fluent_tracking_uri(client.tracking_uri):
        uri = f"runs:/{run.info.run_id}/model"
        if predict_shape is None:
            assert mlflow.models.get_model_info(uri).signature is not None
        else:
            model = mlflow.pyfunc.load_model(uri)
            out = model.predict(np.random.default_rng(0).random(predict_shape, dtype=np.float32))
            assert out.shape[0] == predict_shape[0] and out.shape[2:] == tuple(predict_shape[2:])
            assert np.isfinite(out).all()
    return config


def inference_run(bundle: Path) -> Path:
    """The one run folder of ``<bundle>/eval/inference`` (each inference run writes its predictions,
    and its submission, into a folder of its own): asserts that there is exactly one, and that
    ``eval/inference/latest`` links to it."""
    runs = sorted(p for p in (bundle / "eval" / "inference").iterdir() if p.is_dir() and not p.is_symlink())
    assert len(runs) == 1, runs
    latest = bundle / "eval" / "inference" / "latest"
    assert latest.is_symlink() and latest.resolve() == runs[0].resolve(), latest
    return runs[0]
