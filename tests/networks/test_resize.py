"""The networks' utilities: the one linear-resize helper of the networks and critics (the mode per spatial
dimension, the values of ``torch.nn.functional.interpolate``) and setting the batch-norm momentum."""

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


def test_set_bn_momentum_sets_every_batch_norm_layer():
    from monai_gamble.networks import set_bn_momentum

    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2), torch.nn.BatchNorm1d(2))
    assert set_bn_momentum(net, None) == 0 and net[1].momentum == 0.1
    assert set_bn_momentum(net, 0.3) == 2 and net[1].momentum == net[2].momentum == 0.3
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        set_bn_momentum(net, 1.5)
