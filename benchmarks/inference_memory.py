"""Memory of the thyroid bundle's ``inference.json`` on images of many sizes.

oneDNN (PyTorch's CPU convolutions) caches a compiled primitive per input shape; the anti-aliasing of
``Resized`` convolves every image at its own size, so a folder of images of varied sizes grows the
process by about a megabyte per new size with oneDNN's default cache of 1024 primitives. The bundles'
``inference.json`` bound it (``monai_gamble.utils.bound_onednn_cache``, 256 primitives). This script
runs the real command on ``--num_images`` PNGs of random sizes, once with oneDNN's default and once
with the bundle's bound, samples the process's resident memory while it runs, and prints a table.

Usage (from the repository root; about a minute per 100 images on one CPU thread)::

    python benchmarks/inference_memory.py --num_images 400
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundles" / "thyroid_ultrasound_gambling"


def write_images(folder: Path, n: int, seed: int = 0) -> list[tuple[int, int]]:
    """``n`` grey PNGs of random sizes (height 200-600, width 250-750), speckle with a dark disc."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    sizes = []
    for i in range(n):
        h, w = int(rng.integers(200, 601)), int(rng.integers(250, 751))
        yy, xx = np.mgrid[:h, :w]
        disc = (yy - h / 2) ** 2 + (xx - w / 2) ** 2 < (min(h, w) / 5) ** 2
        img = np.clip(rng.gamma(2.0, 50.0, (h, w)) * np.where(disc, 0.4, 1.0), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"{i:04d}.png")
        sizes.append((h, w))
    return sizes


def random_checkpoint(path: Path) -> None:
    """The bundle's default segmenter with random weights (memory does not depend on the weights)."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(BUNDLE / "configs" / "train.json"))
    torch.manual_seed(0)
    torch.save(parser.get_parsed_content("network_def").state_dict(), path)


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` in MiB (Linux ``/proc``)."""
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run(work: Path, capacity: str | None, n: int) -> dict[str, float]:
    """Run ``inference.json`` on ``work/images``; RSS after 10% of the images and at the end."""
    out = work / f"out_{capacity or 'bundle'}"
    env = {k: v for k, v in os.environ.items() if k != "ONEDNN_PRIMITIVE_CACHE_CAPACITY"}
    env |= {"OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    if capacity is not None:
        env["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] = capacity  # the bundle keeps a value the user set
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", "configs/inference.json",
           "--dataset_dir", str(work / "images"), "--ckpt_path", str(work / "model.pt"),
           "--output_dir", str(out), "--bundle_root", str(work / "root")]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=BUNDLE, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    samples: list[tuple[int, float]] = []
    while proc.poll() is None:
        done = len(list((out / "predictions").glob("*.png"))) if (out / "predictions").is_dir() else 0
        try:
            rss = rss_mb(proc.pid)
        except (FileNotFoundError, ProcessLookupError):
            break
        if rss > 0:  # 0 once the process is exiting
            samples.append((done, rss))
        time.sleep(0.25)
    err = proc.stderr.read()
    if proc.returncode != 0:
        raise SystemExit(f"inference failed ({proc.returncode}):\n{err[-3000:]}")
    seconds = time.perf_counter() - t0
    early = [(d, r) for d, r in samples if d >= n // 10]
    last = max(d for d, _ in samples)
    end = [r for d, r in samples if d == last]
    return {
        "images_early": early[0][0] if early else 0,
        "rss_early": early[0][1] if early else float("nan"),
        "rss_end": max(end),
        "rss_peak": max(r for _, r in samples),
        "images_end": last,
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num_images", type=int, default=400)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sizes = write_images(work / "images", args.num_images)
        random_checkpoint(work / "model.pt")
        rows = []
        for label, capacity in (("oneDNN default (1024)", "1024"), ("bundle (bound_onednn_cache, 256)", None)):
            r = run(work, capacity, args.num_images)
            growth = (r["rss_end"] - r["rss_early"]) / max(1, r["images_end"] - r["images_early"])
            rows.append((label, r, growth))
        print(f"\n{args.num_images} images of {len(set(sizes))} distinct sizes, thyroid inference.json, 1 CPU thread\n")
        print(f"| oneDNN cache | RSS after {args.num_images // 10} images (MiB) | RSS at the last image (MiB) | "
              "peak (MiB) | growth per image (MiB) | seconds |")  # fmt: skip
        print("|---|---:|---:|---:|---:|---:|")
        for label, r, growth in rows:
            print(f"| {label} | {r['rss_early']:.0f} | {r['rss_end']:.0f} | {r['rss_peak']:.0f} | "
                  f"{growth:.2f} | {r['seconds']:.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
