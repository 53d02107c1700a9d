"""MLflow runs that reproduce and serve: :class:`MLflowRun` (MONAI's ``MLFlowHandler`` that also records the
merged config, the command line's overrides, tags that say what ran on what, and the segmenter as an MLflow
Model; ``--tracking_uri none`` turns it off) and :class:`MLflowTags` (tags on the run of such a handler: what an
evaluation read, so that a result can be traced back to the run that trained it)."""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.handlers import MLFlowHandler
from monai.utils import min_version, optional_import

from monai_gamble.utils import as_bool, cli_overrides, dataset_digest, git_commit, merged_config, tracking_off

Events, _ = optional_import("ignite.engine", "0.4.11", min_version, "Events")
idist, _ = optional_import("ignite", "0.4.11", min_version, "distributed")

logger = logging.getLogger(__name__)

__all__ = ["MLflowRun", "MLflowTags", "fluent_tracking_uri", "override_params"]

#: MLflow's limit on the length of a tag value
MAX_TAG_LENGTH = 8000
#: MLflow's limit on the length of a parameter value
MAX_PARAM_LENGTH = 6000
#: what ends a value cut at MLflow's limit
TRUNCATED = "... (truncated; the whole value is in the artifact config/command.json)"
#: the characters MLflow allows in a parameter name
_PARAM_NAME = re.compile(r"[^/\w.\- :]")


def override_params(overrides: Mapping[str, str | None], prefix: str = "override/") -> dict[str, str]:
    """MLflow parameters of a command line's overrides: ``--network_def#channels [8,16]`` becomes
    ``{"override/network_def/channels": "[8,16]"}``.

    MLflow allows ``/ \\w . - space :`` in a name, so the id separators ``#`` and ``::`` become ``/`` (any
    other character becomes ``_``); the prefix keeps them apart from the bundle's own parameters (MLflow
    refuses to log one name twice with two values, and ``--image_size [64,64]`` would clash with the
    bundle's ``image_size`` ``[64, 64]``). A value longer than MLflow's 6000 characters is cut there and
    ends with :data:`TRUNCATED`, never dropped; a bare flag is ``"True"``, as Fire reads it.
    """
    params = {}
    for key, value in overrides.items():
        name = prefix + _PARAM_NAME.sub("_", key.replace("::", "#").replace("#", "/"))
        text = "True" if value is None else str(value)
        if len(text) > MAX_PARAM_LENGTH:
            text = text[: MAX_PARAM_LENGTH - len(TRUNCATED)] + TRUNCATED
        params[name] = text
    return params


def _tag_value(value: Any) -> str:
    text = str(value)
    return text if len(text) <= MAX_TAG_LENGTH else text[: MAX_TAG_LENGTH - 16] + "... (truncated)"


@contextlib.contextmanager
def fluent_tracking_uri(uri: str) -> Iterator[None]:
    """Point MLflow's fluent API (``mlflow.start_run``, ``mlflow.pytorch.log_model``) at ``uri`` for a block,
    then put back both its tracking URI and the ``MLFLOW_TRACKING_URI`` environment variable exactly as they
    were: ``mlflow.set_tracking_uri`` also sets that variable, which MONAI's ``MLFlowHandler`` and
    :func:`monai_gamble.utils.default_tracking_uri` prefer to their own URI, so that every later run of the
    process (a study's next cell, a notebook's next cell) would log into the wrong store."""
    import mlflow
    from mlflow.tracking._tracking_service import utils as tracking_utils

    env = os.environ.get("MLFLOW_TRACKING_URI")
    previous = getattr(tracking_utils, "_tracking_uri", None)
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        tracking_utils.set_tracking_uri(previous)
        if env is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = env


def _device_name(device: Any) -> str | None:
    if device is None:
        return None
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


