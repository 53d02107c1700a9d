"""The synthetic thyroid ultrasound generator: seeded bytes, DDTI geometry, anatomy, echogenicity mix."""

import json

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from monai_gamble.data import make_thyroid_ultrasound, read_csv_rows, thyroid_ultrasound_sample
from monai_gamble.data.synthetic import ThyroidScanLayout

DDTI_WIDTHS = {560, 280, 315, 245}


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return make_thyroid_ultrasound(tmp_path_factory.mktemp("tn") / "ds", num_images=12, seed=3, label_noise=0.05)


@pytest.fixture(scope="module")
def samples():
    """36 samples (image, mask, structures): whole scans and half-scan crops."""
    out = []
    for i in range(36):
        rng = np.random.default_rng([11, i])
        width = int(rng.choice([560, 280]))
        out.append(thyroid_ultrasound_sample(rng, 360, width, bool(i % 5 < 2), 0.05, return_structures=True))
    return out


def nodule_to_surround_ratio(image: np.ndarray, mask: np.ndarray) -> float:
    """Mean grey level inside the mask over that of a ring 3-15 px outside it (the measure used on DDTI)."""
    m = mask > 0
    ring = ndimage.binary_dilation(m, iterations=15) & ~ndimage.binary_dilation(m, iterations=3) & (image > 0)
    return float(image[m].mean() / image[ring].mean())


def window_box(structures: dict) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(structures["window"])
    return ys.min(), ys.max() + 1, xs.min(), xs.max() + 1


