"""MLflow runs that reproduce and serve (MLflowRun, override_params, merged_config, dataset_digest,
git_commit, --tracking_uri none), and the run-time estimates (RunEstimate, ProgressBar's run ETA)."""

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from ignite.engine import Engine, Events

from monai_gamble.handlers import MLflowRun, RunEstimate
from monai_gamble.handlers.progress import ProgressBar, _RunClock, format_duration, projected_seconds
from monai_gamble.handlers.tracking import MAX_PARAM_LENGTH, TRUNCATED, fluent_tracking_uri, override_params
from monai_gamble.utils import (
    check_bundle_overrides,
    check_tracking_uri,
    cli_overrides,
    dataset_digest,
    git_commit,
    merged_config,
    tracking_off,
)

RUN = ["/env/lib/python3.11/site-packages/monai/bundle/__main__.py", "run"]


# ---- overrides, merged config ------------------------------------------------------------------------


def test_override_params_names_values_and_truncation():
    long = "x" * (MAX_PARAM_LENGTH + 10)
    params = override_params({"network_def#channels": "[8,16]", "a::b": "1", "flag": None, "w€ird key": long})
    assert params["override/network_def/channels"] == "[8,16]"
    assert params["override/a/b"] == "1"
    assert params["override/flag"] == "True"
    value = params["override/w_ird key"]
    assert len(value) == MAX_PARAM_LENGTH and value.endswith(TRUNCATED)
    assert value.startswith("x" * (MAX_PARAM_LENGTH - len(TRUNCATED)))


def test_cli_overrides_leave_out_run_arguments_and_read_an_args_file(tmp_path):
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"max_epochs": 3, "seed": 1}))
    argv = [
        *RUN,
        "--config_file",
        "c.json",
        "--max_epochs",
        "2",
        "--network_def#channels=[8,16]",
        "--args_file",
        str(args),
    ]
    assert cli_overrides(argv) == {"max_epochs": "2", "seed": "1", "network_def#channels": "[8,16]"}
    assert cli_overrides(["pytest", "-q"]) == {}


def test_merged_config_applies_the_overrides_as_monai_reads_them(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"max_epochs": 60, "net": {"_target_": "UNet", "channels": [16, 32]}}))
    (tmp_path / "b.json").write_text(json.dumps({"max_epochs": 5, "lr": 0.1}))
    files = f"['{tmp_path / 'a.json'}','{tmp_path / 'b.json'}']"
    argv = [*RUN, "--config_file", files, "--net#channels", "[4,8]", "--lr", "0.5", "--name", "run_a"]
    assert merged_config(argv) == {
        "max_epochs": 5,
        "net": {"_target_": "UNet", "channels": [4, 8]},
        "lr": 0.5,
        "name": "run_a",
    }
    assert merged_config(["pytest"]) is None


def test_monai_tracking_option_is_refused_with_the_bundle_way():
    with pytest.raises(SystemExit, match="--tracking_uri none"):
        check_bundle_overrides([*RUN, "--config_file", "x.json", "--tracking", "mlflow"], config={"max_epochs": 1})


@pytest.mark.parametrize("uri,off", [(None, True), ("none", True), ("None", True), (" OFF ", True), ("", True),
                                     ("sqlite:///x/mlruns.db", False), ("http://127.0.0.1:5000", False)])  # fmt: skip
def test_tracking_off(uri, off):
    assert tracking_off(uri) is off


def test_check_tracking_uri_accepts_none():
    assert check_tracking_uri("none", exit_on_error=True) == "none"


# ---- dataset digest, git commit -----------------------------------------------------------------------


def _dataset(root: Path) -> Path:
    (root / "image").mkdir(parents=True)
    (root / "image" / "1.png").write_bytes(b"\x89PNG one")
    (root / "image" / "2.png").write_bytes(b"\x89PNG two")
    return root


