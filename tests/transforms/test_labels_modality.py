"""ToClassIndices (labels to checked class indices) and ScaleIntensityByModality (CT window or percentiles)."""

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_gamble.transforms import (
    IntensityScaling,
    ScaleIntensityByModality,
    ScaleIntensityByModalityd,
    ToClassIndices,
    ToClassIndicesd,
    intensity_scaling_for,
)


class TestToClassIndices:
    @pytest.mark.parametrize(
        "kwargs, label, expected",
        [
            ({"num_classes": 2, "scale": 255}, [[[0, 255], [255, 0]]], [[[0, 1], [1, 0]]]),
            ({"num_classes": 3}, [[[0, 1], [2, 0]]], [[[0, 1], [2, 0]]]),
            ({"num_classes": 2, "scale": 255}, [[[0, 255]]] * 3, [[[0, 1]]]),  # grey saved as RGB: one channel
        ],
    )
    def test_maps_exactly(self, kwargs, label, expected):
        out = ToClassIndices(**kwargs)(torch.tensor(label, dtype=torch.float32))
        assert out.shape[0] == 1 and torch.equal(out, torch.tensor(expected, dtype=torch.float32))

    def test_keeps_type_and_metadata(self):
        img = MetaTensor(torch.tensor([[[0, 255]]], dtype=torch.uint8), meta={"filename_or_obj": "m.png"})
        out = ToClassIndicesd("label", num_classes=2, scale=255)({"label": img})["label"]
        assert isinstance(out, MetaTensor) and out.meta["filename_or_obj"] == "m.png" and out.tolist() == [[[0, 1]]]
        assert isinstance(ToClassIndices(2)(np.zeros((1, 2, 2))), np.ndarray)

    @pytest.mark.parametrize(
        "kwargs, values, match",
        [
            ({"num_classes": 2, "scale": 255}, [0, 128, 255], r"m.png holds label values \[128.0\].*no threshold"),
            ({"num_classes": 3}, [0, 1, 3], r"m.png holds label values \[3.0\]; expected only \[0, 1, 2\]"),
            ({"num_classes": 2}, [0, 0.5], r"values \[0.5\]"),
        ],
    )
    def test_anything_else_is_an_error_naming_the_file(self, kwargs, values, match):
        img = MetaTensor(torch.tensor([[values]], dtype=torch.float32), meta={"filename_or_obj": "m.png"})
        with pytest.raises(ValueError, match=match):
            ToClassIndices(**kwargs)(img)

    def test_bad_options_and_channels(self):
        with pytest.raises(ValueError, match="num_classes >= 2"):
            ToClassIndices(1)
        with pytest.raises(ValueError, match="2 different channels"):
            ToClassIndices(2)(torch.tensor([[[0, 1]], [[1, 0]]]))


class TestScaleIntensityByModality:
    def test_ct_window_and_percentiles_per_channel(self):
        ct = torch.tensor([-1000.0, -175.0, 37.5, 250.0, 1000.0])
        mr = torch.linspace(0, 1000, 5)
        out = ScaleIntensityByModality(["CT", "T2"], percentiles=(0, 100))(torch.stack([ct, mr]))
        assert torch.allclose(out[0], torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0]))
        assert torch.allclose(out[1], torch.linspace(0, 1, 5))

    def test_names_and_overrides(self):
        assert intensity_scaling_for("ct") == IntensityScaling.CT_WINDOW
        assert intensity_scaling_for("FLAIR") == intensity_scaling_for("L") == IntensityScaling.PERCENTILE
        x = {"image": torch.full((1, 4), 37.5)}
        out = ScaleIntensityByModalityd("image", ["MRI"], scalings=["ct_window"])(x)["image"]
        assert torch.allclose(out, torch.full((1, 4), 0.5))

    def test_errors(self):
        with pytest.raises(ValueError, match="2 channel.* but 1 modalities"):
            ScaleIntensityByModality(["CT"])(torch.zeros(2, 3))
        with pytest.raises(ValueError, match="ct_window lo < hi"):
            ScaleIntensityByModality(["CT"], ct_window=(1, 0))
        with pytest.raises(ValueError, match="ct_window"):
            ScaleIntensityByModality(["CT"], scalings=["window"])
