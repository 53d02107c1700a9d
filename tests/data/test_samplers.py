import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from monai_gamble.data import (
    MULTICLASS_BLOB_CLASSES,
    ClassConditionalBatchSampler,
    class_presence,
    make_multiclass_blobs,
)

# 8 images, 4 classes; class 3 in images 5 and 7 only, class 2 in none
PRESENCE = np.array(
    [
        [1, 1, 0, 0],
        [1, 0, 0, 0],
        [1, 1, 0, 0],
        [0, 1, 0, 0],
        [1, 1, 0, 0],
        [1, 0, 0, 1],
        [1, 1, 0, 0],
        [1, 1, 0, 1],
    ],
    dtype=bool,
)


def test_class_presence_index_onehot_and_ignore():
    labels = [np.array([[[0, 2], [2, 2]]]), torch.tensor([[[1, 1], [255, 1]]]), np.array([[[3.0, 0.0]]])]
    got = class_presence(labels, num_classes=4, ignore_index=255)
    assert got.tolist() == [[True, False, True, False], [False, True, False, False], [True, False, False, True]]
    onehot = np.zeros((4, 2, 2))
    onehot[1, 0, 0] = onehot[3, 1, 1] = 1
    assert class_presence([onehot], num_classes=4).tolist() == [[False, True, False, True]]
    assert class_presence([np.zeros((1, 2, 2, 2), dtype=np.uint8)], 3).tolist() == [[True, False, False]]  # 3D


@pytest.mark.parametrize(
    "labels, kwargs, match",
    [
        ([np.array([[[0, 4]]])], {}, r"values in \[0, 4\].*\[0, 3\]"),
        ([np.array([[[0, 255]]])], {}, r"\[0, 3\]"),
        ([np.array([[[-1, 0]]])], {}, r"\[0, 3\]"),
        ([np.array([[[0.5, 0]]])], {}, "whole numbers"),
        ([np.zeros((2, 3, 3))], {}, "2 channels"),
        ([np.zeros(3)], {}, "channel-first"),
        ([], {}, "no labels"),
    ],
)
def test_class_presence_bad_labels(labels, kwargs, match):
    with pytest.raises(ValueError, match=match):
        class_presence(labels, num_classes=4, **kwargs)


def test_class_frequencies_follow_the_weights():
    w = np.array([0.1, 0.6, 0.0, 0.3])
    sampler = ClassConditionalBatchSampler(PRESENCE, batch_size=2, num_batches=20000, weights=w, seed=3)
    counts = np.zeros(4)
    for batch in sampler:
        c = sampler.consume_class()
        counts[c] += 1
        assert PRESENCE[batch, c].all()  # every image of the batch contains the drawn class
    n = counts.sum()
    sigma = np.sqrt(n * w * (1 - w))
    assert np.all(np.abs(counts - n * w) <= 4 * sigma + 1e-9), (counts / n, w)
    assert counts[2] == 0


def test_unnormalised_weights_and_unavailable_classes():
    sampler = ClassConditionalBatchSampler(PRESENCE, batch_size=2, weights=[2.0, 2.0, 5.0, 4.0])
    # class 2 is in no image: its weight is dropped, the rest renormalised
    np.testing.assert_allclose(sampler.weights, [0.25, 0.25, 0.0, 0.5])
    assert sampler.available.tolist() == [True, True, False, True]
    with pytest.raises(ValueError, match="no weight to any class"):
        sampler.set_weights([0.0, 0.0, 1.0, 0.0])
    with pytest.raises(ValueError, match="finite and non-negative"):
        sampler.set_weights([1.0, float("nan"), 0.0, 1.0])
    with pytest.raises(ValueError, match="one value per class"):
        sampler.set_weights([1.0, 1.0])


def test_seeded_and_resumable():
    def draws(sampler, n=30):
        it = iter(sampler)
        return [(next(it), sampler.consume_class()) for _ in range(n)]

    a = ClassConditionalBatchSampler(PRESENCE, batch_size=3, num_batches=60, seed=11)
    b = ClassConditionalBatchSampler(PRESENCE, batch_size=3, num_batches=60, seed=11)
    c = ClassConditionalBatchSampler(PRESENCE, batch_size=3, num_batches=60, seed=12)
    assert draws(a) == draws(b)
    assert draws(a) != draws(c)
    state = a.state_dict()
    after = draws(a)
    d = ClassConditionalBatchSampler(PRESENCE, batch_size=3, num_batches=60, seed=99)
    d.load_state_dict(state)
    assert draws(d) == after


def test_batches_without_replacement_unless_the_set_is_small():
    sampler = ClassConditionalBatchSampler(PRESENCE, batch_size=4, num_batches=200, weights=[0, 1, 0, 1], seed=0)
    for batch in sampler:
        c = sampler.consume_class()
        if c == 1:  # 5 images contain class 1: 4 distinct ones
            assert len(set(batch)) == 4
        else:  # 2 images contain class 3: drawn with replacement
            assert set(batch) <= {5, 7}
    assert len(sampler) == 200


