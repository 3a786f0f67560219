"""Extensions (not in the DOLOS paper): HDBSCAN post-processing, perturbations, registry."""

from __future__ import annotations

import numpy as np
import pytest

from dolos_core.metrics import iou_acc
from dolos_core.perturb import SWEEP, make
from dolos_core.postprocess import Pipeline, hdbscan_features, hdbscan_map, largest_component, morphology


def _blob_map(size=64, seed=0):
    rng = np.random.default_rng(seed)
    m = np.clip(rng.normal(0.15, 0.05, (size, size)), 0, 1)
    truth = np.zeros((size, size), bool)
    truth[20:40, 10:34] = True
    m[truth] = np.clip(rng.normal(0.75, 0.05, truth.sum()), 0, 1)
    return m.astype(np.float32), truth


def test_hdbscan_recovers_a_known_blob():
    import torch

    m, truth = _blob_map()
    out = hdbscan_map(m, min_cluster_size=300)
    iou = iou_acc(torch.tensor(out[None] > 0.5), torch.tensor(truth[None]))[0].item()
    assert iou > 0.9, iou
    # from a coarse map upsampled with nearest neighbour (pixel centres), as FOCAL does
    coarse = m[::4, ::4]
    out = hdbscan_map(coarse, size=64)  # the default min_cluster_size=500
    iou = iou_acc(torch.tensor(out[None] > 0.5), torch.tensor(truth[None]))[0].item()
    assert iou > 0.8, iou


def test_no_postprocessing_scores_exactly_as_table2():
    """The ``none`` chain upsamples the authors' way, so its IoU at the mask's size equals the
    IoU Table 2 computes from the coarse map (``metrics.localization`` resizes bicubic)."""
    from dolos_core import metrics

    rng = np.random.default_rng(0)
    maps = rng.random((6, 19, 19)).astype(np.float32)
    masks = (rng.random((6, 96, 96)) < 0.3).astype(np.uint8)
    out, _ = Pipeline(("none",)).apply(maps, 96)
    np.testing.assert_array_equal(metrics.localization(out, masks).iou,
                                  metrics.localization(maps, masks).iou)


def test_hdbscan_leaves_an_all_real_map_real():
    rng = np.random.default_rng(1)
    flat = np.clip(rng.normal(0.1, 0.02, (64, 64)), 0, 1).astype(np.float32)
    assert hdbscan_map(flat, min_cluster_size=300).sum() == 0
    assert hdbscan_map(np.zeros((64, 64), np.float32), min_cluster_size=300).sum() == 0


def test_morphology_and_largest_component():
    b = np.zeros((32, 32), np.float32)
    b[5:15, 5:15] = 1
    b[25, 25] = 1            # speck: removed by opening
    b[20:24, 2:6] = 1        # a second, smaller region
    opened = morphology(b, radius=1)
    assert opened[25, 25] == 0 and opened[10, 10] == 1
    lc = largest_component(b)
    assert lc[10, 10] == 1 and lc[21, 3] == 0 and lc.sum() == 100


def test_pipeline_registry_and_composition():
    m, truth = _blob_map()
    p = Pipeline(("hdbscan", "largest-component"), {"hdbscan": {"min_cluster_size": 300}})
    assert p.name == "hdbscan(min_cluster_size=300)+largest-component"
    out, sec = p.apply(m[None])
    assert out.shape == (1, 64, 64) and sec > 0
    with pytest.raises(KeyError, match="did you mean 'hdbscan'"):
        Pipeline(("hdbscn",))


def _planted_features(fake_cells, c=16, side=12, seed=0, spread=0.1):
    """(C, side, side) features: the cells of ``fake_cells`` (a boolean (side, side) array)
    around one mean vector, the others around another."""
    rng = np.random.default_rng(seed)
    real_mu, fake_mu = rng.normal(0, 1, c), rng.normal(0, 1, c)
    f = rng.normal(0, spread, (side, side, c)) + np.where(fake_cells[..., None], fake_mu, real_mu)
    return f.transpose(2, 0, 1).astype(np.float32)


