"""Speed of the boundary and calibration metrics on CPU, per image, 2D and 3D.

Each metric is timed on a batch of random-blob masks (a prediction and a perturbed copy as the
reference), after one warm-up call; the table gives milliseconds per image and images per second.
It also checks the claim that distances come from boundary-point queries, not pairwise distance
matrices, by timing a naive ``torch.cdist`` Chamfer distance on the same boundaries.

Usage::

    python benchmarks/metrics.py            # prints a markdown table
    python benchmarks/metrics.py --quick    # smaller sizes, for a smoke run
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch
from scipy import ndimage

from monai_gamble.metrics import (
    compute_bf_score,
    compute_chamfer_distance,
    compute_hausdorff_distance,
    compute_mmcl,
)


def blobs(batch: int, shape: tuple[int, ...], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A smooth random blob per image, and the same blob with its boundary moved a little."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.standard_normal((batch, *shape)), sigma=(0, *[s / 8 for s in shape]))
    noise = ndimage.gaussian_filter(rng.standard_normal((batch, *shape)), sigma=(0, *[s / 16 for s in shape]))
    a = field > 0.5 * field.std()
    b = (field + 0.3 * field.std() * noise / noise.std()) > 0.5 * field.std()
    to_onehot = lambda m: torch.from_numpy(np.stack([~m, m], axis=1).astype(np.float32))  # noqa: E731
    return to_onehot(a), to_onehot(b)


def naive_chamfer(y_pred: torch.Tensor, y: torch.Tensor) -> float:
    """Chamfer distance with a dense pairwise distance matrix (the approach this package avoids)."""
    from monai.metrics.utils import get_mask_edges

    out = []
    for b in range(y.shape[0]):
        ep, eg = get_mask_edges(y_pred[b, 1].bool(), y[b, 1].bool(), crop=False)
        p, g = ep.nonzero().float(), eg.nonzero().float()
        d = torch.cdist(p, g)
        out.append(0.5 * (d.min(1).values.mean() + d.min(0).values.mean()))
    return float(torch.stack(out).mean())


def timed(fn: Callable[[], object], repeat: int) -> float:
    fn()
    t = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t) / repeat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes only")
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    shapes = [(128, 128), (256, 256)] if args.quick else [(256, 256), (512, 512), (1024, 1024), (96, 96, 96)]
    rows = []
    for shape in shapes:
        y_pred, y = blobs(args.batch, shape, seed=0)
        probs = torch.softmax(torch.randn(args.batch, 2, *shape), 1)
        fns = {
            "BF-score": lambda y_pred=y_pred, y=y: compute_bf_score(y_pred, y, include_background=False),
            "Chamfer": lambda y_pred=y_pred, y=y: compute_chamfer_distance(y_pred, y, include_background=False),
            "Hausdorff (MONAI)": lambda y_pred=y_pred, y=y: compute_hausdorff_distance(
                y_pred, y, include_background=False
            ),
            "MMCL": lambda probs=probs: compute_mmcl(probs),
        }
        if len(shape) == 2 and shape[0] <= 512:
            fns["Chamfer, naive cdist"] = lambda y_pred=y_pred, y=y: naive_chamfer(y_pred, y)
        for name, fn in fns.items():
            sec = timed(fn, repeat=3 if not args.quick else 1) / args.batch
            rows.append(("x".join(map(str, shape)), name, 1000 * sec, 1 / sec))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}\n")
    print("| image size | metric | ms / image | images / s |")
    print("|---|---|---:|---:|")
    for size, name, ms, ips in rows:
        print(f"| {size} | {name} | {ms:.2f} | {ips:.0f} |")


if __name__ == "__main__":
    main()
