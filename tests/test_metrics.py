"""Metrics against hand-computed cases and an independent, per-image implementation of the
authors' protocol (PIL resizes, Python loops), as their evaluation code works."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import average_precision_score, roc_auc_score

import torch

from dolos_core import metrics, resize


def reference_iou(maps, masks, tau=0.5):
    """The authors' protocol written the slow, obvious way: Pillow resizes, one image at a time."""
    out = {"iou": [], "iou_sm": [], "acc": [], "acc_sm": []}
    for pred_sm, true_lg in zip(maps, masks):
        pred_sm = np.asarray(pred_sm, np.float32)
        pred_lg = np.array(Image.fromarray(pred_sm).resize(true_lg.shape[::-1]))  # bicubic (default)
        true_sm = np.array(Image.fromarray(true_lg.astype(np.uint8)).resize(pred_sm.shape[::-1], Image.NEAREST))
        for suffix, p, t in (("", pred_lg > tau, true_lg.astype(bool)), ("_sm", pred_sm > tau, true_sm.astype(bool))):
            union = (p | t).sum()
            out["iou" + suffix].append(1.0 if union == 0 else (p & t).sum() / union)
            out["acc" + suffix].append(np.mean(p == t))
    return {k: 100 * float(np.mean(v)) for k, v in out.items()}


def test_hand_computed_iou_and_accuracy():
    maps = np.zeros((4, 2, 2), np.float32)
    masks = np.zeros((4, 2, 2), np.uint8)
    # 0: both empty -> IoU 1, acc 1
    # 1: all-fake mask, all-fake prediction -> IoU 1
    maps[1] = 0.9
    masks[1] = 1
    # 2: prediction 2 cells, mask 1 of them + 1 other -> inter 1, union 3
    maps[2] = [[0.9, 0.9], [0.1, 0.1]]
    masks[2] = [[1, 0], [1, 0]]
    # 3: exactly 0.5 is not fake (> 0.5, as the authors); empty prediction vs 1-cell mask -> 0
    maps[3] = 0.5
    masks[3] = [[0, 0], [0, 1]]
    loc = metrics.localization(maps, masks)
    np.testing.assert_allclose(loc.iou, [1, 1, 1 / 3, 0])
    np.testing.assert_allclose(loc.acc, [1, 1, 0.5, 0.75])
    np.testing.assert_allclose(loc.iou_sm, loc.iou)  # same size: both variants agree
    assert loc.summary()["iou"] == pytest.approx(100 * (1 + 1 + 1 / 3 + 0) / 4)
    np.testing.assert_allclose(loc.mask_area, [0, 1, 0.5, 0.25])


def test_map_of_another_size_than_the_mask():
    # a 2x2 map over a 4x4 mask: nearest downsampling of the mask, bicubic upsampling of the map
    maps = np.array([[[1.0, 0.0], [0.0, 0.0]]], np.float32)
    masks = np.zeros((1, 4, 4), np.uint8)
    masks[0, :2, :2] = 1
    loc = metrics.localization(maps, masks)
    assert loc.iou_sm[0] == 1.0                  # the mask's top-left block -> the top-left cell
    assert 0 < loc.iou[0] <= 1.0
    ref = reference_iou(maps, masks)
    assert 100 * loc.iou[0] == pytest.approx(ref["iou"], abs=1e-6)


