"""The transforms that replaced lambdas of the bundle configs: small connected components removed at a
scaled area, and MONAI's H&E stain normalisation on channel-first images."""

import numpy as np
import pytest
import torch
from monai.apps.pathology.transforms import NormalizeHEStains
from monai.transforms import RemoveSmallObjects

from monai_gamble.transforms import (
    NormalizeHEStainsChannelFirst,
    NormalizeHEStainsChannelFirstd,
    RemoveSmallComponents,
    RemoveSmallComponentsd,
)


def blobs():
    m = torch.zeros(1, 32, 32)
    m[0, 2:4, 2:4] = 1  # 4 px
    m[0, 10:20, 10:20] = 1  # 100 px
    return m


def test_remove_small_components_scales_the_area_from_the_reference():
    m = blobs()
    # 40 px at 64x64 is 10 px at 32x32: the 4-px blob goes, the 100-px one stays
    out = RemoveSmallComponents(40, reference_shape=(64, 64))(m)
    assert out.sum() == 100 and RemoveSmallComponents(40, (64, 64)).min_size_for((32, 32)) == 10
    torch.testing.assert_close(out, RemoveSmallObjects(min_size=10)(m))
    assert torch.equal(RemoveSmallComponents(0)(m), m)  # 0 keeps everything
    assert RemoveSmallComponentsd("pred", 200)({"pred": m})["pred"].sum() == 0
    with pytest.raises(ValueError, match="min_area must be a non-negative"):
        RemoveSmallComponents(-1)
    with pytest.raises(ValueError, match="reference_shape"):
        RemoveSmallComponents(10, (64,))(m)


def test_channel_first_stain_normalisation_is_monais_on_the_transposed_tile():
    rng = np.random.default_rng(0)
    tile = np.stack([rng.uniform(80, 230, (24, 24)), rng.uniform(40, 200, (24, 24)), rng.uniform(90, 240, (24, 24))])
    tile = tile.astype(np.uint8)
    expected = NormalizeHEStains()(np.ascontiguousarray(tile.transpose(1, 2, 0))).transpose(2, 0, 1)
    out = NormalizeHEStainsChannelFirst()(torch.as_tensor(tile))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.shape == (3, 24, 24)
    np.testing.assert_array_equal(out.numpy(), expected.astype(np.float32))
    d = NormalizeHEStainsChannelFirstd("image")({"image": tile, "label": 1})
    assert d["image"].dtype == np.float32 and d["label"] == 1
    with pytest.raises(ValueError, match=r"\(3, H, W\) RGB image"):
        NormalizeHEStainsChannelFirst()(np.zeros((24, 24, 3)))
