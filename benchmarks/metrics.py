"""Speed of the boundary and calibration metrics, per image, 2D and 3D, on CPU (and CUDA when available).

Side by side on the same batch of random-blob masks (a prediction and a perturbed copy as the
reference): one MONAI ``compute_hausdorff_distance`` call, all five boundary metrics of
``compute_boundary_metrics`` (BF-score, Chamfer, Hausdorff, HD95, ASSD from one boundary pass),
the three separate calls of BF-score, Chamfer and Hausdorff (three passes), and MMCL. Each
function is called once to warm up, then ``--repeat`` times in turn (the functions interleaved, so
that a load change on a shared machine hits all of them alike); the table gives the median
milliseconds per image and the ratio to MONAI's Hausdorff call. It also checks the claim that
distances come from boundary-point queries, not pairwise distance matrices, by timing a naive
``torch.cdist`` Chamfer distance on the same boundaries (2D, up to 512x512).

Usage::

    python benchmarks/metrics.py            # prints a markdown table
    python benchmarks/metrics.py --quick    # smaller sizes, for a smoke run
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable

import numpy as np
import torch
from monai.metrics import compute_hausdorff_distance as monai_hausdorff
from scipy import ndimage

from monai_gamble.metrics import (
    compute_bf_score,
    compute_boundary_metrics,
    compute_chamfer_distance,
    compute_hausdorff_distance,
    compute_mmcl,
    mask_boundary,
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
    ep, eg = mask_boundary(y_pred[:, 1:].bool()), mask_boundary(y[:, 1:].bool())
    out = []
    for b in range(y.shape[0]):
        p, g = ep[b, 0].nonzero().float(), eg[b, 0].nonzero().float()
        d = torch.cdist(p, g)
        out.append(0.5 * (d.min(1).values.mean() + d.min(0).values.mean()))
    return float(torch.stack(out).mean())


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fns: dict[str, Callable[[], object]], repeat: int, device: torch.device) -> dict[str, float]:
    """Median seconds per call of each function, the functions called in turn ``repeat`` times."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            sync(device)
            t = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(v) for name, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes only")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda when available")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    shapes = [(128, 128), (256, 256)] if args.quick else [(256, 256), (512, 512), (1024, 1024), (96, 96, 96)]
    warnings.filterwarnings("ignore", message=".*is all 0, this may result in nan/inf distance")
    warnings.filterwarnings("ignore", message=".*always_return_as_numpy", category=FutureWarning)
    rows = []
    for device_name in devices:
        device = torch.device(device_name)
        for shape in shapes:
            y_pred, y = (t.to(device) for t in blobs(args.batch, shape, seed=0))
            probs = torch.softmax(torch.randn(args.batch, 2, *shape, device=device), 1)
            fns: dict[str, Callable[[], object]] = {
                "hd_monai": lambda y_pred=y_pred, y=y: monai_hausdorff(y_pred, y, include_background=False),
                "all_five": lambda y_pred=y_pred, y=y: compute_boundary_metrics(y_pred, y, include_background=False),
                "three_calls": lambda y_pred=y_pred, y=y: (
                    compute_bf_score(y_pred, y, include_background=False),
                    compute_chamfer_distance(y_pred, y, include_background=False),
                    compute_hausdorff_distance(y_pred, y, include_background=False),
                ),
                "mmcl": lambda probs=probs: compute_mmcl(probs),
            }
            if len(shape) == 2 and shape[0] <= 512:
                fns["naive_cdist"] = lambda y_pred=y_pred, y=y: naive_chamfer(y_pred, y)
            sec = timed(fns, args.repeat, device)
            ms = {k: 1000 * v / args.batch for k, v in sec.items()}
            rows.append((device_name, "x".join(map(str, shape)), ms))
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, batch {args.batch}, "
        f"median of {args.repeat}; ms / image\n"
    )
    print(
        "| device | image size | Hausdorff (MONAI, one call) | all five, `compute_boundary_metrics` | ratio "
        "| BF + Chamfer + Hausdorff, three calls | ratio | MMCL | Chamfer, naive `cdist` |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for device_name, size, ms in rows:
        hd = ms["hd_monai"]
        naive = f"{ms['naive_cdist']:.2f}" if "naive_cdist" in ms else "(not run)"
        print(
            f"| {device_name} | {size} | {hd:.2f} | {ms['all_five']:.2f} | {ms['all_five'] / hd:.2f}x "
            f"| {ms['three_calls']:.2f} | {ms['three_calls'] / hd:.2f}x | {ms['mmcl']:.2f} | {naive} |"
        )


if __name__ == "__main__":
    main()
