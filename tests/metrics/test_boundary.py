import math

import numpy as np
import pytest
import torch
from monai.metrics import DiceMetric, MeanIoU, compute_average_surface_distance
from monai.metrics import HausdorffDistanceMetric as MonaiHausdorff

from monai_gamble.metrics import (
    BoundaryFScoreMetric,
    ChamferDistanceMetric,
    HausdorffDistanceMetric,
    compute_bf_score,
    compute_chamfer_distance,
    compute_hausdorff_distance,
)


def square(size=10, rows=(2, 6), cols=(2, 6), shape=None):
    m = torch.zeros(1, 1, *(shape or (size, size)))
    m[0, 0, rows[0] : rows[1], cols[0] : cols[1]] = 1
    return m


def onehot(mask):
    return torch.cat([1 - mask, mask], dim=1)


A = square()  # 4x4 square at rows 2-5, cols 2-5
B = square(cols=(3, 7))  # shifted by one column
EMPTY = torch.zeros(1, 1, 10, 10)


class TestBFScore:
    @pytest.mark.parametrize("tol, expected", [(1.0, 0.5), (1.2, 1.0), (0.5, 0.5), (2.0, 1.0)])
    def test_shifted_square(self, tol, expected):
        # boundaries: 12 points each, 6 coincide; the others are exactly 1 away (strict "<" at 1.0)
        assert compute_bf_score(A, B, tolerance=tol).item() == pytest.approx(expected)

    def test_identical_and_symmetric(self):
        assert compute_bf_score(A, A, tolerance=0.5).item() == 1.0
        assert compute_bf_score(A, B, 1.0).item() == compute_bf_score(B, A, 1.0).item()

    def test_precision_recall_asymmetric_case(self):
        # small square inside a big one, far from its border: no boundary point matches at tol 1
        big = square(size=12, rows=(1, 11), cols=(1, 11))
        small = square(size=12, rows=(5, 7), cols=(5, 7))
        assert compute_bf_score(small, big, tolerance=1.0).item() == 0.0
        # tol 4.5: all small points (distance 4) match -> P = 1; big boundary (36 points): those
        # within 4.5 of the 2x2 square's pixels: rows/cols 1 and 10 are 4 away only opposite it
        p = 1.0
        ys, xs = np.nonzero(big[0, 0].numpy())
        bd = [(y, x) for y, x in zip(ys, xs, strict=True) if y in (1, 10) or x in (1, 10)]
        pts = [(5, 5), (5, 6), (6, 5), (6, 6)]
        r = np.mean([min(math.dist(q, s) for s in pts) < 4.5 for q in bd])
        assert compute_bf_score(small, big, tolerance=4.5).item() == pytest.approx(2 * p * r / (p + r))

    def test_default_tolerance_is_0_75_percent_of_diagonal(self):
        # 200x200: diagonal 282.8, tolerance 2.12 -> a shift of 2 matches, a shift of 3 does not
        a = square(rows=(50, 90), cols=(50, 90), shape=(200, 200))
        b2 = square(rows=(50, 90), cols=(52, 92), shape=(200, 200))
        b3 = square(rows=(50, 90), cols=(53, 93), shape=(200, 200))
        assert compute_bf_score(a, b2).item() == 1.0
        assert compute_bf_score(a, b3).item() < 1.0
        assert compute_bf_score(a, b3).item() == compute_bf_score(a, b3, tolerance=0.0075 * math.hypot(200, 200)).item()

    def test_spacing_scales_distances_and_default_tolerance(self):
        # in mm with spacing 2: the shift is 2 mm; tolerance 1.0 mm -> only coincident points
        assert compute_bf_score(A, B, tolerance=1.0, spacing=2.0).item() == 0.5
        assert compute_bf_score(A, B, tolerance=2.5, spacing=2.0).item() == 1.0
        # anisotropic: rows 1 mm, columns 3 mm -> the column shift is 3 mm, but the two points of
        # A's right edge that are not on B's boundary are 1 mm (one row) from B's top/bottom edge
        assert compute_bf_score(A, B, tolerance=2.9, spacing=(1.0, 3.0)).item() == pytest.approx(8 / 12)
        assert compute_bf_score(A, B, tolerance=3.1, spacing=(1.0, 3.0)).item() == 1.0

    def test_border_pixels_are_boundary(self):
        # a mask filling the image: every border pixel is boundary (zero padding), none inside
        full = torch.ones(1, 1, 6, 6)
        inner = square(size=6, rows=(1, 5), cols=(1, 5))
        # full's boundary is the outer ring, inner's the next ring: distance 1, sqrt(2) at the corners
        assert compute_bf_score(full, inner, tolerance=1.5).item() == 1.0
        assert compute_bf_score(full, inner, tolerance=0.99).item() == 0.0

    def test_3d(self):
        a = torch.zeros(1, 1, 8, 8, 8)
        a[0, 0, 2:6, 2:6, 2:6] = 1
        b = torch.zeros(1, 1, 8, 8, 8)
        b[0, 0, 2:6, 2:6, 3:7] = 1
        # 4x4x4 cube: 56 surface voxels; shifted by one along z, 36 of them coincide (the two
        # side rings and the rim of the top face); the other 20 are 1 away
        assert compute_bf_score(a, b, tolerance=1.0).item() == pytest.approx(36 / 56)
        assert compute_bf_score(a, b, tolerance=1.01).item() == 1.0

    def test_batch_and_channels(self):
        y_pred = torch.cat([onehot(A), onehot(EMPTY)])
        y = torch.cat([onehot(B), onehot(EMPTY)])
        out = compute_bf_score(y_pred, y, tolerance=1.0)
        assert out.shape == (2, 2)
        assert out[0, 1].item() == 0.5 and out[1, 1].item() == 1.0
        assert compute_bf_score(y_pred, y, tolerance=1.0, include_background=False).shape == (2, 1)

    @pytest.mark.parametrize("pred, gt, expected", [(EMPTY, EMPTY, 1.0), (A, EMPTY, 0.0), (EMPTY, A, 0.0)])
    def test_empty_cases(self, pred, gt, expected):
        assert compute_bf_score(pred, gt).item() == expected

    def test_metric_class_accumulates(self):
        m = BoundaryFScoreMetric(tolerance=1.0)
        m(onehot(A), onehot(B))
        m(onehot(A), onehot(A))
        assert m.aggregate().item() == pytest.approx(0.75)
        assert m.get_buffer().shape == (2, 1)


