"""What unlabelled tiles add as the labelled fraction shrinks: the pathology bundle trained
supervised-only and semi-supervised (adversarial, unlabelled phase) at several labelled fractions.

For every (fraction, method, seed), the bundle ``bundles/pathology_semisupervised_adversarial`` is
trained (``configs/train.json`` + ``configs/cpu_experiment.json`` + the method's override file) and
evaluated on the test split (``configs/evaluate.json``) in its own folder under ``--output``, with
the same dataset, split, number of iterations and seed; only the labels the generator sees
differ. ``labeled_fraction`` f keeps the masks of a seeded f-subset of the training split; the
other training tiles join the unlabelled ones (their masks unused). Methods:

- ``supervised``: DeepLabV3+ with cross-entropy on the labelled tiles (``train_supervised.json``),
- ``adversarial``: + the correctness discriminator, labelled tiles only (``train_adversarial.json``),
- ``semi_supervised``: + one unlabelled batch per iteration through the frozen discriminator,
- ``semi_self_training``: + Hung et al.'s self-training on trusted pixels (``lambda_semi`` 0.1).

Writes ``results.csv`` (one row per run: per-class IoU, mean IoU / precision / recall / F1,
train time), ``results.md`` (the table of the bundle's docs) and ``results.png`` (mIoU and podocyte
IoU against the labelled fraction, one line per method, mean and range over seeds). Finished runs are skipped when
the script is run again. Usage::

    python benchmarks/pathology_labelled_fraction.py --output /tmp/pathology_fraction \\
        --fractions 1.0 0.25 0.1 --methods supervised semi_supervised --seeds 0
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "pathology_semisupervised_adversarial"
METHOD_FILES = {
    "supervised": ["train_supervised.json"],
    "adversarial": ["train_adversarial.json"],
    "semi_supervised": [],
    "semi_self_training": [],
}
METHOD_ARGS = {"semi_self_training": ["--method", "semi_self_training", "--lambda_semi", "0.1"]}
CLASSES = ["background", "glomeruli", "podocyte", "non-podocyte"]


def _run(cmd: list[str], log: Path, cwd: Path) -> float:
    start = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT, check=False)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {proc.returncode}); see {log}")
    return time.perf_counter() - start


def run_one(output: Path, data: Path, fraction: float, method: str, seed: int, extra: list[str]) -> dict:
    """Train and evaluate one (fraction, method, seed); returns its row (read back when done)."""
    run_dir = output / f"f{fraction:g}-{method}-seed{seed}"
    done = run_dir / "done.json"
    if done.is_file():
        return json.loads(done.read_text())
    run_dir.mkdir(parents=True, exist_ok=True)
    files = ["configs/train.json", "configs/cpu_experiment.json", *[f"configs/{f}" for f in METHOD_FILES[method]]]
    common = [
        "--bundle_root", str(BUNDLE), "--output_dir", str(run_dir / "eval"),
        "--ckpt_dir", str(run_dir / "models"), "--dataset_dir", str(data),
        "--labeled_fraction", str(fraction), "--seed", str(seed), *METHOD_ARGS.get(method, []), *extra,
    ]  # fmt: skip
    py = [sys.executable, "-m", "monai.bundle", "run"]
    train_s = _run([*py, "--config_file", str(files), *common], run_dir / "train.log", BUNDLE)
    eval_s = _run([*py, "--config_file", str([*files, "configs/evaluate.json"]), *common], run_dir / "eval.log", BUNDLE)
    metrics_path = next((run_dir / "eval").glob("evaluation_test/*/metrics.json"), None)
    if metrics_path is None:
        raise RuntimeError(f"no metrics.json under {run_dir / 'eval'}; see {run_dir / 'eval.log'}")
    m = json.loads(metrics_path.read_text())["dataset_metrics"]  # the evaluator's dataset-level metrics (MetricsReport)
    row = {
        "fraction": fraction,
        "method": method,
        "seed": seed,
        "train_s": round(train_s, 1),
        "eval_s": round(eval_s, 1),
    }
    row.update({f"iou_{c}": m[f"test_iou_iou_{c}"] for c in CLASSES})
    row.update({"mIoU": m["test_iou"], "precision": m["test_mean_precision"], "recall": m["test_mean_recall"],
                "F1": m["test_mean_f1"]})  # fmt: skip
    done.write_text(json.dumps(row, indent=1))
    return row


def table(rows: list[dict]) -> str:
    """Markdown table: one row per (fraction, method), means over seeds."""
    keys = [f"iou_{c}" for c in CLASSES] + ["mIoU", "precision", "recall", "F1", "train_s"]
    head = ["labelled", "method", *[f"IoU {c}" for c in CLASSES], "mIoU", "mean precision", "mean recall", "mean F1",
            "train (s)", "seeds"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((float(r["fraction"]), r["method"]), []).append(r)
    for (f, method), rs in sorted(groups.items(), key=lambda kv: (-kv[0][0], list(METHOD_FILES).index(kv[0][1]))):
        vals = [sum(float(r[k]) for r in rs) / len(rs) for k in keys]
        cells = [f"{v:.3f}" for v in vals[:-1]] + [f"{vals[-1]:.0f}"]
        lines.append(f"| {f:.0%} | {method} | " + " | ".join(cells) + f" | {len(rs)} |")
    return "\n".join(lines)


def figure(rows: list[dict], path: Path) -> Path:
    """mIoU and podocyte IoU against the labelled fraction, one line per method (mean, range over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, key, title in zip(axes, ("mIoU", "iou_podocyte"), ("mean IoU (4 classes)", "podocyte IoU"), strict=True):
        for method in METHOD_FILES:
            fractions = sorted({float(r["fraction"]) for r in rows if r["method"] == method})
            if not fractions:
                continue
            vals = [
                [float(r[key]) for r in rows if r["method"] == method and float(r["fraction"]) == f] for f in fractions
            ]
            mean = [sum(v) / len(v) for v in vals]
            err = [
                [m - min(v) for m, v in zip(mean, vals, strict=True)],
                [max(v) - m for m, v in zip(mean, vals, strict=True)],
            ]
            ax.errorbar([100 * f for f in fractions], mean, yerr=err, marker="o", capsize=3, label=method)
        ax.set_xscale("log")
        ax.set_xticks([10, 25, 100], ["10%", "25%", "100%"])
        ax.set_xlabel("labelled fraction of the training split")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", type=Path, required=True, help="folder of the runs and the result tables")
    p.add_argument("--fractions", type=float, nargs="+", default=[1.0, 0.25, 0.1])
    p.add_argument("--methods", nargs="+", choices=list(METHOD_FILES), default=["supervised", "semi_supervised"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--dataset_dir", type=Path, default=None, help="a dataset (default: the synthetic tiles, made once)")
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more bundle overrides, e.g. --max_epochs 20")
    args = p.parse_args(argv)
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    args.output.mkdir(parents=True, exist_ok=True)
    data = args.dataset_dir
    if data is None:
        from monai_gamble.data import make_pathology_tiles

        data = make_pathology_tiles(args.output / "data", num_labelled=120, num_unlabelled=120, seed=0)
    rows = []
    for fraction in args.fractions:
        for method in args.methods:
            for seed in args.seeds:
                row = run_one(args.output, Path(data).resolve(), fraction, method, seed, args.extra)
                rows.append(row)
                print(json.dumps(row), flush=True)
                with open(args.output / "results.csv", "w", newline="") as f:
                    w = csv.DictWriter(f, fieldnames=list(rows[0]))
                    w.writeheader()
                    w.writerows(rows)
                (args.output / "results.md").write_text(table(rows) + "\n")
    print(table(rows))
    print("figure:", figure(rows, args.output / "results.png"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
