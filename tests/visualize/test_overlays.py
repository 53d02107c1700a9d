import numpy as np
import pytest
import torch

from monai_gamble.visualize import label_map, plot_segmentation_grid, segmentation_mosaic, to_display


def test_to_display_reductions():
    onehot = torch.zeros(2, 3, 4)
    onehot[1, 0, 0] = 1
    onehot[0] = 1 - onehot[1]
    assert label_map(onehot).tolist()[0][0] == 1 and label_map(onehot).shape == (3, 4)
    assert to_display(torch.rand(1, 3, 4), transpose=True).shape == (4, 3)
    vol = np.zeros((1, 4, 4, 6))
    vol[0, :, :, 3] = 1
    assert to_display(vol).sum() == 16  # middle slice of the last axis
    with pytest.raises(ValueError, match="channel-first"):
        to_display(np.zeros(5))


def test_grid_shapes_and_errors(tmp_path):
    imgs = [torch.rand(1, 8, 8) for _ in range(3)]
    lbls = [torch.randint(0, 2, (1, 8, 8)) for _ in range(3)]
    fig = plot_segmentation_grid(imgs, lbls, lbls, maps={"betting map": imgs}, titles=["a", "b", "c"], suptitle="t")
    assert len(fig.axes) == 1  # one mosaic
    mosaic, columns, notes = segmentation_mosaic(imgs, lbls, lbls, maps={"betting map": [5 * i for i in imgs]})
    assert columns == ["image", "ground truth", "prediction", "betting map"]
    assert mosaic.shape == (3 * 8 + 2 * 4, 4 * 8 + 3 * 4, 3) and 0 <= mosaic.min() and mosaic.max() <= 1
    assert notes[0][0].startswith("betting map: [")  # maps outside [0, 1] get their own range
    fig.savefig(tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 0
    with pytest.raises(ValueError, match="2 entries for 3 images"):
        plot_segmentation_grid(imgs, lbls[:2])
    with pytest.raises(ValueError, match="no image"):
        plot_segmentation_grid([])


def test_overlay_colours():
    img = [torch.zeros(1, 6, 6)]
    gt = torch.zeros(1, 6, 6, dtype=torch.long)
    gt[0, 1:5, 1:5] = 1
    mosaic, _, _ = segmentation_mosaic(img, [gt], [gt], gap=0)
    gt_panel, pred_panel = mosaic[:, 6:12], mosaic[:, 12:18]
    assert np.allclose(gt_panel[1, 1], [0.2, 1.0, 0.2]) and np.allclose(gt_panel[2, 2], 0)  # contour only
    assert pred_panel[2, 2, 0] > 0.4 and pred_panel[0, 0].sum() == 0  # filled prediction, black background
