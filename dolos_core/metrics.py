"""Metrics: the authors' protocol (docs/STUDY.md 'Metrics') and our threshold-free extras.

Everything works on whole arrays (torch, in chunks to bound memory), never image by image with
PIL. Conventions: maps are fake probabilities (N, h, w); masks are (N, H, W) with 1 = fake.

The authors' protocol
    - ``iou`` ("lg"): the map resized to the mask's size with bicubic interpolation, as Pillow's
      default ``resize`` of a float image (a = -0.5 cubic, antialiased when shrinking; torch's
      ``bicubic`` with ``antialias=True`` is that same filter), thresholded at ``> 0.5``;
    - ``iou_sm``: the mask resized to the map's size with nearest neighbour (pixel centres, as
      Pillow), the map thresholded at ``> 0.5``;
    - per image IoU = |P & M| / |P | M| with an empty union counting 1; pixel accuracy
      likewise; both averaged over images, in %.
    - detection: average precision of image scores on balanced random subsets (as many reals
      as fakes), 5 repeats, mean and 2 standard deviations (ddof = 0), in %.

Ours (clearly labelled as such in every table): pixel AP and ROC-AUC pooled over all pixels
and per image, best F1, the oracle-threshold IoU, bootstrap 95% intervals, IoU by mask area.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import average_precision_score

from .resize import bicubic, nearest

THRESHOLD = 0.5
# The thresholds a validation-chosen (or oracle) threshold is searched over: 0.05 to 0.95 in
# steps of 0.05, widened towards 0 and 1 so that a map shifted up (or down) as a whole finds an
# interior threshold; a value at either end is reported "at the grid's edge" (``at_grid_edge``):
# the IoU there is a lower bound of what a wider search would find.
THRESHOLD_GRID = np.round(np.r_[0.001, 0.005, 0.01, 0.02, np.linspace(0.05, 0.95, 19), 0.98, 0.99, 0.995, 0.999], 4)


def at_grid_edge(t: float | None) -> bool:
    """Whether a threshold chosen over ``THRESHOLD_GRID`` sits at one of its ends."""
    return t is not None and np.isfinite(t) and (np.isclose(t, THRESHOLD_GRID[0]) or np.isclose(t, THRESHOLD_GRID[-1]))


def _chunks(n: int, size: int) -> Iterator[slice]:
    for i in range(0, n, size):
        yield slice(i, min(n, i + size))


def count_true(x: torch.Tensor) -> torch.Tensor:
    """Number of True per row of a bool (N, K) tensor, as float64. Eight booleans (bytes 0/1)
    are read as one int64 and blocks of 128 words are summed, so no byte lane exceeds 128; the
    lanes are then added up. Exact, and ~100x faster than ``count_nonzero`` on a CPU."""
    n, k = x.shape
    b = x.contiguous().view(torch.uint8)
    pad = (-k) % 1024
    if pad:
        b = F.pad(b, (0, pad))
    words = b.reshape(n, -1, 8).view(torch.int64).reshape(n, -1, 128)   # (N, K/1024, 128)
    lanes = words.sum(2).contiguous().view(torch.uint8)                 # (N, K/1024 * 8)
    return lanes.sum(1, dtype=torch.int64).double()


def iou_acc(pred: torch.Tensor, true: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image IoU (empty union = 1) and pixel accuracy of boolean (N, H, W) arrays.
    Counts only: union = |P| + |M| - |P & M|, errors = |P| + |M| - 2 |P & M|."""
    pred, true = pred.bool().flatten(1), true.bool().flatten(1)
    n_p, n_m, inter = count_true(pred), count_true(true), count_true(pred & true)
    union = n_p + n_m - inter
    iou = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))
    acc = 1 - (n_p + n_m - 2 * inter) / pred.shape[1]
    return iou, acc


@dataclass
class Localization:
    """Per-image localization scores of one test set, in [0, 1]."""

    iou: np.ndarray      # "lg"
    acc: np.ndarray
    iou_sm: np.ndarray
    acc_sm: np.ndarray
    mask_area: np.ndarray  # fraction of fake pixels per mask

    def summary(self) -> dict[str, float]:
        """Means in %, as the paper reports them."""
        return {k: 100 * float(np.mean(getattr(self, k))) for k in ("iou", "iou_sm", "acc", "acc_sm")}


