"""Feed every bundle the bad inputs a user feeds by mistake and count what the user sees.

For each workflow (thyroid, nerve, X-ray, pathology, generic) this trains the bundle's ``train.json``
once on its tiny synthetic set (the settings of ``benchmarks/gpu_check.py``, one epoch, no MLflow),
then runs ``python -m monai.bundle run`` again for each bad input: a mistyped or out-of-range
setting on the command line, or a copy of the dataset with one file broken (truncated, empty,
missing, of the wrong mode, size or values). Each run is classified by what the user sees:

- **clear error**: the process exits with an error code and its last lines name what is wrong
  (the key, the file): the message of one of the package's checks, shown last
  (:func:`monai_gamble.utils.install_error_summary`); a file meant to be converted may be refused
  this way too (a 0/1 mask where 0/255 is the layout's rule);
- **deep traceback**: it fails, but the last lines do not name the key or the file (a third-party
  error under MONAI's wrappers);
- **silently wrong**: it finishes (exit code 0) although it should have refused, or a file it was
  meant to convert (a palette or 16-bit image) is read with other values than the original's;
- **converted**: a file in another encoding that the bundle reads by its real values (checked: the
  bundle's validation preprocessing gives the same image as for the original file);
- **abort**: the process was killed by a signal (``terminate called ...``, rc 134, a segfault).

Run: ``python benchmarks/bad_inputs.py [--workflows thyroid nerve ...] [--jobs 2] [--out DIR]``. It
prints one Markdown table per workflow and a summary; the figures of the README come from it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_check import TINY_TRAIN  # noqa: E402

WORKFLOWS = {
    "thyroid": "thyroid_ultrasound_gambling",
    "nerve": "nerve_ultrasound_ems",
    "xray": "xray_pneumothorax",
    "pathology": "pathology_semisupervised_adversarial",
    "generic": "generic_segmentation",
}
OUTCOMES = ("clear error", "converted", "deep traceback", "silently wrong", "abort")
#: what the run of a case must do: refuse with an error naming the token, or read the file by its values
ERROR, CONVERT = "error", "convert"
#: lines at the end of the output where the message must name the token
TAIL_LINES = 4


@dataclass
class Case:
    """One bad input: ``args`` added to the command line, and/or ``corrupt`` applied to a copy of the
    dataset and the names of the files its datalist reads (it returns the token that the error must
    name, usually a file name, and the file it changed).
    """

    name: str
    expect: str = ERROR
    args: Sequence[str] = ()
    token: str = ""
    corrupt: Callable[[Path, set[str]], tuple[str, Path | None]] | None = None
    fresh_bundle: bool = False  # run in a copy of the bundle with no earlier run (e.g. --resume True)


@dataclass
class Result:
    workflow: str
    case: str
    outcome: str
    returncode: int
    seconds: float
    last_line: str
    details: dict[str, Any] = field(default_factory=dict)


def classify(returncode: int, output: str, token: str, expect: str = ERROR, values_match: bool | None = None) -> str:
    """The outcome of one run (:data:`OUTCOMES`).

    Args:
        returncode: the process's exit code (negative: killed by that signal; 128 + n from a shell).
        output: its stdout and stderr.
        token: what the last lines must name for a clear error (a key, a file name).
        expect: :data:`ERROR` (the run must fail) or :data:`CONVERT` (it must succeed and read the
            file by its values).
        values_match: for :data:`CONVERT`, whether the bundle read the changed file by its real values.

    Example:
        >>> classify(1, "Traceback ...\\nValueError: cannot load data/1.PNG", "1.PNG")
        'clear error'
        >>> classify(0, "done", "1.PNG"), classify(-6, "terminate called", "1.PNG")
        ('silently wrong', 'abort')
    """
    if returncode < 0 or returncode in (134, 137, 139):
        return "abort"
    if returncode == 0:
        if expect == CONVERT and values_match:
            return "converted"
        return "silently wrong"
    # a refusal that names the file is a clear answer for a file meant to be converted, too
    tail = [line for line in output.splitlines() if line.strip()][-TAIL_LINES:]
    if token and any(token in line for line in tail) and not tail[-1].startswith("  File "):
        return "clear error"
    return "deep traceback"


# ---- dataset corruptions: each takes the copy of the dataset and returns (token, changed file)


def _first(root: Path, pattern: str, used: set[str], exclude: str | None = None) -> Path:
    """The first file of ``root`` matching ``pattern`` that the bundle's datalist reads (``used``: their
    names), so that the broken file is one that the run loads."""
    files = sorted(p for p in root.rglob(pattern) if (exclude is None or exclude not in p.name) and p.name in used)
    if not files:
        raise FileNotFoundError(f"no {pattern} under {root} that the datalist reads")
    return files[0]


def truncate(pattern: str, fraction: float = 0.6, exclude: str | None = None) -> Callable:
    def run(root: Path, used: set[str]) -> tuple[str, Path | None]:
        path = _first(root, pattern, used, exclude)
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * fraction)])
        return path.name, path

    return run


def empty(pattern: str, exclude: str | None = None) -> Callable:
    def run(root: Path, used: set[str]) -> tuple[str, Path | None]:
        path = _first(root, pattern, used, exclude)
        path.write_bytes(b"")
        return path.name, path

    return run


def remove(pattern: str, exclude: str | None = None) -> Callable:
    def run(root: Path, used: set[str]) -> tuple[str, Path | None]:
        path = _first(root, pattern, used, exclude)
        path.unlink()
        return path.stem.removesuffix("_mask"), None  # a missing mask is named by its image's ID

    return run


def reencode(pattern: str, how: str, exclude: str | None = None) -> Callable:
    """Write the same picture in another encoding: ``palette`` (a grey palette), ``16bit`` (x 257),
    ``rgb`` (three equal channels), ``multipage`` (three pages), ``resize`` (other size),
    ``binary01`` (a 0/255 mask written as 0/1), ``label7`` (a foreground label 7)."""

    def run(root: Path, used: set[str]) -> tuple[str, Path | None]:
        path = _first(root, pattern, used, exclude)
        with Image.open(path) as im:
            fmt = im.format
            grey = np.asarray(im.convert("L"))
        if how == "palette":
            out = _grey_palette(grey)
        elif how == "16bit":
            out = Image.fromarray(grey.astype(np.uint16) * 257)
        elif how == "rgb":
            out = Image.fromarray(np.stack([grey] * 3, axis=-1))
        elif how == "binary01":
            out = Image.fromarray((grey > 127).astype(np.uint8))
        elif how == "label7":
            out = Image.fromarray(np.where(grey > 0, 7, 0).astype(np.uint8))
        elif how == "resize":
            out = Image.fromarray(grey).resize((grey.shape[1] // 2 + 3, grey.shape[0] // 2 + 5))
        elif how == "multipage":
            pages = [Image.fromarray(grey)] * 3
            pages[0].save(path, format=fmt, save_all=True, append_images=pages[1:])
            return path.name, path
        else:
            raise ValueError(how)
        out.save(path, format=fmt)
        return path.name, path

    return run


def _grey_palette(grey: np.ndarray) -> Image.Image:
    """A 'P' image whose index i shows grey 255 - i (so that indices and values differ)."""
    out = Image.fromarray((255 - grey).astype(np.uint8), mode="P")
    out.putpalette([v for i in range(256) for v in (255 - i,) * 3])
    return out


def csv_edit(pattern: str, edit: Callable[[list[str]], list[str]], token: str | None = None) -> Callable:
    def run(root: Path, used: set[str]) -> tuple[str, Path | None]:
        path = sorted(root.rglob(pattern))[0]
        lines = path.read_text(encoding="utf-8-sig").splitlines()
        path.write_text("\n".join(edit(lines)) + "\n")
        return token or path.name, path

    return run


def _huge_rle(lines: list[str]) -> list[str]:
    """The first row with a mask gets a run of 10**30 pixels."""
    for i, line in enumerate(lines[1:], start=1):
        head, sep, rle = line.rpartition(",")
        if rle.strip() and rle.strip() != "-1":
            lines[i] = f"{head}{sep} 5 {10**30}"
            return lines
    raise ValueError("no mask row")


def dicom_edit(how: str) -> Callable:
    """``rows``: a ``Rows`` 10 more than the pixel data holds; ``cut_jpeg``: the JPEG stream of a
    compressed DICOM cut to 60% (re-encapsulated, so the file itself is whole)."""

    def run(root: Path, used: set[str]) -> tuple[str, Path | None]:
        import pydicom
        from pydicom.encaps import encapsulate, generate_fragmented_frames

        for path in sorted(p for p in root.rglob("*.dcm") if p.name in used):
            ds = pydicom.dcmread(path)
            compressed = ds.file_meta.TransferSyntaxUID.is_compressed
            if how == "rows" and not compressed:
                ds.Rows = int(ds.Rows) + 10
                ds.save_as(path)
                return path.name, path
            if how == "cut_jpeg" and compressed:
                frame = b"".join(next(generate_fragmented_frames(ds.PixelData)))
                ds.PixelData = encapsulate([frame[: int(len(frame) * 0.6)]])
                ds.save_as(path)
                return path.name, path
        raise FileNotFoundError(f"no {'native' if how == 'rows' else 'compressed'} DICOM under {root}")

    return run


def nifti_edit(how: str) -> Callable:
    """``shape``: the first label cropped by 4 voxels; ``nan``: NaN voxels in the first image;
    ``label9``: a label value 9 in the first label."""

    def run(root: Path, used: set[str]) -> tuple[str, Path | None]:
        import nibabel as nib

        folder = "labelsTr" if how in ("shape", "label9") else "imagesTr"
        path = _first(root / folder, "*.nii.gz", used)
        img = nib.load(path)
        data = np.asarray(img.dataobj)
        if how == "shape":
            data = data[:-4]
        elif how == "nan":
            data = data.astype(np.float32)
            data[data.shape[0] // 2] = np.nan
        elif how == "label9":
            data = data.copy()
            data[data > 0] = 9
        nib.save(nib.Nifti1Image(data, img.affine), path)
        return path.name, path

    return run


def cli_cases(workflow: str) -> list[Case]:
    """The command-line mistakes, for every workflow."""
    # a size the network cannot take (the nerve bundle's FlexibleUNet pads any size from 32 up, the
    # pathology DeepLabV3+ takes any size: one number for two dimensions)
    size_key = {
        "xray": ("--stages", "[]", "stages"),
        "generic": ("--patch_size", "[50,50,50]", "patch_size"),
        "nerve": ("--image_size", "[20,20]", "image_size"),
        "pathology": ("--image_size", "[64]", "image_size"),
    }.get(workflow, ("--image_size", "[100,100]", "image_size"))
    cases = [
        Case("mistyped key `--max_epoch 1`", args=("--max_epoch", "1"), token="max_epochs"),
        Case("`--resume false` (text, truthy)", args=("--resume", "false"), token="resume"),
        Case("`--num_classes 1`", args=("--num_classes", "1"), token="num_classes"),
        Case("`--val_interval 0`", args=("--val_interval", "0"), token="val_interval"),
        Case(f"`{size_key[0]} {size_key[1]}`", args=size_key[:2], token=size_key[2]),
        Case(
            "unreachable `--tracking_uri http://127.0.0.1:9`",
            args=("--tracking_uri", "http://127.0.0.1:9"),
            token="127.0.0.1:9",
        ),
        Case("`--resume True` with no earlier run", args=("--resume", "True"), token="models", fresh_bundle=True),
    ]
    if workflow == "thyroid":
        cases.append(
            Case("0-byte `--pretrained_checkpoint`", args=("--pretrained_checkpoint", "{empty_pt}"), token="empty.pt")
        )
    return cases


def data_cases(workflow: str) -> list[Case]:
    """The broken files, in each workflow's own layout."""
    workers = ("--cache_rate", "0", "--num_workers", "2")
    if workflow == "thyroid":
        return [
            Case("image PNG cut at 60%", corrupt=truncate("image/*.PNG")),
            Case("image PNG cut at 60%, loaded by 2 workers", args=workers, corrupt=truncate("image/*.PNG")),
            Case("0-byte mask PNG", corrupt=empty("mask/*.PNG")),
            Case("a mask file missing", corrupt=remove("mask/*.PNG")),
            Case("mask of another size than its image", corrupt=reencode("mask/*.PNG", "resize")),
            Case("palette PNG image", CONVERT, corrupt=reencode("image/*.PNG", "palette")),
            Case("16-bit PNG image", CONVERT, corrupt=reencode("image/*.PNG", "16bit")),
            Case("RGB PNG image", CONVERT, corrupt=reencode("image/*.PNG", "rgb")),
            Case("mask saved 0/1, not 0/255", CONVERT, corrupt=reencode("mask/*.PNG", "binary01")),
        ]
    if workflow == "nerve":
        return [
            Case("image TIFF cut at 60%", corrupt=truncate("train/*.tif", exclude="_mask")),
            Case("0-byte mask TIFF", corrupt=empty("train/*_mask.tif")),
            Case("multi-page image TIFF", corrupt=reencode("train/*.tif", "multipage", exclude="_mask")),
            Case("16-bit image TIFF", CONVERT, corrupt=reencode("train/*.tif", "16bit", exclude="_mask")),
            Case("mask of another size than its image", corrupt=reencode("train/*_mask.tif", "resize")),
            Case("a mask file missing", corrupt=remove("train/*_mask.tif")),
        ]
    if workflow == "xray":
        return [
            Case("DICOM cut 500 bytes short", corrupt=truncate("*.dcm", fraction=0.9)),
            Case("JPEG DICOM with its JPEG stream cut at 60%", corrupt=dicom_edit("cut_jpeg")),
            Case("DICOM whose `Rows` does not match its pixels", corrupt=dicom_edit("rows")),
            Case("RLE with a run of 10^30 pixels", corrupt=csv_edit("train-rle.csv", _huge_rle)),
            Case("RLE CSV missing its `EncodedPixels` column", corrupt=csv_edit(
                "train-rle.csv", lambda lines: [line.rpartition(",")[0] for line in lines], token="EncodedPixels"
            )),
        ]  # fmt: skip
    if workflow == "pathology":
        return [
            Case("image JPEG cut at 60%", corrupt=truncate("training/images/*.jpg")),
            Case("0-byte unlabelled JPEG", corrupt=empty("unlabelled/*.jpg")),
            Case("a mask label outside the classes (7)", corrupt=reencode("training/masks/*.png", "label7")),
            Case("mask of another size than its image", corrupt=reencode("training/masks/*.png", "resize")),
            Case("a mask file missing", corrupt=remove("training/masks/*.png")),
        ]
    if workflow == "generic":
        return [
            Case("image NIfTI cut at 60%", corrupt=truncate("imagesTr/*.nii.gz")),
            Case("label of another shape than its image", corrupt=nifti_edit("shape")),
            Case("NaN voxels in an image", corrupt=nifti_edit("nan")),
            Case("a label value outside the classes (9)", corrupt=nifti_edit("label9")),
        ]
    raise ValueError(f"unknown workflow {workflow!r}: one of {sorted(WORKFLOWS)}")


