"""Cost of one training step: cross-entropy vs gambling (two-pass and fused), images/s and peak memory.

The same MONAI U-Net segmenter (16-256 channels: in 2D the thyroid bundle's, in 3D the generic
bundle's default, with two residual units per level and instance norm, on 96^3 patches) is
trained on random images (volumes) with

(a) cross-entropy in MONAI's ``SupervisedTrainer``,
(b) gambling nets in ``SegmenterCriticTrainer`` with the two-pass step (critic, then segmenter),
(c) gambling nets with the fused step (one critic forward, one backward pass),

and, as the reference for (c), one forward + backward pass of the segmenter alone and of the
gambler alone. Each configuration runs in its own process (so peak memory is its own): after one
warm-up epoch, ``--iterations`` timed iterations; memory is the peak CUDA allocation on a GPU,
and on a CPU the growth of the process's peak resident set over the state before the first step.
Besides the wall time the table gives the process's CPU time per iteration: on a CPU shared with
other jobs it is the steadier measure (run with ``OMP_NUM_THREADS=1``: it then equals the wall
time of an unloaded core).

Usage::

    python benchmarks/train_step.py                 # 128x128, batch 16, on CUDA if available
    python benchmarks/train_step.py --size 256 --batch 8 --iterations 10
    python benchmarks/train_step.py --spatial_dims 3  # 96^3 patches, batch 2, 3 iterations (--amp on CUDA)
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch
from ignite.engine import Events
from monai.engines import SupervisedTrainer
from monai.networks.nets import UNet

from monai_gamble.engines import GamblingObjective, SegmenterCriticTrainer
from monai_gamble.losses import CrossEntropyLoss, class_probabilities
from monai_gamble.networks.nets import Gambler

CONFIGS = ("ce", "gambling_two_pass", "gambling_fused", "segmenter_fwd_bwd", "gambler_fwd_bwd")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def networks(spatial_dims: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The segmenter and the gambler: the thyroid bundle's in 2D, the generic bundle's defaults in 3D."""
    if spatial_dims == 2:
        seg = UNet(2, 1, 2, channels=(16, 32, 64, 128, 256), strides=(2, 2, 2, 2), num_res_units=0, norm="batch")
        return seg, Gambler(2, 1, 2, channels=(16, 32, 64, 128))
    seg = UNet(3, 1, 3, channels=(16, 32, 64, 128, 256), strides=(2, 2, 2, 2), num_res_units=2, norm="instance")
    return seg, Gambler(3, 1, 3, channels=(16, 32, 64, 128), norm="instance")