@pytest.mark.parametrize("h,H", [(37, 256), (19, 256), (299, 256), (16, 128)])
def test_matches_the_pillow_reference(h, H):
    rng = np.random.default_rng(h)
    n = 12
    ramp = np.linspace(-0.4, 0.4, h)[None, None, :]
    maps = np.clip(rng.random((n, h, h)) * 0.5 + 0.25 + ramp, 0, 1).astype(np.float32)
    masks = np.zeros((n, H, H), np.uint8)
    masks[:, :, H // 2:] = 1
    masks[0] = 0
    masks[1] = 1
    loc = metrics.localization(maps, masks).summary()
    ref = reference_iou(maps, masks)
    for k in ("iou", "acc"):
        assert loc[k] == pytest.approx(ref[k], abs=1e-3)
    for k in ("iou_sm", "acc_sm"):  # nearest sampling of 256 -> 299 can differ in a few pixels
        assert loc[k] == pytest.approx(ref[k], abs=0.2)


def test_detection_ap_balanced_repeats():
    real = np.array([0.1, 0.2, 0.3, 0.4])
    fake = np.array([0.35, 0.9])
    mean, two_std = metrics.detection_ap(real, fake, repeats=5, seed=0)
    # every balanced subset: 2 reals of 4 vs 2 fakes; check against sklearn on the same draws
    rng = np.random.default_rng(0)
    aps = []
    for _ in range(5):
        r = rng.choice(real, 2, replace=False)
        aps.append(100 * average_precision_score([0, 0, 1, 1], np.r_[r, fake]))
    assert mean == pytest.approx(np.mean(aps))
    assert two_std == pytest.approx(2 * np.std(aps))
    perfect = metrics.detection_ap([0.1, 0.2], [0.8, 0.9])
    assert perfect == (100.0, 0.0)


def test_pooled_pixel_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    maps = rng.random((6, 8, 8)).astype(np.float32)
    masks = (rng.random((6, 8, 8)) < 0.3).astype(np.uint8)
    maps = np.clip(maps * 0.6 + 0.4 * masks, 0, 1).astype(np.float32)
    out = metrics.pooled_pixel_metrics(maps, masks, bins=100000)
    y, s = masks.ravel(), maps.ravel()
    assert out["pixel_ap"] == pytest.approx(100 * average_precision_score(y, s), abs=0.3)
    assert out["pixel_auc"] == pytest.approx(100 * roc_auc_score(y, s), abs=0.1)
    per = metrics.per_image_pixel_metrics(maps, masks)
    for i in range(6):
        assert per["pixel_ap_img"][i] == pytest.approx(average_precision_score(masks[i].ravel(), maps[i].ravel()), abs=1e-9)
        assert per["pixel_auc_img"][i] == pytest.approx(roc_auc_score(masks[i].ravel(), maps[i].ravel()), abs=1e-9)


def test_per_image_metrics_handle_ties_and_empty_masks():
    maps = np.array([[[0.5, 0.5], [0.2, 0.9]], [[0.1, 0.2], [0.3, 0.4]]], np.float32)
    masks = np.array([[[1, 0], [0, 1]], [[0, 0], [0, 0]]], np.uint8)
    per = metrics.per_image_pixel_metrics(maps, masks)
    assert per["pixel_auc_img"][0] == pytest.approx(roc_auc_score([1, 0, 0, 1], [0.5, 0.5, 0.2, 0.9]))
    assert np.isnan(per["pixel_auc_img"][1]) and np.isnan(per["pixel_ap_img"][1])


def test_oracle_threshold_and_bootstrap():
    maps = np.array([[[0.3, 0.3], [0.1, 0.1]]], np.float32)
    masks = np.array([[[1, 1], [0, 0]]], np.uint8)
    t, iou = metrics.oracle_threshold_iou(maps, masks)
    assert t < 0.3 and iou == pytest.approx(100.0)
    assert metrics.localization(maps, masks).iou[0] == 0.0  # 0.5 misses it entirely
    lo, hi = metrics.bootstrap_mean_ci(np.array([0.2, 0.4, 0.6, 0.8]), n=500, seed=0)
    assert 20 <= lo < 50 < hi <= 80
    lo, hi = metrics.bootstrap_mean_ci(np.full(10, 0.5))
    assert lo == hi == pytest.approx(50.0)


def test_iou_by_area_bins():
    df = metrics.iou_by_area(np.array([1.0, 0.0, 0.5]), np.array([0.01, 0.03, 0.5]), n_boot=200)
    first = df.iloc[0]
    assert first["count"] == 2 and first["mean"] == pytest.approx(50.0)
    assert first["everything_fake"] == pytest.approx(2.0)          # the mean mask area there, in %
    assert first["ci_low"] < 50 < first["ci_high"]
    assert df.iloc[-1]["mean"] == pytest.approx(50.0) and df.iloc[-1]["ci_low"] == pytest.approx(50.0)
    assert df.iloc[1]["count"] == 0 and np.isnan(df.iloc[1]["mean"])
    assert list(df["area_bin"]) == ["0-5%", "5-10%", "10-20%", "20-100%"]


@pytest.mark.parametrize("k", [7, 1369, 65536, 90000])
def test_count_true_is_exact(k):
    import torch

    x = torch.rand(4, k) > 0.3
    x[0] = True
    x[1] = False
    np.testing.assert_array_equal(metrics.count_true(x).long().numpy(), x.sum(1).numpy())


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_per_image_metrics_equal_sklearn_with_ties_in_any_chunking(dtype):
    """Streaming over chunks (bounded memory at the paper's scale) changes no number: every
    image's AP and AUC equal scikit-learn's, ties included (float16 maps, as stored, tie a lot),
    whatever the chunk size, through the float16 histogram path and the sorting path alike."""
    rng = np.random.default_rng(3)
    maps = (np.round(rng.random((9, 19, 19)) * 8) / 8).astype(dtype)
    masks = (rng.random((9, 38, 38)) < 0.4).astype(np.uint8)
    masks[2] = 0
    small = (resize.nearest(masks, (19, 19)) > 0).reshape(9, -1)
    for chunk in (1, 4, 64):
        per = metrics.per_image_pixel_metrics(maps, masks, chunk=chunk)
        for i in range(9):
            if i == 2:
                assert np.isnan(per["pixel_ap_img"][i]) and np.isnan(per["pixel_auc_img"][i])
                continue
            s = maps[i].ravel().astype(np.float64)
            assert per["pixel_ap_img"][i] == pytest.approx(average_precision_score(small[i], s), abs=1e-12)
            assert per["pixel_auc_img"][i] == pytest.approx(roc_auc_score(small[i], s), abs=1e-12)


@pytest.mark.parametrize("src,dst", [(37, 299), (299, 37), (19, 96), (96, 19), (12, 12), (5, 7)])
def test_nearest_is_pixel_centred_everywhere(src, dst):
    """``resize.nearest`` is the one nearest resize: equal to Pillow's NEAREST and torch's
    ``nearest-exact`` (what masks, losses and metrics all used), on NumPy and tensors, and
    not OpenCV's INTER_NEAREST, which samples half a pixel off."""
    import cv2

    rng = np.random.default_rng(src * dst)
    m = (rng.random((src, src)) < 0.5).astype(np.uint8)
    out = resize.nearest(m, (dst, dst))
    assert out.dtype == np.uint8 and out.shape == (dst, dst)
    assert np.array_equal(out, np.asarray(Image.fromarray(m).resize((dst, dst), Image.NEAREST)))
    t = torch.from_numpy(m).float()[None]
    exact = torch.nn.functional.interpolate(t[None], size=(dst, dst), mode="nearest-exact")[0]
    assert torch.equal(resize.nearest(t, (dst, dst)), exact)
    if src == 37 and dst == 299:   # where OpenCV differs
        assert not np.array_equal(out, cv2.resize(m, (dst, dst), interpolation=cv2.INTER_NEAREST))


def test_bicubic_is_pillows_float_resize():
    rng = np.random.default_rng(0)
    m = rng.random((19, 19)).astype(np.float32)
    ref = np.asarray(Image.fromarray(m).resize((96, 96), Image.BICUBIC))
    np.testing.assert_allclose(resize.bicubic(m, (96, 96)).numpy(), ref, atol=2e-5)


@pytest.mark.parametrize("h,H", [(37, 256), (19, 256), (12, 96), (6, 96), (96, 96)])
def test_constant_maps_stay_constant_and_score_as_pillow(h, H):
    """An untrained weak model's map of exactly 0.5: no pixel passes "> 0.5" (as Pillow's float
    resize, the authors' path); one float16 step above, every pixel does; one below, none."""
    step = float(np.spacing(np.float16(0.5)))
    masks = np.zeros((3, H, H), np.uint8)
    masks[:, : H // 3] = 1
    for value, passes in ((0.5, False), (0.5 + step, True), (0.5 - step / 2, False)):
        maps = np.full((3, h, h), value, np.float32)
        up = resize.bicubic(maps, (H, H)).numpy()
        assert np.all(up == np.float32(value)), (value, up.min(), up.max())
        ours = metrics.localization(maps, masks)
        ref = reference_iou(maps, masks)
        assert 100 * ours.iou.mean() == pytest.approx(ref["iou"], abs=1e-9)
        assert 100 * ours.iou.mean() == pytest.approx(100 * masks.mean() if passes else 0.0, abs=1e-9)


def test_saved_tables_keep_thresholds_and_budgets_exact(tmp_path):
    """IoU at one decimal, a threshold of 0.45 and a budget of 0.25 as they are, NaN as "n/a" (a
    value that does not apply) and as "missing" in the row of a run that should exist and does not."""
    import pandas as pd

    from dolos_core.evaluate import save_table

    df = pd.DataFrame({"experiment": ["a", "b"], "iou": [63.21, np.nan], "val_threshold": [0.45, 0.4],
                       "budget": [0.25, 4.0]})
    save_table(df, tmp_path, "t")
    md = (tmp_path / "t.md").read_text()
    assert "63.2 " in md and "0.45" in md and "0.25" in md and "n/a" in md and "nan" not in md
    save_table(df.assign(status=["ok", "missing"]), tmp_path, "s")
    md = (tmp_path / "s.md").read_text()
    assert "missing" in md.splitlines()[3] and "n/a" not in md
    tex = (tmp_path / "t.tex").read_text()
    assert "0.45" in tex and "0.25" in tex and "--" in tex


def test_threshold_grid_reaches_past_095_and_names_its_edges():
    """A map shifted up as a whole (the fake region at 0.985, the rest at 0.975) finds its
    interior threshold above 0.95 (the old grid's top, where it scored 50); the grid's ends are
    flagged, interior values not."""
    maps = np.array([[[0.985, 0.985], [0.975, 0.975]]], np.float32)
    masks = np.array([[[1, 1], [0, 0]]], np.uint8)
    t, iou = metrics.oracle_threshold_iou(maps, masks)
    assert t == pytest.approx(0.98) and iou == pytest.approx(100.0)
    assert metrics.oracle_threshold_iou(maps, masks, np.linspace(0.05, 0.95, 19))[1] == pytest.approx(50.0)
    assert not metrics.at_grid_edge(t)
    assert metrics.at_grid_edge(metrics.THRESHOLD_GRID[-1]) and metrics.at_grid_edge(metrics.THRESHOLD_GRID[0])
    assert not metrics.at_grid_edge(None) and not metrics.at_grid_edge(0.5)


def test_seed_t_interval_by_hand():
    """Three seeds 53.2, 60.1, 64.9: mean 59.4, sd 5.88, t(0.975, 2) = 4.303: +-14.6."""
    from dolos_core.evaluate import seed_t_interval

    lo, hi = seed_t_interval([53.2, 60.1, 64.9])
    sd = np.std([53.2, 60.1, 64.9], ddof=1)
    assert (hi - lo) / 2 == pytest.approx(4.3027 * sd / np.sqrt(3), rel=1e-4)
    assert lo < 53.2 and hi > 64.9 and np.isnan(seed_t_interval([50.0])[0])