# ---- running


def tiny_args(bundle: str) -> list[str]:
    args: list[str] = []
    for key, value in TINY_TRAIN[bundle].items():
        args += [f"--{key}", value if isinstance(value, str) else json.dumps(value)]
    return [*args, "--max_epochs", "1", "--tracking_uri", "none", "--mlflow_model", "False"]


def run_bundle(cwd: Path, args: Sequence[str], timeout: float = 600) -> tuple[int, str, float]:
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", "['configs/train.json']", *args]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env |= {"PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        return 124, f"{e.stdout or ''}{e.stderr or ''}\n(timed out after {timeout} s)", time.perf_counter() - start
    return proc.returncode, proc.stdout + proc.stderr, time.perf_counter() - start


def copy_bundle(bundle: str, dst: Path) -> Path:
    shutil.copytree(ROOT / "bundles" / bundle, dst, ignore=shutil.ignore_patterns("models", "eval", "data"))
    return dst


def _items(datalist: Any) -> Iterator[dict]:
    """The items of a datalist (a list of dicts, or dicts of those), but those of its test split: the
    files that training reads."""
    if isinstance(datalist, dict):
        if any(isinstance(v, (str, os.PathLike)) for v in datalist.values()) and "image" in datalist:
            yield datalist
        for key, value in datalist.items():
            if key not in ("test", "testing"):
                yield from _items(value)
    elif isinstance(datalist, (list, tuple)):
        for value in datalist:
            yield from _items(value)


