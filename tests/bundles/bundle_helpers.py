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


def run_bundle(cwd: Path, configs: list[str], *args: str, torchrun: int = 0, timeout: int = 600) -> str:
    """Run ``python -m monai.bundle run`` with ``configs/<c>`` files in ``cwd``; return its output.

    Raises:
        AssertionError: with the tail of stdout and stderr when the command fails.
    """
    config_arg = "[" + ",".join(f"'configs/{c}'" for c in configs) + "]"
    if torchrun:
        head = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={torchrun}", "--standalone", "-m"]
    else:
        head = [sys.executable, "-m"]
    cmd = [*head, "monai.bundle", "run", "--config_file", config_arg, *args]
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
