"""Trivial baselines for Table 2 (ours, not the paper's): what a map scores without learning
anything about generators, so that a method's number can be read against them.

- ``everything-fake``: every pixel fake. Its IoU is the mean mask area; its detection AP is 50
  (every image gets the same score).
- ``pixel-lr``: a per-pixel logistic regression on six features, the colour (R, G, B) and the
  magnitude of a fixed high-pass residual per channel (|x - 3x3 box mean|), fitted on setup C's
  training data (Repaint-P2 train images and their masks). It finds a fake region only if a
  single pixel's colour or local noise level gives it away: a dataset whose fakes it localizes
  well has a trivial cue. Its image score is the mean of its map.

Both are evaluated with the same scoring as every experiment (``evaluate.score``), at the
images' stored resolution.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .data.datasets import DolosDataset
from .data.layout import DatasetKey

BASELINES = ("everything-fake", "pixel-lr")
TRAIN_KEY = "celebahq/repaint-p2"     # setup C's training data


def pixel_features(img: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (H * W, 6) float32: colour in [0, 1] and |high-pass residual|."""
    x = img.astype(np.float32) / 255
    hp = np.abs(x - cv2.blur(x, (3, 3), borderType=cv2.BORDER_REFLECT))
    return np.concatenate([x, hp], axis=-1).reshape(-1, 6)


def fit_pixel_lr(data_root: Path, n_images: int = 300, pixels_per_image: int = 2000, seed: int = 0):
    """The ``pixel-lr`` baseline: standardised features -> logistic regression, fitted on
    ``pixels_per_image`` random pixels of each of the first ``n_images`` training images of
    setup C (with their masks)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    ds = DolosDataset(data_root, TRAIN_KEY, "train", input_size=1, limit=n_images)
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for i in range(len(ds)):
        img, mask = ds.load_raw(i)
        f = pixel_features(img)
        idx = rng.choice(len(f), min(pixels_per_image, len(f)), replace=False)
        xs.append(f[idx])
        ys.append(mask.reshape(-1)[idx])
    y = np.concatenate(ys)
    if y.min() == y.max():
        raise ValueError(f"{TRAIN_KEY} train masks are all one class: cannot fit the pixel baseline")
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(np.concatenate(xs), y)


def baseline_maps(name: str, data_root: Path, key: str, limit: int | None = None, model=None):
    """Maps (N, H, W) float16 fake probabilities at the stored resolution, image scores (N,)
    and file names of baseline ``name`` on the test split of ``key``."""
    ds = DolosDataset(data_root, DatasetKey.parse(key), "test", input_size=1, limit=limit)
    maps = []
    for i in range(len(ds)):
        img, _ = ds.load_raw(i)
        if name == "everything-fake":
            m = np.ones(img.shape[:2], np.float32)
        elif name == "pixel-lr":
            m = model.predict_proba(pixel_features(img))[:, 1].reshape(img.shape[:2])
        else:
            raise KeyError(f"unknown baseline {name!r}; choose one of {', '.join(BASELINES)}")
        maps.append(m.astype(np.float16))
    maps = np.stack(maps)
    return maps, maps.astype(np.float32).mean((1, 2)), np.array(ds.names)
