"""The pathology workflow's data: the synthetic H&E generator and pathology_datalist on synthetic and real tiles."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from monai_gamble.data import (
    PATHOLOGY_CLASSES,
    PathologyLayout,
    make_pathology_tiles,
    pathology_datalist,
    pathology_tile_sample,
)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return make_pathology_tiles(tmp_path_factory.mktemp("patho") / "ds", 20, 6, seed=1, tile_size=96, num_workers=1)


@pytest.fixture(scope="module")
def samples():
    return [pathology_tile_sample(np.random.default_rng([0, 0, i])) for i in range(12)]


class TestGenerator:
    def test_layout_modes_and_values(self, synthetic):
        images = sorted((synthetic / "training" / "images").glob("*.jpg"))
        masks = sorted((synthetic / "training" / "masks").glob("*.png"))
        unlabelled = sorted((synthetic / "unlabelled").glob("*.jpg"))
        assert [p.stem for p in images] == [p.stem for p in masks] == [f"{i:04d}" for i in range(1, 21)]
        assert [p.stem for p in unlabelled] == [f"u{i:04d}" for i in range(1, 7)]
        for p in images[:5] + unlabelled[:2]:
            with Image.open(p) as im:
                assert im.mode == "RGB" and im.size == (96, 96)
        for p in masks:
            with Image.open(p) as m:
                assert m.mode == "L" and m.size == (96, 96)
                assert set(np.unique(np.asarray(m))) <= {0, 1, 2, 3}
        assert json.loads((synthetic / "synthetic.json").read_text())["num_unlabelled"] == 6

    def test_class_imbalance_and_anatomy(self, samples):
        counts = np.array([np.bincount(m.ravel(), minlength=4) for _, m in samples])
        frac = counts.sum(0) / counts.sum()
        assert frac[0] > 0.7 and 0.05 < frac[1] < 0.3  # mostly background, glomeruli a minority
        assert 0.003 < frac[2] < 0.05 and 0.003 < frac[3] < 0.05  # podocytes: a few percent at most
        for image, mask in samples:
            if not (mask == 2).any():
                continue
            glom = mask > 0
            # podocytes lie on the rim of a glomerulus, the other nuclei inside it
            depth = ndimage.distance_transform_edt(glom)
            assert np.median(depth[mask == 2]) < np.median(depth[mask == 3])
            # hematoxylin makes nuclei dark; podocytes darker than the other glomerular nuclei
            grey = image.astype(float).mean(-1)
            assert grey[mask == 2].mean() < grey[mask == 3].mean() < grey[mask == 1].mean()

    def test_stain_and_scale_vary_between_tiles(self, samples):
        colours = np.array([image[mask == 1].mean(0) for image, mask in samples if (mask == 1).any()])
        assert colours.std(0).max() > 5  # the eosin/hematoxylin colours differ from tile to tile
        nuclei = [np.sqrt((mask == 2).sum() / max(ndimage.label(mask == 2)[1], 1)) for _, mask in samples]
        assert np.ptp([n for n in nuclei if n > 0]) > 0.5

    def test_seeded_reused_and_nested(self, synthetic, tmp_path, digest):
        again = make_pathology_tiles(synthetic, 20, 6, seed=1, tile_size=96)  # reused, not rewritten
        assert again == synthetic
        small = make_pathology_tiles(tmp_path / "small", 3, 1, seed=1, tile_size=96, num_workers=1)
        for rel in ("training/images/0003.jpg", "training/masks/0002.png", "unlabelled/u0001.jpg"):
            assert (small / rel).read_bytes() == (synthetic / rel).read_bytes()
        other = make_pathology_tiles(tmp_path / "other", 3, 0, seed=2, tile_size=96, image_format="png")
        assert not (other / "unlabelled").exists() and (other / "training/images/0001.png").is_file()
        assert digest(small) != digest(other)
        with pytest.raises(FileExistsError, match="other parameters"):
            make_pathology_tiles(small, 4, 1, seed=1, tile_size=96)

    @pytest.mark.parametrize(
        "kwargs, match",
        [
            ({"num_labelled": 0}, "num_labelled must be at least 1"),
            ({"num_unlabelled": -1}, "num_unlabelled must be non-negative"),
            ({"tile_size": 16}, "tile_size must be at least 32"),
            ({"image_format": "bmp"}, "image_format must be 'jpg' or 'png'"),
        ],
    )
    def test_bad_arguments(self, tmp_path, kwargs, match):
        with pytest.raises(ValueError, match=match):
            make_pathology_tiles(tmp_path / "x", **kwargs)


class TestDatalist:
    def test_split_unlabelled_and_classes(self, synthetic):
        d = pathology_datalist(synthetic, seed=0)
        assert [len(d[k]) for k in ("training", "validation", "test", "unlabeled")] == [16, 2, 2, 6]
        assert d["labels"] == {str(i): n for i, n in enumerate(PATHOLOGY_CLASSES)}
        ids = [it["id"] for k in ("training", "validation", "test") for it in d[k]]
        assert sorted(ids) == [f"{i:04d}" for i in range(1, 21)]
        assert all(set(it) == {"image", "id"} for it in d["unlabeled"])
        assert pathology_datalist(synthetic, seed=0) == d and pathology_datalist(synthetic, seed=1) != d

    def test_labeled_fraction_moves_nested_subsets_to_unlabelled(self, synthetic):
        full = pathology_datalist(synthetic)
        quarter = pathology_datalist(synthetic, labeled_fraction=0.25)
        tenth = pathology_datalist(synthetic, labeled_fraction=0.1)
        assert len(quarter["training"]) == 4 and len(tenth["training"]) == 2
        assert {it["id"] for it in tenth["training"]} <= {it["id"] for it in quarter["training"]}
        assert len(quarter["unlabeled"]) == 12 + 6 and "label" not in quarter["unlabeled"][0]
        moved = {it["id"] for it in quarter["unlabeled"]} - {it["id"] for it in full["unlabeled"]}
        assert moved == {it["id"] for it in full["training"]} - {it["id"] for it in quarter["training"]}
        assert quarter["validation"] == full["validation"] and quarter["test"] == full["test"]

    def test_real_glomeruli_tiles_binary(self, realdata):
        root = realdata / "pathology_glomeruli_sarder_frozen"
        d = pathology_datalist(root)
        assert [len(d[k]) for k in ("training", "validation", "test", "unlabeled")] == [16, 2, 2, 0]
        assert d["labels"] == {"0": "background", "1": "glomerulus"}
        item = d["training"][0]
        assert (
            Path(item["image"]).name == f"slide_{item['id']}.png"
            and Path(item["label"]).name == f"mask_{item['id']}.png"
        )
        assert pathology_datalist(root, layout="sarder_frozen") == d
        assert len(pathology_datalist(root, labeled_fraction=0.25)["unlabeled"]) == 12

    def test_real_monusac_multiclass(self, realdata):
        d = pathology_datalist(realdata / "pathology_monusac_sample", layout=PathologyLayout.MONUSAC)
        assert len(d["labels"]) == 5 and d["labels"]["4"] == "macrophage"
        assert sum(len(d[k]) for k in ("training", "validation", "test")) == 3
        with pytest.raises(ValueError, match=r"outside 0-3 \(0 background, 1 glomeruli"):
            pathology_datalist(realdata / "pathology_monusac_sample", layout="monusac", classes=PATHOLOGY_CLASSES)


def _copy(synthetic: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(synthetic, dst)
    return dst


class TestBadInputs:
    def test_mask_values_outside_the_classes(self, synthetic, tmp_path):
        root = _copy(synthetic, tmp_path)
        mask = np.asarray(Image.open(root / "training/masks/0005.png")).copy()
        mask[0, 0] = 4
        Image.fromarray(mask).save(root / "training/masks/0005.png")
        with pytest.raises(ValueError, match=r"0005.png holds values \[.*4\] outside 0-3"):
            pathology_datalist(root)
        pathology_datalist(root, check_masks=False)  # values are not read then

    def test_tile_that_is_not_rgb(self, synthetic, tmp_path):
        root = _copy(synthetic, tmp_path)
        Image.open(root / "training/images/0003.jpg").convert("L").save(root / "training/images/0003.jpg")
        with pytest.raises(ValueError, match=r"0003.jpg is a 'L' image; pathology tiles must be RGB"):
            pathology_datalist(root)
        root2 = _copy(synthetic, tmp_path / "b")
        Image.open(root2 / "unlabelled/u0002.jpg").convert("CMYK").save(root2 / "unlabelled/u0002.jpg")
        with pytest.raises(ValueError, match=r"u0002.jpg is a 'CMYK' image"):
            pathology_datalist(root2)

    def test_empty_unlabelled_folder(self, synthetic, tmp_path):
        root = _copy(synthetic, tmp_path)
        for p in (root / "unlabelled").iterdir():
            p.unlink()
        with pytest.raises(ValueError, match="unlabelled folder .* holds no tiles"):
            pathology_datalist(root)
        (root / "unlabelled").rmdir()
        assert pathology_datalist(root)["unlabeled"] == []  # no folder: no unlabelled tiles

    def test_unpaired_and_mismatched_files(self, synthetic, tmp_path):
        root = _copy(synthetic, tmp_path)
        (root / "training/masks/0007.png").unlink()
        with pytest.raises(ValueError, match=r"1 tile\(s\) in .*images have no mask .*: 0007"):
            pathology_datalist(root)
        root = _copy(synthetic, tmp_path / "b")
        (root / "training/images/0008.jpg").unlink()
        with pytest.raises(ValueError, match=r"1 mask\(s\) in .*masks have no tile .*: 0008"):
            pathology_datalist(root)
        root = _copy(synthetic, tmp_path / "c")
        Image.new("L", (50, 96)).save(root / "training/masks/0009.png")
        with pytest.raises(ValueError, match=r"0009.png is 50x96 \(WxH\) but its tile 0009.jpg is 96x96"):
            pathology_datalist(root)

    def test_bad_root_layout_and_options(self, synthetic, tmp_path):
        with pytest.raises(FileNotFoundError, match="does not exist"):
            pathology_datalist(tmp_path / "nope")
        (tmp_path / "empty").mkdir()
        with pytest.raises(FileNotFoundError, match="holds none of the pathology layouts"):
            pathology_datalist(tmp_path / "empty")
        with pytest.raises(FileNotFoundError, match="not in the 'monusac' layout"):
            pathology_datalist(synthetic, layout="monusac")
        with pytest.raises(ValueError, match="did you mean 'podocyte'"):
            pathology_datalist(synthetic, layout="podocytes")
        with pytest.raises(ValueError, match=r"labeled_fraction must be in \(0, 1\]"):
            pathology_datalist(synthetic, labeled_fraction=0)
        with pytest.raises(ValueError, match="at least two classes"):
            pathology_datalist(synthetic, classes=["background"])
