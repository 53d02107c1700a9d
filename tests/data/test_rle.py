"""Run-length codecs: the challenges' known strings, round trips, the reference functions, the real
nerve masks and their CSV rows, and clear errors for malformed strings."""

import csv

import numpy as np
import pytest
import torch
from PIL import Image

from monai_gamble.data import RLEFormat, masks_to_rle_csv, read_csv_rows, rle_decode, rle_encode

# the two examples of issue 8, masks written row by row, with their strings in both formats
SQUARE = np.array([[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]])
STAIRS = np.array([[1, 0, 0], [1, 0, 1], [0, 1, 0]])
KNOWN = [
    (SQUARE, "kaggle", "6 2 10 2"),
    (STAIRS, "kaggle", "1 2 6 1 8 1"),
    (SQUARE, "siim", "5 2 2 2"),
    (STAIRS, "siim", "0 2 3 1 1 1"),
]


def reference_siim_rle2mask(rle: str, width: int, height: int) -> np.ndarray:
    """SIIM-ACR's ``mask_functions.rle2mask`` (per-pixel reference; callers transpose its result)."""
    mask = np.zeros(width * height)
    array = np.asarray([int(x) for x in rle.split()])
    starts, lengths = array[0::2], array[1::2]
    current_position = 0
    for index, start in enumerate(starts):
        current_position += start
        mask[current_position : current_position + lengths[index]] = 255
        current_position += lengths[index]
    return mask.reshape(width, height)


def reference_siim_mask2rle(img: np.ndarray, width: int, height: int) -> str:
    """SIIM-ACR's ``mask_functions.mask2rle`` (with its bug: a run ending on the last pixel is dropped)."""
    rle = []
    last_color, current_pixel, run_start, run_length = 0, 0, -1, 0
    for x in range(width):
        for y in range(height):
            current_color = img[x][y]
            if current_color != last_color:
                if current_color == 255:
                    run_start, run_length = current_pixel, 1
                else:
                    rle += [str(run_start), str(run_length)]
                    run_start, run_length, current_pixel = -1, 0, 0
            elif run_start > -1:
                run_length += 1
            last_color = current_color
            current_pixel += 1
    return " ".join(rle)


def reference_kaggle_decode(rle: str, height: int, width: int) -> np.ndarray:
    """The Kaggle nerve convention as verified on the real masks (see the data's PROVENANCE.md)."""
    flat = np.zeros(height * width, dtype=np.uint8)
    values = [int(v) for v in rle.split()]
    for start, length in zip(values[0::2], values[1::2], strict=True):
        flat[start - 1 : start - 1 + length] = 1
    return flat.reshape(width, height).T


def random_mask(rng: np.random.Generator) -> np.ndarray:
    h, w = rng.integers(1, 40, size=2)
    return rng.random((h, w)) < rng.uniform(0.05, 0.95)


@pytest.mark.parametrize("mask, fmt, expected", KNOWN)
def test_known_strings_both_ways(mask, fmt, expected):
    assert rle_encode(mask, fmt) == expected
    np.testing.assert_array_equal(rle_decode(expected, mask.shape, fmt), mask.astype(bool))


@pytest.mark.parametrize("fmt", ["kaggle", "siim", RLEFormat.KAGGLE, RLEFormat.SIIM])
def test_round_trip_random_masks(fmt):
    rng = np.random.default_rng(0)
    for _ in range(200):
        mask = random_mask(rng)
        np.testing.assert_array_equal(rle_decode(rle_encode(mask, fmt), mask.shape, fmt), mask)


@pytest.mark.parametrize(
    "fmt, empty, full",
    [("kaggle", "", "1 12"), ("siim", "-1", "0 12")],
)
def test_empty_and_full_masks(fmt, empty, full):
    assert rle_encode(np.zeros((3, 4)), fmt) == empty
    assert rle_encode(np.ones((3, 4)), fmt) == full
    assert not rle_decode(empty, (3, 4), fmt).any()
    assert not rle_decode("  ", (3, 4), fmt).any()
    assert rle_decode(full, (3, 4), fmt).all()


@pytest.mark.parametrize("fmt", ["kaggle", "siim"])
def test_runs_touching_the_image_edges(fmt):
    # first pixel, last pixel, a run wrapping from the bottom of one column to the top of the next
    mask = np.zeros((4, 3), dtype=bool)
    mask[0, 0] = mask[3, 2] = True
    mask[3, 0] = mask[0, 1] = True
    s = rle_encode(mask, fmt)
    # column-major flat index: (0,0)=0, (3,0)=3, (0,1)=4, (3,2)=11 -> runs [0,1), [3,5), [11,12)
    assert s == {"kaggle": "1 1 4 2 12 1", "siim": "0 1 2 2 6 1"}[fmt]
    np.testing.assert_array_equal(rle_decode(s, mask.shape, fmt), mask)


def test_siim_decoding_matches_the_reference_rle2mask():
    rng = np.random.default_rng(1)
    for _ in range(100):
        mask = random_mask(rng)
        h, w = mask.shape
        s = rle_encode(mask, "siim")
        if s == "-1":
            continue
        reference = reference_siim_rle2mask(s, w, h).T > 0  # the reference's (W, H) array, transposed
        np.testing.assert_array_equal(rle_decode(s, (h, w), "siim"), reference)