class MLflowRun(MLFlowHandler):
    """MONAI's ``MLFlowHandler`` that records what reproduces and serves the run.

    Besides what MONAI's handler logs (the parameters ``experiment_param``, the metrics of every epoch,
    the files ``artifacts``), at the start of the run (rank 0; once per MLflow run, also when
    ``--resume true`` continues it):

    - **the config that ran**: ``config/config.json``, the ``--config_file`` files merged with every
      override applied (:func:`monai_gamble.utils.merged_config`, which ``python -m monai.bundle run
      --config_file config.json`` runs again), and ``config/command.json`` (the command line, the config
      files and the overrides as typed). A resumed run adds ``config/config_resume_<k>.json``;
    - **every override as a parameter** (:func:`override_params`: ``override/network_def/channels``); a
      resumed run that changes one keeps the first value and says so in the tag ``resumed_overrides``;
    - **tags**: ``bundle`` (the bundle folder's name) and ``bundle_version`` (its ``configs/metadata.json``),
      ``method``, ``dataset_dir`` and ``dataset_digest`` (:func:`monai_gamble.utils.dataset_digest`),
      ``monai_gamble_version``, ``monai_version``, ``torch_version``, ``git_commit`` (when the package is a
      git checkout), ``device`` (with the GPU's name), ``world_size``, and any ``tags`` given (an evaluation
      passes the training run's id, :func:`monai_gamble.utils.training_run_of`).

    At the end of a completed training run, when ``model`` is given and ``mlflow_model`` is on, the segmenter
    with the weights of ``model_checkpoint`` (the best checkpoint; ``model_key`` selects it in a checkpoint of
    several networks) is logged as an **MLflow Model** ``model`` (``mlflow.pytorch.log_model``), with a tensor
    signature ``(-1, C, -1, ...) float32`` (any batch and image size the network takes) and an input example of shape
    ``(1, C, *image_size)``, so that::

        mlflow.pyfunc.load_model(f"runs:/{run_id}/model").predict(image)  # (B, C, H, W) float32 in [0, 1]

    returns the network's logits ``(B, num_classes, H, W)`` (``argmax`` over axis 1 is the mask). The model is
    pickled (``serialization_format="pickle"``): loading it needs ``torch``, ``monai`` and ``monai_gamble``
    installed, as its ``requirements.txt`` says (``monai-gamble`` is installed from a clone of its repository).

    ``tracking_uri`` None or ``"none"`` (:func:`monai_gamble.utils.tracking_off`) turns tracking off: the
    handler attaches nothing, creates no store and ``cur_run`` stays None (the figure and report handlers
    that log to it then only write their files).

    Args:
        tracking_uri: the MLflow tracking URI (``--tracking_uri``).
        tags: more tags (None values are skipped).
        method: the training method (tag ``method``).
        dataset_dir: the dataset folder (tags ``dataset_dir`` and ``dataset_digest``).
        bundle_root: the bundle's folder (tags ``bundle`` and ``bundle_version``).
        device: the run's device (tag ``device``).
        evaluation_dataset_dir: an evaluation's external dataset (tags ``evaluation_dataset_dir`` and
            ``evaluation_dataset_digest``; None: the evaluation reads a split of ``dataset_dir``).
        record: record the tags, the merged config and the overrides (False for a second handler on the
            same run, e.g. the validator's: the trainer's records them).
        model: the segmenter to log as an MLflow Model at the end of training (None: none).
        model_checkpoint: the checkpoint whose weights are logged (None or a missing file: ``model``'s own).
        model_key: the key of the segmenter in a checkpoint of several networks (``{"model": ..., "critic":
            ...}``); a checkpoint without it is the segmenter's state dict.
        image_size: the spatial size of the input example (default 64 per dimension of the network).
        mlflow_model: False: no MLflow Model at the end (the bundles' ``--mlflow_model False``, for a quick
            run; the checkpoint artifacts are still logged). Logging one takes about 5 s on a CPU.
        argv: the command line (default ``sys.argv``).
        kwargs: MONAI ``MLFlowHandler``'s arguments (``experiment_name``, ``run_name``, ``experiment_param``,
            ``artifacts``, ``close_on_complete``, ...).
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        tags: Mapping[str, Any] | None = None,
        method: str | None = None,
        dataset_dir: str | os.PathLike | None = None,
        evaluation_dataset_dir: str | os.PathLike | None = None,
        bundle_root: str | os.PathLike | None = None,
        device: Any = None,
        record: bool = True,
        model: torch.nn.Module | None = None,
        model_checkpoint: str | os.PathLike | None = None,
        model_key: str | None = None,
        image_size: Sequence[int] | None = None,
        mlflow_model: bool = True,
        argv: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        self.enabled = not tracking_off(tracking_uri)
        self.extra_tags = {str(k): v for k, v in dict(tags or {}).items() if v is not None}
        self.method = method
        self.dataset_dir = dataset_dir
        self.evaluation_dataset_dir = evaluation_dataset_dir
        self.bundle_root = bundle_root
        self.device = device
        self.record = record
        self.model = model if as_bool(mlflow_model, "mlflow_model") else None
        self.model_checkpoint = model_checkpoint
        self.model_key = model_key
        self.image_size = None if image_size is None else [int(s) for s in image_size]
        self.argv = list(sys.argv if argv is None else argv)
        self._recorded: str | None = None
        if self.enabled:
            super().__init__(tracking_uri=tracking_uri, **kwargs)
        else:  # no client, no store: nothing is logged
            self.client = None
            self.cur_run = None
            self.experiment = None
            self.close_on_complete = kwargs.get("close_on_complete", False)

    def attach(self, engine: Any) -> None:
        """Attach MONAI's handlers and, for a training run with ``model``, the model logging at COMPLETED
        (before MONAI's handler closes the run); nothing when tracking is off."""
        if not self.enabled:
            if self.record:  # once per run: the trainer's handler, not the validator's
                logger.info("MLflow tracking is off (--tracking_uri none): nothing is logged to MLflow")
            return
        if self.model is not None:
            engine.add_event_handler(Events.COMPLETED, self.log_model)
        super().attach(engine)

    def start(self, engine: Any) -> None:
        """Start (or continue) the run as MONAI does, then record the config, overrides and tags."""
        super().start(engine)
        if not self.record or self.cur_run is None or self._recorded == self.cur_run.info.run_id:
            return
        self._recorded = self.cur_run.info.run_id
        try:
            self._record(engine)
        except Exception as err:  # a record that cannot be written must not stop a user's training
            logger.warning("MLflow run %s: could not record the config and tags: %s", self._recorded, err)

    def run_tags(self, engine: Any = None) -> dict[str, str]:
        """The tags this handler sets (see the class docstring), as strings."""
        import monai

        import monai_gamble

        tags: dict[str, Any] = {
            "method": self.method,
            "monai_gamble_version": monai_gamble.__version__,
            "monai_version": monai.__version__,
            "torch_version": torch.__version__,
            "git_commit": git_commit(),
            "device": _device_name(
                self.device
                if self.device is not None
                else getattr(engine, "state", None) and getattr(engine.state, "device", None)
            ),
            "world_size": idist.get_world_size(),
        }
        if self.bundle_root is not None:
            root = Path(self.bundle_root).resolve()
            tags["bundle"] = root.name
            meta = root / "configs" / "metadata.json"
            if meta.is_file():
                tags["bundle_version"] = json.loads(meta.read_text()).get("version")
        for prefix, folder in (("dataset", self.dataset_dir), ("evaluation_dataset", self.evaluation_dataset_dir)):
            if folder is not None:
                tags[f"{prefix}_dir"] = os.path.abspath(folder)
                if os.path.exists(folder):
                    tags[f"{prefix}_digest"] = dataset_digest(folder)
        tags.update(self.extra_tags)
        return {k: _tag_value(v) for k, v in tags.items() if v is not None}

    def _record(self, engine: Any) -> None:
        run_id = self.cur_run.info.run_id
        for name, value in self.run_tags(engine).items():
            self.client.set_tag(run_id, name, value)
        overrides = cli_overrides(self.argv)
        logged = self.client.get_run(run_id).data.params
        params = override_params(overrides)
        changed = sorted(k for k, v in params.items() if k in logged and logged[k] != v)
        new = {k: v for k, v in params.items() if k not in logged}
        if new:
            self._log_params(new)
        if changed:
            self.client.set_tag(run_id, "resumed_overrides", _tag_value(", ".join(changed)))
            logger.warning(
                "MLflow run %s continues with other values of %s (the first values stay logged)",
                run_id,
                ", ".join(changed),
            )
        config = merged_config(self.argv)
        if config is None:
            return
        existing = {Path(f.path).name for f in self.client.list_artifacts(run_id, "config")}
        k = 1
        name = "config.json"
        while name in existing:
            name = f"config_resume_{k}.json"
            k += 1
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / name).write_text(json.dumps(config, indent=2, default=str) + "\n")
            command = {"argv": self.argv, "cwd": os.getcwd(), "overrides": overrides}
            (Path(tmp) / name.replace("config", "command", 1)).write_text(json.dumps(command, indent=2) + "\n")
            for file in sorted(Path(tmp).iterdir()):
                self.client.log_artifact(run_id, str(file), artifact_path="config")

    def _segmenter(self) -> torch.nn.Module:
        """A CPU copy of the segmenter (unwrapped from DDP) with the weights of ``model_checkpoint``."""
        network = self.model.module if hasattr(self.model, "module") else self.model
        network = copy.deepcopy(network).to("cpu").eval()
        if self.model_checkpoint is not None and os.path.isfile(self.model_checkpoint):
            state = torch.load(self.model_checkpoint, map_location="cpu", weights_only=True)
            if isinstance(state.get(self.model_key), Mapping):  # a checkpoint of several networks
                state = state[self.model_key]
            network.load_state_dict(state)
        return network

    def log_model(self, engine: Any = None) -> str | None:
        """Log the segmenter as the MLflow Model ``model`` of the current run; returns its ``runs:/`` URI.

        A failure is logged as a warning (the checkpoint files are the run's record; a model that MLflow
        cannot store must not fail a finished training).
        """
        if self.cur_run is None:
            return None
        import mlflow
        import mlflow.pytorch
        import monai
        from mlflow.models import ModelSignature
        from mlflow.types import Schema, TensorSpec

        import monai_gamble
        from monai_gamble.utils import _first_conv

        run_id = self.cur_run.info.run_id
        try:
            network = self._segmenter()
            weight = _first_conv(network)
            channels = int(weight.shape[1]) if weight is not None else 1
            spatial = self.image_size or [64] * (weight.dim() - 2 if weight is not None else 2)
            example = np.random.default_rng(0).random((1, channels, *spatial), dtype=np.float32)
            with torch.no_grad():
                out = network(torch.from_numpy(example))
            signature = ModelSignature(
                inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, channels, *[-1] * len(spatial)))]),
                outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, int(out.shape[1]), *[-1] * len(spatial)))]),
            )
            requirements = [
                f"torch=={torch.__version__.split('+')[0]}",
                f"monai=={monai.__version__}",
                f"monai-gamble=={monai_gamble.__version__}",
            ]
            with fluent_tracking_uri(self.client.tracking_uri):
                with mlflow.start_run(run_id=run_id, nested=mlflow.active_run() is not None):
                    mlflow.pytorch.log_model(
                        network,
                        name="model",
                        signature=signature,
                        input_example=example,
                        pip_requirements=requirements,
                        serialization_format="pickle",  # torch.export ("pt2") takes about 40 s here
                    )
        except Exception as err:
            logger.warning("MLflow run %s: the segmenter was not logged as an MLflow Model: %s", run_id, err)
            return None
        uri = f"runs:/{run_id}/model"
        logger.info("MLflow Model of the segmenter: %s (mlflow.pyfunc.load_model(%r).predict(image))", uri, uri)
        return uri

    def complete(self) -> None:
        """MONAI's complete (the ``artifacts``); nothing when tracking is off."""
        if self.enabled:
            super().complete()

    def close(self) -> None:
        """MONAI's close (the run marked FINISHED); nothing when tracking is off."""
        if self.enabled:
            super().close()


