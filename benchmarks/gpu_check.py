"""GPU readiness: every bundle's default training config, the gambling train steps, the metrics and
inference on one device, in a few minutes, as one markdown table.

Checks (each on its own: a failure is a row with its error's first line, the others still run):

- ``train <bundle>``: the bundle's ``configs/train.json`` (and a few cheap variants: the thyroid
  bundle's fused gambling step and ``train_ce.json``, the pathology bundle's ``train_supervised.json``,
  the X-ray bundle's last progressive-resizing stage, the generic bundle's fused step), built with
  ``monai.bundle.ConfigParser`` in a temporary copy of the bundle, with overrides only for the
  device, AMP (``--amp``), tracking / progress bars / figures off, no validation, a small synthetic
  data set (same image and network sizes), and run for ``--iterations`` iterations. The thyroid
  bundle's default (two-pass gambling) and ``fused=True`` rows are the two gambling train steps.
  With ``--size tiny`` (the default on a CPU) the bundles' tests' tiny settings are used instead
  (64-pixel images, small networks).
- ``metrics``: BF-score, Chamfer and Hausdorff distances (one boundary pass each), MMCL and the
  class-fairness IoUs of ``monai_gamble.metrics`` on a batch of random-blob masks on the device.
- ``infer <bundle>``: the network and inferer of the bundle's ``configs/inference.json`` (random
  weights) on ``--images`` random images (one 3D volume for the generic bundle).

Columns: iterations (calls) per second and images per second (after one warm-up), peak memory
(CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``; CPU: growth of the
process's peak resident set during the check, 0 when an earlier check already peaked higher), whether
every loss (metric value, network output) was finite, and ok / FAILED. AMP on CUDA is what the
trainers do with ``amp=True``: ``torch.autocast("cuda", dtype=float16)`` with a ``GradScaler``; on a
CPU ``--amp on`` autocasts in bfloat16 (the bundles train with the package's ``AmpSupervisedTrainer`` or
``SegmenterCriticTrainer``, which autocast on any device; MONAI's ``SupervisedTrainer`` does on CUDA only).

Usage::

    python benchmarks/gpu_check.py --device cuda --iterations 30 --out gpu_check   # gpu_check.md, .json
    OMP_NUM_THREADS=1 python benchmarks/gpu_check.py --device cpu --iterations 2   # tiny, a smoke run
    python benchmarks/gpu_check.py --only thyroid metrics                           # checks whose name has these
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import json
import math
import shutil
import signal
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bundle_defaults import (
    amp_overrides,
    bundle_copy,
    in_bundle,
    peak_rss_mib,
    quiet_overrides,
    synchronize,
    timed_run,
    train_parser,
)

# the bundles' tests' tiny settings (tests/bundles/test_*_bundle.py): 64-pixel images, small networks
TINY_TRAIN: dict[str, dict[str, Any]] = {
    "thyroid_ultrasound_gambling": {
        "synthetic_num_images": 12, "image_size": [64, 64], "network_def#channels": [4, 8, 16, 32, 64],
        "network_def#num_res_units": 0, "critic_def#channels": [4, 8, 16, 32], "batch_size": 4,
    },
    "nerve_ultrasound_ems": {
        "synthetic_num_subjects": 4, "synthetic_images_per_subject": 4, "synthetic_num_test_images": 2,
        "image_size": [64, 64], "backbone": "efficientnet-b0", "network_def#decoder_channels": [32, 16, 16, 8, 8],
        "batch_size": 4,
    },
    "pathology_semisupervised_adversarial": {
        "synthetic_num_labelled": 10, "synthetic_num_unlabelled": 4, "synthetic_tile_size": 64, "image_size": [64, 64],
        "backbone": "resnet10", "aspp_channels": 8, "decoder_channels": 8, "critic_channels": [4, 4, 4, 4],
        "batch_size": 2,
    },
    "xray_pneumothorax": {
        "synthetic_num_images": 12, "synthetic_image_size": 64, "synthetic_num_test_images": 2,
        "synthetic_positive_fraction": 0.5, "features": [4, 4, 8, 8, 16, 4], "swa_epochs": 0,
        "stages": [{"epochs": 1, "spatial_size": [32, 32]}], "train#dataloader#batch_size": 4,
    },
    "generic_segmentation": {
        "synthetic_num_cases": 6, "synthetic_num_test": 2, "pixdim": [6.0, 6.0, 6.0],
        "network_def#channels": [4, 8, 16, 32], "network_def#strides": [2, 2, 2], "network_def#num_res_units": 0,
        "critic_channels": [4, 8, 16], "split_fractions": [0.5, 0.17, 0.33], "num_samples": 1,
    },
}  # fmt: skip
# the default networks and image sizes on a small synthetic data set (a few batches)
SMALL_DATA: dict[str, dict[str, Any]] = {
    "thyroid_ultrasound_gambling": {"synthetic_num_images": 24},
    "nerve_ultrasound_ems": {"synthetic_num_subjects": 6, "synthetic_images_per_subject": 4, "synthetic_num_test_images": 2},
    "pathology_semisupervised_adversarial": {},  # its default data set is embedded in the bundle
    "xray_pneumothorax": {"synthetic_num_images": 24, "synthetic_num_test_images": 2, "swa_epochs": 0},
    "generic_segmentation": {"synthetic_num_cases": 6, "synthetic_num_test": 2},
}  # fmt: skip
# inference.json overrides of the tiny setting (the same networks as TINY_TRAIN)
TINY_INFER: dict[str, dict[str, Any]] = {
    "thyroid_ultrasound_gambling": {"image_size": [64, 64], "network_def#channels": [4, 8, 16, 32, 64],
                                    "network_def#num_res_units": 0},
    "nerve_ultrasound_ems": {"image_size": [64, 64], "backbone": "efficientnet-b0"},
    "pathology_semisupervised_adversarial": {"image_size": [64, 64], "backbone": "resnet10", "aspp_channels": 8,
                                             "decoder_channels": 8},
    "xray_pneumothorax": {"final_image_size": [64, 64], "features": [4, 4, 8, 8, 16, 4]},
    "generic_segmentation": {"synthetic_num_cases": 6, "patch_size": [16, 16, 16], "network_def#channels": [4, 8, 16, 32],
                             "network_def#strides": [2, 2, 2], "network_def#num_res_units": 0},
}  # fmt: skip
SMALL_INFER: dict[str, dict[str, Any]] = {"generic_segmentation": {"synthetic_num_cases": 6}}
SHORT = {
    "thyroid_ultrasound_gambling": "thyroid",
    "nerve_ultrasound_ems": "nerve",
    "pathology_semisupervised_adversarial": "pathology",
    "xray_pneumothorax": "xray",
    "generic_segmentation": "generic",
}


@dataclass(frozen=True)
class TrainCheck:
    """One training check: a bundle, its config files and the variant's own overrides (per size)."""

    name: str
    bundle: str
    files: tuple[str, ...] = ("train.json",)
    default: dict | None = None
    tiny: dict | None = None