def localization(maps: np.ndarray, masks: np.ndarray, threshold: float = THRESHOLD,
                 chunk: int = 256) -> Localization:
    """The authors' localization protocol, per image, both variants (see module doc)."""
    if len(maps) != len(masks):
        raise ValueError(f"{len(maps)} maps but {len(masks)} masks")
    H, W = masks.shape[-2:]
    h, w = maps.shape[-2:]
    out = {k: [] for k in ("iou", "acc", "iou_sm", "acc_sm", "area")}
    for sl in _chunks(len(maps), chunk):
        m = torch.as_tensor(np.asarray(masks[sl])).bool()
        p = bicubic(maps[sl], (H, W)) > threshold
        iou, acc = iou_acc(p, m)
        p_sm = torch.as_tensor(np.asarray(maps[sl], dtype=np.float32)) > threshold
        m_sm = nearest(m, (h, w))
        iou_sm, acc_sm = iou_acc(p_sm, m_sm)
        for k, v in (("iou", iou), ("acc", acc), ("iou_sm", iou_sm), ("acc_sm", acc_sm),
                     ("area", count_true(m.flatten(1)) / m[0].numel())):
            out[k].append(v.numpy())
    cat = {k: np.concatenate(v) for k, v in out.items()}
    return Localization(cat["iou"], cat["acc"], cat["iou_sm"], cat["acc_sm"], cat["area"])


def detection_ap(real_scores: np.ndarray, fake_scores: np.ndarray, repeats: int = 5,
                 seed: int = 0) -> tuple[float, float]:
    """AP (%) of image scores on balanced subsets: the larger class is subsampled to the size
    of the smaller one, ``repeats`` times. Returns (mean, 2 * std)."""
    real_scores, fake_scores = np.asarray(real_scores), np.asarray(fake_scores)
    n = min(len(real_scores), len(fake_scores))
    if n == 0:
        raise ValueError("detection AP needs real and fake scores")
    rng = np.random.default_rng(seed)
    aps = []
    for _ in range(repeats):
        r = rng.choice(real_scores, n, replace=False) if len(real_scores) > n else real_scores
        f = rng.choice(fake_scores, n, replace=False) if len(fake_scores) > n else fake_scores
        y = np.r_[np.zeros(n), np.ones(n)]
        aps.append(average_precision_score(y, np.r_[r, f]))
    aps = 100 * np.array(aps)
    return float(aps.mean()), float(2 * aps.std())


# ---------------------------------------------------------------- ours: threshold-free extras

def _hist_pr(maps: np.ndarray, masks: np.ndarray, bins: int = 1000, chunk: int = 256):
    """Pooled pixel histograms of scores for fake and real pixels at the mask's resolution."""
    H, W = masks.shape[-2:]
    pos = torch.zeros(bins, dtype=torch.float64)
    neg = torch.zeros(bins, dtype=torch.float64)
    for sl in _chunks(len(maps), chunk):
        p = bicubic(maps[sl], (H, W)).clamp(0, 1).flatten()
        m = torch.as_tensor(np.asarray(masks[sl])).bool().flatten()
        idx = (p * (bins - 1)).round().long()
        pos += torch.bincount(idx[m], minlength=bins).double()
        neg += torch.bincount(idx[~m], minlength=bins).double()
    return pos.numpy(), neg.numpy()