class TestGenerator:
    def test_layout_sizes_values(self, synthetic):
        images = sorted((synthetic / "image").glob("*.PNG"))
        assert len(images) == 12
        rows = read_csv_rows(synthetic / "train.csv")
        assert [r["ID"] for r in rows] == [str(i) for i in range(1, 13)]
        assert {r["category"] for r in rows} == {"0", "1"}
        widths = set()
        for p in images:
            im, m = Image.open(p), Image.open(synthetic / "mask" / p.name)
            assert im.mode == "L" and m.mode == "L" and im.size == m.size
            assert im.size[1] == 360 and im.size[0] in DDTI_WIDTHS  # DDTI's geometry
            widths.add(im.size[0])
            mask = np.asarray(m)
            assert set(np.unique(mask)) <= {0, 255} and mask.any()
        assert {560, 280} <= widths  # whole scans and half-scan crops

    def test_size_range_draws_height_and_width(self, tmp_path):
        root = make_thyroid_ultrasound(tmp_path / "d", num_images=6, seed=0, size_range=(200, 240))
        sizes = {Image.open(p).size for p in (root / "image").glob("*.PNG")}
        assert all(200 <= w <= 240 and 200 <= h <= 240 for w, h in sizes) and len(sizes) > 3
        assert json.loads((root / "synthetic.json").read_text())["size_range"] == [200, 240]

    def test_same_seed_same_bytes_other_seed_other_bytes(self, tmp_path, synthetic, digest):
        again = make_thyroid_ultrasound(tmp_path / "again", num_images=12, seed=3, label_noise=0.05, num_workers=1)
        assert digest(again) == digest(synthetic)  # and the number of worker processes does not matter
        other = make_thyroid_ultrasound(tmp_path / "other", num_images=3, seed=4, label_noise=0.05)
        for name in ("1.PNG", "2.PNG", "3.PNG"):
            assert (other / "image" / name).read_bytes() != (synthetic / "image" / name).read_bytes()

    def test_first_images_do_not_depend_on_num_images(self, tmp_path, synthetic):
        small = make_thyroid_ultrasound(tmp_path / "small", num_images=3, seed=3, label_noise=0.05)
        for name in ("1.PNG", "2.PNG", "3.PNG"):
            assert (small / "image" / name).read_bytes() == (synthetic / "image" / name).read_bytes()

    def test_label_noise_moves_the_boundary_not_the_image(self):
        def draw(noise):
            rng = np.random.default_rng([0, 7])
            return thyroid_ultrasound_sample(rng, 320, 320, malignant=False, label_noise=noise)

        (im0, m0), (im1, m1) = draw(0.0), draw(0.15)
        assert np.array_equal(im0, im1)
        a, b = m0 > 0, m1 > 0
        dice = 2 * (a & b).sum() / (a.sum() + b.sum())
        assert 0.7 < dice < 0.995

    def test_reuse_and_conflicts(self, tmp_path, digest):
        root = make_thyroid_ultrasound(tmp_path / "d", num_images=2, seed=0)
        before = digest(root)
        assert make_thyroid_ultrasound(root, num_images=2, seed=0) == root  # reused, untouched
        assert digest(root) == before
        with pytest.raises(FileExistsError, match="other parameters"):
            make_thyroid_ultrasound(root, num_images=3, seed=0)
        make_thyroid_ultrasound(root, num_images=3, seed=0, overwrite=True)
        assert len(list((root / "image").iterdir())) == 3
        foreign = tmp_path / "foreign"
        foreign.mkdir()
        with pytest.raises(FileExistsError, match="not written by this generator"):
            make_thyroid_ultrasound(foreign, num_images=2)

    def test_dataset_of_an_older_version_is_not_reused(self, tmp_path):
        root = make_thyroid_ultrasound(tmp_path / "d", num_images=2, seed=0)
        params = json.loads((root / "synthetic.json").read_text())
        old = {k: v for k, v in params.items() if k != "version"}  # version 1 wrote no version
        old["size_range"] = [300, 560]
        (root / "synthetic.json").write_text(json.dumps(old))
        with pytest.raises(FileExistsError, match="version 1 of make_thyroid_ultrasound.*overwrite=True"):
            make_thyroid_ultrasound(root, num_images=2, seed=0)
        make_thyroid_ultrasound(root, num_images=2, seed=0, overwrite=True)
        assert json.loads((root / "synthetic.json").read_text()) == params

    @pytest.mark.parametrize(
        "kwargs, match",
        [
            ({"num_images": 0}, "num_images"),
            ({"size_range": (400, 300)}, "size_range"),
            ({"size_range": (10, 20)}, "size_range"),
            ({"label_noise": -0.1}, "label_noise"),
            ({"label_noise": float("nan")}, "label_noise"),
            ({"malignant_fraction": 1.5}, "malignant_fraction"),
        ],
    )
    def test_bad_arguments(self, tmp_path, kwargs, match):
        with pytest.raises(ValueError, match=match):
            make_thyroid_ultrasound(tmp_path / "x", **{"num_images": 2, **kwargs})
        assert not (tmp_path / "x").exists()

    def test_bad_layout(self):
        with pytest.raises(ValueError, match="middle"):
            thyroid_ultrasound_sample(np.random.default_rng(0), 360, 560, False, layout="middle")


class TestScreenGeometry:
    @pytest.mark.parametrize(
        "layout, width", [("whole", 560), ("left", 280), ("left", 315), ("right", 280), ("right", 245)]
    )
    def test_window_and_margins(self, layout, width):
        rng = np.random.default_rng([2, width])
        image, mask, st = thyroid_ultrasound_sample(rng, 360, width, True, layout=layout, return_structures=True)
        top, bottom, left, right = window_box(st)
        assert image.shape == mask.shape == (360, width)
        assert top < 80 and 300 <= bottom <= 340  # DDTI: rows 5-11 to 306-336
        if layout == "whole":
            assert 0.14 * width < left < 0.32 * width and 0.72 * width < right < 0.86 * width  # black margins
        elif layout == "left":
            assert right == width and 30 <= left <= 40  # runs to the cut
        else:
            assert left == 0 and right >= 240  # starts at the cut
        assert (mask[~st["window"]] == 0).all()  # the annotation stays in the window
        outside = ~st["window"] & ~st["overlay"]
        assert (image[outside] == 0).all()  # black screen around the window and the graphics
        if left == 0 and right == width:  # a 245 px right half: the window fills the crop's width
            assert st["overlay"].sum() > 20  # its depth dots
        else:
            assert st["overlay"][~st["window"]].sum() > 100  # text, scales and marks on the screen
        assert ThyroidScanLayout(layout) == layout

    def test_nodule_size_and_place_follow_ddti(self, samples):
        """DDTI (517 images): nodule centre at 0.39 of the window's height, 0.54 of its width, bounding
        height 0.34 of the window's (10th-90th percentiles 0.18-0.54), wider than tall (median 1.3)."""
        cy, cx, rh, aspect = [], [], [], []
        for _, mask, st in samples:
            top, bottom, left, right = window_box(st)
            ys, xs = np.nonzero(mask)
            cy.append((ys.mean() - top) / (bottom - top))
            cx.append((xs.mean() - left) / (right - left))
            rh.append((ys.max() - ys.min() + 1) / (bottom - top))
            aspect.append((xs.max() - xs.min() + 1) / (ys.max() - ys.min() + 1))
        assert 0.33 < np.mean(cy) < 0.47 and 0.48 < np.mean(cx) < 0.6
        assert 0.25 < np.median(rh) < 0.42 and np.percentile(rh, 90) < 0.75
        assert 1.05 < np.median(aspect) < 1.6

    def test_matches_real_ddti_geometry(self, realdata):
        root = realdata / "ultrasound_thyroid_ddti_tnscui"
        real = {Image.open(p).size for p in (root / "image").glob("*.PNG")}
        assert {h for _, h in real} == {360} and {w for w, _ in real} <= DDTI_WIDTHS


