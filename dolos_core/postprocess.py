"""Map post-processing (an extension, NOT part of the DOLOS paper), as a composable registry.

A map is brought to the image size before the first step: for ``hdbscan`` with pixel-centred
nearest neighbour (``resize.nearest``), as FOCAL clusters the upsampled map; for every other
step the authors' way (bicubic, clipped to [0, 1]; ``resize.bicubic``), the upsampling behind
Table 2's IoU, so ``none`` scores exactly as Table 2 and every gain is measured against it.

- ``hdbscan`` (after FOCAL, Wu et al., CVPR 2023): the upsampled map's pixels are clustered with
  the hdbscan library, the largest cluster is called real and every other cluster fake.
  Features: the fake probability alone (default) or, with ``position=True``, the probability
  plus the pixel's (y, x) scaled to [0, 1] and weighted by ``position_weight``. Noise points
  (label -1) are assigned to the cluster of their nearest clustered neighbour in feature space
  (so every pixel gets a decision). To run over a whole test set, ``fit_pixels`` pixels are
  drawn (seeded) for fitting and ``min_cluster_size`` is scaled by the same fraction, then
  every pixel takes the label of its nearest fitted pixel. ``allow_single_cluster=True``
  (hdbscan's option) lets a map with no fake region come out as one cluster, i.e. all real;
  without it HDBSCAN must split even a unimodal map.
- ``morphology``: binary opening then closing with a disk of ``radius`` pixels.
- ``largest-component``: keep only the largest connected fake region.

Each step maps a float map (H, W) in [0, 1] (or a binary one) to a map in [0, 1]; the output of
``hdbscan`` is binary (0/1), so the authors' 0.5 threshold applies unchanged.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import cv2
import numpy as np

from . import resize

Step = Callable[[np.ndarray], np.ndarray]


def upsample(m: np.ndarray, size: int | None, nearest: bool = False) -> np.ndarray:
    """A (h, w) map at ``size`` x ``size``: bicubic as Table 2's IoU, clipped to [0, 1], or
    pixel-centred nearest neighbour."""
    if size is None or m.shape[0] == size:
        return m.astype(np.float32)
    if nearest:
        return resize.nearest(m.astype(np.float32), (size, size))
    return np.clip(resize.bicubic(m.astype(np.float32), (size, size)).numpy(), 0, 1)


def hdbscan_map(m: np.ndarray, size: int | None = None, min_cluster_size: int = 500,
                min_samples: int | None = None, position: bool = False,
                position_weight: float = 0.5, fit_pixels: int = 2000, seed: int = 0,
                allow_single_cluster: bool = True) -> np.ndarray:
    """Binary map: largest HDBSCAN cluster = real (0), other clusters = fake (1)."""
    import hdbscan
    from scipy.spatial import cKDTree

    up = upsample(m, size, nearest=True)
    h, w = up.shape
    feats = up.reshape(-1, 1).astype(np.float64)
    if position:
        yy, xx = np.mgrid[0:h, 0:w]
        feats = np.c_[feats, position_weight * yy.ravel() / h, position_weight * xx.ravel() / w]
    n = len(feats)
    rng = np.random.default_rng(seed)
    idx = rng.choice(n, min(fit_pixels, n), replace=False) if n > fit_pixels else np.arange(n)
    frac = len(idx) / n
    mcs = max(2, int(round(min_cluster_size * frac)))
    ms = None if min_samples is None else max(1, int(round(min_samples * frac)))
    # small jitter breaks the exact ties of nearest-upsampled maps (identical points)
    fit = feats[idx] + rng.normal(0, 1e-6, feats[idx].shape)
    labels = hdbscan.HDBSCAN(min_cluster_size=mcs, min_samples=ms,
                             allow_single_cluster=allow_single_cluster).fit_predict(fit)
    if (labels >= 0).sum() == 0:
        return np.zeros((h, w), np.float32)  # no structure found: all real
    good = labels >= 0
    tree = cKDTree(fit[good])
    full = labels[good][tree.query(feats, k=1)[1]]
    largest = np.bincount(full).argmax()
    return (full != largest).reshape(h, w).astype(np.float32)


def morphology(m: np.ndarray, radius: int = 2, threshold: float = 0.5) -> np.ndarray:
    b = (m > threshold).astype(np.uint8)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    b = cv2.morphologyEx(b, cv2.MORPH_OPEN, k)
    return cv2.morphologyEx(b, cv2.MORPH_CLOSE, k).astype(np.float32)


def largest_component(m: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    b = (m > threshold).astype(np.uint8)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(b, connectivity=8)
    if n <= 1:
        return b.astype(np.float32)
    keep = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return (lab == keep).astype(np.float32)


REGISTRY: dict[str, Callable[..., np.ndarray]] = {
    "none": lambda m, **_: m.astype(np.float32),
    "hdbscan": hdbscan_map,
    "morphology": morphology,
    "largest-component": largest_component,
}


@dataclass(frozen=True)
class Pipeline:
    """A chain of registered steps, e.g. ``Pipeline(("hdbscan", "largest-component"),
    {"hdbscan": {"min_cluster_size": 300}})``."""

    steps: tuple[str, ...]
    params: dict = field(default_factory=dict)

    def __post_init__(self):
        for s in self.steps:
            if s not in REGISTRY:
                import difflib

                close = difflib.get_close_matches(s, REGISTRY, n=1)
                raise KeyError(f"unknown post-processing {s!r}" + (f"; did you mean {close[0]!r}?" if close else "")
                               + f" (known: {', '.join(REGISTRY)})")

    @property
    def name(self) -> str:
        parts = []
        for s in self.steps:
            p = self.params.get(s, {})
            parts.append(s + ("(" + ",".join(f"{k}={v}" for k, v in sorted(p.items())) + ")" if p else ""))
        return "+".join(parts)

    def __call__(self, m: np.ndarray, size: int | None = None) -> np.ndarray:
        out = m.astype(np.float32)
        for s in self.steps:
            kw = dict(self.params.get(s, {}))
            if size is not None and out.shape[0] != size:
                out = upsample(out, size, nearest=s == "hdbscan")
            out = REGISTRY[s](out, **kw)
        return out

    def apply(self, maps: np.ndarray, size: int | None = None, progress: bool = False) -> tuple[np.ndarray, float]:
        """Apply to every map; return (maps, seconds per image)."""
        it = range(len(maps))
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(it, desc=self.name, leave=False)
        t = time.time()
        out = np.stack([self(maps[i].astype(np.float32), size) for i in it])
        return out, (time.time() - t) / max(len(maps), 1)
