"""The geometry stage's measurements (dolos_core/geometry.py) on hand-built cases; the stage
itself runs on the smoke study in tests/test_pipeline.py."""

from __future__ import annotations

import filecmp

import numpy as np
import pandas as pd
import pytest

from dolos_core import geometry, metrics
from dolos_core.config import get_profile
from dolos_core.data.mini import build_mini


def test_patches_receptive_field_is_the_hand_computed_one():
    """Xception up to block2, by hand (field r, jump j): conv1 3x3 stride 2 -> r 3, j 2; conv2
    3x3 -> 7; block1's two separable 3x3 -> 11, 15; its 3x3 max-pool stride 2 -> 19, j 4;
    block2's two -> 27, 35; its pool -> 43, j 8. conv1 and conv2 are unpadded: cell 0 is
    centred on pixel 1 + 2 = 3; the padded layers after keep that centre."""
    for size in (64, 96, 224):
        rf = geometry.receptive_field("patches", size)
        assert (rf.side, rf.jump, rf.offset) == (43, 8.0, 3.0), (size, rf)
    assert geometry.receptive_field("patches", 96).map_side == 12


def test_cell_kinds_by_hand():
    """A 5 px field every 2 px from pixel 2 on an 8 px image (4x4 cells), one fake pixel at
    (4, 4): cells whose box [c-2, c+2] holds it see fake; the cell centred on it is 'centre'."""
    rf = geometry.ReceptiveField(side=5, jump=2.0, offset=2.0, map_side=4, input_size=8)
    mask = np.zeros((1, 8, 8), np.uint8)
    mask[0, 4, 4] = 1
    kinds = geometry.cell_kinds(mask, rf)[0]
    # centres 2, 4, 6, 8->clipped 7; boxes [0,4], [2,6], [4,7], [6,7]: pixel 4 in the first three
    expect = np.array([[2, 2, 2, 1], [2, 3, 2, 1], [2, 2, 2, 1], [1, 1, 1, 1]])
    np.testing.assert_array_equal(kinds, expect)
    with pytest.raises(ValueError, match="measured at 8 px"):
        geometry.cell_kinds(np.zeros((1, 16, 16)), rf)


def test_dilated_mask_iou_of_a_straight_edge():
    """The left half of a 32 px image is fake: dilating by r moves the edge r px, so the IoU of
    the mask against it is 16 / (16 + r)."""
    mask = np.zeros((1, 32, 32), np.uint8)
    mask[:, :, :16] = 1
    assert geometry.dilated_mask_iou(mask, 0)[0] == pytest.approx(1.0)
    assert geometry.dilated_mask_iou(mask, 4)[0] == pytest.approx(16 / 20)


def test_histogram_auc_by_hand_and_per_image_histograms_pool():
    """pos in bins 1 and 2, neg in bins 0 and 1: of the 4 pairs, 3 are won and 1 tied -> 0.875.
    Per-image histograms summed give the pooled AUC of pooled_pixel_metrics."""
    assert metrics.histogram_auc(np.array([0, 1, 1.]), np.array([1, 1, 0.])) == pytest.approx(0.875)
    assert np.isnan(metrics.histogram_auc(np.zeros(3), np.ones(3)))
    rng = np.random.default_rng(0)
    maps = rng.random((6, 8, 8)).astype(np.float16)
    masks = (rng.random((6, 32, 32)) > 0.7).astype(np.uint8)
    pos, neg = metrics.pixel_histograms(maps, masks)
    assert pos.shape == (6, 1000) and pos.sum() + neg.sum() == 6 * 32 * 32
    assert 100 * metrics.histogram_auc(pos.sum(0), neg.sum(0)) == pytest.approx(
        metrics.pooled_pixel_metrics(maps, masks)["pixel_auc"])


