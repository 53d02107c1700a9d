"""The study's figures: bars of the metrics per architecture (mean ± std over seeds) and Fig. 2 of the
thyroid paper (predictions and critic maps of confidence learning and gambling)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from .config import StudyConfig
from .tables import TABLE_METRICS, display_name

__all__ = ["critic_maps", "fig2", "metric_figures"]


def metric_figures(config: StudyConfig, agg: pd.DataFrame, methods: Sequence[str]) -> list[Path]:
    """One bar chart per architecture (``metrics_<arch>.png``) of the aggregated metrics and MMCL."""
    from ..visualize import plot_metric_comparison

    stats = agg.to_dict(orient="index")
    keys = [*TABLE_METRICS, "MMCL"]
    out = []
    for arch in config.architectures:
        summaries = {
            display_name(m): {k: stats[(m, arch, k)] for k in keys if (m, arch, k) in stats}
            for m in methods
            if any((m, arch, k) in stats for k in TABLE_METRICS)
        }
        if not summaries:
            continue
        fig = plot_metric_comparison(
            summaries,
            [k for k in keys if any(k in s for s in summaries.values())],
            title=f"{config.name}, {arch}: mean ± std over seeds",
            higher_is_better=TABLE_METRICS,
        )
        path = config.output_dir / f"metrics_{arch}.png"
        fig.savefig(path, dpi=100)
        out.append(path)
    return out


def critic_maps(config: StudyConfig, method: str, arch: str, seed: int) -> dict[str, Any]:
    """The segmenter's predictions and the critic's maps of the first evaluation images of one run
    (its best checkpoint, on the CPU)."""
    import torch
    from monai.bundle import ConfigParser

    run_dir = config.run_dir(method, arch, seed)
    parser = ConfigParser()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="parsing config_file")
        parser.read_config([str(config.bundle / "configs" / f) for f in config.config_files(method, arch)])
    parser.update({**config.overrides, "bundle_root": str(config.bundle), "device": "$torch.device('cpu')"})
    net, critic = parser.get_parsed_content("network_def"), parser.get_parsed_content("critic_def")
    objective = parser.get_parsed_content("objective")
    ckpt = torch.load(run_dir / "models" / "model.pt", map_location="cpu", weights_only=True)
    net.load_state_dict(ckpt["model"])
    critic.load_state_dict(ckpt["critic"])
    net.eval()
    critic.eval()
    transform = parser.get_parsed_content("validate#preprocessing")
    items = [
        transform(d) for d in parser.get_parsed_content("datalist")[config.evaluation_split][: config.figure_images]
    ]
    image = torch.stack([torch.as_tensor(d["image"]) for d in items])
    with torch.no_grad():
        logits = net(image)
        cmap = objective.critic_map(critic, image, logits)
    return {"image": image, "label": [d["label"] for d in items], "pred": logits.argmax(1, keepdim=True), "map": cmap}


def fig2(config: StudyConfig) -> Path | None:
    """Fig. 2 of the thyroid paper (``fig2_confidence_vs_betting.png``): predictions and critic maps of
    confidence learning and gambling on the first evaluation images, for the first architecture and
    seed with both runs finished; None when the grid lacks one of the two methods."""
    if config.figure_images < 1 or not {"confidence", "gambling"} <= set(config.methods):
        return None
    for arch in config.architectures:
        seed = next(
            (s for s in config.seeds if all(config.is_done(m, arch, s) for m in ("confidence", "gambling"))), None
        )
        if seed is None:
            continue
        from ..visualize import plot_segmentation_grid

        conf = critic_maps(config, "confidence", arch, seed)
        gamb = critic_maps(config, "gambling", arch, seed)
        fig = plot_segmentation_grid(
            images=list(conf["image"]),
            labels=conf["label"],
            preds={"confidence adv.": list(conf["pred"]), "gambling": list(gamb["pred"])},
            maps={"uncertainty (1 - confidence)": list(1 - conf["map"]), "betting map": list(gamb["map"])},
            transpose=True,
            suptitle=f"{config.name}, {arch}, seed {seed}: confidence learning vs gambling ({config.evaluation_split})",
        )
        path = config.output_dir / "fig2_confidence_vs_betting.png"
        fig.savefig(path, dpi=100)
        return path
    return None