def test_dataset_digest_follows_the_content(tmp_path):
    a, b = _dataset(tmp_path / "a"), _dataset(tmp_path / "b")
    (b / ".lock").write_text("a lock file is not data")
    digest = dataset_digest(a)
    assert digest.startswith("sha256:") and len(digest) == len("sha256:") + 64
    assert dataset_digest(b) == digest  # two copies, one digest
    (b / "image" / "2.png").write_bytes(b"\x89PNG twO")
    assert dataset_digest(b) != digest  # one byte changed
    shutil.rmtree(b)
    _dataset(b)
    (b / "image" / "2.png").rename(b / "image" / "3.png")
    assert dataset_digest(b) != digest  # renamed
    with pytest.raises(FileNotFoundError, match="does not exist"):
        dataset_digest(tmp_path / "missing")


def test_git_commit(tmp_path):
    assert git_commit(tmp_path) is None  # not a checkout
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "f.txt").write_text("1")
    subprocess.run([*git, "-C", str(tmp_path), "add", "f.txt"], check=True)
    subprocess.run([*git, "-C", str(tmp_path), "commit", "-qm", "c"], check=True)
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert git_commit(tmp_path) == head.strip()
    (tmp_path / "f.txt").write_text("2")
    assert git_commit(tmp_path) == head.strip() + "-dirty"


# ---- estimates ----------------------------------------------------------------------------------------


def test_format_duration_and_projection():
    assert format_duration(3725.4) == "1:02:05"
    assert format_duration(59.6) == "0:01:00"
    assert format_duration(float("inf")) == "?"
    assert projected_seconds(10.0, 4, 6) == 15.0
    assert projected_seconds(10.0, 0, 6) == float("inf")
    assert projected_seconds(10.0, 4, -2) == 0.0


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def _timed_engine(clock, step=1.0, validation=0.0):
    def process(engine, batch):
        clock.now += step
        return {"loss": 1.0}

    engine = Engine(process)
    if validation:
        engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: setattr(clock, "now", clock.now + validation))
    return engine


def test_run_estimate_projects_the_run_and_warns_on_a_cpu(monkeypatch, caplog):
    clock = FakeClock()
    monkeypatch.setattr(time, "perf_counter", clock)
    engine = _timed_engine(clock, step=1.0, validation=5.0)  # 1 s per iteration, 5 s of validation per epoch
    estimate = RunEstimate(cpu_config="configs/demo.json", cpu_warning_minutes=0.1, warmup_iterations=1,
                           measure_iterations=2)  # fmt: skip
    estimate.attach(engine)
    with caplog.at_level(logging.INFO, logger="monai_gamble"):
        engine.run(range(5), max_epochs=3)
    # after iteration 3: 2 iterations in 2 s, 12 iterations left -> 12 s; at epoch 2: 5 iterations + 5 s of
    # validation = 10 s for 5 iterations, 10 left -> 20 s
    assert estimate.estimates == [12.0, 20.0]
    text = caplog.text
    assert "a training set of unknown size" in text and "5 iterations per epoch" in text
    assert "about 0:00:12 left" in text and "about 0:00:20 left" in text
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "configs/demo.json" in warnings[0].getMessage()


def test_run_estimate_is_quiet_under_the_threshold_and_refuses_bad_values(monkeypatch, caplog):
    clock = FakeClock()
    monkeypatch.setattr(time, "perf_counter", clock)
    engine = _timed_engine(clock)
    RunEstimate(cpu_config="configs/demo.json").attach(engine)
    with caplog.at_level(logging.INFO, logger="monai_gamble"):
        engine.run(range(8), max_epochs=2)
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]
    with pytest.raises(ValueError, match="measure_iterations"):
        RunEstimate(measure_iterations=0)