def test_seed_and_image_bootstrap():
    """One seed: only images are resampled; B/C on the same draws is paired (B = C / 2 exactly
    gives an interval of exactly 0.5)."""
    c = np.random.default_rng(1).random((3, 50))
    draws = geometry._draws(3, 50, 200, seed=0)
    b = geometry._boot_means(c / 2, draws) / geometry._boot_means(c, draws)
    assert np.allclose(b, 0.5)
    s, i = geometry._draws(1, 50, 10, seed=0)
    assert (s == 0).all() and i.shape == (10, 50)
    spread = geometry._boot_means(c, geometry._draws(3, 50, 500, 0))
    images_only = geometry._boot_means(c[:1], geometry._draws(1, 50, 500, 0))
    assert spread.std() > 0 and images_only.std() > 0


def test_restricted_build_writes_the_same_images(tmp_path):
    """``only``: the named generators' files, byte-identical to the full build's."""
    prof = get_profile("smoke")
    build_mini(tmp_path / "full", prof, seed=0, progress=False)
    meta = build_mini(tmp_path / "part", prof, seed=0, progress=False, only=("real", "repaint-p2"))
    assert meta["only"] == ["real", "repaint-p2"]
    part = sorted(p.relative_to(tmp_path / "part") for p in (tmp_path / "part").rglob("*.png"))
    tops = {"/".join(p.parts[:3]) for p in part}
    assert tops == {"celebahq/real/train", "celebahq/real/valid", "celebahq/real/test",
                    "celebahq/fake/repaint-p2", "celebahq/fake/repaint-p2-9k"}, tops
    for rel in part:
        assert filecmp.cmp(tmp_path / "full" / rel, tmp_path / "part" / rel, shallow=False), rel
    with pytest.raises(ValueError, match="include 'real' and 'repaint-p2'"):
        build_mini(tmp_path / "x", prof, only=("lama",))


def test_geometry_points_need_a_built_profile(tmp_path):
    from dolos_core.config import ConfigError, get_paths

    paths = get_paths("paper", tmp_path, root=tmp_path)
    with pytest.raises(ConfigError, match="smoke and mini"):
        geometry.points(get_profile("paper"), paths)
    pts = geometry.points(get_profile("mini"), get_paths("mini", root=tmp_path))     # the stage's own options
    assert [p.size for p in geometry.points(get_profile("mini"), get_paths("mini", root=tmp_path), (64,), 2)] == [64, 64]
    with pytest.raises(ConfigError, match="n_seeds"):
        geometry.points(get_profile("mini"), get_paths("mini", root=tmp_path), n_seeds=-1)
    assert [(p.seed, p.size) for p in pts[:4]] == [(0, 96), (0, 160), (0, 224), (1, 96)]
    assert pts[0].paths.data_root == tmp_path / "data" / "dolos-mini-mini"
    assert pts[1].paths.data_root == tmp_path / "data" / "dolos-mini-mini-160px"
    assert pts[1].profile.input_size == 160 and pts[3].profile.seed == 1


def _geo_rows(size, rows):
    return [{"size": size, "rf_share": 43 / size, "map_side": size // 8, "row": r, "metric": m, "value": v,
             "ci_low": lo, "ci_high": hi, "seeds": 3} for r, m, v, lo, hi in rows]


def _with_own(rows):
    """Each row at 0.5 also at the runs' own threshold, with the same values."""
    return rows + [(r, "iou_own", v, lo, hi) for r, m, v, lo, hi in rows if m == "iou"]


