"""The study runner: a grid of methods x architectures x seeds trained and evaluated with a bundle,
tracked in MLflow, summarised in the tables and figures of the thyroid gambling paper.

Bakhtiariziabari & Ghafoorian compare gambling nets with cross-entropy, cross-entropy +
adversarial, SegAN, focal loss and adversarial confidence learning over U-Net, PSPNet and
DeepLabV3+, averaging three runs: Tables 1-3 (Dice, Jaccard, BF-score, Chamfer, Hausdorff per
architecture), Table 4 (MMCL) and Fig. 2 (confidence map vs betting map). This package runs that
study on any dataset the bundle reads::

    python -m monai_gamble.study --config study.json            # runs, resumes, summarises
    python -m monai_gamble.study --config study.json --summarize-only
    python -m monai_gamble.study --config study.json --override dataset_dir=/data/ddti
    python -m monai_gamble.study --config study.json --seeds 1,2     # a part of the grid (another process)

A study config (JSON) names the bundle, the grid and the overrides applied to every run::

    {
        "bundle": "bundles/thyroid_ultrasound_gambling",
        "output_dir": "outputs/study",
        "name": "thyroid_study",
        "methods": ["ce", "focal", "adversarial", "segan", "confidence", "gambling"],
        "architectures": ["unet", "pspnet", "deeplabv3plus"],
        "seeds": [0, 1, 2],
        "overrides": {"max_epochs": 30, "image_size": [128, 128]},
        "base_configs": ["real_cpu.json"],
        "paired": [["gambling", "ce"]],
        "bootstrap_samples": 10000
    }

Relative paths (``bundle``, ``output_dir`` and the overrides ``dataset_dir``,
``evaluation_dataset_dir``, ``pretrained_checkpoint``) are relative to the config file. Each
(method, architecture, seed) is one training and one evaluation of the bundle (``configs/train.json``
+ ``base_configs`` + the method's and the architecture's override files, then
``configs/evaluate.json``) in ``<output_dir>/runs/<method>-<arch>-seed<k>/``, each logged into an
MLflow run of the experiment ``name`` (in ``<output_dir>/mlruns.db`` unless ``tracking_uri`` is
given) that the study creates with the tags ``method``, ``architecture``, ``seed`` under a parent run
of the study. A finished run leaves ``done.json``; running the study again skips it (resume after an
interruption, or grow the grid).

One module per job: :mod:`~monai_gamble.study.config` (the config), :mod:`~monai_gamble.study.tracking`
(MLflow), :mod:`~monai_gamble.study.runner` (running the grid), :mod:`~monai_gamble.study.aggregation`
(pandas), :mod:`~monai_gamble.study.tables`, :mod:`~monai_gamble.study.figures`,
:mod:`~monai_gamble.study.paired` (the paired comparison), :mod:`~monai_gamble.study.summary` (writing
them all) and :mod:`~monai_gamble.study.cli` (the command line).
"""

from .aggregation import aggregate_runs, per_image_csv, read_per_image, run_metrics
from .cli import main
from .config import (
    ARCHITECTURE_CONFIGS,
    METHOD_CONFIGS,
    PATH_OVERRIDES,
    StudyConfig,
    load_study_config,
    parse_override,
)
from .figures import critic_maps, fig2, metric_figures
from .paired import paired_comparison
from .runner import run_one, run_study, run_workflow, select_cells
from .summary import paired_rows, summarize_study
from .tables import DISPLAY_NAMES, TABLE_METRICS, display_name, format_cell, paired_table, study_tables
from .tracking import finish_run, mlflow_client, parent_run, start_child_run

__all__ = [
    "ARCHITECTURE_CONFIGS",
    "DISPLAY_NAMES",
    "METHOD_CONFIGS",
    "PATH_OVERRIDES",
    "TABLE_METRICS",
    "StudyConfig",
    "aggregate_runs",
    "critic_maps",
    "display_name",
    "fig2",
    "finish_run",
    "format_cell",
    "load_study_config",
    "main",
    "metric_figures",
    "mlflow_client",
    "paired_comparison",
    "paired_rows",
    "paired_table",
    "parent_run",
    "parse_override",
    "per_image_csv",
    "read_per_image",
    "run_metrics",
    "run_one",
    "run_study",
    "run_workflow",
    "select_cells",
    "start_child_run",
    "study_tables",
    "summarize_study",
]
