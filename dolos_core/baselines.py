"""Trivial baselines for Table 2 (ours, not the paper's): what a map scores without learning
anything about generators, so that a method's number can be read against them.

- ``everything-fake``: every pixel fake. Its IoU is the mean mask area; its detection AP is 50
  (every image gets the same score).
- ``everything-real``: no pixel fake. Its IoU is the share of fake test images with an empty
  mask (0 on DOLOS, where every inpainted image has a region); AP 50.
- ``mask-prior``: every test image gets the same map, the per-pixel share of setup C's training
  masks that call the pixel fake (where inpainted regions usually are: the face's centre). At
  the 0.5 threshold it marks the pixels fake in most training masks; its pixel AUC says how
  much a fixed location alone ranks pixels. AP 50.
- ``pixel-lr``: a per-pixel logistic regression on six features, the colour (R, G, B) and the
  magnitude of a fixed high-pass residual per channel (|x - 3x3 box mean|), fitted on setup C's
  training data (Repaint-P2 train images and their masks). It finds a fake region only if a
  single pixel's colour or local noise level gives it away: a dataset whose fakes it localizes
  well has a trivial cue. Its image score is the mean of its map.

All are evaluated with the same scoring as every experiment (``evaluate.score``), at the
images' stored resolution.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from . import resize
from .data.datasets import DolosDataset, read_mask
from .data.layout import DatasetKey

BASELINES = ("everything-fake", "everything-real", "mask-prior", "pixel-lr")
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


def fit_mask_prior(data_root: Path, n_images: int = 300) -> np.ndarray:
    """The ``mask-prior`` map: the mean of the first ``n_images`` setup-C training masks
    (1 = fake), (H, W) float32 at their stored resolution."""

    ds = DolosDataset(data_root, TRAIN_KEY, "train", input_size=1, limit=n_images)
    return np.mean([read_mask(ds.masks_dir / n).astype(np.float32) for n in ds.names], axis=0)


def fit_baselines(data_root: Path, seed: int = 0) -> dict:
    """What the learned baselines need, fitted on setup C's training split."""
    return {"pixel-lr": fit_pixel_lr(data_root, seed=seed), "mask-prior": fit_mask_prior(data_root)}


def baseline_maps(name: str, data_root: Path, key: str, limit: int | None = None,
                  fitted: dict | None = None, split: str = "test"):
    """Maps (N, H, W) float16 fake probabilities at the stored resolution, image scores (N,)
    and file names of baseline ``name`` on ``split`` of ``key``; ``fitted``: from
    :func:`fit_baselines` (needed by ``pixel-lr`` and ``mask-prior``)."""
    ds = DolosDataset(data_root, DatasetKey.parse(key), split, input_size=1, limit=limit)
    maps = []
    for i in range(len(ds)):
        img, _ = ds.load_raw(i)
        if name == "everything-fake":
            m = np.ones(img.shape[:2], np.float32)
        elif name == "everything-real":
            m = np.zeros(img.shape[:2], np.float32)
        elif name == "mask-prior":
            m = np.clip(resize.bicubic(fitted["mask-prior"], img.shape[:2]).numpy(), 0, 1)
        elif name == "pixel-lr":
            m = fitted["pixel-lr"].predict_proba(pixel_features(img))[:, 1].reshape(img.shape[:2])
        else:
            raise KeyError(f"unknown baseline {name!r}; choose one of {', '.join(BASELINES)}")
        maps.append(m.astype(np.float16))
    maps = np.stack(maps)
    scores = maps.astype(np.float32).mean((1, 2)) if name == "pixel-lr" else np.zeros(len(maps), np.float32)
    return maps, scores, np.array(ds.names)
