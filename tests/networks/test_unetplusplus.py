"""UNetPlusPlus: MONAI's BasicUNetPlusPlus with a tensor output (a list only for deep supervision in training)."""

import torch
from monai.networks.nets import BasicUNetPlusPlus

from monai_gamble.networks.nets.unetplusplus import UNetPlusPlus

FEATURES = (4, 4, 8, 8, 16, 4)


def test_same_weights_same_output_as_monai_but_a_tensor():
    torch.manual_seed(0)
    ours = UNetPlusPlus(spatial_dims=2, in_channels=1, out_channels=1, features=FEATURES).eval()
    theirs = BasicUNetPlusPlus(spatial_dims=2, in_channels=1, out_channels=1, features=FEATURES).eval()
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(2, 1, 32, 32)
    out = ours(x)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 1, 32, 32)
    torch.testing.assert_close(out, theirs(x)[-1])


def test_deep_supervision_gives_the_list_in_training_only():
    net = UNetPlusPlus(spatial_dims=2, in_channels=1, out_channels=2, features=FEATURES, deep_supervision=True)
    x = torch.randn(1, 1, 32, 32)
    outs = net.train()(x)
    assert isinstance(outs, list) and len(outs) == 4 and all(o.shape == (1, 2, 32, 32) for o in outs)
    assert net.eval()(x).shape == (1, 2, 32, 32)
