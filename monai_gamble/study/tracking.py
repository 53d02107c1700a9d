"""MLflow glue of the study runner: the study's experiment, its parent run, and one child run per
training or evaluation, created (and tagged) by run id before the bundle logs into it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .config import StudyConfig

__all__ = ["finish_run", "mlflow_client", "parent_run", "start_child_run"]


def mlflow_client(config: StudyConfig) -> tuple[Any, str]:
    """``(client, experiment id)`` of the study's experiment (``config.name``), created if needed."""
    import mlflow

    client = mlflow.MlflowClient(config.tracking_uri)
    exp = client.get_experiment_by_name(config.name)
    exp_id = exp.experiment_id if exp is not None else client.create_experiment(config.name)
    return client, exp_id


def parent_run(config: StudyConfig) -> str:
    """The id of the study's parent run (tagged ``study_parent``), created with the grid as parameters; an
    existing one is set back to ``RUNNING`` (:func:`run_study` marks it ``FINISHED`` when the grid is done)."""
    client, exp_id = mlflow_client(config)
    found = client.search_runs([exp_id], filter_string="tags.study_parent = 'true'", max_results=1)
    if found:
        if found[0].info.status != "RUNNING":  # a study run again (more seeds, a retried cell) is running again
            client.update_run(found[0].info.run_id, status="RUNNING")
        return found[0].info.run_id
    run = client.create_run(exp_id, run_name=f"{config.name}_study", tags={"study_parent": "true"})
    for key, value in (("methods", config.methods), ("architectures", config.architectures), ("seeds", config.seeds)):
        client.log_param(run.info.run_id, key, json.dumps(value))
    client.log_param(run.info.run_id, "overrides", json.dumps(config.overrides)[:6000])
    return run.info.run_id


def start_child_run(config: StudyConfig, run_name: str, tags: Mapping[str, str]) -> str:
    """Create the MLflow run that a bundle workflow named ``run_name`` will log into; return its id.

    MONAI's ``MLFlowHandler`` logs into an unfinished run of its ``run_name`` if there is one (that is
    how a training's validation joins its run). So the study creates that run itself, with its tags
    (method, architecture, seed, parent run), and knows its id: nothing is tagged by name. A run of the
    same name that an interrupted study left unfinished is renamed ``<run_name>_interrupted`` and marked
    ``FAILED`` first, so that the bundle cannot log into it instead.
    """
    client, exp_id = mlflow_client(config)
    for run in client.search_runs([exp_id], filter_string=f"attributes.run_name = '{run_name}'"):
        if run.info.status != "FINISHED":
            client.update_run(run.info.run_id, status="FAILED", name=f"{run_name}_interrupted")
    return client.create_run(exp_id, run_name=run_name, tags=dict(tags)).info.run_id


def finish_run(config: StudyConfig, run_id: str) -> None:
    """Mark a child run ``FINISHED`` if the bundle left it open (it logged nothing or did not close it)."""
    client, _ = mlflow_client(config)
    if client.get_run(run_id).info.status == "RUNNING":
        client.set_terminated(run_id, "FINISHED")
