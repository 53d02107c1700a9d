"""Sim-to-real transfer of the synthetic thyroid stand-in: train on synthetic images only, test on real.

A fresh synthetic dataset is written by :func:`monai_gamble.data.make_thyroid_ultrasound`, the
thyroid bundle (``bundles/thyroid_ultrasound_gambling``) is trained on it in a subprocess
(``python -m monai.bundle run``, ``configs/train.json`` [+ ``configs/train_ce.json``] with the
``configs/demo.json`` network: U-Net 16-256, no residual units) and its best checkpoint (by
validation Dice on the synthetic validation split) is evaluated with ``configs/evaluate.json
--evaluation_dataset_dir REAL_DIR`` on *every* image of ``REAL_DIR`` (TN-SCUI layout:
``image/<ID>.PNG``, ``mask/<ID>.PNG``), at the images' original resolution. Nothing of the real
data is seen during training or model selection. Everything (dataset, checkpoints, MLflow store,
reports, logs) is written under ``--output_dir`` (a temporary folder by default), never into the
repository.

The script prints the bundle's metrics on the real images, Dice by scan type when the IDs follow
the DDTI convention (whole scans < 10000, half scans 10000-29999), the time of every phase, and ends
with the line ``zero-shot Dice <value> on <n> real images``. Usage::

    python benchmarks/sim_to_real.py --real_dir ../shared/realdata/ultrasound_thyroid_ddti
    python benchmarks/sim_to_real.py --real_dir DIR --method gambling --epochs 30 --num_images 500
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "thyroid_ultrasound_gambling"
METRICS = ("Dice", "Jaccard", "BF-score", "Chamfer", "Hausdorff", "MMCL")


def _run(cmd: list[str], log: Path, cwd: Path, env: dict[str, str]) -> float:
    """Run ``cmd`` with its output in ``log``; the seconds it took (raises with the log's tail on failure)."""
    start = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT, env=env, check=False)
    if proc.returncode:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-30:])
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {proc.returncode}); see {log}:\n{tail}")
    return time.perf_counter() - start


def _per_image_dice(csv_path: Path) -> dict[str, float]:
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    id_key = next(k for k in rows[0] if k.lower() in ("id", "image", "name", "filename"))
    dice_key = next(k for k in rows[0] if k.lower().startswith("dice"))
    return {Path(r[id_key]).stem: float(r[dice_key]) for r in rows}


def _scan_type(image_id: str) -> str:
    """DDTI naming: whole scans below 10000, left halves 10000-19999, right halves 20000-29999."""
    if not image_id.isdigit():
        return "other"
    n = int(image_id)
    return "whole scan" if n < 10000 else "left half" if n < 20000 else "right half" if n < 30000 else "other"


def _fmt(value: float | str) -> str:
    return f"{float(value):.3f}" if math.isfinite(float(value)) else str(value)


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real_dir", required=True, type=Path, help="real images in the TN-SCUI layout")
    parser.add_argument("--method", choices=("ce", "gambling"), default="ce")
    parser.add_argument("--image_size", type=int, default=128, help="training/inference size (square)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--num_images", type=int, default=300, help="synthetic images (80%% train, 10%% val)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data and of the training")
    parser.add_argument("--label_noise", type=float, default=0.05, help="synthetic annotation jitter")
    parser.add_argument("--output_dir", type=Path, default=None, help="default: a new temporary folder")
    parser.add_argument("--threads", type=int, default=1, help="OMP/MKL threads of the training")
    parser.add_argument("--keep", action="store_true", help="keep the temporary output folder")
    args = parser.parse_args(argv)

    real_dir = args.real_dir.resolve()
    if not (real_dir / "image").is_dir() or not (real_dir / "mask").is_dir():
        parser.error(f"--real_dir {real_dir} must hold image/ and mask/ (the TN-SCUI layout)")
    temporary = args.output_dir is None
    out = Path(tempfile.mkdtemp(prefix="sim_to_real_")) if temporary else args.output_dir.resolve()
    if out.is_dir() and any(out.iterdir()) and not temporary:
        parser.error(f"--output_dir {out} is not empty: give a new folder (a benchmark starts from nothing)")
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}

    from monai_gamble.data import make_thyroid_ultrasound

    start = time.perf_counter()
    data = make_thyroid_ultrasound(
        out / "synthetic", num_images=args.num_images, seed=args.seed, label_noise=args.label_noise
    )
    gen_s = time.perf_counter() - start

    files = [str(BUNDLE / "configs" / "train.json")]
    if args.method == "ce":
        files.append(str(BUNDLE / "configs" / "train_ce.json"))
    files.append(str(BUNDLE / "configs" / "demo.json"))
    common = [
        "--bundle_root", str(out / "bundle"), "--dataset_dir", str(data), "--seed", str(args.seed),
        "--image_size", f"[{args.image_size},{args.image_size}]", "--max_epochs", str(args.epochs),
        "--network_def#num_res_units", "0", "--experiment_name", "sim_to_real",
    ]  # fmt: skip
    py = [sys.executable, "-m", "monai.bundle", "run"]
    (out / "bundle").mkdir(exist_ok=True)
    train_s = _run([*py, "--config_file", str(files), *common], out / "train.log", out, env)
    eval_files = str([*files, str(BUNDLE / "configs" / "evaluate.json")])
    eval_cmd = [*py, "--config_file", eval_files, *common, "--evaluation_dataset_dir", str(real_dir)]
    eval_s = _run(eval_cmd, out / "evaluate.log", out, env)

    found = sorted((out / "bundle" / "eval").glob(f"evaluation_external_*/{args.method}/metrics.json"))
    if not found:
        raise RuntimeError(f"no metrics.json under {out / 'bundle' / 'eval'}; see {out / 'evaluate.log'}")
    report = json.loads(found[0].read_text())
    metrics = report["metrics"]
    n = int(report["num_images"])
    dice = float(metrics["Dice"]["mean"])

    print(f"\nSim-to-real: {args.method}, {args.image_size}x{args.image_size}, {args.epochs} epochs on "
          f"{args.num_images} synthetic images (seed {args.seed}); evaluated on {n} real images of {real_dir}")  # fmt: skip
    print("\n| metric | mean | std | median |\n|---|---:|---:|---:|")
    for name in METRICS:
        if name in metrics:
            m = metrics[name]
            print(f"| {name} | {_fmt(m['mean'])} | {_fmt(m['std'])} | {_fmt(m['median'])} |")
    per_image = _per_image_dice(found[0].parent / "metrics_per_image.csv")
    groups: dict[str, list[float]] = {}
    for image_id, value in per_image.items():
        groups.setdefault(_scan_type(image_id), []).append(value)
    if set(groups) != {"other"}:
        print("\n| scan type | images | Dice |\n|---|---:|---:|")
        for name in ("whole scan", "left half", "right half", "other"):
            if name in groups:
                values = groups[name]
                print(f"| {name} | {len(values)} | {sum(values) / len(values):.3f} |")
    print(f"\ntime: generation {gen_s:.1f} s, training {train_s:.1f} s, evaluation {eval_s:.1f} s "
          f"({args.threads} thread(s)); outputs in {out if not temporary or args.keep else '(removed)'}")  # fmt: skip
    if temporary and not args.keep:
        shutil.rmtree(out, ignore_errors=True)
    print(f"zero-shot Dice {dice:.3f} on {n} real images")
    return dice


if __name__ == "__main__":
    main()