class TestAnatomy:
    def test_structures_present_in_most_images(self, samples):
        names = ("window", "nodule", "gland", "vessel", "trachea", "muscle", "gland_cyst", "calcification", "overlay")
        share = {k: np.mean([st[k].any() for _, _, st in samples]) for k in names}
        assert share["window"] == share["nodule"] == share["gland"] == share["overlay"] == share["muscle"] == 1
        assert share["vessel"] >= 0.5 and share["trachea"] >= 0.2 and share["gland_cyst"] >= 0.2
        assert share["calcification"] >= 0.1
        confounded = np.mean([(st["vessel"] | st["trachea"] | st["gland_cyst"]).any() for _, _, st in samples])
        assert confounded >= 0.8  # a confounder in most images

    def test_nodule_never_on_a_vessel_or_the_trachea(self, samples):
        for _, mask, st in samples:
            assert not (mask > 0)[st["vessel"] | st["trachea"]].any()
            assert not st["nodule"][st["vessel"] | st["trachea"] | st["gland_cyst"]].any()
            overlap = (mask > 0) & st["nodule"]
            assert overlap.sum() > 0.8 * st["nodule"].sum()  # the annotation is the nodule

    def test_vessels_are_anechoic(self, samples):
        lumen = [st["vessel"] & ~ndimage.binary_dilation(st["overlay"], iterations=2) for _, _, st in samples]
        ratios = [
            img[v].mean() / img[st["gland"]].mean()
            for (img, _, st), v in zip(samples, lumen, strict=True)
            if v.sum() > 50
        ]
        assert len(ratios) > 10 and np.median(ratios) < 0.5


class TestEchogenicity:
    def test_grades_mix(self, samples):
        grades = np.array([int(st["grade"]) for _, _, st in samples])
        hypo, iso_or_hyper = np.mean(grades <= 1), np.mean(grades >= 2)
        assert 0.3 <= hypo <= 0.8 and iso_or_hyper >= 0.2 and (grades == 3).any()

    def test_measured_ratio_mix_like_ddti(self, samples):
        """DDTI's nodule/surround grey-level ratio: median 0.84, 14% below 0.7, 16% above 1.0."""
        ratios = np.array([nodule_to_surround_ratio(img.astype(float), m) for img, m, _ in samples])
        assert 0.75 < np.median(ratios) < 1.0
        assert np.mean(ratios < 0.7) >= 0.05 and np.mean(ratios > 1.0) >= 0.1  # hypo- and hyperechoic ones

    def test_grade_orders_the_grey_level(self, samples):
        by_grade = {}
        for img, m, st in samples:
            by_grade.setdefault(int(st["grade"]), []).append(nodule_to_surround_ratio(img.astype(float), m))
        medians = [np.median(by_grade[g]) for g in sorted(by_grade)]
        assert medians == sorted(medians)  # markedly hypo < hypo < iso < hyper
