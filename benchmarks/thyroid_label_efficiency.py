"""Label efficiency of the thyroid workflow on real images, from scratch and fine-tuned from a synthetic-only model.

The thyroid bundle (``bundles/thyroid_ultrasound_gambling``) is trained on subsets of 32, 128 and
all real training images (``--num_training_images``: nested, seeded subsets of the grouped
training split, half-scan pairs kept together; the validation and test splits stay the same), once
from random weights and once initialised from a model trained on synthetic images only
(``--pretrained_checkpoint``), with the same recipe (``configs/real_cpu.json`` by default) and the
same number of training *iterations* for every subset (a subset of n images trains for
``epochs * N / n`` epochs, N the full training split, so that small subsets are not simply
under-trained), then evaluated on the real test split at the images' original resolution.

Writes into ``--output``: ``results.csv`` (one row per run), ``results.md`` (the table of the
bundle's docs) and ``results.png`` (Dice and BF-score against the number of real training images,
from scratch and fine-tuned). Finished runs are skipped when the script runs again. Usage::

    python benchmarks/thyroid_label_efficiency.py --dataset_dir ../shared/realdata/ultrasound_thyroid_ddti \\
        --output /tmp/thyroid_label_efficiency --sizes 32 128 all --method ce
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import subprocess
import sys
import time
from pathlib import Path

BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "thyroid_ultrasound_gambling"
METHOD_FILES = {"ce": ["configs/train_ce.json"], "gambling": []}
METRICS = ("Dice", "Jaccard", "BF-score", "Chamfer", "Hausdorff")


def _run(cmd: list[str], log: Path) -> float:
    start = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.run(cmd, cwd=BUNDLE, stdout=f, stderr=subprocess.STDOUT, check=False)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {proc.returncode}); see {log}")
    return time.perf_counter() - start


def _bundle(files: list[str], args: list[str], log: Path) -> float:
    return _run([sys.executable, "-m", "monai.bundle", "run", "--config_file", str(files), *args], log)


def _full_training_size(dataset_dir: Path, split_seed: int) -> int:
    sys.path.insert(0, str(BUNDLE.parents[1]))
    from monai_gamble.data import tnscui_datalist

    return len(tnscui_datalist(dataset_dir, seed=split_seed, check_masks=False)["training"])


def synthetic_model(output: Path, recipe: list[str], method: str, num_images: int, extra: list[str]) -> Path:
    """Train (once) the model on synthetic images only; returns its checkpoint."""
    run_dir = output / f"synthetic-{method}-n{num_images}"
    ckpt = run_dir / "models" / "model.pt"
    if (run_dir / "done.json").is_file():
        return ckpt
    run_dir.mkdir(parents=True, exist_ok=True)
    seconds = _bundle(
        ["configs/train.json", *recipe, *METHOD_FILES[method]],
        ["--bundle_root", str(BUNDLE), "--output_dir", str(run_dir / "eval"), "--ckpt_dir", str(run_dir / "models"),
         "--synthetic_num_images", str(num_images), "--run_name", f"synthetic_{method}_pretraining", *extra],
        run_dir / "train.log",
    )  # fmt: skip
    (run_dir / "done.json").write_text(json.dumps({"train_s": round(seconds, 1)}))
    return ckpt


def run_one(
    output: Path,
    dataset_dir: Path,
    size: int | None,
    full: int,
    init: str,
    pretrained: Path | None,
    recipe: list[str],
    method: str,
    epochs: int,
    seed: int,
    extra: list[str],
) -> dict:
    """Train and evaluate one (size, initialisation); returns its row (read back when done)."""
    n = full if size is None else size
    run_dir = output / f"{method}-n{n}-{init}-seed{seed}"
    done = run_dir / "done.json"
    if done.is_file():
        return json.loads(done.read_text())
    run_dir.mkdir(parents=True, exist_ok=True)
    run_epochs = max(1, math.ceil(epochs * full / n))
    files = ["configs/train.json", *recipe, *METHOD_FILES[method]]
    common = [
        "--bundle_root", str(BUNDLE), "--output_dir", str(run_dir / "eval"), "--ckpt_dir", str(run_dir / "models"),
        "--dataset_dir", str(dataset_dir), "--seed", str(seed), *extra,
    ]  # fmt: skip
    train_args = ["--max_epochs", str(run_epochs), "--val_interval", str(max(1, run_epochs // 40))]
    if size is not None:
        train_args += ["--num_training_images", str(size)]
    if pretrained is not None:
        train_args += ["--pretrained_checkpoint", str(pretrained)]
    name = f"{method}_n{n}_{init}_seed{seed}"
    train_s = _bundle(files, [*common, *train_args, "--run_name", f"{name}_train"], run_dir / "train.log")
    _bundle([*files, "configs/evaluate.json"], [*common, "--run_name", f"{name}_evaluate"], run_dir / "eval.log")
    summary = json.loads(next((run_dir / "eval").glob("evaluation_test/*/metrics.json")).read_text())
    row = {"method": method, "num_training_images": n, "init": init, "seed": seed, "epochs": run_epochs,
           "train_s": round(train_s, 1)}  # fmt: skip
    for k in METRICS:
        row[k] = summary["metrics"][k]["mean"]
    done.write_text(json.dumps(row, indent=1))
    return row


def write_outputs(output: Path, rows: list[dict]) -> None:
    with open(output / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    lines = ["| real training images | initialisation | epochs | " + " | ".join(METRICS) + " | train (s) |",
             "|---:|---|---:|" + "---:|" * (len(METRICS) + 1)]  # fmt: skip
    for r in sorted(rows, key=lambda r: (r["num_training_images"], r["init"])):
        cells = [f"{float(r[k]):.3f}" if k in ("Dice", "Jaccard", "BF-score") else f"{float(r[k]):.2f}"
                 for k in METRICS]  # fmt: skip
        lines.append(f"| {r['num_training_images']} | {r['init']} | {r['epochs']} | " + " | ".join(cells)
                     + f" | {r['train_s']:.0f} |")  # fmt: skip
    (output / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, metric in zip(axes, ("Dice", "BF-score"), strict=True):
        for init, style in (("scratch", "o-"), ("synthetic", "s--")):
            pts = sorted((r["num_training_images"], float(r[metric])) for r in rows if r["init"] == init)
            if pts:
                ax.plot(*zip(*pts, strict=True), style, label=f"from {init}" if init == "scratch" else
                        "fine-tuned from synthetic")  # fmt: skip
        ax.set_xscale("log", base=2)
        ax.set_xlabel("real training images")
        ax.set_ylabel(f"test {metric}")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("Thyroid nodules, real DDTI test split: label efficiency")
    fig.tight_layout()
    fig.savefig(output / "results.png", dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset_dir", type=Path, required=True, help="the real dataset (TN-SCUI layout)")
    p.add_argument("--output", type=Path, required=True)
    p.add_argument("--sizes", nargs="+", default=["32", "128", "all"], help="training subset sizes, or 'all'")
    p.add_argument("--inits", nargs="+", default=["scratch", "synthetic"], choices=["scratch", "synthetic"])
    p.add_argument("--method", default="ce", choices=sorted(METHOD_FILES))
    p.add_argument("--recipe", nargs="*", default=["configs/real_cpu.json"], help="override files of every run")
    p.add_argument("--epochs", type=int, default=None, help="epochs of the full set (default: the recipe's)")
    p.add_argument("--synthetic_num_images", type=int, default=600)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split_seed", type=int, default=0)
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more bundle overrides, e.g. --amp False")
    a = p.parse_args()
    a.output.mkdir(parents=True, exist_ok=True)
    if a.epochs is None:
        recipe = {}
        for f in a.recipe:
            recipe.update(json.loads((BUNDLE / f).read_text()))
        a.epochs = int(recipe.get("max_epochs", json.loads((BUNDLE / "configs/train.json").read_text())["max_epochs"]))
    full = _full_training_size(a.dataset_dir.resolve(), a.split_seed)
    extra = ["--split_seed", str(a.split_seed), *a.extra]
    pretrained = None
    if "synthetic" in a.inits:
        pretrained = synthetic_model(a.output, a.recipe, a.method, a.synthetic_num_images, extra)
    rows = []
    for s in a.sizes:
        size = None if s == "all" else int(s)
        for init in a.inits:
            print(f"{a.method}: {s} real training images, {init} ...", flush=True)
            rows.append(run_one(a.output, a.dataset_dir.resolve(), size, full, init,
                                pretrained if init == "synthetic" else None, a.recipe, a.method, a.epochs,
                                a.seed, extra))  # fmt: skip
    write_outputs(a.output, rows)


if __name__ == "__main__":
    main()