def test_progress_bar_shows_the_run_eta(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(time, "perf_counter", clock)
    engine = _timed_engine(clock, step=2.0)
    bar = ProgressBar(output_transform=lambda out: {"loss": out["loss"]}, desc="train")
    shown = []
    bar.attach(engine)
    transform = bar._with_run_eta(engine, lambda out: {"loss": out["loss"]})
    engine.add_event_handler(Events.ITERATION_COMPLETED, lambda e: shown.append(transform(e.state.output)))
    engine.run(range(3), max_epochs=2)
    # the clock starts at the first iteration's start: after iteration k, 2k s for k iterations, 6 - k left
    assert [s["run_eta"] for s in shown] == [format_duration(2.0 * (6 - k)) for k in range(1, 7)]
    assert all(s["loss"] == 1.0 for s in shown)
    one_epoch = _timed_engine(clock)
    assert ProgressBar()._with_run_eta(one_epoch, None)(None) is None  # no run ETA for a one-epoch engine
    assert _RunClock().remaining(one_epoch) == float("inf")


# ---- MLflowRun ----------------------------------------------------------------------------------------


def test_tracking_off_attaches_nothing_and_creates_no_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    handler = MLflowRun(tracking_uri="none", experiment_name="e", run_name="r", model=torch.nn.Conv2d(1, 2, 1))
    engine = Engine(lambda e, b: 0.0)
    before = {k: len(v) for k, v in engine._event_handlers.items()}
    handler.attach(engine)
    assert {k: len(v) for k, v in engine._event_handlers.items()} == before
    engine.run(range(2), max_epochs=1)
    handler.complete()
    handler.close()
    assert handler.cur_run is None and handler.client is None
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value, on", [(True, True), ("true", True), (False, False), ("False", False), ("off", False)])
def test_mlflow_model_switch(value, on, tmp_path, monkeypatch):
    """``mlflow_model`` off (``--mlflow_model False``, or the text ``off`` / ``False`` from a config): no MLflow
    Model at the end of training; a value that is not a boolean is a clear error."""
    monkeypatch.chdir(tmp_path)
    net = torch.nn.Conv2d(1, 2, 1)
    handler = MLflowRun(tracking_uri="none", model=net, mlflow_model=value)
    assert (handler.model is net) is on
    with pytest.raises(ValueError, match="mlflow_model must be true or false, got 'maybe'"):
        MLflowRun(tracking_uri="none", model=net, mlflow_model="maybe")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """A real ``mlflow server`` on 127.0.0.1 (SQLite store, artifacts served by the server)."""
    root = tmp_path_factory.mktemp("mlflow_server")
    port = _free_port()
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
               "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination",
               str(root / "artifacts"), "--workers", "1"]  # fmt: skip
    log = open(root / "server.log", "w")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            check_tracking_uri(uri, timeout=1.0)
            break
        except ValueError:
            if server.poll() is not None or time.time() > deadline:
                server.kill()
                pytest.fail(f"mlflow server did not start: {(root / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
    yield uri
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
    log.close()


@pytest.mark.slow
def test_a_run_against_a_real_mlflow_server_reproduces_and_serves(tmp_path, mlflow_server, monkeypatch):
    import mlflow
    from mlflow import MlflowClient
    from monai.engines import SupervisedTrainer
    from monai.networks.nets import UNet

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    bundle = tmp_path / "my_bundle"
    (bundle / "configs").mkdir(parents=True)
    (bundle / "configs" / "metadata.json").write_text(json.dumps({"version": "0.3.1"}))
    (bundle / "configs" / "train.json").write_text(json.dumps({"max_epochs": 60, "net": {"channels": [16, 32]}}))
    data = _dataset(tmp_path / "data")
    long_value = "[" + ",".join(["1"] * 4000) + "]"
    argv = [*RUN, "--config_file", str(bundle / "configs" / "train.json"), "--net#channels", "[4,8]",
            "--max_epochs", "2", "--notes", long_value]  # fmt: skip

    torch.manual_seed(0)
    net = UNet(2, 1, 2, channels=[4, 8], strides=[2], num_res_units=0)
    images = torch.rand(4, 1, 32, 32)
    labels = (images > 0.5).float()
    loader = [{"image": images[i : i + 2], "label": labels[i : i + 2]} for i in (0, 2)]
    trainer = SupervisedTrainer(
        device=torch.device("cpu"), max_epochs=2, train_data_loader=loader, network=net,
        optimizer=torch.optim.SGD(net.parameters(), lr=0.1),
        loss_function=lambda pred, label: torch.nn.functional.cross_entropy(pred, label[:, 0].long()),
    )  # fmt: skip
    checkpoint = tmp_path / "model.pt"
    handler = MLflowRun(
        tracking_uri=mlflow_server, experiment_name="reproduce", run_name="run_a",
        experiment_param={"max_epochs": 2}, method="ce", dataset_dir=str(data), bundle_root=str(bundle),
        device="cpu", tags={"training_run_id": "abc", "skipped": None}, model=net, model_checkpoint=str(checkpoint),
        model_key="model", image_size=[32, 32], argv=argv, close_on_complete=True, iteration_log=False,
    )  # fmt: skip
    handler.attach(trainer)
    # the best checkpoint, as the bundles save it: a dict of networks; the logged model must hold these weights
    best = UNet(2, 1, 2, channels=[4, 8], strides=[2], num_res_units=0)
    torch.save({"model": best.state_dict(), "critic": {}}, checkpoint)
    trainer.run()

    client = MlflowClient(tracking_uri=mlflow_server)
    run = client.search_runs([client.get_experiment_by_name("reproduce").experiment_id])[0]
    tags, params = run.data.tags, run.data.params
    assert run.info.status == "FINISHED"
    assert tags["bundle"] == "my_bundle" and tags["bundle_version"] == "0.3.1" and tags["method"] == "ce"
    assert tags["dataset_dir"] == str(data) and tags["dataset_digest"] == dataset_digest(data)
    assert tags["device"] == "cpu" and tags["training_run_id"] == "abc" and "skipped" not in tags
    assert tags["torch_version"] == torch.__version__ and tags["world_size"] == "1"
    assert params["override/net/channels"] == "[4,8]" and params["override/max_epochs"] == "2"
    assert len(params["override/notes"]) == MAX_PARAM_LENGTH and params["override/notes"].endswith(TRUNCATED)
    files = {a.path for a in client.list_artifacts(run.info.run_id, "config")}
    assert files == {"config/config.json", "config/command.json"}
    local = client.download_artifacts(run.info.run_id, "config", str(tmp_path / "downloaded"))
    config = json.loads((Path(local) / "config.json").read_text())
    assert config == {"max_epochs": 2, "net": {"channels": [4, 8]}, "notes": [1] * 4000}
    command = json.loads((Path(local) / "command.json").read_text())
    assert command["overrides"]["notes"] == long_value  # the whole value, where the parameter is cut

    # not mlflow.set_tracking_uri: it sets MLFLOW_TRACKING_URI for every later test of this process
    with fluent_tracking_uri(mlflow_server):
        model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    image = np.random.default_rng(1).random((3, 1, 48, 64), dtype=np.float32)  # another batch and image size
    with torch.no_grad():
        expected = best.eval()(torch.from_numpy(image)).numpy()
    np.testing.assert_allclose(model.predict(image), expected, rtol=1e-5, atol=1e-6)
    assert model.metadata.get_input_schema().inputs[0].shape == (-1, 1, -1, -1)
    assert "MLFLOW_TRACKING_URI" not in os.environ


@pytest.mark.parametrize("env", [None, "sqlite:///elsewhere/mlruns.db"])
def test_logging_the_model_leaves_the_process_tracking_uri_as_it_was(tmp_path, monkeypatch, env):
    """mlflow.set_tracking_uri sets MLFLOW_TRACKING_URI, which MONAI's handler prefers to its own URI: after
    one run's model logging, the next run of the same process (a study's next cell) must log to its store."""
    import mlflow
    from mlflow.tracking._tracking_service import utils as tracking_utils

    monkeypatch.chdir(tmp_path)
    if env is None:
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    else:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", env)
    monkeypatch.setattr(tracking_utils, "_tracking_uri", None)
    with fluent_tracking_uri(f"sqlite:///{tmp_path / 'a.db'}"):
        assert mlflow.get_tracking_uri() == f"sqlite:///{tmp_path / 'a.db'}"
    assert os.environ.get("MLFLOW_TRACKING_URI") == env and tracking_utils._tracking_uri is None
    with pytest.raises(RuntimeError, match="inside"), fluent_tracking_uri(f"sqlite:///{tmp_path / 'b.db'}"):
        raise RuntimeError("inside")  # restored after an error too
    assert os.environ.get("MLFLOW_TRACKING_URI") == env and tracking_utils._tracking_uri is None
