"""Speed of the chest X-ray pneumothorax workflow's parts on this machine, one thread.

Measures, per image (median of repeats, after a warm-up):

- DICOM reading of the real SIIM-ACR samples (1024x1024 JPEG Baseline) with MONAI's ``PydicomReader``
  and ``ITKReader`` (``LoadImage`` + ``InvertMonochrome1``), if ``../shared/realdata`` is there;
- writing one synthetic radiograph (``chest_xray_sample``) at 256 and 1024 px;
- CLAHE (``monai_gamble.transforms.CLAHE``) at the three training sizes 256, 512, 768;
- one training step (forward, loss, backward, Adam) of the bundle's UNet++ at each stage of its default
  schedule (256/16, 512/4, 768/2: size/batch) and of ``demo.json`` (64/8, 128/4, 192/2), with the
  time per image, which sets the time of an epoch;
- the Lovasz hinge against MONAI's ``DiceCELoss`` (forward + backward, 4 x 1 x 256 x 256 logits).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/xray.py            # prints a markdown table
    OMP_NUM_THREADS=1 python benchmarks/xray.py --quick    # fewer repeats, no 768 training step
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from monai.losses import DiceCELoss
from monai.transforms import LoadImage

from monai_gamble.data import chest_xray_sample
from monai_gamble.losses import LovaszHingeLoss
from monai_gamble.networks.nets.unetplusplus import UNetPlusPlus
from monai_gamble.transforms import CLAHE, InvertMonochrome1

REPO = Path(__file__).resolve().parents[1]
REALDATA = Path(os.environ.get("MONAI_GAMBLE_REALDATA", REPO.parent / "shared" / "realdata"))
DEFAULT_FEATURES = (32, 32, 64, 128, 256, 32)
DEMO_FEATURES = (16, 16, 32, 64, 128, 16)


def timed(fn: Callable[[], object], repeats: int) -> float:
    """Median seconds of ``repeats`` calls after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def train_step(features: tuple[int, ...], size: int, batch: int) -> Callable[[], object]:
    torch.manual_seed(0)
    net = UNetPlusPlus(spatial_dims=2, in_channels=1, out_channels=1, features=features, norm="batch")
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss = DiceCELoss(sigmoid=True)
    x = torch.rand(batch, 1, size, size)
    y = (torch.rand(batch, 1, size, size) > 0.9).float()

    def step() -> None:
        opt.zero_grad()
        loss(net(x), y).backward()
        opt.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats and no 768 px training step")
    args = parser.parse_args()
    torch.set_num_threads(1)
    repeats = 2 if args.quick else 5
    rows: list[tuple[str, str, float]] = []

    sample = REALDATA / "chest_xray_siim_pneumothorax" / "sample_images"
    files = sorted(sample.glob("*.dcm"))
    if files:
        for reader in ("PydicomReader", "ITKReader"):
            load = LoadImage(reader=reader, image_only=True, ensure_channel_first=True)
            invert = InvertMonochrome1()

            def read_all(load: LoadImage = load, invert: InvertMonochrome1 = invert) -> None:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    for f in files:
                        invert(load(f))

            rows.append(
                (
                    f"read a real DICOM ({reader} + InvertMonochrome1)",
                    "1024, JPEG",
                    timed(read_all, repeats) / len(files),
                )
            )

    for size in (256, 1024):
        rng = np.random.default_rng(0)
        draw = lambda s=size, r=rng: chest_xray_sample(r, s, positive=True)  # noqa: E731
        rows.append(("draw a synthetic radiograph (chest_xray_sample)", str(size), timed(draw, repeats)))
    for size in (256, 512, 768):
        image = torch.rand(1, size, size)
        rows.append(("CLAHE", str(size), timed(lambda i=image: CLAHE()(i), repeats)))

    stages = [("default", DEFAULT_FEATURES, 256, 16), ("default", DEFAULT_FEATURES, 512, 4)]
    if not args.quick:
        stages.append(("default", DEFAULT_FEATURES, 768, 2))
    stages += [("demo", DEMO_FEATURES, 64, 8), ("demo", DEMO_FEATURES, 128, 4), ("demo", DEMO_FEATURES, 192, 2)]
    for name, features, size, batch in stages:
        seconds = timed(train_step(features, size, batch), max(1, repeats // 2))
        rows.append((f"train step, {name} UNet++ {features}", f"{size}, batch {batch}", seconds / batch))

    logits = torch.randn(4, 1, 256, 256, requires_grad=True)
    labels = (torch.rand(4, 1, 256, 256) > 0.9).float()
    for name, loss in (("DiceCELoss (BCE + Dice)", DiceCELoss(sigmoid=True)), ("LovaszHingeLoss", LovaszHingeLoss())):
        rows.append(
            (
                f"loss forward + backward, {name}",
                "4 x 256",
                timed(lambda f=loss: f(logits, labels).backward(), repeats) / 4,
            )
        )

    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread, {os.cpu_count()} CPUs\n")
    print("| what | size | ms per image |\n|---|---|---:|")
    for what, size, seconds in rows:
        print(f"| {what} | {size} | {1000 * seconds:.1f} |")


if __name__ == "__main__":
    main()
