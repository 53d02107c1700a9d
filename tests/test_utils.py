"""The workflow helpers that the bundle configs call (monai_gamble.utils)."""

import re
import subprocess
import sys
import textwrap

import pytest
import torch

from monai_gamble.utils import (
    check_tracking_uri,
    check_training_settings,
    checkpoint_path,
    ddp_device_ids,
    default_device,
    default_tracking_uri,
    finish_distributed,
    join_name,
    lr_scheduler,
    timestamped_name,
)


def test_device_and_ddp_device_ids(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert default_device() == torch.device("cpu") and ddp_device_ids("cpu") is None
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert default_device() == torch.device("cuda:3")  # the process's GPU under torchrun
    monkeypatch.delenv("LOCAL_RANK")
    assert default_device() == torch.device("cuda:0")
    assert ddp_device_ids("cuda:1") == [torch.device("cuda:1")]


def test_names_and_paths(tmp_path, monkeypatch):
    assert join_name("evaluation", "test", "asme") == "evaluation_test_asme"
    assert join_name("a", 1, sep=".") == "a.1"
    assert re.fullmatch(r"gambling_train_\d{8}_\d{6}", timestamped_name("gambling", "train"))
    assert checkpoint_path("models", "model") == "models/model.pt"
    assert checkpoint_path("models", "stages/stage2_192x192") == "models/stages/stage2_192x192.pt"
    assert checkpoint_path("models", "model_swa.pt") == "models/model_swa.pt"
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert default_tracking_uri(tmp_path / "eval") == f"sqlite:///{tmp_path}/eval/mlruns.db"
    assert (tmp_path / "eval" / "mlruns.db").is_file()  # created once, under a lock
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://host:5000")
    assert default_tracking_uri(tmp_path) == "http://host:5000"


@pytest.mark.parametrize(
    "schedule, after_two_epochs",
    [("cosine", 0.5 * (1 + torch.cos(torch.tensor(torch.pi * 2 / 4))).item()), ("step", 0.25), ("constant", 1.0)],
)
def test_lr_scheduler_by_name(schedule, after_two_epochs):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = lr_scheduler(opt, schedule, max_epochs=4, gamma=0.5)
    for _ in range(2):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(after_two_epochs)
    with pytest.raises(ValueError, match="Unsupported option 'linear'"):
        lr_scheduler(opt, "linear", max_epochs=4)


def _unet(strides=(2, 2, 2, 2)):
    from monai.networks.nets import UNet

    return UNet(2, 1, 2, channels=(4, 8, 16, 32, 64)[: len(strides) + 1], strides=strides, num_res_units=0)


def test_check_training_settings_accepts_good_settings():
    net = _unet()
    net.train()
    check_training_settings(net, [64, 48], num_classes=2, val_interval=1, max_epochs=1, batch_size=1)
    assert net.training  # the network's mode is restored
    check_training_settings(net, stages=[{"epochs": 1, "spatial_size": [32, 32]}, {"epochs": 1, "spatial_size": 64}])
    check_training_settings()  # nothing to check


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"image_size": [100, 100]}, r"--image_size \[100, 100\] does not fit the network: UNet fails on it .* divisible by 16"),
        ({"image_size": [64]}, r"--image_size must be 2 positive sizes for this 2D network, got \[64\]"),
        ({"image_size": [0, 64]}, "must be 2 positive sizes"),
        ({"num_classes": 1}, "--num_classes must be at least 2, got 1: .*a binary task has 2"),
        ({"num_classes": 2.5}, "--num_classes must be at least 2"),
        ({"val_interval": 0}, r"--val_interval must be a whole number >= 1, got 0"),
        ({"max_epochs": -1}, "--max_epochs must be a whole number >= 1"),
        ({"batch_size": 1.5}, "--batch_size must be a whole number >= 1"),
        ({"batch_size": True}, "--batch_size must be a whole number >= 1"),
        ({"stages": []}, "--stages must hold at least one stage"),
        ({"stages": [{"epochs": 2, "spatial_size": [64, 64]}, {"epochs": 1, "spatial_size": [72, 72]}]},
         r"--stages#1#spatial_size \[72, 72\] does not fit"),
        ({"stages": [{"epochs": 0, "spatial_size": [64, 64]}]}, "--stages: stage 0 .* is not valid"),
    ],
)  # fmt: skip
def test_check_training_settings_names_the_bad_key(kwargs, match):
    with pytest.raises(ValueError, match=match):
        check_training_settings(_unet(), **kwargs)