class TestChamfer:
    def test_shifted_square(self):
        # 6 of 12 boundary points of each square coincide, the 6 others are 1 away
        assert compute_chamfer_distance(A, B).item() == pytest.approx(0.5)

    def test_asymmetric_boundaries_differ_from_monai_average_surface_distance(self):
        big = square(size=12, rows=(1, 11), cols=(1, 11))
        small = square(size=12, rows=(5, 7), cols=(5, 7))
        pts_small = [(5, 5), (5, 6), (6, 5), (6, 6)]
        ys, xs = np.nonzero(big[0, 0].numpy())
        bd = [(y, x) for y, x in zip(ys, xs, strict=True) if y in (1, 10) or x in (1, 10)]
        d_small = np.mean([min(math.dist(p, q) for q in bd) for p in pts_small])
        d_big = np.mean([min(math.dist(q, p) for p in pts_small) for q in bd])
        expected = 0.5 * (d_small + d_big)
        assert compute_chamfer_distance(small, big).item() == pytest.approx(expected, rel=1e-6)
        pooled = compute_average_surface_distance(small, big, symmetric=True).item()
        assert pooled == pytest.approx((4 * d_small + len(bd) * d_big) / (4 + len(bd)), rel=1e-6)
        assert abs(pooled - expected) > 0.1  # MONAI's pooled mean is another number

    def test_spacing(self):
        # 6 coincident points, 4 at 3 mm (the column shift), 2 at 1 mm (one row), in each direction
        assert compute_chamfer_distance(A, B, spacing=(1.0, 3.0)).item() == pytest.approx(14 / 12)
        assert compute_chamfer_distance(A, B, spacing=2.0).item() == pytest.approx(1.0)

    def test_3d(self):
        a = torch.zeros(1, 1, 8, 8, 8)
        a[0, 0, 2:6, 2:6, 2:6] = 1
        b = torch.zeros(1, 1, 8, 8, 8)
        b[0, 0, 2:6, 2:6, 3:7] = 1
        assert compute_chamfer_distance(a, b).item() == pytest.approx(20 / 56)

    @pytest.mark.parametrize("pred, gt, expected", [(EMPTY, EMPTY, 0.0), (A, EMPTY, math.inf), (EMPTY, A, math.inf)])
    def test_empty_cases(self, pred, gt, expected):
        assert compute_chamfer_distance(pred, gt).item() == expected

    def test_inf_is_not_hidden_by_the_mean(self):
        m = ChamferDistanceMetric(include_background=True)
        m(A, B)
        m(EMPTY, A)
        assert math.isinf(m.aggregate().item())


