"""The trivial baselines of Table 2: hand-checkable cases."""

from __future__ import annotations

import numpy as np
import pytest

from dolos_core.baselines import baseline_maps, fit_pixel_lr, pixel_features
from dolos_core.config import get_paths, get_profile
from dolos_core.evaluate import baseline_rows

from .conftest import make_layout, write_png


def test_pixel_features_are_colour_and_highpass_magnitude():
    img = np.zeros((4, 4, 3), np.uint8)
    img[1, 1] = 255
    f = pixel_features(img)
    assert f.shape == (16, 6)
    assert np.allclose(f[5, :3], 1) and np.allclose(f[0, :3], 0)
    assert f[5, 3] == pytest.approx(1 - 1 / 9, abs=1e-6)   # the bright pixel minus its 3x3 mean


def _paint_fakes_red(root, split, n):
    """Make the fake region of every repaint-p2 image pure red: a trivial per-pixel cue."""
    from PIL import Image

    for i in range(n):
        name = f"{i:03d}.png"
        base = root / "celebahq" / "fake" / "repaint-p2"
        img = np.array(Image.open(base / "images" / split / name))
        fake = np.array(Image.open(base / "masks" / split / name)) != 255
        img[fake] = (255, 0, 0)
        write_png(base / "images" / split / name, img)


def test_everything_fake_scores_the_mask_area_and_pixel_lr_finds_a_trivial_cue(tmp_path):
    root = make_layout(tmp_path / "dolos", size=32, n=4,
                       datasets=("celebahq/real", "celebahq/repaint-p2"))
    for split in ("train", "test"):
        _paint_fakes_red(root, split, 4)
    paths = get_paths("smoke", data_root=root, root=tmp_path)
    rows = {r["experiment"]: r for r in baseline_rows(paths, get_profile("smoke"))}
    fake = rows["baseline-everything-fake"]
    areas = [4 * (i + 1) * 12 / 32**2 for i in range(4)]          # make_layout's squares
    assert fake["iou"] == pytest.approx(100 * np.mean(areas), abs=1e-6)
    assert fake["ap_mean"] == pytest.approx(50.0)
    assert rows["baseline-pixel-lr"]["pixel_auc"] > 95 and rows["baseline-pixel-lr"]["iou"] > 50
    assert rows["baseline-everything-real"]["iou"] == 0 and rows["baseline-everything-real"]["ap_mean"] == 50
    # mask prior: the 4 training squares start at row 4 and end at rows 8, 12, 16, 20, so the
    # share of fake masks is > 0.5 on rows 4-11; per image IoU 48/96, 96/96, 96/144, 96/192
    assert rows["baseline-mask-prior"]["iou"] == pytest.approx(100 * (0.5 + 1 + 2 / 3 + 0.5) / 4, abs=1e-4)
    maps, scores, names = baseline_maps("pixel-lr", root, "celebahq/real", fitted={"pixel-lr": fit_pixel_lr(root)})
    assert maps.shape == (4, 32, 32) and list(names) == sorted(names)