def pooled_pixel_metrics(maps: np.ndarray, masks: np.ndarray, bins: int = 1000) -> dict[str, float]:
    """Ours: pixel AP, ROC-AUC and best F1 pooled over every pixel of the test set, from
    score histograms (``bins`` levels; exact up to ties within a bin). In %."""
    pos, neg = _hist_pr(maps, masks, bins)
    # thresholds from high to low: cumulative counts of pixels with score >= t
    tp = np.cumsum(pos[::-1])
    fp = np.cumsum(neg[::-1])
    P, N = pos.sum(), neg.sum()
    if P == 0 or N == 0:
        return {"pixel_ap": float("nan"), "pixel_auc": float("nan"), "best_f1": float("nan")}
    recall = tp / P
    precision = tp / np.maximum(tp + fp, 1)
    ap = float(np.sum(np.diff(np.r_[0, recall]) * precision))
    tpr, fpr = recall, fp / N
    auc = float(np.trapezoid(np.r_[0, tpr], np.r_[0, fpr])) if hasattr(np, "trapezoid") else \
        float(np.trapz(np.r_[0, tpr], np.r_[0, fpr]))
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return {"pixel_ap": 100 * ap, "pixel_auc": 100 * auc, "best_f1": 100 * float(f1.max())}


def pixel_histograms(maps: np.ndarray, masks: np.ndarray, bins: int = 1000,
                     chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Ours: per image, histograms (N, ``bins``) of the map's scores at the mask's resolution
    (bicubic, as IoU-lg) over fake pixels and over real pixels. Summed over images they are the
    pooled histograms of :func:`pooled_pixel_metrics`; resampling images reweights them."""
    H, W = masks.shape[-2:]
    pos, neg = [], []
    for sl in _chunks(len(maps), chunk):
        p = bicubic(maps[sl], (H, W)).clamp(0, 1).flatten(1)
        m = torch.as_tensor(np.asarray(masks[sl])).bool().flatten(1)
        idx = (p * (bins - 1)).round().long() + bins * torch.arange(len(p))[:, None]
        n = len(p) * bins
        pos.append(torch.bincount(idx[m], minlength=n).view(len(p), bins).double().numpy())
        neg.append(torch.bincount(idx[~m], minlength=n).view(len(p), bins).double().numpy())
    return np.concatenate(pos), np.concatenate(neg)


def histogram_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """ROC-AUC (a fraction) from score histograms of positives and negatives (ties within a
    bin count one half), NaN without both."""
    P, N = float(pos.sum()), float(neg.sum())
    if P == 0 or N == 0:
        return float("nan")
    below = np.cumsum(neg) - neg                       # negatives in lower bins
    return float((pos * (below + 0.5 * neg)).sum() / (P * N))


def per_image_pixel_metrics(maps: np.ndarray, masks: np.ndarray, chunk: int = 64) -> dict[str, np.ndarray]:
    """Ours: per-image pixel AP and ROC-AUC, at the map's resolution (masks resized nearest),
    as scikit-learn's ``average_precision_score`` and ``roc_auc_score`` compute them (tied
    scores form one threshold). Streams over chunks of ``chunk`` images, so memory stays
    bounded (8,500 Grad-CAM maps of 299 x 299 would be tens of GB at once). float16 maps (as
    predictions are stored) are counted in histograms of their exact values, other maps are
    sorted; both give the same numbers. Images whose mask is empty or full get NaN."""
    h, w = maps.shape[-2:]
    ap_out, auc_out = [], []
    for sl in _chunks(len(maps), chunk):
        y = (torch.as_tensor(nearest(np.asarray(masks[sl]), (h, w))) > 0).flatten(1)
        m = np.asarray(maps[sl]).reshape(len(y), -1)
        if m.dtype == np.float16:
            ap, auc = _hist_ap_auc(m, y.numpy())
        else:
            ap, auc = _sort_ap_auc(torch.as_tensor(m, dtype=torch.float32), y.double())
        ap_out.append(np.asarray(ap, dtype=np.float64))
        auc_out.append(np.asarray(auc, dtype=np.float64))
    return {"pixel_ap_img": np.concatenate(ap_out), "pixel_auc_img": np.concatenate(auc_out)}


def _finish(ap, auc, npos, nneg):
    ap[npos == 0] = np.nan
    auc[(npos == 0) | (nneg == 0)] = np.nan
    return ap, auc


def _hist_ap_auc(m: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row AP and AUC of float16 scores (n, K) against booleans (n, K), exactly, from
    per-row counts of each float16 value: the bit pattern of a non-negative float16 orders
    like its value, so it is a bin index (at most 15,361 bins for scores in [0, 1])."""
    n = len(m)
    bits = np.where(m > 0, m, np.float16(0)).view(np.uint16).astype(np.int64)  # -0.0 -> +0.0
    nb = int(bits.max()) + 1
    idx = bits + (np.arange(n) * nb)[:, None]
    pos = np.bincount(idx[y], minlength=n * nb).reshape(n, nb)[:, ::-1].astype(np.float64)
    neg = np.bincount(idx[~y], minlength=n * nb).reshape(n, nb)[:, ::-1].astype(np.float64)
    tp, fp = pos.cumsum(1), neg.cumsum(1)   # scores >= each value, from high to low
    npos, nneg = tp[:, -1], fp[:, -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        ap = (pos * tp / np.maximum(tp + fp, 1)).sum(1) / np.maximum(npos, 1)
        below = nneg[:, None] - fp             # negatives strictly below each value
        auc = (pos * (below + 0.5 * neg)).sum(1) / np.maximum(npos * nneg, 1)
    return _finish(ap, auc, npos, nneg)


def _sort_ap_auc(s: torch.Tensor, y: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per-row AP and AUC of scores ``s`` (n, K) against 0/1 labels ``y`` (n, K), by one stable
    sort from high to low; a run of equal scores is one threshold (its last position)."""
    n, k = s.shape
    sv, order = torch.sort(-s, dim=1, stable=True)
    ys = torch.gather(y, 1, order)
    npos = ys.sum(1)
    nneg = k - npos
    tp = ys.cumsum(1)
    pos = torch.arange(k).expand(n, k)
    end_run = torch.ones(n, k, dtype=torch.bool)
    end_run[:, :-1] = sv[:, 1:] != sv[:, :-1]
    new_run = torch.ones(n, k, dtype=torch.bool)
    new_run[:, 1:] = end_run[:, :-1]
    last = torch.where(end_run, pos, torch.full_like(pos, k)).flip(1).cummin(1).values.flip(1)
    first = torch.cummax(torch.where(new_run, pos, torch.zeros_like(pos)), 1).values
    # AP: each positive counts the precision at the end of its run of ties
    ap = (ys * torch.gather(tp, 1, last) / (last + 1).double()).sum(1) / npos.clamp(min=1)
    # AUC by the rank sum, ascending ranks, ties at their average rank
    rank = k - (first + last).double() / 2
    auc = ((ys * rank).sum(1) - npos * (npos + 1) / 2) / (npos * nneg).clamp(min=1)
    return _finish(ap.numpy(), auc.numpy(), npos.numpy(), nneg.numpy())


def oracle_threshold_iou(maps: np.ndarray, masks: np.ndarray,
                         thresholds: np.ndarray | None = None, chunk: int = 256) -> tuple[float, float]:
    """Ours: the single threshold (over the whole test set; ``THRESHOLD_GRID`` by default) that
    maximises mean IoU-lg, and that IoU in %. Optimistic by construction (it looks at the test masks): an upper bound of
    what a calibrated threshold could give, not a result."""
    thresholds = THRESHOLD_GRID if thresholds is None else np.asarray(thresholds)
    H, W = masks.shape[-2:]
    sums = np.zeros(len(thresholds))
    for sl in _chunks(len(maps), chunk):
        m = torch.as_tensor(np.asarray(masks[sl])).bool()
        p = bicubic(maps[sl], (H, W))
        for j, t in enumerate(thresholds):
            sums[j] += float(iou_acc(p > t, m)[0].sum())
    means = sums / len(maps)
    j = int(np.argmax(means))
    return float(thresholds[j]), 100 * float(means[j])


def bootstrap_means(values: np.ndarray, n: int = 1000, seed: int = 0) -> np.ndarray:
    """``n`` bootstrap replicates of the mean of per-image values (NaNs dropped)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return np.full(n, np.nan)
    rng = np.random.default_rng(seed)
    return values[rng.integers(0, len(values), (n, len(values)))].mean(1)


def seed_image_draws(n_seeds: int, n_images: int, n: int = 1000, seed: int = 0):
    """``n`` bootstrap draws (indices with replacement) of seeds and of test images; one seed is
    never resampled (an interval over one run's seed covers images only)."""
    rng = np.random.default_rng(seed)
    s = rng.integers(0, n_seeds, (n, n_seeds)) if n_seeds > 1 else np.zeros((n, 1), int)
    return s, rng.integers(0, n_images, (n, n_images))


def seed_image_means(values: np.ndarray, draws) -> np.ndarray:
    """Replicates of the mean of ``values`` (seeds, images) under ``seed_image_draws``: the
    seeds (independent trainings) and the test images are resampled together. Two quantities
    on the same draws are paired (same images, same seed positions)."""
    s, i = draws
    values = np.asarray(values, dtype=np.float64)
    return np.stack([values[s[r]][:, i[r]].mean() for r in range(len(s))])


def percentile_ci(replicates: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval (%) of bootstrap replicates of a value in [0, 1]."""
    if np.isnan(replicates).all():
        return float("nan"), float("nan")
    a = (1 - level) / 2
    return 100 * float(np.nanquantile(replicates, a)), 100 * float(np.nanquantile(replicates, 1 - a))


def bootstrap_mean_ci(values: np.ndarray, n: int = 1000, seed: int = 0,
                      level: float = 0.95) -> tuple[float, float]:
    """Ours: percentile bootstrap interval (%) of the mean of per-image values in [0, 1]."""
    return percentile_ci(bootstrap_means(values, n, seed), level)


def bootstrap_ap_ci(real_scores: np.ndarray, fake_scores: np.ndarray, n: int = 200,
                    seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Ours: bootstrap interval (%) of detection AP, resampling reals and fakes separately
    (balanced: each resample draws min(#real, #fake) of each)."""
    rng = np.random.default_rng(seed)
    k = min(len(real_scores), len(fake_scores))
    y = np.r_[np.zeros(k), np.ones(k)]
    aps = [average_precision_score(y, np.r_[rng.choice(real_scores, k), rng.choice(fake_scores, k)])
           for _ in range(n)]
    a = (1 - level) / 2
    return 100 * float(np.quantile(aps, a)), 100 * float(np.quantile(aps, 1 - a))


def area_label(b) -> str:
    """A mask-area bin (a pandas Interval of image fractions) as a reader reads it: "0-5%"
    (not pandas' "(-0.001, 0.05]")."""
    return f"{100 * max(float(b.left), 0):.0f}-{100 * float(b.right):.0f}%"


def share_label(x: float) -> str:
    """A share (0-1) as a %, without rounding 99.8% up to "100%" (or 0.2% down to "0%")."""
    v = 100 * float(x)
    return f"{v:.1f}%" if (99 < v < 100 or 0 < v < 1) else f"{v:.0f}%"


def iou_by_area(iou: np.ndarray, area: np.ndarray,
                edges: tuple[float, ...] = (0, 0.05, 0.1, 0.2, 1.0), n_boot: int = 1000, seed: int = 0):
    """Ours: per bin of mask area (fraction of the image), mean IoU (%) with its 95% bootstrap
    interval, the image count, and the everything-fake baseline's mean IoU there (an image's
    everything-fake IoU is its mask area)."""
    import pandas as pd

    iou, area = np.asarray(iou, dtype=float), np.asarray(area, dtype=float)
    bins = pd.cut(area, bins=list(edges), include_lowest=True)
    rows = []
    for b in bins.categories:
        sel = np.asarray(bins == b)
        lo, hi = bootstrap_mean_ci(iou[sel], n_boot, seed) if sel.any() else (np.nan, np.nan)
        rows.append({"area_bin": area_label(b), "mean": 100 * iou[sel].mean() if sel.any() else np.nan,
                     "ci_low": lo, "ci_high": hi, "count": int(sel.sum()),
                     "everything_fake": 100 * area[sel].mean() if sel.any() else np.nan})
    return pd.DataFrame(rows)