def test_sharding_gives_disjoint_shards_and_the_same_classes():
    presence = np.zeros((12, 3), dtype=bool)
    presence[:, 0] = True
    presence[[1, 4, 5, 9], 1] = True  # 4 images: 2 per rank
    presence[[2, 3, 8], 2] = True  # 3 images: padded to 4
    ranks = [
        ClassConditionalBatchSampler(presence, batch_size=2, num_batches=50, num_replicas=2, rank=r, seed=5)
        for r in range(2)
    ]
    for c, members in enumerate(ranks[0].class_indices):
        s0, s1 = ranks[0].shard_indices[c], ranks[1].shard_indices[c]
        assert len(s0) == len(s1) == -(-len(members) // 2)
        assert set(s0) | set(s1) == set(members)
        if len(members) % 2 == 0:
            assert not set(s0) & set(s1)
        else:  # DistributedSampler-style padding: only the padded element repeats
            assert len(set(s0) & set(s1)) == 1
    seqs = []
    for sampler in ranks:
        seq = []
        for batch in sampler:
            c = sampler.consume_class()
            assert set(batch) <= set(sampler.shard_indices[c].tolist())
            seq.append(c)
        seqs.append(seq)
    assert seqs[0] == seqs[1]  # same class sequence on every rank
    assert len(ranks[0]) == 50
    default = ClassConditionalBatchSampler(presence, batch_size=2, num_replicas=2, rank=1)
    assert len(default) == 3  # ceil(12 / (2 * 2))
    with pytest.raises(ValueError, match="rank < num_replicas"):
        ClassConditionalBatchSampler(presence, batch_size=2, num_replicas=2, rank=2)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_dataloader_batches_match_the_consumed_classes(num_workers):
    data = [{"i": i} for i in range(len(PRESENCE))]
    sampler = ClassConditionalBatchSampler(PRESENCE, batch_size=2, num_batches=12, seed=1)
    loader = DataLoader(data, batch_sampler=sampler, num_workers=num_workers)
    assert len(loader) == 12
    for _epoch in range(2):
        n = 0
        for batch in loader:
            c = sampler.consume_class()
            assert PRESENCE[batch["i"].numpy(), c].all()
            n += 1
        assert n == 12
    with pytest.raises(RuntimeError, match="batch_sampler"):
        sampler.consume_class()


def test_bad_sampler_options():
    with pytest.raises(ValueError, match="all False"):
        ClassConditionalBatchSampler(np.zeros((3, 2), dtype=bool), batch_size=1)
    with pytest.raises(ValueError, match="matrix"):
        ClassConditionalBatchSampler(np.ones(3, dtype=bool), batch_size=1)
    with pytest.raises(ValueError, match="batch_size"):
        ClassConditionalBatchSampler(PRESENCE, batch_size=0)
    with pytest.raises(ValueError, match="num_batches"):
        ClassConditionalBatchSampler(PRESENCE, batch_size=1, num_batches=0)


def test_from_dataset_and_labels():
    data = make_multiclass_blobs(num_images=6, image_size=(16, 16), seed=2)
    a = ClassConditionalBatchSampler.from_dataset(data, num_classes=4, batch_size=2, seed=0)
    b = ClassConditionalBatchSampler.from_labels([d["label"] for d in data], num_classes=4, batch_size=2, seed=0)
    assert [x.tolist() for x in a.class_indices] == [x.tolist() for x in b.class_indices]
    assert a.num_images == 6 and a.num_classes == 4


def test_multiclass_blobs_seeded_with_a_rare_class():
    a = make_multiclass_blobs(num_images=40, image_size=(32, 32), seed=0)
    b = make_multiclass_blobs(num_images=40, image_size=(32, 32), seed=0)
    assert all(np.array_equal(x["image"], y["image"]) and np.array_equal(x["label"], y["label"]) for x, y in zip(a, b))
    assert a[0]["image"].shape == (1, 32, 32) and a[0]["image"].dtype == np.float32
    presence = class_presence([d["label"] for d in a], num_classes=4)
    assert presence[:, :3].all()  # background, large and small in every image
    assert 0 < presence[:, 3].mean() < 0.5  # rare in images
    pixels = np.bincount(np.concatenate([d["label"].ravel() for d in a]), minlength=4) / (40 * 32 * 32)
    assert pixels[3] < 0.05 and pixels[3] == pixels.min()  # and in pixels
    assert MULTICLASS_BLOB_CLASSES[3] == "rare"
    vol = make_multiclass_blobs(num_images=2, image_size=(16, 16, 16), seed=1)
    assert vol[0]["label"].shape == (1, 16, 16, 16)
    with pytest.raises(ValueError, match="image_size"):
        make_multiclass_blobs(num_images=2, image_size=(8, 8))


def test_real_pathology_masks(realdata):
    """The class sets of the three MoNuSAC masks (labels 0 bg, 1 epithelial, 2 lymphocyte,
    3 neutrophil, 4 macrophage) are those of PROVENANCE.md, and the sampler draws the only image
    with neutrophils whenever it draws that class."""
    folder = realdata / "pathology_monusac_sample" / "class_masks"
    names = ["A9K0_1", "A9K0_2", "A9K0_3"]
    labels = [np.array(Image.open(folder / f"{n}.png"))[None] for n in names]  # PIL, channel first
    presence = class_presence(labels, num_classes=5)
    assert presence.tolist() == [
        [True, True, False, False, True],  # 314 epithelial + 7 macrophage
        [True, True, True, False, False],  # 15 epithelial + 299 lymphocyte
        [True, False, False, True, False],  # 5 neutrophil
    ]
    sampler = ClassConditionalBatchSampler(presence, batch_size=1, num_batches=200, weights=[0, 1, 1, 1, 1], seed=0)
    for batch in sampler:
        c = sampler.consume_class()
        assert presence[batch[0], c]
        if c == 3:
            assert batch == [2]