def train_checks() -> list[TrainCheck]:
    """Every bundle's default ``train.json`` and its cheap main variants."""
    last_xray = {"epochs": 1, "accumulation_steps": 12, "loss_function": "@finish_loss"}
    return [
        TrainCheck("train thyroid (gambling, two-pass: default)", "thyroid_ultrasound_gambling"),
        TrainCheck("train thyroid fused=True (gambling, fused step)", "thyroid_ultrasound_gambling",
                   default={"fused": True}, tiny={"fused": True}),
        TrainCheck("train thyroid train_ce.json", "thyroid_ultrasound_gambling", ("train.json", "train_ce.json")),
        TrainCheck("train nerve (default)", "nerve_ultrasound_ems"),
        TrainCheck("train pathology (semi-supervised: default)", "pathology_semisupervised_adversarial"),
        TrainCheck("train pathology train_supervised.json", "pathology_semisupervised_adversarial",
                   ("train.json", "train_supervised.json")),
        TrainCheck("train xray (default, stage 1)", "xray_pneumothorax"),
        TrainCheck("train xray last stage (batch 2, accumulation 12, dice_focal)", "xray_pneumothorax",
                   default={"stages": [{**last_xray, "spatial_size": [768, 768]}], "train#dataloader#batch_size": 2,
                            "train#trainer#accumulation_steps": 12},
                   tiny={"stages": [{**last_xray, "spatial_size": [64, 64]}], "train#dataloader#batch_size": 2,
                         "train#trainer#accumulation_steps": 12}),
        TrainCheck("train generic (gambling 3D: default)", "generic_segmentation"),
        TrainCheck("train generic fused=True", "generic_segmentation", default={"fused": True}, tiny={"fused": True}),
    ]  # fmt: skip


@dataclass
class Row:
    """One line of the table."""

    check: str
    it_per_s: float = math.nan
    images_per_s: float = math.nan
    peak_memory_mib: float = math.nan
    finite: bool | None = None
    status: str = "ok"
    seconds: float = 0.0