def test_feature_hdbscan_recovers_the_smaller_planted_cluster_exactly():
    truth = np.zeros((12, 12), bool)
    truth[3:7, 5:10] = True                                    # 20 of 144 cells
    feats = _planted_features(truth)
    flat = np.full((12, 12), 0.5, np.float32)                  # the score carries nothing here
    out = hdbscan_features(flat, feats, min_cluster_frac=0.1)
    np.testing.assert_array_equal(out, truth.astype(np.float32))
    # through a chain: the cell map brought to the image with pixel-centred nearest neighbour
    p = Pipeline(("hdbscan-features",), {"hdbscan-features": {"min_cluster_frac": 0.1}})
    big, _ = p.apply(flat[None], 96, features=feats[None])
    np.testing.assert_array_equal(big[0], np.kron(truth, np.ones((8, 8))).astype(np.float32))
    with pytest.raises(ValueError, match="per-cell features"):
        p.apply(flat[None], 96)


def test_feature_hdbscan_calls_the_largest_cluster_real_even_when_it_is_the_fake_one():
    """The documented rule, and where it breaks: a fake region covering most of the image is
    the largest cluster, so it is called real and the real remainder fake."""
    truth = np.ones((12, 12), bool)
    truth[:4, :] = False                                        # fake: 96 of 144 cells
    out = hdbscan_features(np.zeros((12, 12), np.float32), _planted_features(truth, seed=1))
    np.testing.assert_array_equal(out, (~truth).astype(np.float32))
    # one homogeneous image is one cluster: all real
    uniform = np.random.default_rng(2).normal(0, 0.1, (16, 12, 12)).astype(np.float32)
    assert hdbscan_features(np.zeros((12, 12), np.float32), uniform).sum() == 0


def test_feature_hdbscan_with_the_score_appended():
    """Features that carry nothing, a score that separates: with ``with_score`` the score
    (standardised, weighted sqrt(C)) decides; without it the image is one cluster."""
    truth = np.zeros((12, 12), bool)
    truth[6:11, 2:6] = True
    rng = np.random.default_rng(3)
    noise = rng.normal(0, 1, (16, 12, 12)).astype(np.float32)
    score = np.where(truth, 0.9, 0.1).astype(np.float32) + rng.normal(0, 0.01, (12, 12)).astype(np.float32)
    np.testing.assert_array_equal(hdbscan_features(score, noise, with_score=True), truth.astype(np.float32))
    # a score at another resolution (weak Grad-CAM maps are stored at the input size) is area-averaged
    fine = np.kron(score, np.ones((8, 8), np.float32))
    np.testing.assert_array_equal(hdbscan_features(fine, noise, with_score=True), truth.astype(np.float32))


@pytest.mark.parametrize("name,strength", SWEEP)
def test_perturbations_are_deterministic_and_change_the_image(name, strength):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    img = np.ascontiguousarray(np.clip(img.astype(int) // 2 + 64, 0, 255).astype(np.uint8))
    f = make(name, strength)
    a, b = f(img, 7), f(img, 7)
    assert a.shape == img.shape and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert np.abs(a.astype(int) - img.astype(int)).mean() > 0.2
    if name == "noise":
        assert not np.array_equal(f(img, 8), a)  # the seed matters


def test_perturbation_is_a_dataset_wrapper(tiny_root):
    from dolos_core.data import DolosDataset

    clean = DolosDataset(tiny_root, "celebahq/repaint-p2", "test", 32)
    blurred = DolosDataset(tiny_root, "celebahq/repaint-p2", "test", 32, perturbation=make("blur", 2))
    assert not np.allclose(clean[0]["image"].numpy(), blurred[0]["image"].numpy())
    np.testing.assert_array_equal(clean[0]["mask"].numpy(), blurred[0]["mask"].numpy())


def test_loss_variants_are_registry_experiments():
    from dolos_core.experiments import EXPERIMENTS

    for m in ("patches", "attention"):
        assert EXPERIMENTS[f"{m}-C-l1"].loss.localize == "l1"
        assert EXPERIMENTS[f"{m}-C-l2"].loss.localize == "l2"
        combined = EXPERIMENTS[f"{m}-C-l1-cls"]
        assert combined.loss.rho_class == 1.0 and combined.loss.rho_localize == 1.0
        assert combined.train[0].key == "celebahq/real"