def _parser(bundle_dir: Path, bundle: str, dataset_dir: Path) -> Any:
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(bundle_dir / "configs" / "train.json"))
    parser.update({"bundle_root": str(bundle_dir), "dataset_dir": str(dataset_dir), **TINY_TRAIN[bundle]})
    return parser


def used_files(bundle_dir: Path, bundle: str, dataset_dir: Path) -> set[str]:
    """The names of the files that the bundle's datalist reads (every split, unlabelled images too)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        datalist = _parser(bundle_dir, bundle, dataset_dir).get_parsed_content("datalist")
    return {Path(str(v)).name for item in _items(datalist) for v in item.values() if isinstance(v, (str, os.PathLike))}


def preprocessed(bundle_dir: Path, bundle: str, dataset_dir: Path, changed: Path) -> dict[str, np.ndarray]:
    """The bundle's validation preprocessing of the datalist item that reads ``changed``."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parser = _parser(bundle_dir, bundle, dataset_dir)
        datalist = parser.get_parsed_content("datalist")
        preprocessing = parser.get_parsed_content("validate#preprocessing")
    # the item by file name: the bundle may read a prepared copy of the dataset
    item = next(
        (i for i in _items(datalist) if any(Path(str(v)).name == changed.name for v in i.values())),
        None,
    )
    if item is None:
        raise LookupError(f"no datalist item reads {changed.name}")
    out = preprocessing(dict(item))
    return {k: np.asarray(out[k]) for k in ("image", "label") if k in out}


