"""Prediction reads each test set decoded once (``predict.decoded``) and gives the maps and
scores of the per-item loader bit for bit, for every model; the arrays are cached once and
shared by the experiments that read a set the same way."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dolos_core.config import get_paths, get_profile
from dolos_core.data import DatasetKey
from dolos_core.data.datasets import DecodedSplit, DolosDataset, transform_for
from dolos_core.models import build_model, list_models
from dolos_core.predict import decoded, predict_dataset

from .conftest import make_layout


@pytest.mark.parametrize("method,supervision", list_models())
def test_decoded_prediction_is_the_loaders_bit_for_bit(tmp_path, method, supervision):
    root = make_layout(tmp_path / "dolos", size=40, n=5)
    prof = get_profile("smoke").replace(input_size=32)
    paths = get_paths("smoke", root, root=tmp_path)
    torch.manual_seed(0)
    model = build_model(method, supervision).eval()
    ds = DolosDataset(root, DatasetKey.parse("celebahq/repaint-p2"), "test", 32,
                      transform=transform_for(method, supervision, 32, train=False))
    dev = torch.device("cpu")
    maps_a, scores_a, names_a = predict_dataset(model, ds, dev, batch_size=2)   # 3 batches, the last short
    data = decoded(ds, paths, prof)
    assert isinstance(data, DecodedSplit) and data.file.parent == paths.runs / "cache"
    maps_b, scores_b, names_b = predict_dataset(model, data, dev, batch_size=2)
    assert names_a == names_b == ds.names
    assert maps_a.shape == maps_b.shape and maps_a.dtype == maps_b.dtype == np.float16
    assert np.array_equal(maps_a, maps_b) and np.array_equal(scores_a, scores_b)


def test_a_test_set_is_decoded_once_and_shared(tmp_path, monkeypatch):
    root = make_layout(tmp_path / "dolos", size=40, n=3)
    prof = get_profile("smoke").replace(input_size=32)
    paths = get_paths("smoke", root, root=tmp_path)
    key = DatasetKey.parse("celebahq/p2")
    t = transform_for("patches", "weak", 32, train=False)
    first = decoded(DolosDataset(root, key, "test", 32, transform=t), paths, prof)
    assert first.file.exists()
    calls = []
    monkeypatch.setattr(DecodedSplit, "_decode", lambda self, *a: calls.append(a) or {})
    again = decoded(DolosDataset(root, key, "test", 32, transform=t), paths, prof)
    assert calls == [] and np.array_equal(again.images, first.images)      # read, not decoded
    monkeypatch.undo()
    # another resize is another entry (weak Patches resizes with Lanczos, Patches C bilinear)
    other = transform_for("patches", "full", 32, train=False)
    assert other.resize != t.resize
    third = decoded(DolosDataset(root, key, "test", 32, transform=other), paths, prof)
    assert third.file != first.file and third.file.exists()


def test_a_perturbed_set_is_not_cached(tmp_path):
    root = make_layout(tmp_path / "dolos", size=40, n=2)
    prof = get_profile("smoke").replace(input_size=32)
    paths = get_paths("smoke", root, root=tmp_path)
    ds = DolosDataset(root, DatasetKey.parse("celebahq/p2"), "test", 32, perturbation=lambda img, seed: img[::-1],
                      transform=transform_for("patches", "weak", 32, train=False))
    data = decoded(ds, paths, prof)
    assert not (paths.runs / "cache").exists()
    flipped = DolosDataset(root, DatasetKey.parse("celebahq/p2"), "test", 32,
                           transform=transform_for("patches", "weak", 32, train=False))
    assert not np.array_equal(data.images, decoded(flipped, paths, prof).images)
