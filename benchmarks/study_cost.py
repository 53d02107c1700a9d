"""What a study grid costs: seconds per training iteration of every (method, architecture) of the
thyroid bundle, measured, and the wall time of a whole grid extrapolated from them.

Each (method, architecture) trainer is built from the bundle's own config files (``train.json`` +
the method's and the architecture's overrides, as ``monai_gamble.study`` does) and run on random
batches of the given size, without validation, tracking or checkpoints, for ``--iterations``
iterations after one warm-up iteration. The extrapolation multiplies by the iterations of a run
(``ceil(training images / batch) * epochs``) and the number of seeds; it leaves out validation
(about 5% of a run at the bundle's settings) and evaluation.

Usage::

    python benchmarks/study_cost.py                          # the paper's grid at the bundle defaults
    python benchmarks/study_cost.py --size 128 --methods ce gambling --architectures unet
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from pathlib import Path

import torch
from ignite.engine import Events
from monai.bundle import ConfigParser

from monai_gamble.study import ARCHITECTURE_CONFIGS, METHOD_CONFIGS

BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "thyroid_ultrasound_gambling"


def seconds_per_iteration(method: str, arch: str, size: int, batch: int, iterations: int, device: str) -> float:
    files = ["train.json", *METHOD_CONFIGS[method], *ARCHITECTURE_CONFIGS[arch]]
    parser = ConfigParser()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parser.read_config([str(BUNDLE / "configs" / f) for f in files])
    g = torch.Generator().manual_seed(0)
    images = torch.rand(batch, 1, size, size, generator=g)
    data = [{"image": images, "label": (images > 0.5).float()}] * (iterations + 1)
    parser.update(
        {
            "bundle_root": str(BUNDLE),
            "image_size": [size, size],
            "device": f"$torch.device('{device}')",
            "amp": device == "cuda",
            "is_not_rank0": True,  # no stats, progress bar, tracking or checkpoints
            "val_interval": 10**9,
            "train#dataloader": data,
            "max_epochs": 1,
            "datalist": {"training": [], "validation": [], "test": []},
            "train#dataset": [],
            "validate#dataset": [],
        }
    )
    trainer = parser.get_parsed_content("train#trainer")
    stamps = []

    def stamp(engine):
        if device == "cuda":
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())

    trainer.add_event_handler(Events.ITERATION_COMPLETED, stamp)
    trainer.run()
    return (stamps[-1] - stamps[0]) / iterations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--train_images", type=int, default=160, help="training images of a run")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--methods", nargs="+", default=list(METHOD_CONFIGS))
    parser.add_argument("--architectures", nargs="+", default=list(ARCHITECTURE_CONFIGS))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    per_run_iters = math.ceil(args.train_images / args.batch) * args.epochs
    print(f"torch {torch.__version__}, {args.device}, {torch.get_num_threads()} threads, {args.size}x{args.size}, "
          f"batch {args.batch}; a run = {per_run_iters} iterations ({args.epochs} epochs), {args.seeds} seeds\n")  # fmt: skip
    print("| architecture | method | s / iteration | hours per run | hours for the seeds |")
    print("|---|---|---:|---:|---:|")
    total = 0.0
    for arch in args.architectures:
        for method in args.methods:
            s = seconds_per_iteration(method, arch, args.size, args.batch, args.iterations, args.device)
            hours = s * per_run_iters / 3600
            total += hours * args.seeds
            print(f"| {arch} | {method} | {s:.3f} | {hours:.2f} | {hours * args.seeds:.2f} |", flush=True)
    print(f"\nwhole grid, training only: {total:.1f} hours")


if __name__ == "__main__":
    main()
