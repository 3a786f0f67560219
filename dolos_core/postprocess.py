"""Map post-processing (an extension, NOT part of the DOLOS paper), as a composable registry.

A map is brought to the image size before the first step: for ``hdbscan`` with pixel-centred
nearest neighbour (``resize.nearest``), as FOCAL clusters the upsampled map; for every other
step the authors' way (bicubic, clipped to [0, 1]; ``resize.bicubic``), the upsampling behind
Table 2's IoU, so ``none`` scores exactly as Table 2 and every gain is measured against it.

- ``hdbscan-features`` (FOCAL's recipe, Wu et al., 2023): each image's map *cells* are
  clustered on the model's own per-cell features (Patches: its ``block2`` features; Grad-CAM and
  Attention: the features at their map's layer, ``DolosModel.cell_features``), each channel
  standardised over the image's cells and projected on their ``pca`` leading principal
  components (16 by default: HDBSCAN's trees are slow and its densities flat in 256-728
  dimensions; ``pca=None`` keeps every channel); with ``with_score=True`` the cell's fake
  probability is appended, standardised and weighted to carry as much variance as all the
  feature columns together, so the features do not drown it.
  ``min_cluster_size`` is ``min_cluster_frac`` of the image's cells (at least 2), so one setting
  means the same at a 12x12 and a 37x37 map. The largest cluster is real, every other fake;
  noise cells take the cluster of their nearest clustered cell in feature space; the binary
  cell map is brought to the image with pixel-centred nearest neighbour, as FOCAL's
  description recommends. It fails by construction when the fake region is the majority.
- ``hdbscan`` (the *scalar* variant: our earlier adaptation, one graded score per pixel, which
  gives HDBSCAN density ridges rather than two groups): the upsampled map's pixels are clustered with
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
both HDBSCAN variants is binary (0/1), so the authors' 0.5 threshold applies unchanged.
"""

from __future__ import annotations

import difflib
import time
from dataclasses import dataclass, field
from typing import Callable

import cv2
import numpy as np

from . import resize


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
    out = _largest_is_real(fit, labels, feats)
    return np.zeros((h, w), np.float32) if out is None else out.reshape(h, w)  # None: all real


def _standardise(x: np.ndarray) -> np.ndarray:
    """Columns of (n, d) to zero mean and unit variance (constant columns to 0)."""
    x = x - x.mean(0, keepdims=True)
    sd = x.std(0, keepdims=True)
    return np.divide(x, sd, out=np.zeros_like(x), where=sd > 1e-12)


def _largest_is_real(fit: np.ndarray, labels: np.ndarray, points: np.ndarray) -> np.ndarray | None:
    """Labels of ``points`` (1 = fake) from HDBSCAN's ``labels`` of ``fit``: noise takes the
    label of its nearest clustered point, the largest cluster is real. None if all is noise."""
    from scipy.spatial import cKDTree

    good = labels >= 0
    if not good.any():
        return None
    full = labels[good][cKDTree(fit[good]).query(points, k=1)[1]]
    return (full != np.bincount(full).argmax()).astype(np.float32)


def cell_scores(m: np.ndarray, cells: tuple[int, int]) -> np.ndarray:
    """The map at the feature grid: itself when it has that shape, else area-averaged (a weak
    Grad-CAM map is stored at the input size, its cells are ``block11``'s)."""
    if m.shape == tuple(cells):
        return m.astype(np.float32)
    return cv2.resize(m.astype(np.float32), (cells[1], cells[0]), interpolation=cv2.INTER_AREA)


def hdbscan_features(m: np.ndarray, features: np.ndarray, min_cluster_frac: float = 0.1,
                     min_samples: int | None = None, with_score: bool = False,
                     pca: int | None = 16, allow_single_cluster: bool = True) -> np.ndarray:
    """Binary map at the feature grid (h, w): HDBSCAN over the cells' ``features`` (C, h, w),
    largest cluster = real (0), other clusters = fake (1) (module doc)."""
    import hdbscan

    c, h, w = features.shape
    x = _standardise(features.reshape(c, h * w).T.astype(np.float64))
    if pca is not None and pca < min(x.shape):
        u, sv, _ = np.linalg.svd(x, full_matrices=False)
        x = u[:, :pca] * sv[:pca]                        # the cells' principal-component scores
    if with_score:
        s = cell_scores(m, (h, w)).reshape(-1, 1).astype(np.float64)
        x = np.c_[x, np.sqrt(x.var(0).sum()) * _standardise(s)]
    n = h * w
    mcs = max(2, int(round(min_cluster_frac * n)))
    labels = hdbscan.HDBSCAN(min_cluster_size=mcs, min_samples=min_samples,
                             allow_single_cluster=allow_single_cluster).fit_predict(x)
    out = _largest_is_real(x, labels, x)
    return np.zeros((h, w), np.float32) if out is None else out.reshape(h, w)


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
    "hdbscan-features": hdbscan_features,
    "morphology": morphology,
    "largest-component": largest_component,
}
# Steps that read the model's per-cell features (``features=``) and return a map at their grid.
FEATURE_STEPS = frozenset({"hdbscan-features"})


@dataclass(frozen=True)
class Pipeline:
    """A chain of registered steps, e.g. ``Pipeline(("hdbscan", "largest-component"),
    {"hdbscan": {"min_cluster_size": 300}})``."""

    steps: tuple[str, ...]
    params: dict = field(default_factory=dict)

    def __post_init__(self):
        for s in self.steps:
            if s not in REGISTRY:

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

    @property
    def needs_features(self) -> bool:
        return any(s in FEATURE_STEPS for s in self.steps)

    def __call__(self, m: np.ndarray, size: int | None = None,
                 features: np.ndarray | None = None) -> np.ndarray:
        """``m`` through every step at ``size`` x ``size``; ``features`` (C, h, w): the map's
        per-cell features, for the steps that cluster them (their binary output at the cell
        grid is brought to ``size`` with nearest neighbour)."""
        out = m.astype(np.float32)
        for s in self.steps:
            kw = dict(self.params.get(s, {}))
            if s in FEATURE_STEPS:
                if features is None:
                    raise ValueError(f"{self.name}: step {s!r} needs the model's per-cell features")
                out = REGISTRY[s](out, features=features, **kw)
                if size is not None:
                    out = upsample(out, size, nearest=True)
                continue
            if size is not None and out.shape[0] != size:
                out = upsample(out, size, nearest=s == "hdbscan")
            out = REGISTRY[s](out, **kw)
        return out

    def apply(self, maps: np.ndarray, size: int | None = None, progress: bool = False,
              features: np.ndarray | None = None) -> tuple[np.ndarray, float]:
        """Apply to every map (with ``features`` (N, C, h, w) for a feature step); return
        (maps, seconds per image)."""
        if self.needs_features and (features is None or len(features) != len(maps)):
            raise ValueError(f"{self.name}: needs per-cell features for each of the {len(maps)} maps")
        it = range(len(maps))
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(it, desc=self.name, leave=False)
        t = time.time()
        out = np.stack([self(maps[i].astype(np.float32), size,
                             None if features is None else features[i].astype(np.float32)) for i in it])
        return out, (time.time() - t) / max(len(maps), 1)