class TestHausdorff:
    def test_matches_monai_on_non_empty(self):
        torch.manual_seed(0)
        y_pred = (torch.rand(3, 2, 24, 24) > 0.7).float()
        y = (torch.rand(3, 2, 24, 24) > 0.6).float()
        ours = HausdorffDistanceMetric(include_background=True)(y_pred, y)
        monai = MonaiHausdorff(include_background=True)(y_pred, y)
        torch.testing.assert_close(ours, monai)
        assert compute_hausdorff_distance(A, B).item() == 1.0

    def test_percentile_and_directed(self):
        assert compute_hausdorff_distance(A, B, percentile=50).item() == pytest.approx(0.5)
        assert compute_hausdorff_distance(A, B, directed=True).item() == 1.0

    @pytest.mark.parametrize("pred, gt, expected", [(EMPTY, EMPTY, 0.0), (A, EMPTY, math.inf), (EMPTY, A, math.inf)])
    def test_empty_cases(self, pred, gt, expected):
        assert compute_hausdorff_distance(pred, gt).item() == expected
        # MONAI itself gives NaN when both are empty: the mean then silently drops that image
        if expected == 0.0:
            with pytest.warns(UserWarning):
                assert math.isnan(MonaiHausdorff(include_background=True)(pred, gt).item())

    def test_metric_class_no_monai_warnings(self, recwarn):
        m = HausdorffDistanceMetric()
        m(onehot(A), onehot(EMPTY))
        assert math.isinf(m.aggregate().item())
        assert not [w for w in recwarn if "nan/inf" in str(w.message) or "deprecated" in str(w.message)]


class TestDiceJaccardEmptyPolicy:
    """The bundles use MONAI's Dice and IoU with ignore_empty=False: check the documented table."""

    @pytest.mark.parametrize("pred, gt, expected", [(EMPTY, EMPTY, 1.0), (A, EMPTY, 0.0), (EMPTY, A, 0.0)])
    def test_monai_dice_and_iou(self, pred, gt, expected):
        assert DiceMetric(include_background=False, ignore_empty=False)(onehot(pred), onehot(gt)).item() == expected
        assert MeanIoU(include_background=False, ignore_empty=False)(onehot(pred), onehot(gt)).item() == expected


class TestBadInputs:
    @pytest.mark.parametrize("fn", [compute_bf_score, compute_chamfer_distance, compute_hausdorff_distance])
    def test_shape_mismatch(self, fn):
        with pytest.raises(ValueError, match="same shape"):
            fn(A, torch.zeros(1, 1, 10, 11))

    @pytest.mark.parametrize("fn", [compute_bf_score, compute_chamfer_distance, compute_hausdorff_distance])
    def test_not_binary(self, fn):
        with pytest.raises(ValueError, match="binarised"):
            fn(A * 0.7, A)
        with pytest.raises(ValueError, match="binarised"):
            fn(A, A * 255)

    @pytest.mark.parametrize("fn", [compute_bf_score, compute_chamfer_distance, compute_hausdorff_distance])
    def test_nan(self, fn):
        bad = A.clone()
        bad[0, 0, 0, 0] = float("nan")
        with pytest.raises(ValueError, match="NaN"):
            fn(bad, A)

    def test_wrong_dims(self):
        with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
            compute_bf_score(A[0], A[0])

    @pytest.mark.parametrize("tol", [0.0, -1.0, float("nan")])
    def test_bad_tolerance(self, tol):
        with pytest.raises(ValueError, match="tolerance"):
            compute_bf_score(A, B, tolerance=tol)
        with pytest.raises(ValueError, match="tolerance"):
            BoundaryFScoreMetric(tolerance=tol)

    def test_numpy_and_list_inputs(self):
        assert compute_bf_score(A.numpy(), B.numpy(), 1.0).item() == 0.5
        assert compute_chamfer_distance([A[0], A[0]], [B[0], B[0]]).shape == (2, 1)