def run_workflow(workflow: str, work: Path, jobs: int, only: Sequence[str] | None = None) -> list[Result]:
    """Run the tiny baseline, then every case of ``workflow`` (those named in ``only``, if given)."""
    cases = [*cli_cases(workflow), *data_cases(workflow)]
    if only is not None:
        unknown = set(only) - {c.name for c in cases}
        if unknown:
            raise ValueError(f"no case named {sorted(unknown)} in {workflow}: {[c.name for c in cases]}")
        cases = [c for c in cases if c.name in only]
    bundle = WORKFLOWS[workflow]
    base = copy_bundle(bundle, work / workflow / "bundle")
    code, output, seconds = run_bundle(base, tiny_args(bundle))
    if code != 0:
        raise RuntimeError(f"the {workflow} bundle's tiny run failed ({code}):\n{output[-3000:]}")
    data_dirs = [p for p in (base / "data").iterdir() if p.is_dir()]
    if len(data_dirs) != 1:
        raise RuntimeError(f"expected one synthetic dataset under {base / 'data'}, found {data_dirs}")
    dataset = data_dirs[0]
    used = used_files(base, bundle, dataset)
    (work / "empty.pt").write_bytes(b"")

    def one(index_case: tuple[int, Case]) -> Result:
        index, case = index_case
        cwd = copy_bundle(bundle, work / workflow / f"case{index}") if case.fresh_bundle else base
        args = [*tiny_args(bundle)]
        token, changed = case.token, None
        if case.corrupt is not None:
            copy = work / workflow / f"data{index}"
            shutil.copytree(dataset, copy)
            token, changed = case.corrupt(copy, used)
            args += ["--dataset_dir", str(copy)]
        args += [a.format(empty_pt=work / "empty.pt") for a in case.args]
        code, output, seconds = run_bundle(cwd, args)
        match = None
        details: dict[str, Any] = {}
        if case.expect == CONVERT and code == 0 and changed is not None:
            try:
                original = preprocessed(base, bundle, dataset, dataset / changed.relative_to(copy))
                converted = preprocessed(base, bundle, copy, changed)
                diffs = {k: float(np.abs(original[k] - converted[k]).max()) for k in original}
                details["max_abs_diff"] = diffs
                match = all(d <= 1.0 / 255 + 1e-6 for d in diffs.values())
            except Exception as e:  # reported as a detail; the outcome stays unconfirmed
                details["check_failed"] = f"{type(e).__name__}: {e}"
                match = False
        outcome = classify(code, output, token, case.expect, match)
        tail = [line for line in output.splitlines() if line.strip()]
        last = tail[-1][:300] if tail else ""
        if code == 0:
            last = f"(ran to the end; {json.dumps(details) if details else 'no check'})"
        return Result(workflow, case.name, outcome, code, seconds, last, details)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(one, enumerate(cases)))