def run_one(
    name: str, size: int, batch: int, iterations: int, device: torch.device, amp: bool, spatial_dims: int = 2
) -> dict:
    torch.manual_seed(0)
    seg, gam = networks(spatial_dims)
    seg, gam = seg.to(device), gam.to(device)
    num_classes = seg.out_channels
    images = torch.rand(batch, 1, *([size] * spatial_dims), device=device)
    data = [{"image": images, "label": torch.floor(images * num_classes).clamp(max=num_classes - 1)}] * iterations
    opt_s = torch.optim.AdamW(seg.parameters(), 1e-3)
    opt_g = torch.optim.AdamW(gam.parameters(), 1e-3)

    if name == "ce":
        engine = SupervisedTrainer(device, 2, data, seg, opt_s, CrossEntropyLoss(), amp=amp, decollate=False)
    elif name.startswith("gambling"):
        engine = SegmenterCriticTrainer(
            device, 2, data, seg, opt_s, gam, opt_g, GamblingObjective(), fused=name.endswith("fused"), amp=amp,
            decollate=False,
        )  # fmt: skip
    else:
        engine = None

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    base_rss = peak_rss_mb()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base_cuda = torch.cuda.memory_allocated() / 2**20
    if engine is not None:
        times, cpu = [], []

        def stamp(e) -> None:
            sync()
            times.append(time.perf_counter())
            cpu.append(time.process_time())

        engine.add_event_handler(Events.EPOCH_STARTED, stamp)
        engine.add_event_handler(Events.EPOCH_COMPLETED, stamp)
        engine.run()
        seconds, cpu_seconds = times[3] - times[2], cpu[3] - cpu[2]  # the second epoch
    else:
        label = data[0]["label"]
        ce = CrossEntropyLoss()
        probs = class_probabilities(torch.randn(batch, num_classes, *images.shape[2:], device=device))

        def step() -> None:
            with torch.autocast(device.type, enabled=amp):
                if name == "segmenter_fwd_bwd":
                    loss = ce(seg(images), label)
                else:
                    loss = gam(images, probs).mean()
            loss.backward()

        for _ in range(iterations):  # warm-up
            step()
        sync()
        t, c = time.perf_counter(), time.process_time()
        for _ in range(iterations):
            step()
        sync()
        seconds, cpu_seconds = time.perf_counter() - t, time.process_time() - c
    memory = (
        (torch.cuda.max_memory_allocated() / 2**20 - base_cuda) if device.type == "cuda" else peak_rss_mb() - base_rss
    )
    return {"name": name, "seconds_per_iteration": seconds / iterations, "images_per_s": batch * iterations / seconds,
            "cpu_seconds_per_iteration": cpu_seconds / iterations,
            "peak_memory_mb": memory}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spatial_dims", type=int, default=2, choices=(2, 3))
    parser.add_argument("--size", type=int, default=None, help="default 128 (2D), 96 (3D)")
    parser.add_argument("--batch", type=int, default=None, help="default 16 (2D), 2 (3D)")
    parser.add_argument("--iterations", type=int, default=None, help="default 10 (2D), 3 (3D)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--amp", action="store_true", help="autocast (bf16 on CPU, fp16 on CUDA) with grad scalers")
    parser.add_argument("--one", choices=CONFIGS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    three = args.spatial_dims == 3
    args.size = args.size or (96 if three else 128)
    args.batch = args.batch or (2 if three else 16)
    args.iterations = args.iterations or (3 if three else 10)
    device = torch.device(args.device)
    if args.one:
        print(
            json.dumps(run_one(args.one, args.size, args.batch, args.iterations, device, args.amp, args.spatial_dims))
        )
        return
    results = {}
    for name in CONFIGS:
        cmd = [sys.executable, __file__, "--one", name, "--size", str(args.size), "--batch", str(args.batch),
               "--iterations", str(args.iterations), "--device", args.device,
               "--spatial_dims", str(args.spatial_dims)] + (["--amp"] if args.amp else [])  # fmt: skip
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        results[name] = json.loads(out.strip().splitlines()[-1])
    ref = results["ce"]["seconds_per_iteration"]
    parts = results["segmenter_fwd_bwd"]["seconds_per_iteration"] + results["gambler_fwd_bwd"]["seconds_per_iteration"]
    name_of = {"ce": "(a) CE, SupervisedTrainer", "gambling_two_pass": "(b) gambling, two-pass",
               "gambling_fused": "(c) gambling, fused", "segmenter_fwd_bwd": "segmenter fwd+bwd alone",
               "gambler_fwd_bwd": "gambler fwd+bwd alone"}  # fmt: skip
    mem = "peak CUDA MB" if device.type == "cuda" else "peak RSS growth MB"
    shape = "x".join([str(args.size)] * args.spatial_dims)
    print(f"torch {torch.__version__}, {device}, {torch.get_num_threads()} threads, {shape}, "
          f"batch {args.batch}, {args.iterations} timed iterations, amp={args.amp}\n")  # fmt: skip
    cpu_ref = results["ce"]["cpu_seconds_per_iteration"]
    print(f"| step | ms / iteration | images / s | time vs (a) | CPU ms / iteration | CPU time vs (a) | {mem} |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        s, c = r["seconds_per_iteration"], r["cpu_seconds_per_iteration"]
        print(
            f"| {name_of[name]} | {1000 * s:.0f} | {r['images_per_s']:.2f} | {s / ref:.2f}x | {1000 * c:.0f} | "
            f"{c / cpu_ref:.2f}x | {r['peak_memory_mb']:.0f} |"
        )
    fused = results["gambling_fused"]["seconds_per_iteration"]
    print(f"\nfused step / (segmenter fwd+bwd + gambler fwd+bwd) = {fused / parts:.3f} (target: at most 1.15)")
    print(f"fused step / two-pass step = {fused / results['gambling_two_pass']['seconds_per_iteration']:.3f}")
    cpu = {k: r["cpu_seconds_per_iteration"] for k, r in results.items()}
    cpu_parts = cpu["segmenter_fwd_bwd"] + cpu["gambler_fwd_bwd"]
    print(f"CPU time: fused / (segmenter + gambler fwd+bwd) = {cpu['gambling_fused'] / cpu_parts:.3f}, "
          f"fused / two-pass = {cpu['gambling_fused'] / cpu['gambling_two_pass']:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