class CheckTimeout(Exception):
    """A check ran past its time limit."""


@contextlib.contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise :class:`CheckTimeout` in the main thread after ``seconds`` (SIGALRM; none when None or
    off the main thread / without SIGALRM)."""
    if not seconds or not hasattr(signal, "SIGALRM"):
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise CheckTimeout(f"timed out after {seconds:.0f} s")

    try:
        old = signal.signal(signal.SIGALRM, handler)
    except ValueError:  # not the main thread
        yield
        return
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def amp_dtype(device: str, amp: bool) -> torch.dtype | None:
    """The autocast dtype: float16 on CUDA, bfloat16 elsewhere, None without AMP."""
    if not amp:
        return None
    return torch.float16 if torch.device(device).type == "cuda" else torch.bfloat16


def conv_output_dtypes(network: torch.nn.Module) -> list[torch.dtype]:
    """The output dtypes of ``network``'s convolutions, appended by forward hooks as they run (under
    autocast: the autocast dtype)."""
    seen: list[torch.dtype] = []
    for module in network.modules():
        if isinstance(module, torch.nn.modules.conv._ConvNd):
            module.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    return seen


def run_train_check(check: TrainCheck, work: Path, device: str, iterations: int, amp: bool, tiny: bool) -> Row:
    """Build the check's trainer from its bundle's configs and run ``iterations`` iterations."""
    root = bundle_copy(check.bundle, work)
    overrides = {
        **(TINY_TRAIN if tiny else SMALL_DATA)[check.bundle],
        **quiet_overrides(device),
        **amp_overrides(device, amp),
        **((check.tiny if tiny else check.default) or {}),
    }
    parser = train_parser(root, check.files, overrides)
    with in_bundle(root):
        trainer = parser.get_parsed_content("train#trainer")
        seen = conv_output_dtypes(trainer.network)
        timer, memory = timed_run(trainer, iterations + 1, device)
    if len(timer.seconds) < iterations + 1:
        raise RuntimeError(f"the trainer ran {len(timer.seconds)} of {iterations + 1} iterations")
    dtype = amp_dtype(device, amp)
    if dtype is not None and dtype not in seen:
        raise RuntimeError(f"AMP was not active: the segmenter's convolutions gave {sorted(map(str, set(seen)))}")
    seconds = timer.median_seconds()
    images_per_s = sum(timer.images[1:]) / sum(timer.seconds[1:])  # after the warm-up, partial batches included
    row = Row(check.name, 1.0 / seconds, images_per_s, memory)
    row.finite = timer.loss_finite()
    del trainer, parser
    return row


def _blobs(batch: int, shape: tuple[int, ...], device: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """One-hot masks ``(B, 2, *shape)`` of random smooth blobs and a perturbed copy, on ``device``."""
    g = torch.Generator().manual_seed(seed)
    field = torch.nn.functional.avg_pool2d if len(shape) == 2 else torch.nn.functional.avg_pool3d
    noise = torch.randn(batch, 1, *shape, generator=g)
    smooth = field(noise, 9, stride=1, padding=4)
    moved = field(noise + 0.3 * torch.randn(batch, 1, *shape, generator=g), 9, stride=1, padding=4)
    onehot = lambda m: torch.cat([~m, m], 1).float().to(device)  # noqa: E731
    return onehot(smooth > 0.05), onehot(moved > 0.05)


def run_metrics_check(device: str, repeats: int, tiny: bool) -> Row:
    """BF-score, Chamfer, Hausdorff, MMCL and class-fairness IoUs of a batch on ``device``."""
    from monai_gamble.metrics import (
        ClassFairnessMetric,
        compute_bf_score,
        compute_chamfer_distance,
        compute_hausdorff_distance,
        compute_mmcl,
    )

    batch, shape = (4, (64, 64)) if tiny else (8, (256, 256))
    pred, label = _blobs(batch, shape, device)
    probs = torch.softmax(torch.randn(batch, 2, *shape, device=device), 1)

    def once() -> list[torch.Tensor]:
        fair = ClassFairnessMetric(include_background=True)
        fair(y_pred=pred, y=label)
        iou = torch.as_tensor(fair.aggregate())
        summary = torch.tensor(list(fair.summary().values()), dtype=torch.float64)
        return [
            compute_bf_score(pred, label, include_background=False),
            compute_chamfer_distance(pred, label, include_background=False),
            compute_hausdorff_distance(pred, label, include_background=False),
            compute_mmcl(probs),
            iou,
            summary,
        ]

    return _timed_calls("metrics (BF, Chamfer, Hausdorff, MMCL, fairness)", once, device, repeats, batch)


def _timed_calls(name: str, fn: Callable[[], Sequence[torch.Tensor]], device: str, repeats: int, images: int) -> Row:
    """One warm-up and ``repeats`` timed calls of ``fn``: calls/s, images/s, peak memory, finite outputs."""
    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    base = peak_rss_mib()
    outputs = fn()
    times = []
    for _ in range(max(repeats, 1)):
        synchronize(device)
        start = time.perf_counter()
        outputs = fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    memory = torch.cuda.max_memory_allocated(device) / 2**20 if cuda else peak_rss_mib() - base
    seconds = statistics.median(times)
    finite = all(bool(torch.isfinite(torch.as_tensor(o).detach().float().cpu()).all()) for o in outputs)
    return Row(name, 1.0 / seconds, images / seconds, memory, finite)


def run_infer_check(bundle: str, work: Path, device: str, images: int, amp: bool, tiny: bool) -> Row:
    """The network and inferer of the bundle's ``inference.json`` on random images (no checkpoint)."""
    from monai.bundle import ConfigParser

    root = bundle_copy(bundle, work)
    parser = ConfigParser()
    parser.read_config(str(root / "configs" / "inference.json"))
    overrides = {"bundle_root": str(root), "device": f"$torch.device({device!r})", "amp": amp}
    parser.update({**overrides, **(TINY_INFER if tiny else SMALL_INFER).get(bundle, {})})
    with in_bundle(root):
        network = parser.get_parsed_content("network").eval()
        inferer = parser.get_parsed_content("inferer")
        if bundle == "generic_segmentation":
            patch = [int(p) for p in parser.get_parsed_content("patch_size")]
            shape = (int(parser.get_parsed_content("in_channels")), *[p + p // 2 for p in patch])
            count = 1
        else:
            key = "final_image_size" if bundle == "xray_pneumothorax" else "image_size"
            size = [int(s) for s in parser.get_parsed_content(key)]
            channels = 3 if bundle == "pathology_semisupervised_adversarial" else 1
            shape, count = (channels, *size), images
    g = torch.Generator().manual_seed(0)
    inputs = [torch.rand(1, *shape, generator=g).to(device) for _ in range(count)]
    dtype = amp_dtype(device, amp)

    def once() -> list[torch.Tensor]:
        outs = []
        with torch.inference_mode(), torch.autocast(torch.device(device).type, dtype=dtype, enabled=dtype is not None):
            for x in inputs:
                out = inferer(x, network)
                outs.append(out[0] if isinstance(out, (tuple, list)) else out)
        return outs

    name = f"infer {SHORT[bundle]} ({'x'.join(str(s) for s in shape[1:])}, inference.json inferer)"
    return _timed_calls(name, once, device, 1, count)


def _first_line(err: BaseException) -> str:
    text = f"{type(err).__name__}: {err}".strip()
    return (text.splitlines() or [type(err).__name__])[0][:160].replace("|", "/")


def run_checks(
    device: str = "cpu",
    iterations: int = 2,
    amp: bool | None = None,
    tiny: bool | None = None,
    only: Sequence[str] | None = None,
    images: int = 4,
    work_dir: Path | None = None,
    check_timeout: float | None = 300.0,
    log: Callable[[str], None] | None = None,
) -> list[Row]:
    """Run every check (or those whose name contains one of ``only``); one failure is a FAILED row.

    Args:
        device: ``"cuda"`` (``"cuda:1"``) or ``"cpu"``.
        iterations: timed training iterations per check (after one warm-up).
        amp: autocast (float16 on CUDA, bfloat16 on a CPU); default on CUDA only.
        tiny: the tests' tiny settings (default: on a CPU only).
        only: substrings of the check names to run.
        images: images per inference check (2D).
        work_dir: bundle copies and synthetic data (default: a temporary folder, removed at the end).
        check_timeout: seconds per check (None: no limit).
        log: called with a line per finished check (e.g. ``print``).
    """
    cuda = torch.device(device).type == "cuda"
    if cuda and not torch.cuda.is_available():
        raise SystemExit(f"--device {device}: CUDA is not available here (torch {torch.__version__}).")
    amp = cuda if amp is None else bool(amp)
    tiny = not cuda if tiny is None else bool(tiny)
    jobs: list[tuple[str, Callable[[], Row]]] = []
    work = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="gpu_check_"))
    for check in train_checks():
        jobs.append((check.name, lambda c=check: run_train_check(c, work, device, iterations, amp, tiny)))
    jobs.append(("metrics (BF, Chamfer, Hausdorff, MMCL, fairness)", lambda: run_metrics_check(device, 3, tiny)))
    for bundle in SHORT:
        jobs.append((f"infer {SHORT[bundle]}", lambda b=bundle: run_infer_check(b, work, device, images, amp, tiny)))
    if only:
        jobs = [(n, f) for n, f in jobs if any(o in n for o in only)]
    rows = []
    try:
        for name, job in jobs:
            start = time.perf_counter()
            try:
                with time_limit(check_timeout):
                    row = job()
            except Exception as err:  # one failure must not stop the others
                row = Row(name, status=f"FAILED: {_first_line(err)}")
                if log is not None:
                    log("".join(traceback.format_exception(err))[-2000:])
            row.seconds = time.perf_counter() - start
            rows.append(row)
            gc.collect()
            if cuda:
                torch.cuda.empty_cache()
            if log is not None:
                log(f"{row.check}: {row.status} ({row.seconds:.1f} s)")
    finally:
        if not work_dir:
            shutil.rmtree(work, ignore_errors=True)
    return rows


