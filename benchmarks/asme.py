"""Single model vs flip-TTA mean vs ASME on the nerve bundle's evaluation split: Dice and time.

Reads the nerve bundle's configs (``train.json``, optionally ``demo.json``, and ``evaluate.json``)
for the datalist, the network and the evaluation's pre- and post-processing, loads a trained
checkpoint, and runs three inferers on the same images:

- ``single``: one forward pass (``TransformEnsembleInferer(transforms=[()])``, i.e. ``SimpleInferer``),
- ``mean``: identity and the three flips in one batched forward, averaged,
- ``asme``: the same four copies, blended with the ASME weights (a = 100),

both blending the network's outputs (``--blend logits``, the paper's and the bundle's default) or
their softmax probabilities (``--blend probabilities``).

Each prediction is resized back to 580x420, the area rule is applied, and the competition's Dice
(an empty prediction on an empty mask scores 1) is averaged; the time is that of the inferer alone
(network included, after one warm-up call), per image. Usage::

    # train first, e.g. the CPU demo setting of the bundle, then
    python benchmarks/asme.py --bundle bundles/nerve_ultrasound_ems --demo
    python benchmarks/asme.py --bundle bundles/nerve_ultrasound_ems --demo --fresh_subjects 20  # unseen subjects
    python benchmarks/asme.py --bundle /path/to/bundle --split validation --ckpt /path/to/model.pt
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from monai.bundle import ConfigParser
from monai.data import DataLoader, Dataset, decollate_batch
from monai.metrics import DiceMetric

from monai_gamble.data import make_nerve_ultrasound
from monai_gamble.inferers import make_ensemble_inferer

FLIPS = [(), (0,), (1,), (0, 1)]


def load_bundle(bundle: Path, demo: bool, overrides: dict[str, object]) -> ConfigParser:
    configs = [bundle / "configs" / "train.json"]
    if demo:
        configs.append(bundle / "configs" / "demo.json")
    configs.append(bundle / "configs" / "evaluate.json")
    parser = ConfigParser()
    parser.read_config([str(c) for c in configs])
    parser["bundle_root"] = str(bundle)
    for key, value in overrides.items():
        parser[key] = value
    return parser


def evaluate(
    parser: ConfigParser, ckpt: Path, split: str, num_threads: int, blend: str = "logits"
) -> list[dict[str, float]]:
    torch.set_num_threads(num_threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        datalist = parser.get_parsed_content("datalist")[split]
        preprocessing = parser.get_parsed_content("validate#preprocessing")
        postprocessing = parser.get_parsed_content("validate#postprocessing")
        network = parser.get_parsed_content("network_def")
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    network.load_state_dict(state["model"] if "model" in state else state)  # CheckpointSaver's layout, or bare
    network.eval()
    batches = list(DataLoader(Dataset(datalist, preprocessing), batch_size=1, shuffle=False))
    inferers = {
        "single": make_ensemble_inferer("none", blend=blend),
        "mean": make_ensemble_inferer("mean", transforms=FLIPS, blend=blend),
        "asme": make_ensemble_inferer("asme", transforms=FLIPS, a=100.0, blend=blend),
    }
    rows = []
    for name, inferer in inferers.items():
        dice, dice_raw = (DiceMetric(include_background=False, ignore_empty=False) for _ in range(2))
        seconds = 0.0
        with torch.no_grad():
            inferer(batches[0]["image"], network)  # warm-up
            inferer.reset()
            for batch in batches:
                t = time.perf_counter()
                pred = inferer(batch["image"], network)
                seconds += time.perf_counter() - t
                batch = dict(batch, pred=pred)
                for item in decollate_batch(batch):
                    out = postprocessing(item)
                    dice(out["pred"][None], out["label"][None])
                    dice_raw(out["pred_raw"][None], out["label"][None])
        per_image = dice.get_buffer()[:, 0].numpy()
        positive = np.array([bool(item["positive"]) for item in datalist])
        weights = torch.cat(inferer.weights_history)
        rows.append(
            {
                "method": name,
                "dice": float(per_image.mean()),
                "dice_positive": float(per_image[positive].mean()) if positive.any() else float("nan"),
                "dice_negative": float(per_image[~positive].mean()) if (~positive).any() else float("nan"),
                "dice_no_area_rule": float(dice_raw.aggregate().item()),
                "ms_per_image": 1000 * seconds / len(batches),
                "min_weight": float(weights.min()),
                "n": len(batches),
            }
        )
    return rows


def table(rows: list[dict[str, float]]) -> str:
    lines = [
        "| inferer | Dice | Dice, nerve present | Dice, no nerve | Dice without area rule | ms / image | smallest weight |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['dice']:.4f} | {r['dice_positive']:.4f} | {r['dice_negative']:.4f} | "
            f"{r['dice_no_area_rule']:.4f} | {r['ms_per_image']:.1f} | {r['min_weight']:.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--bundle", type=Path, default=Path(__file__).resolve().parents[1] / "bundles" / "nerve_ultrasound_ems"
    )
    p.add_argument("--demo", action="store_true", help="add configs/demo.json (the CPU setting) to the configs")
    p.add_argument("--ckpt", type=Path, default=None, help="checkpoint (default: <bundle>/models/model.pt)")
    p.add_argument("--split", default="test", help="datalist split to evaluate")
    p.add_argument("--dataset_dir", default=None, help="dataset folder (default: the bundle's synthetic one)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 on a shared 2-core machine)")
    p.add_argument("--blend", default="logits", choices=["logits", "probabilities"], help="what the ensembles average")
    p.add_argument(
        "--fresh_subjects",
        type=int,
        default=0,
        help="evaluate on all images of a new synthetic dataset of this many subjects (8 frames each, seed 1000), "
        "none of which the model saw, instead of the bundle's split",
    )
    args = p.parse_args()
    overrides: dict[str, object] = {}
    if args.dataset_dir:
        overrides["dataset_dir"] = args.dataset_dir
    if args.fresh_subjects:
        folder = Path(tempfile.mkdtemp()) / "fresh"
        overrides["dataset_dir"] = str(
            make_nerve_ultrasound(folder, args.fresh_subjects, 8, seed=1000, num_test_images=0)
        )
        overrides["split_fractions"] = [0.0, 0.0, 1.0]
        overrides["balance"] = False
        args.split = "test"
    ckpt = args.ckpt or args.bundle / "models" / "model.pt"
    if not ckpt.is_file():
        raise SystemExit(f"no checkpoint at {ckpt}: train the bundle first (see the module docstring).")
    parser = load_bundle(args.bundle.resolve(), args.demo, overrides)
    rows = evaluate(parser, ckpt, args.split, args.threads, args.blend)
    source = (
        f"a fresh synthetic set of {args.fresh_subjects} subjects" if args.fresh_subjects else f"the {args.split} split"
    )
    print(f"{rows[0]['n']} images of {source}, checkpoint {ckpt}, {args.threads} thread(s), blend {args.blend}\n")
    print(table(rows))


if __name__ == "__main__":
    main()