def markdown(workflow: str, results: Sequence[Result]) -> str:
    lines = [f"#### {workflow}", "", "| bad input | outcome | what the user reads last |", "|---|---|---|"]
    for r in results:
        last = r.last_line.replace("|", "\\|")
        lines.append(f"| {r.case} | {r.outcome} | {last[:160]}{'...' if len(last) > 160 else ''} |")
    counts = Counter(r.outcome for r in results)
    lines += ["", f"{len(results)} tried: " + ", ".join(f"{counts[o]} {o}" for o in OUTCOMES)]
    return "\n".join(lines)


def summary_table(results: Sequence[Result]) -> str:
    """One row per workflow: how many bad inputs were tried and how many ended in each outcome."""
    lines = ["| workflow | tried | " + " | ".join(OUTCOMES) + " |", "|---|" + "---:|" * (len(OUTCOMES) + 1)]
    for workflow in dict.fromkeys(r.workflow for r in results):
        counts = Counter(r.outcome for r in results if r.workflow == workflow)
        lines.append(f"| {workflow} | {sum(counts.values())} | " + " | ".join(str(counts[o]) for o in OUTCOMES) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> list[Result]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workflows", nargs="+", default=list(WORKFLOWS), choices=list(WORKFLOWS))
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (default 2)")
    parser.add_argument("--out", type=Path, default=None, help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = args.out or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for workflow in args.workflows:
            rows = run_workflow(workflow, work, args.jobs)
            results += rows
            print(markdown(workflow, rows), "\n", flush=True)
    counts = Counter(r.outcome for r in results)
    print(summary_table(results), "\n")
    print(f"{len(results)} bad inputs tried: " + ", ".join(f"{counts[o]} {o}" for o in OUTCOMES))
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in results], indent=1))
    return results


if __name__ == "__main__":
    main()
