"""Preparing a bundle's dataset: the synthetic stand-in's folder, generated when no dataset is given (and
said so in the log), the given dataset otherwise, the folder an inference reads, counts of a datalist."""

import logging
import os

import numpy as np

from monai_gamble.data import class_presence, count_items, input_folder, prepare_dataset, synthetic_dataset_dir


def test_synthetic_dataset_dir_names_the_parameters():
    assert synthetic_dataset_dir(".", "tnscui", n=200, seed=0, noise=0.05) == os.path.join(
        ".", "data", "synthetic_tnscui_n200_seed0_noise0.05"
    )


def test_prepare_dataset_generates_only_without_a_dataset(tmp_path, caplog):
    calls = []

    def make(root, **kwargs):
        calls.append((str(root), kwargs))
        return root

    synthetic = str(tmp_path / "data" / "synthetic_x_n3")
    with caplog.at_level(logging.INFO, logger="monai_gamble.data.preparation"):
        assert prepare_dataset(None, synthetic, make, num_images=3) == synthetic
        assert prepare_dataset(synthetic, synthetic, make, num_images=3) == synthetic  # the bundle's default
    assert calls == [(synthetic, {"num_images": 3})] * 2
    assert "no dataset_dir given: using the synthetic stand-in" in caplog.text and "num_images=3" in caplog.text
    assert prepare_dataset(str(tmp_path / "real"), synthetic, make) == str(tmp_path / "real")  # checked by the reader
    assert len(calls) == 2


def test_input_folder_and_counts(tmp_path):
    (tmp_path / "images").mkdir()
    assert input_folder(tmp_path, "test", "images") == os.path.join(tmp_path, "images")
    assert input_folder(tmp_path, "test") == str(tmp_path)
    assert count_items([{"positive": True}, {"positive": 0}, {}, {"positive": 1}], "positive") == 2


def test_class_presence_of_dataset_items():
    items = [{"label": np.array([[[0, 2]]])}, {"label": np.array([[[1, 1]]])}]
    assert class_presence(items, num_classes=3, key="label").tolist() == [[True, False, True], [False, True, False]]
