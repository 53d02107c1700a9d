"""Speed of the tilted cross-entropy against plain cross-entropy, forward + backward, on CPU.

Times ``torch.nn.functional.cross_entropy``, :class:`monai_gamble.losses.CrossEntropyLoss` and
:class:`monai_gamble.losses.TiltedCrossEntropyLoss` at image and class level (index labels, and
one-hot labels for the class level) on random logits, 2D (Cityscapes-like: 19 classes) and 3D,
after one warm-up call; the table gives milliseconds per call (median of ``--repeat``) and the
ratio to ``F.cross_entropy``.

Usage::

    python benchmarks/tilted.py                 # prints a markdown table
    python benchmarks/tilted.py --quick         # smaller sizes, for a smoke run
    python benchmarks/tilted.py --threads 2     # torch intra-op threads (default 1)
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from monai_gamble.losses import CrossEntropyLoss, TiltedCrossEntropyLoss


def timed(fn: Callable[[], torch.Tensor], repeat: int) -> float:
    """Median wall time of ``fn`` (forward and backward) in milliseconds, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def cases(x: torch.Tensor, y: torch.Tensor) -> dict[str, Callable[[], torch.Tensor]]:
    onehot = F.one_hot(y[:, 0], x.shape[1]).movedim(-1, 1).float()

    def run(loss_fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[], torch.Tensor]:
        def call() -> torch.Tensor:
            xi = x.detach().requires_grad_(True)
            loss = loss_fn(xi)
            loss.backward()
            return loss

        return call

    return {
        "F.cross_entropy": run(lambda xi: F.cross_entropy(xi, y[:, 0])),
        "CrossEntropyLoss": run(lambda xi: CrossEntropyLoss()(xi, y)),
        "TCE image, t=1": run(lambda xi: TiltedCrossEntropyLoss(1.0, "image")(xi, y)),
        "TCE class, t=1": run(lambda xi: TiltedCrossEntropyLoss(1.0, "class")(xi, y)),
        "TCE class, t=1, one-hot": run(lambda xi: TiltedCrossEntropyLoss(1.0, "class")(xi, onehot)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats")
    parser.add_argument("--repeat", type=int, default=None, help="timed calls per case (default 10, quick 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    repeat = args.repeat or (3 if args.quick else 10)
    shapes = [(2, 19, 64, 64), (1, 4, 16, 16, 16)] if args.quick else [(4, 19, 256, 256), (2, 4, 64, 64, 64)]
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), median of {repeat} calls, forward + backward"
    )
    print()
    print("| input (B, C, *spatial) | loss | ms | x F.cross_entropy |")
    print("|---|---|---:|---:|")
    for shape in shapes:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(shape, generator=g)
        y = torch.randint(0, shape[1], (shape[0], 1, *shape[2:]), generator=g)
        base = None
        for name, fn in cases(x, y).items():
            ms = timed(fn, repeat)
            base = base or ms
            print(f"| {tuple(shape)} | {name} | {ms:.1f} | {ms / base:.2f} |")


if __name__ == "__main__":
    main()
