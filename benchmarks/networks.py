"""Size and speed of the segmenters: MONAI's U-Net (the thyroid bundle's), DeepLabV3+ and PSPNet.

For each network: the number of parameters, and the median time of one training step's forward
and backward pass (cross-entropy on random labels, train mode, no optimizer step) and of one
inference forward (eval, no grad), on random ``(batch, 1, size, size)`` images, after warm-up
iterations. DeepLabV3+ and PSPNet use their defaults (output stride 16 / dilated stride 8 on
ResNet encoders, stride 32 / trimmed at stride 8 on EfficientNet encoders).

Usage::

    python benchmarks/networks.py                       # 256x256, batch 4, on CUDA if available
    python benchmarks/networks.py --size 128 --batch 2 --iterations 3 --device cpu
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from monai.networks.nets import UNet
from torch import nn

from monai_gamble.networks.nets import DeepLabV3Plus, PSPNet


def networks() -> dict[str, Callable[[], nn.Module]]:
    """Constructors of the compared networks (1 input channel, 2 classes, 2D)."""
    nets: dict[str, Callable[[], nn.Module]] = {
        "UNet (thyroid bundle)": lambda: UNet(
            2, 1, 2, channels=(16, 32, 64, 128, 256), strides=(2, 2, 2, 2), num_res_units=2, norm="batch"
        ),
    }
    for backbone in ("resnet34", "efficientnet-b0"):
        nets[f"DeepLabV3Plus {backbone}"] = lambda b=backbone: DeepLabV3Plus(2, 1, 2, backbone=b)
        nets[f"PSPNet {backbone}"] = lambda b=backbone: PSPNet(2, 1, 2, backbone=b)
    return nets


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_ms(step: Callable[[], None], device: torch.device, warmup: int, iterations: int) -> float:
    """Median wall time of ``step`` in milliseconds."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(iterations):
        _sync(device)
        start = time.perf_counter()
        step()
        _sync(device)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def benchmark(
    make: Callable[[], nn.Module], size: int, batch: int, iterations: int, warmup: int, device: torch.device
) -> dict[str, float]:
    torch.manual_seed(0)
    net = make().to(device)
    images = torch.rand(batch, 1, size, size, device=device)
    labels = torch.randint(0, 2, (batch, size, size), device=device)

    def train_step() -> None:
        net.zero_grad(set_to_none=True)
        F.cross_entropy(net(images), labels).backward()

    def infer() -> None:
        with torch.no_grad():
            net(images)

    net.train()
    fwd_bwd = time_ms(train_step, device, warmup, iterations)
    net.eval()
    fwd = time_ms(infer, device, warmup, iterations)
    return {"params_m": sum(p.numel() for p in net.parameters()) / 1e6, "fwd_bwd_ms": fwd_bwd, "fwd_ms": fwd}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"{args.batch} x 1 x {args.size} x {args.size}, {where}, median of {args.iterations} after {args.warmup}")
    print("| network | parameters (M) | forward + backward (ms) | forward, eval (ms) |")
    print("|---|---:|---:|---:|")
    for name, make in networks().items():
        r = benchmark(make, args.size, args.batch, args.iterations, args.warmup, device)
        print(f"| {name} | {r['params_m']:.2f} | {r['fwd_bwd_ms']:.0f} | {r['fwd_ms']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