def test_summary_lines_report_every_weak_run_and_its_trend_by_hand():
    """The sentences name Patches-MIL B's own numbers and its /C trend, not only Patches B's: on a
    hand-built table where MIL-B/C rises (0.50 [0.45, 0.55] -> 0.90 [0.85, 0.95]) while B/C stays
    flat (0.30 [0.25, 0.35] -> 0.32 [0.27, 0.37]) at 0.5 and at the runs' own thresholds; the
    validation-mask threshold is named as the oracle it is for weak B."""
    geo = pd.DataFrame(
        _geo_rows(96, _with_own([("B", "iou", 18, 16, 20), ("C", "iou", 60, 58, 62), ("B/C", "iou", .30, .25, .35),
                                 ("patches-mil-B", "iou", 30, 28, 32), ("patches-mil-B/C", "iou", .50, .45, .55)])
                  + [("B", "iou_val", 30, 28, 32), ("C", "iou_val", 61, 59, 63), ("B/C", "iou_val", .49, .45, .53),
                     ("patches-mil-B", "iou_val", 33, 31, 35), ("patches-mil-B/C", "iou_val", .54, .5, .58),
                     (geometry.DILATED, "iou", 16, 15, 17)])
        + _geo_rows(224, _with_own([("B", "iou", 25, 23, 27), ("C", "iou", 80, 78, 82), ("B/C", "iou", .32, .27, .37),
                                    ("patches-mil-B", "iou", 72, 70, 74), ("patches-mil-B/C", "iou", .90, .85, .95)])
                    + [("B", "iou_val", 57, 55, 59), ("C", "iou_val", 82, 80, 84), ("B/C", "iou_val", .70, .67, .72),
                       ("patches-mil-B", "iou_val", 76, 74, 78), ("patches-mil-B/C", "iou_val", .93, .9, .96),
                       (geometry.DILATED, "iou", 31, 29, 33)]))
    assert geometry.other_weak_rows(geo) == ["patches-mil-B"]
    assert geometry.trend(geo, "iou") == "flat within the intervals"
    assert geometry.trend(geo, "iou", "patches-mil-B/C") == "rises"
    text = "\n".join(geometry.summary_lines(geo))
    assert "224 px, patches-mil-B: IoU at 0.5 72.0 [70.0, 74.0], patches-mil-B/C 0.90 [0.85, 0.95]" in text
    assert "patches-mil-B/C at 0.5 rises with the input side" in text
    assert ("B/C at 0.5 is flat within the intervals with the input side; at its own threshold (B: without "
            "masks) it is flat within the intervals; at the validation-mask threshold (an oracle for B) it "
            "rises.") in text
    assert " it flat" not in text and "0.5 flat" not in text
    from dolos_core.plots import geometry_figure

    fig = geometry_figure(geo, 43 / 299, ratio_line=0.75)
    ratio_panel = fig.axes[1].get_legend_handles_labels()[1]
    assert {"B / C, at 0.5", "patches-mil-B / C, at 0.5"} <= set(ratio_panel)
    assert any("0.75" in label for label in ratio_panel)
    assert "patches-mil-B" in fig.axes[2].get_legend_handles_labels()[1]


def test_geometry_figure_draws_each_seed_by_hand():
    """With ``seed_values`` (3 seeds), every row's seeds are dots at its side: B at 0.5 at 96 px
    has seeds 15.3, 18.2, 17.8, and the legend says what the dots are; without the column, none."""
    import matplotlib.pyplot as plt

    from dolos_core.plots import geometry_figure

    rows = [("B", "iou", 17.1, 14.8, 19.4), ("C", "iou", 60, 58, 62), ("B/C", "iou", .28, .26, .30),
            ("B", "iou_val", 28, 25, 32), ("C", "iou_val", 63, 61, 65), ("B/C", "iou_val", .44, .40, .49),
            (geometry.DILATED, "iou", 16, 15, 17)]
    geo = pd.DataFrame(_geo_rows(96, rows) + _geo_rows(224, rows))
    geo["seed_values"] = "1,2,3"
    geo.loc[(geo["size"] == 96) & (geo.row == "B") & (geo.metric == "iou"), "seed_values"] = "15.3,18.2,17.8"
    geo.loc[geo.row == geometry.DILATED, "seeds"] = 0          # a reference, not trained: no dots
    fig = geometry_figure(geo, 43 / 299)
    dots = [tuple(np.round(line.get_ydata(), 1)) for line in fig.axes[0].lines if line.get_marker() == "."]
    assert (15.3, 18.2, 17.8) in dots
    assert len(dots) == 2 * 4 + 1         # B and C at 0.5 and at val. at 2 sides, + the legend's entry
    assert "each seed (dots right of the mean)" in fig.axes[0].get_legend_handles_labels()[1]
    plt.close(fig)
    fig = geometry_figure(geo.drop(columns="seed_values"), 43 / 299)
    assert not [line for line in fig.axes[0].lines if line.get_marker() == "."]
    plt.close(fig)
