"""Boundary metrics: hand-computed values, MONAI agreement, the one-pass combined metrics against
the separate ones and an independent per-mask reference, every empty-mask case, the cache."""

import math
import warnings

import numpy as np
import pytest
import torch
from monai.metrics import DiceMetric, MeanIoU, compute_average_surface_distance
from monai.metrics import HausdorffDistanceMetric as MonaiHausdorff
from monai.metrics import compute_hausdorff_distance as monai_hausdorff
from monai.metrics.utils import get_mask_edges, get_surface_distance
from scipy import ndimage

import monai_gamble.metrics.boundary as boundary_module
from monai_gamble.metrics import (
    BoundaryDistanceCache,
    BoundaryFScoreMetric,
    BoundaryMetric,
    ChamferDistanceMetric,
    HausdorffDistanceMetric,
    compute_bf_score,
    compute_boundary_distances,
    compute_boundary_metrics,
    compute_chamfer_distance,
    compute_hausdorff_distance,
    mask_boundary,
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

    def test_only_the_scored_channels_are_checked(self):
        soft_background = torch.cat([0.5 * torch.ones_like(A), A], dim=1)  # the background is not scored
        assert compute_bf_score(soft_background, onehot(B), 1.0, include_background=False).item() == 0.5
        with pytest.raises(ValueError, match="binarised"):
            compute_bf_score(soft_background, onehot(B), 1.0, include_background=True)
        with pytest.raises(ValueError, match="same shape"):  # shapes are checked before dropping the background
            compute_bf_score(onehot(A), torch.cat([onehot(A), A], dim=1), include_background=False)

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


# ---------------------------------------------------------------- one pass for all boundary metrics

ALL = ("bf", "chamfer", "hausdorff", "hausdorff95", "assd")


def random_masks(shape, seed, sigma=None, empty=()):
    """One-hot-like binary masks ``(B, C, *spatial)``: smooth random blobs (``sigma``) or noise;
    the (b, c) pairs in ``empty`` are emptied."""
    rng = np.random.default_rng(seed)
    field = rng.standard_normal(shape)
    if sigma is not None:
        field = ndimage.gaussian_filter(field, sigma=(0, 0, *[sigma] * (len(shape) - 2)))
    m = field > 0.3 * field.std()
    for b, c in empty:
        m[b, c] = False
    return torch.from_numpy(m.astype(np.float32))


def reference_distances(p, g, spacing=None):
    """The per-mask computation the package did before the one-pass version: MONAI's
    get_mask_edges and get_surface_distance for one (image, class)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ep, eg = get_mask_edges(p.bool(), g.bool(), crop=False)
    return get_surface_distance(ep, eg, spacing=spacing), get_surface_distance(eg, ep, spacing=spacing)


def reference_metrics(y_pred, y, tolerance, spacing=None):
    """All five metrics per (b, c) from reference_distances, with the documented empty values."""
    out = {k: torch.zeros(y.shape[:2]) for k in ALL}
    for b in range(y.shape[0]):
        for c in range(y.shape[1]):
            ep, eg = not y_pred[b, c].any(), not y[b, c].any()
            if ep or eg:
                both = ep and eg
                out["bf"][b, c] = 1.0 if both else 0.0
                for k in ALL[1:]:
                    out[k][b, c] = 0.0 if both else math.inf
                continue
            d1, d2 = reference_distances(y_pred[b, c], y[b, c], spacing)
            p, r = (d1 < tolerance).float().mean(), (d2 < tolerance).float().mean()
            out["bf"][b, c] = 0.0 if p + r == 0 else 2 * p * r / (p + r)
            out["chamfer"][b, c] = 0.5 * (d1.mean() + d2.mean())
            out["hausdorff"][b, c] = torch.maximum(d1.max(), d2.max())
            out["hausdorff95"][b, c] = torch.maximum(torch.quantile(d1, 0.95), torch.quantile(d2, 0.95))
            out["assd"][b, c] = torch.cat([d1, d2]).mean()
    return out


CASES = {
    "2d blobs": ((3, 3, 40, 36), 2.5, [(0, 1), (1, 2)]),
    "2d noise": ((2, 2, 24, 20), None, [(1, 0)]),
    "3d blobs": ((2, 2, 14, 12, 10), 1.5, [(0, 0)]),
    "3d noise": ((2, 3, 8, 9, 7), None, [(1, 1)]),
}


class TestMaskBoundary:
    @pytest.mark.parametrize("name", list(CASES))
    def test_equals_monai_get_mask_edges(self, name):
        shape, sigma, _ = CASES[name]
        m = random_masks(shape, seed=1, sigma=sigma).bool()
        m[0, 0] = True  # a full mask: its boundary is the image border
        edges = mask_boundary(m)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for b in range(shape[0]):
                for c in range(shape[1]):
                    expected, _ = get_mask_edges(m[b, c], m[b, c], crop=False)
                    assert torch.equal(edges[b, c], expected), (b, c)

    def test_hand_computed(self):
        m = torch.zeros(1, 1, 5, 5, dtype=torch.bool)
        m[0, 0, 1:4, 1:4] = True  # 3x3 square: all but the centre is boundary
        expected = m.clone()
        expected[0, 0, 2, 2] = False
        assert torch.equal(mask_boundary(m), expected)
        assert torch.equal(
            mask_boundary(torch.ones(1, 1, 1, 4, dtype=torch.bool)), torch.ones(1, 1, 1, 4, dtype=torch.bool)
        )

    def test_bad_input(self):
        with pytest.raises(ValueError, match="boolean"):
            mask_boundary(torch.ones(1, 1, 4, 4))


class TestCombinedMetrics:
    @pytest.mark.parametrize("name", list(CASES))
    def test_combined_equals_separate_exactly(self, name):
        shape, sigma, empty = CASES[name]
        y_pred = random_masks(shape, seed=2, sigma=sigma, empty=empty)
        y = random_masks(shape, seed=3, sigma=sigma, empty=empty[:1] + [(shape[0] - 1, shape[1] - 1)])
        for tol, include_background in ((None, True), (1.5, False)):
            out = compute_boundary_metrics(y_pred, y, tolerance=tol, include_background=include_background)
            assert list(out) == list(ALL)
            separate = {
                "bf": compute_bf_score(y_pred, y, tol, include_background=include_background),
                "chamfer": compute_chamfer_distance(y_pred, y, include_background=include_background),
                "hausdorff": compute_hausdorff_distance(y_pred, y, include_background),
                "hausdorff95": compute_hausdorff_distance(y_pred, y, include_background, percentile=95),
                "assd": compute_boundary_metrics(y_pred, y, "assd", include_background=include_background)["assd"],
            }
            for k in ALL:
                assert out[k].shape == (shape[0], shape[1] - (not include_background))
                assert out[k].dtype == torch.float32
                assert torch.equal(out[k], separate[k]), k

    @pytest.mark.parametrize("name", list(CASES))
    def test_equals_independent_reference_and_monai(self, name):
        shape, sigma, empty = CASES[name]
        y_pred = random_masks(shape, seed=4, sigma=sigma, empty=empty)
        y = random_masks(shape, seed=5, sigma=sigma)
        tol = 2.0
        out = compute_boundary_metrics(y_pred, y, tolerance=tol)
        ref = reference_metrics(y_pred, y, tol)
        for k in ALL:
            assert torch.equal(out[k], ref[k]), k
        # MONAI's own functions on the pairs where both masks are non-empty (elsewhere MONAI gives NaN / inf)
        both = ~((y_pred.flatten(2).sum(-1) == 0) | (y.flatten(2).sum(-1) == 0))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            hd = monai_hausdorff(y_pred, y, include_background=True)
            hd95 = monai_hausdorff(y_pred, y, include_background=True, percentile=95)
            assd = compute_average_surface_distance(y_pred, y, include_background=True, symmetric=True)
        assert torch.equal(out["hausdorff"][both], hd[both])
        assert torch.equal(out["hausdorff95"][both], hd95[both])
        assert torch.equal(out["assd"][both], assd[both])

    def test_spacing_matches_reference(self):
        y_pred = random_masks((2, 2, 20, 24), seed=6, sigma=2.0)
        y = random_masks((2, 2, 20, 24), seed=7, sigma=2.0)
        out = compute_boundary_metrics(y_pred, y, tolerance=2.5, spacing=(0.5, 2.0))
        ref = reference_metrics(y_pred, y, 2.5, spacing=(0.5, 2.0))
        for k in ALL:
            assert torch.equal(out[k], ref[k]), k

    @pytest.mark.parametrize("spacing", [0.0, -1.0, (1.0, 0.0), (float("nan"), 1.0), float("inf")])
    def test_bad_spacing_is_a_clear_error(self, spacing):
        y = random_masks((1, 2, 12, 12), seed=1, sigma=2.0)
        with pytest.raises(ValueError, match="spacing must be finite and positive"):
            compute_boundary_metrics(y, y, spacing=spacing)
        with pytest.raises(ValueError, match="spacing must be finite and positive"):
            BoundaryDistanceCache()(y, y, spacing=spacing)

    @pytest.mark.parametrize(
        "pred, gt, expected",
        [
            (EMPTY, EMPTY, {"bf": 1.0, "chamfer": 0.0, "hausdorff": 0.0, "hausdorff95": 0.0, "assd": 0.0}),
            (
                A,
                EMPTY,
                {"bf": 0.0, "chamfer": math.inf, "hausdorff": math.inf, "hausdorff95": math.inf, "assd": math.inf},
            ),
            (
                EMPTY,
                A,
                {"bf": 0.0, "chamfer": math.inf, "hausdorff": math.inf, "hausdorff95": math.inf, "assd": math.inf},
            ),
            # shifted square: 12 boundary points each way, 6 at distance 0 and 6 at distance 1
            (A, B, {"bf": 0.5, "chamfer": 0.5, "hausdorff": 1.0, "hausdorff95": 1.0, "assd": 0.5}),
        ],
    )
    def test_empty_cases_and_hand_computed(self, pred, gt, expected):
        out = compute_boundary_metrics(pred, gt, tolerance=1.0)
        assert {k: v.item() for k, v in out.items()} == expected
        # and the separate functions agree
        assert compute_bf_score(pred, gt, tolerance=1.0).item() == expected["bf"]
        assert compute_chamfer_distance(pred, gt).item() == expected["chamfer"]
        assert compute_hausdorff_distance(pred, gt).item() == expected["hausdorff"]
        assert compute_hausdorff_distance(pred, gt, percentile=95).item() == expected["hausdorff95"]

    def test_assd_pools_the_two_sets(self):
        # small square inside a big one: ASSD weights the big boundary's 36 points, Chamfer does not
        big = square(size=12, rows=(1, 11), cols=(1, 11))
        small = square(size=12, rows=(5, 7), cols=(5, 7))
        d1, d2 = reference_distances(small[0, 0], big[0, 0])
        out = compute_boundary_metrics(small, big, ("assd", "chamfer"))
        assert out["assd"].item() == pytest.approx((d1.sum() + d2.sum()).item() / (len(d1) + len(d2)))
        assert out["chamfer"].item() == pytest.approx(0.5 * (d1.mean() + d2.mean()).item())

    def test_mixed_empty_batch(self):
        y_pred = torch.cat([onehot(A), onehot(EMPTY), onehot(A), onehot(EMPTY)])
        y = torch.cat([onehot(B), onehot(EMPTY), onehot(EMPTY), onehot(A)])
        out = compute_boundary_metrics(y_pred, y, tolerance=1.0, include_background=False)
        assert out["bf"][:, 0].tolist() == [0.5, 1.0, 0.0, 0.0]
        assert out["hausdorff"][:, 0].tolist() == [1.0, 0.0, math.inf, math.inf]

    def test_list_of_items_of_different_sizes(self):
        small_p, small_g = random_masks((1, 2, 16, 16), 8, 2.0), random_masks((1, 2, 16, 16), 9, 2.0)
        big_p, big_g = random_masks((1, 2, 30, 22), 10, 2.0), random_masks((1, 2, 30, 22), 11, 2.0)
        out = compute_boundary_metrics([small_p[0], big_p[0]], [small_g[0], big_g[0]])
        for k in ALL:
            expected = torch.cat(
                [compute_boundary_metrics(small_p, small_g, k)[k], compute_boundary_metrics(big_p, big_g, k)[k]]
            )
            assert torch.equal(out[k], expected), k  # incl. the default BF tolerance of each size

    def test_distances_object(self):
        d = compute_boundary_distances(onehot(A), onehot(B), include_background=False)
        assert d.shape == (1, 1)
        assert torch.equal(d.pred_to_gt[0][0].sort().values, torch.tensor([0.0] * 6 + [1.0] * 6))
        assert d.hausdorff(percentile=0).item() == 0.0 and d.hausdorff(directed=True).item() == 1.0
        assert compute_boundary_distances(onehot(EMPTY), onehot(A)).pred_to_gt[0][1] is None

    @pytest.mark.parametrize(
        "kwargs, match",
        [
            ({"metrics": ("bf", "dice")}, "Unsupported option 'dice'"),
            ({"metrics": ()}, "at least one of"),
            ({"tolerance": 0.0}, "tolerance must be a positive"),
        ],
    )
    def test_bad_options(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            compute_boundary_metrics(A, B, **kwargs)

    def test_bad_percentile_and_distance_metric(self):
        with pytest.raises(ValueError, match=r"percentile must lie in \[0, 100\]"):
            compute_hausdorff_distance(A, B, percentile=120)
        with pytest.raises(ValueError, match=r"percentile must lie in \[0, 100\]"):
            HausdorffDistanceMetric(percentile=-1)
        with pytest.raises(ValueError, match="Unsupported option 'manhattan'"):
            compute_hausdorff_distance(A, B, distance_metric="manhattan")

    def test_enum_lists_the_five(self):
        assert [m.value for m in BoundaryMetric] == list(ALL)


class TestHausdorffIgnoreIndex:
    def test_empty_rule_with_ignore_index(self):
        # 3 classes; class 2 ignored; class 1 empty in both -> 0 (MONAI: NaN), class 2 -> NaN (not scored)
        y = torch.zeros(1, 3, 10, 10)
        y[0, 0] = 1
        y[0, 0, 2:6, 2:6] = 0
        y[0, 2, 2:6, 2:6] = 1
        ours = HausdorffDistanceMetric(include_background=False, ignore_index=2)(y, y)
        assert ours[0, 0].item() == 0.0 and math.isnan(ours[0, 1].item())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            monai = MonaiHausdorff(include_background=False, ignore_index=2)(y, y)
        assert math.isnan(monai[0, 0].item()) and math.isnan(monai[0, 1].item())

    def test_one_empty_and_non_empty_match_monai(self):
        torch.manual_seed(0)
        y_pred = (torch.rand(2, 3, 16, 16) > 0.6).float()
        y = (torch.rand(2, 3, 16, 16) > 0.5).float()
        y_pred[1, 1] = 0  # prediction of class 1 empty in image 1: inf
        ours = HausdorffDistanceMetric(include_background=True, ignore_index=0)(y_pred, y)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            monai = MonaiHausdorff(include_background=True, ignore_index=0)(y_pred, y)
        assert torch.isnan(ours[:, 0]).all() and torch.isnan(monai[:, 0]).all()
        assert math.isinf(ours[1, 1].item()) and math.isinf(monai[1, 1].item())
        assert torch.equal(ours[:, 1:], monai[:, 1:])
        # decollated lists give the same
        listed = HausdorffDistanceMetric(include_background=True, ignore_index=0)(list(y_pred), list(y))
        assert torch.equal(listed.nan_to_num(-1), ours.nan_to_num(-1))


class TestCache:
    def test_metrics_sharing_a_cache_compute_once(self):
        y_pred, y = random_masks((3, 2, 20, 20), 12, 2.0), random_masks((3, 2, 20, 20), 13, 2.0)
        cache = BoundaryDistanceCache()
        metrics = [
            BoundaryFScoreMetric(tolerance=1.5, cache=cache),
            ChamferDistanceMetric(cache=cache),
            HausdorffDistanceMetric(cache=cache),
            HausdorffDistanceMetric(percentile=95, cache=cache),
        ]
        values = [m(list(y_pred), list(y)) for m in metrics]  # a decollated batch
        assert (cache.misses, cache.hits) == (3, 9)  # per image: computed once, then found three times
        out = compute_boundary_metrics(y_pred, y, ("bf", "chamfer", "hausdorff", "hausdorff95"), 1.5, None, False)
        for v, k in zip(values, out, strict=True):
            assert torch.equal(v, out[k]), k
        # the batch tensor holds the same images: found again
        assert torch.equal(metrics[1](y_pred, y), out["chamfer"]) and cache.misses == 3
        # another batch misses; the same tensors changed in place miss too
        y_pred2 = y_pred.clone()
        metrics[0](y_pred2, y)
        assert cache.misses == 6
        y_pred2[0, 1] = 0  # the version counter of the tensor (and of its views) moves
        assert torch.equal(metrics[1](y_pred2, y), compute_chamfer_distance(y_pred2, y, include_background=False))
        assert cache.misses == 9

    def test_one_image_at_a_time(self):
        """As Ignite 0.5 feeds a metric handler a decollated batch: each image alone, as a batch of one
        (a view of the engine's tensor), handler after handler."""
        y_pred, y = random_masks((4, 2, 16, 16), 14, 2.0), random_masks((4, 2, 16, 16), 15, 2.0)
        items_pred, items_y = list(y_pred), list(y)
        cache = BoundaryDistanceCache()
        metrics = [
            BoundaryFScoreMetric(cache=cache),
            ChamferDistanceMetric(cache=cache),
            HausdorffDistanceMetric(cache=cache),
        ]
        for m in metrics:
            for p, g in zip(items_pred, items_y, strict=True):
                m(p.unsqueeze(0), g.unsqueeze(0))
        assert (cache.misses, cache.hits) == (4, 8)
        assert torch.equal(metrics[2].get_buffer(), compute_hausdorff_distance(y_pred, y, include_background=False))

    def test_arguments_are_part_of_the_key(self):
        cache = BoundaryDistanceCache()
        cache(A, B)
        cache(A, B, spacing=2.0)
        cache(A, B, include_background=False)
        assert (cache.misses, cache.hits, len(cache)) == (3, 0, 3)
        assert torch.equal(cache(A, B, spacing=2.0).chamfer(), compute_chamfer_distance(A, B, spacing=2.0))
        assert cache.hits == 1
        cache.clear()
        assert len(cache) == 0
        cache(A.numpy(), B.numpy())
        cache(A.numpy(), B.numpy())  # NumPy arrays are not cached
        assert cache.misses == 5 and len(cache) == 0

    def test_released_images_are_dropped_and_the_size_is_bounded(self):
        cache = BoundaryDistanceCache(max_items=3)
        for seed in range(5):
            cache(random_masks((1, 1, 12, 12), seed, 2.0), random_masks((1, 1, 12, 12), seed + 10, 2.0))
        assert len(cache) <= 1  # each pair was released before the next call
        keep = [(random_masks((1, 1, 12, 12), s, 2.0), random_masks((1, 1, 12, 12), s + 10, 2.0)) for s in range(5)]
        for p, g in keep:
            cache(p, g)
        assert len(cache) == 3  # the oldest went first
        cache(*keep[-1])
        assert cache.hits == 1
        with pytest.raises(ValueError, match="max_items must be at least 1"):
            BoundaryDistanceCache(max_items=0)

    def test_compute_boundary_distances_called_once(self, monkeypatch):
        calls = []
        real = boundary_module.compute_boundary_distances

        def counting(*args, **kwargs):
            calls.append(1)
            return real(*args, **kwargs)

        monkeypatch.setattr(boundary_module, "compute_boundary_distances", counting)
        cache = BoundaryDistanceCache()
        p, g = list(torch.cat([onehot(A), onehot(B)])), list(torch.cat([onehot(B), onehot(B)]))
        BoundaryFScoreMetric(cache=cache)(p, g)
        ChamferDistanceMetric(cache=cache)(p, g)
        HausdorffDistanceMetric(cache=cache)(p, g)
        assert len(calls) == 1  # both images in one call