def test_check_tracking_uri_fails_fast_on_an_unreachable_server():
    import socket
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, HTTPServer

    assert check_tracking_uri(None) is None
    assert check_tracking_uri("sqlite:///tmp/x.db") == "sqlite:///tmp/x.db"
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=rf"--tracking_uri http://127.0.0.1:{port}: no MLflow server answers"):
        check_tracking_uri(f"http://127.0.0.1:{port}", timeout=2)
    assert time.perf_counter() - t0 < 5
    with pytest.raises(SystemExit, match="Bad setting, nothing was run: --tracking_uri"):
        check_tracking_uri(f"http://127.0.0.1:{port}", timeout=2, exit_on_error=True)

    class Health(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        uri = f"http://127.0.0.1:{server.server_port}"
        assert check_tracking_uri(uri) == uri
    finally:
        server.shutdown()


class _Fails(torch.utils.data.Dataset):
    """Raises a package error (as_bool's, raised in monai_gamble) under a foreign wrapper."""

    def __len__(self):
        return 2

    def __getitem__(self, i):
        from monai_gamble.utils import as_bool

        try:
            as_bool("maybe", "--resume")
        except ValueError as e:
            raise RuntimeError("applying transform <Foreign object>") from e


def _raise_chained():
    from monai_gamble.utils import as_bool

    try:
        try:
            as_bool("maybe", "--resume")
        except ValueError as e:
            raise RuntimeError("applying transform <Foreign object>") from e
    except RuntimeError as e:
        raise RuntimeError("Failed to instantiate component 'monai.data.dataset.CacheDataset'") from e


def test_error_summary_finds_the_package_error_under_foreign_wrappers():
    from monai_gamble.utils import error_summary

    with pytest.raises(RuntimeError) as info:
        _raise_chained()
    assert error_summary(info.value) == "ValueError: --resume must be true or false, got 'maybe'."
    # an error raised outside the package (a bug, a third-party failure) keeps its traceback: no summary
    try:
        int("x")
    except ValueError as e:
        assert error_summary(e) is None
    assert error_summary(RuntimeError("never raised")) is None


def test_error_summary_reads_a_dataloader_workers_traceback_text():
    """torch re-raises a worker's error in the main process with the worker's traceback as text."""
    from monai_gamble.utils import error_summary

    loader = torch.utils.data.DataLoader(_Fails(), num_workers=1)
    with pytest.raises(RuntimeError, match="DataLoader worker") as info:
        next(iter(loader))
    assert error_summary(info.value) == "ValueError: --resume must be true or false, got 'maybe'."


def test_installed_hook_prints_the_summary_last_and_keeps_other_tracebacks(monkeypatch, capsys):
    from monai_gamble.utils import TRACEBACK_ENV, install_error_summary

    seen = []
    monkeypatch.setattr(sys, "excepthook", lambda *a: seen.append(a[0]))
    install_error_summary()
    install_error_summary()  # once only: the hook does not wrap itself
    hook = sys.excepthook
    with pytest.raises(RuntimeError) as info:
        _raise_chained()
    monkeypatch.delenv(TRACEBACK_ENV, raising=False)
    hook(RuntimeError, info.value, info.value.__traceback__)
    err = capsys.readouterr().err.strip().splitlines()
    assert seen == [] and err[-1] == "ValueError: --resume must be true or false, got 'maybe'."
    assert f"{TRACEBACK_ENV}=1" in err[0]
    monkeypatch.setenv(TRACEBACK_ENV, "1")  # the whole traceback too, then the summary
    hook(RuntimeError, info.value, info.value.__traceback__)
    assert seen == [RuntimeError] and capsys.readouterr().err.strip().endswith("got 'maybe'.")
    foreign = KeyError("x")
    hook(KeyError, foreign, None)  # not the package's: Python's own hook, nothing added
    assert seen == [RuntimeError, KeyError] and capsys.readouterr().err == ""


ABORT_SCRIPT = """
import sys, torch
if sys.argv[1] == "hook":
    from monai_gamble.utils import install_error_summary
    install_error_summary()
from monai.data import CacheDataset
from monai.transforms import Lambda

def load(x):
    if x == 0:
        raise ValueError("item 0 is broken")
    a = torch.randn(300, 300)
    for _ in range(200):  # the other caching threads are still in PyTorch code when item 0 fails
        a = torch.tanh(a @ a)
    return x

CacheDataset(list(range(8)), transform=Lambda(load), num_workers=4, progress=False)
"""


def test_an_error_while_caching_exits_with_1_not_an_abort(tmp_path):
    """CacheDataset's caching threads still run PyTorch code when one item fails; exiting then makes
    CPython end them with pthread_exit through PyTorch's C++ frames: std::terminate, rc 134. The
    installed hook waits for those threads first (the rc-134 abort of truncated files)."""
    import os

    script = tmp_path / "abort.py"
    script.write_text(ABORT_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}

    def run(mode):
        return subprocess.run([sys.executable, str(script), mode], capture_output=True, text=True, env=env, timeout=300)

    plain = run("plain")  # the reproduction: without the hook, the process aborts after the traceback
    if sys.version_info < (3, 14):
        assert plain.returncode in (134, -6) and "terminate called without an active exception" in plain.stderr
    hooked = run("hook")
    assert hooked.returncode == 1, hooked.stderr[-2000:]
    assert "terminate called" not in hooked.stderr and "item 0 is broken" in hooked.stderr


def test_publish_latest_points_at_the_last_finished_run(tmp_path, monkeypatch):
    import os

    from monai_gamble.utils import new_run_name, publish_latest

    runs = tmp_path / "eval" / "inference"
    first = runs / new_run_name(runs, "infer")
    second = runs / new_run_name(runs, "infer")
    (first / "a.png").write_text("1")
    (second / "b.png").write_text("2")
    link = publish_latest(first)
    assert link == runs / "latest" and link.is_symlink() and os.readlink(link) == first.name  # relative
    assert publish_latest(second) == link and (link / "b.png").read_text() == "2"
    assert sorted(p.name for p in runs.iterdir()) == sorted([first.name, second.name, "latest"])  # no temp left
    with pytest.raises(FileNotFoundError, match="no such run folder"):
        publish_latest(runs / "infer_missing")
    # no symbolic links here: the run's name in latest.txt
    monkeypatch.setattr(os, "symlink", lambda *a, **k: (_ for _ in ()).throw(OSError("not permitted")))
    text = publish_latest(first, name="newest")
    assert text == runs / "newest.txt" and text.read_text() == f"{first.name}\n"
    assert not any(p.name.startswith(".newest") for p in runs.iterdir())
    monkeypatch.undo()
    (runs / "mine").mkdir()  # a real folder of that name is never replaced
    assert publish_latest(second, name="mine") == runs / "mine.txt" and (runs / "mine").is_dir()


FINISH_SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    import torch.distributed as dist
    from monai_gamble.utils import finish_distributed

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    marker = os.path.join(sys.argv[1], "rank1_done")
    if rank == 1:
        time.sleep(2.0)  # the slow rank: still busy when rank 0 finishes
        open(marker, "w").close()
    finish_distributed()
    assert not dist.is_initialized()
    if rank == 0:
        open(os.path.join(sys.argv[1], "rank0_saw"), "w").write(str(os.path.exists(marker)))
    """
)


def test_finish_distributed_is_a_no_op_outside_a_process_group():
    import torch.distributed as dist

    assert not dist.is_initialized()
    finish_distributed()  # single-process runs call it from their finalize too
    assert not dist.is_initialized()


@pytest.mark.slow
def test_finish_distributed_waits_for_every_rank_before_leaving(tmp_path, torchrun):
    torchrun(FINISH_SCRIPT, tmp_path)
    # rank 0 left only after the slow rank 1 had reached finish_distributed (the barrier)
    assert (tmp_path / "rank0_saw").read_text() == "True"
