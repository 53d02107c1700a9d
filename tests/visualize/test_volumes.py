"""Axial, coronal and sagittal slices: orientation (radiological convention), square display pixels,
the figure, and the handler that draws a volume the same whatever its storage orientation."""

import numpy as np
import pytest
import torch
from ignite.engine import Engine
from monai.data import MetaTensor

from monai_gamble.handlers import VolumeFigureHandler
from monai_gamble.visualize import orthogonal_slices, plot_volume_slices, slice_centre


def _marked_volume():
    """A RAS volume (1, X, Y, Z) with a bright voxel on the patient's right, anterior and superior side."""
    v = np.zeros((1, 10, 8, 6))
    v[0, 8, 6, 4] = 1.0
    return v


def test_radiological_orientation_of_each_plane():
    planes = orthogonal_slices(_marked_volume(), centre=(8, 6, 4))
    rows, cols = np.unravel_index(planes["axial"][0].argmax(), planes["axial"][0].shape)
    assert planes["axial"].shape == (1, 8, 10) and (rows, cols) == (1, 1)  # anterior top, patient's right on the left
    rows, cols = np.unravel_index(planes["coronal"][0].argmax(), planes["coronal"][0].shape)
    assert planes["coronal"].shape == (1, 6, 10) and (rows, cols) == (1, 1)  # superior top
    rows, cols = np.unravel_index(planes["sagittal"][0].argmax(), planes["sagittal"][0].shape)
    assert planes["sagittal"].shape == (1, 6, 8) and (rows, cols) == (1, 1)  # anterior on the left


def test_square_pixels_from_the_spacing_and_centre():
    planes = orthogonal_slices(np.zeros((1, 10, 8, 6)), centre=(5, 4, 3), spacing=(1.0, 1.0, 3.0), order=0)
    assert planes["axial"].shape == (1, 8, 10) and planes["coronal"].shape == (1, 18, 10)
    label = np.zeros((1, 10, 8, 6))
    label[0, 1:9, 1:7, 1:5] = 1
    label[0, 2:4, 2:4, 2:4] = 2  # the smallest structure
    assert slice_centre(label, (10, 8, 6)) == (2, 2, 2)  # round(2.5) == 2
    assert slice_centre(None, (10, 8, 6)) == (5, 4, 3)
    with pytest.raises(ValueError, match=r"\(C, X, Y, Z\)"):
        orthogonal_slices(np.zeros((10, 8, 6)), (0, 0, 0))


def test_figure_has_three_rows_per_volume():
    vol = torch.rand(2, 12, 10, 8)
    lab = torch.zeros(3, 12, 10, 8)
    lab[0] = 1
    fig = plot_volume_slices([vol, vol], labels=[lab, lab], preds=[lab, lab], maps={"prob": [vol[:1], vol[:1]]},
                             spacings=[(1, 1, 2), None], titles=["a", "b"])  # fmt: skip
    texts = [t.get_text() for t in fig.texts]
    assert sum("axial" in t for t in texts) == 2 and any("b sagittal" in t for t in texts)
    with pytest.raises(ValueError, match="labels has 1 entries for 2 volumes"):
        plot_volume_slices([vol, vol], labels=[lab])


def test_handler_draws_lps_and_ras_storage_alike(tmp_path):
    ras = _marked_volume()
    lps = ras[:, ::-1, ::-1, :].copy()
    affines = {"ras": np.diag([2.0, 2.0, 3.0, 1.0]), "lps": np.diag([-2.0, -2.0, 3.0, 1.0])}
    mosaics = {}
    for name, arr in (("ras", ras), ("lps", lps)):
        img = MetaTensor(torch.as_tensor(arr, dtype=torch.float32), affine=torch.as_tensor(affines[name]))
        item = {"image": img, "label": img.clone(), "pred": img.clone(), "id": name}
        handler = VolumeFigureHandler(tmp_path / name, num_images=1, tag=name)
        engine = Engine(lambda e, b: b)
        handler.attach(engine)
        engine.run([[item]], max_epochs=1)
        assert handler.last_figure_path.is_file()
        mosaics[name] = handler._items[0]["image"].numpy()
    assert np.array_equal(mosaics["ras"], mosaics["lps"])
