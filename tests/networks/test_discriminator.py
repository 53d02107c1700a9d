"""The fully convolutional discriminator of Hung et al.: architecture, shapes in 1-3D, gradients, bad inputs."""

import pytest
import torch
from torch import nn

from monai_gamble.networks.nets import FCDiscriminator

torch.set_num_threads(1)


def test_architecture_is_hung_et_al():
    d = FCDiscriminator(spatial_dims=2, in_channels=7)
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(7, 64), (64, 128), (128, 256), (256, 512), (512, 1)]
    assert all(c.kernel_size == (4, 4) and c.stride == (2, 2) and c.padding == (1, 1) for c in convs)
    acts = [m for m in d.modules() if isinstance(m, nn.LeakyReLU)]
    assert len(acts) == 4 and all(a.negative_slope == 0.2 for a in acts)
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) for m in d.modules())


@pytest.mark.parametrize(
    "dims, shape",
    [(1, (2, 5, 64)), (2, (2, 5, 64, 96)), (2, (1, 5, 33, 47)), (3, (1, 5, 32, 32, 40))],
    ids=["1d", "2d", "2d-odd", "3d"],
)
def test_logits_are_upsampled_to_the_input_size(dims, shape):
    d = FCDiscriminator(dims, 5, channels=(4, 8, 8, 8))
    x = torch.rand(shape, requires_grad=True)
    y = d(x)
    assert y.shape == (shape[0], 1, *shape[2:])
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # the input (the softmax) gets gradient
    low = FCDiscriminator(dims, 5, channels=(4, 8, 8, 8), upsample=False)(torch.rand(shape))
    assert low.shape[2:] == tuple(s // 32 for s in shape[2:])


def test_bad_inputs():
    with pytest.raises(ValueError, match="spatial_dims must be 1, 2 or 3"):
        FCDiscriminator(4, 3)
    with pytest.raises(ValueError, match="must be positive"):
        FCDiscriminator(2, 0)
    d = FCDiscriminator(2, 7, channels=(4, 4, 4, 4))
    with pytest.raises(ValueError, match=r"expected input \(B, 7, \*spatial\)"):
        d(torch.rand(1, 6, 64, 64))
    with pytest.raises(ValueError, match="every side must be at least 32"):
        d(torch.rand(1, 7, 64, 16))