class MLflowTags:
    """Set ``tags`` on the run of ``mlflow_handler`` once it has started (rank 0 only).

    Values are converted with ``str``; None values are skipped; a value longer than MLflow's limit
    (8000 characters) is cut there and ends with ``"... (truncated)"``.

    Args:
        mlflow_handler: the engine's ``monai.handlers.MLFlowHandler``.
        tags: ``{name: value}``, e.g. :func:`monai_gamble.utils.training_run_of` of the checkpoint read.

    Example:
        >>> MLflowTags(mlflow_handler, {"training_run_id": "3f2a..."}).attach(evaluator)
    """

    def __init__(self, mlflow_handler: Any, tags: Mapping[str, Any]) -> None:
        self.mlflow_handler = mlflow_handler
        self.tags = {str(k): v for k, v in dict(tags).items() if v is not None}
        self._tagged: str | None = None

    def attach(self, engine: Any) -> None:
        """Tag when the engine starts (and at its first epoch, if MLflow's handler starts later)."""
        engine.add_event_handler(Events.STARTED, self)
        engine.add_event_handler(Events.EPOCH_STARTED, self)

    @staticmethod
    def _value(value: Any) -> str:
        return _tag_value(value)

    def __call__(self, engine: Any = None) -> None:
        """Set the tags on the current run, once per run."""
        run = getattr(self.mlflow_handler, "cur_run", None)
        if run is None or self._tagged == run.info.run_id or idist.get_rank() > 0:
            return
        for name, value in self.tags.items():
            self.mlflow_handler.client.set_tag(run.info.run_id, name, self._value(value))
        self._tagged = run.info.run_id
