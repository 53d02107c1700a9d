import logging

import pytest
import torch
from monai.networks.nets import UNet

from monai_gamble.networks import checkpoint_state_dict, load_pretrained
from monai_gamble.networks.nets import Gambler


def unet(channels=(4, 8, 16)):
    return UNet(spatial_dims=2, in_channels=1, out_channels=2, channels=channels, strides=(2, 2), num_res_units=0)


def gambler():
    return Gambler(spatial_dims=2, in_channels=1, pred_channels=2, channels=(4, 8, 16))


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture
def pair_checkpoint(tmp_path):
    torch.manual_seed(0)
    seg, critic = unet(), gambler()
    path = tmp_path / "model.pt"
    torch.save({"model": seg.state_dict(), "critic": critic.state_dict()}, path)
    return path, seg, critic


class TestLoadPretrained:
    def test_none_is_a_no_op(self):
        net = unet()
        before = {k: v.clone() for k, v in net.state_dict().items()}
        assert (
            load_pretrained(net, None) is net
            and load_pretrained(net, "") is net
            and load_pretrained(net, "none") is net
        )
        assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())

    def test_two_network_checkpoint(self, pair_checkpoint):
        path, seg, critic = pair_checkpoint
        torch.manual_seed(1)
        new_seg, new_critic = unet(), gambler()
        assert not same_weights(new_seg, seg)
        load_pretrained(new_seg, path)
        load_pretrained(new_critic, path, key="critic", required=False)
        assert same_weights(new_seg, seg) and same_weights(new_critic, critic)

    def test_flat_and_ddp_prefixed_state_dicts(self, tmp_path):
        torch.manual_seed(0)
        seg = unet()
        flat = tmp_path / "flat.pt"
        torch.save(seg.state_dict(), flat)  # Ignite saves a single object's state dict flat (CE bundles)
        ddp = tmp_path / "ddp.pt"
        torch.save({"model": {"module." + k: v for k, v in seg.state_dict().items()}}, ddp)
        for path in (flat, ddp):
            torch.manual_seed(2)
            assert same_weights(load_pretrained(unet(), path), seg)

    def test_critic_missing_is_optional(self, tmp_path, caplog):
        path = tmp_path / "ce.pt"
        torch.save(unet().state_dict(), path)
        torch.manual_seed(3)
        critic = gambler()
        before = {k: v.clone() for k, v in critic.state_dict().items()}
        with caplog.at_level(logging.INFO, logger="monai_gamble"):
            load_pretrained(critic, path, key="critic", required=False)
        assert "has no 'critic' weights" in caplog.text
        assert all(torch.equal(before[k], v) for k, v in critic.state_dict().items())
        with pytest.raises(ValueError, match="has no 'critic' state dict"):
            load_pretrained(gambler(), path, key="critic")

    def test_other_network_is_refused_with_the_names(self, pair_checkpoint):
        path, _, _ = pair_checkpoint
        with pytest.raises(ValueError, match=r"does not fit UNet: .*of other shape.*\(4, 1, 3, 3\) vs \(8, 1, 3, 3\)"):
            load_pretrained(unet(channels=(8, 16, 32)), path)
        with pytest.raises(ValueError, match=r"does not fit Gambler: .*missing from the checkpoint"):
            load_pretrained(gambler(), path)  # the segmenter's weights offered to the gambler
        net = unet(channels=(8, 16, 32))
        before = {k: v.clone() for k, v in net.state_dict().items()}
        with pytest.raises(ValueError):
            load_pretrained(net, path)
        assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # never partly loaded

    def test_bad_files(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="does not exist"):
            load_pretrained(unet(), tmp_path / "nope.pt")
        (tmp_path / "empty.pt").write_bytes(b"")
        with pytest.raises(ValueError, match=r"empty.pt is empty \(0 bytes\)"):
            load_pretrained(unet(), tmp_path / "empty.pt")
        (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
        with pytest.raises(ValueError, match="cannot be read as a PyTorch checkpoint"):
            load_pretrained(unet(), tmp_path / "junk.pt")
        torch.save([1, 2, 3], tmp_path / "list.pt")
        with pytest.raises(ValueError, match="holds a list"):
            load_pretrained(unet(), tmp_path / "list.pt")


def test_checkpoint_state_dict_keys():
    sd = {"w": torch.zeros(1)}
    assert checkpoint_state_dict(sd) == sd
    assert checkpoint_state_dict(sd, "critic") is None
    assert checkpoint_state_dict({"network": sd, "optimizer": {"state": {}}}) == sd
    assert checkpoint_state_dict({"critic": sd}, "critic") == sd
