"""The one linear-resize helper of the networks and critics: the mode per spatial dimension, and the
resized values equal to ``torch.nn.functional.interpolate``'s."""

import pytest
import torch
import torch.nn.functional as F

from monai_gamble.networks.utils import linear_interpolation_mode, linear_resize


@pytest.mark.parametrize("dims, mode", [(1, "linear"), (2, "bilinear"), (3, "trilinear")])
def test_linear_resize_is_interpolate_with_the_mode_of_the_dimension(dims, mode):
    x = torch.randn(2, 3, *([5] * dims))
    size = (9,) * dims
    assert linear_interpolation_mode(dims) == mode
    torch.testing.assert_close(linear_resize(x, size), F.interpolate(x, size=size, mode=mode, align_corners=False))
    assert linear_resize(x, x.shape[2:]) is x  # already that size: unchanged


def test_bad_sizes():
    with pytest.raises(ValueError, match="1, 2 or 3 spatial dims, got 4"):
        linear_interpolation_mode(4)
    with pytest.raises(ValueError, match="one length per spatial axis"):
        linear_resize(torch.zeros(1, 1, 4, 4), (8,))