def markdown(rows: Sequence[Row], device: str) -> str:
    """The table: check, it/s, images/s, peak memory, loss finite, status."""
    mem = "peak CUDA MiB" if torch.device(device).type == "cuda" else "peak RSS growth MiB"
    lines = [f"| check | it/s | images/s | {mem} | loss finite | status |", "|---|---:|---:|---:|---|---|"]
    fmt = lambda v, d: "-" if not math.isfinite(v) else f"{v:.{d}f}"  # noqa: E731
    for r in rows:
        finite = "-" if r.finite is None else ("yes" if r.finite else "no")
        lines.append(
            f"| {r.check} | {fmt(r.it_per_s, 2)} | {fmt(r.images_per_s, 1)} | {fmt(r.peak_memory_mib, 0)} | {finite} "
            f"| {r.status} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> list[Row]:
    """The command line (see the module docstring); prints the table and returns its rows."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cuda or cpu")
    parser.add_argument("--iterations", type=int, default=30, help="timed training iterations per check")
    parser.add_argument("--amp", choices=("auto", "on", "off"), default="auto", help="auto: on CUDA only")
    parser.add_argument("--size", choices=("auto", "default", "tiny"), default="auto",
                        help="default: the bundles' networks and image sizes; tiny: the tests'; auto: tiny on a CPU")  # fmt: skip
    parser.add_argument("--images", type=int, default=4, help="images per inference check")
    parser.add_argument("--only", nargs="+", default=None, help="run the checks whose name contains one of these")
    parser.add_argument("--check_timeout", type=float, default=300.0, help="seconds per check")
    parser.add_argument("--work_dir", default=None, help="bundle copies and synthetic data (default: temporary)")
    parser.add_argument("--out", default=None, help="write the table to OUT.md and the rows to OUT.json")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    if args.iterations < 1:
        parser.error("--iterations must be at least 1")
    start = time.perf_counter()
    rows = run_checks(
        args.device, args.iterations, None if args.amp == "auto" else args.amp == "on",
        None if args.size == "auto" else args.size == "tiny", args.only, args.images,
        Path(args.work_dir) if args.work_dir else None, args.check_timeout,
        None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True)),
    )  # fmt: skip
    gpu = torch.cuda.get_device_name(args.device) if torch.device(args.device).type == "cuda" else "CPU"
    header = (
        f"`python benchmarks/gpu_check.py {' '.join(argv if argv is not None else sys.argv[1:])}`: "
        f"{datetime.datetime.now().isoformat(timespec='minutes')}, {gpu}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {args.iterations} timed iterations, {time.perf_counter() - start:.0f} s"
    )
    table = markdown(rows, args.device)
    print(header + "\n\n" + table)
    if args.out:
        out = Path(args.out)
        out.with_suffix(".md").write_text(header + "\n\n" + table + "\n")
        out.with_suffix(".json").write_text(
            json.dumps({"header": header, "rows": [asdict(r) for r in rows]}, indent=2, default=str)
        )
    failed = [r.check for r in rows if r.status != "ok"]
    if failed:
        print(f"\n{len(failed)} of {len(rows)} checks FAILED: {', '.join(failed)}", file=sys.stderr)
    return rows


if __name__ == "__main__":
    rows = main()
    sys.exit(1 if any(r.status != "ok" for r in rows) else 0)