def test_siim_encoding_matches_the_reference_mask2rle_except_its_last_pixel_bug():
    rng = np.random.default_rng(2)
    for _ in range(100):
        mask = random_mask(rng)
        mask[-1, -1] = False  # the reference is right unless a run ends on the last pixel
        h, w = mask.shape
        expected = reference_siim_mask2rle((mask.T * 255).astype(np.uint8), w, h)
        assert rle_encode(mask, "siim") == (expected or "-1")
    mask = np.zeros((3, 3), dtype=bool)
    mask[1:, 2] = True  # a run that ends on the last pixel
    assert reference_siim_mask2rle((mask.T * 255).astype(np.uint8), 3, 3) == ""  # dropped by the reference
    assert rle_encode(mask, "siim") == "7 2"
    np.testing.assert_array_equal(rle_decode("7 2", (3, 3), "siim"), mask)


def test_kaggle_decoding_matches_the_reference_convention():
    rng = np.random.default_rng(3)
    for _ in range(100):
        mask = random_mask(rng)
        s = rle_encode(mask, "kaggle")
        np.testing.assert_array_equal(reference_kaggle_decode(s, *mask.shape), mask)


def test_encode_accepts_tensors_booleans_and_255():
    np.testing.assert_equal(rle_encode(torch.as_tensor(SQUARE)), "6 2 10 2")
    assert rle_encode(SQUARE.astype(bool)) == rle_encode((SQUARE * 255).astype(np.uint8)) == "6 2 10 2"


def test_real_nerve_masks_match_their_csv_rows(realdata):
    root = realdata / "ultrasound_nerve_kaggle"
    rows = {r["img"]: r["pixels"] for r in read_csv_rows(root / "train_masks_subject1.csv") if r["subject"] == "1"}
    for n in range(1, 6):
        mask = np.asarray(Image.open(root / "train" / f"1_{n}_mask.tif"))
        assert mask.shape == (420, 580)
        assert rle_encode(mask) == rows[str(n)]
        np.testing.assert_array_equal(rle_decode(rows[str(n)], mask.shape), mask > 0)
    assert rows["5"] == ""  # 1_5 has no nerve


@pytest.mark.parametrize(
    "rle, fmt, match",
    [
        ("1 2 3", "kaggle", "odd number of values"),
        ("1 2 x 4", "kaggle", "non-integer values \\['x'\\]"),
        ("1.5 2", "siim", "non-integer"),
        ("-3 2", "kaggle", "negative values \\[-3\\]"),
        ("5 2 -1 1", "siim", "negative values"),
        ("14 4", "kaggle", "runs past the end of a 4x4"),
        ("10 7", "siim", "runs past the end of a 4x4"),
        ("0 2", "kaggle", "Kaggle starts are 1-based"),
        ("6 2 3 1", "kaggle", "run 2 .* starts before the end of run 1"),  # unsorted
        ("6 4 8 1", "kaggle", "run 2 .* starts before the end of run 1"),  # overlapping
        ("1 0", "kaggle", "run of length 0"),
    ],
)
def test_malformed_strings_are_clear_errors(rle, fmt, match):
    with pytest.raises(ValueError, match=match):
        rle_decode(rle, (4, 4), fmt)


def test_bad_arguments_are_clear_errors():
    with pytest.raises(TypeError, match="must be a string"):
        rle_decode(None, (4, 4))
    with pytest.raises(ValueError, match="shape must be \\(H, W\\)"):
        rle_decode("1 1", (4, 4, 1))
    with pytest.raises(ValueError, match="Unsupported option 'rle'"):
        rle_encode(SQUARE, "rle")
    with pytest.raises(ValueError, match="expects a 2D mask .* pass mask\\[0\\]"):
        rle_encode(SQUARE[None])
    with pytest.raises(ValueError, match="must be binary"):
        rle_encode(np.array([[0, 1], [2, 0]]))
    with pytest.raises(TypeError, match="numbers or booleans"):
        rle_encode(np.array([["a", "b"]]))


def test_masks_to_rle_csv(tmp_path):
    folder = tmp_path / "pred"
    folder.mkdir()
    masks = {"10": SQUARE, "2": np.zeros((4, 4), int), "1": STAIRS}
    for sid, m in masks.items():
        Image.fromarray((m * 255).astype(np.uint8), mode="L").save(folder / f"{sid}_mask.tif")
    out = masks_to_rle_csv(folder, tmp_path / "sub" / "submission.csv")
    rows = list(csv.reader(open(out)))
    assert rows == [["img", "pixels"], ["1", "1 2 6 1 8 1"], ["2", ""], ["10", "6 2 10 2"]]  # natural order
    out = masks_to_rle_csv(
        sorted(folder.glob("*.tif")), tmp_path / "siim.csv", header=("ImageId", "EncodedPixels"), format="siim"
    )
    assert list(csv.reader(open(out)))[1:] == [["1", "0 2 3 1 1 1"], ["2", "-1"], ["10", "5 2 2 2"]]
    Image.new("RGB", (4, 4)).save(folder / "3_mask.tif")
    with pytest.raises(ValueError, match="3_mask.tif is a RGB image"):
        masks_to_rle_csv(folder, tmp_path / "bad.csv")
    with pytest.raises(FileNotFoundError, match="no mask file"):
        masks_to_rle_csv(tmp_path / "sub", tmp_path / "bad.csv", pattern="*.png")
