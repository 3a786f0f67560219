"""Receptive-field geometry of weak labels (ours; the opt-in ``geometry`` stage, notebook 11).

Patches' map cell sees a fixed patch of the input: Xception up to ``block2``, 43 px whatever the
input side (measured here, :func:`receptive_field`). At the paper's 299 px that is 14% of the
image side; at DOLOS-mini's 96 px, 45%. A weakly trained cell is labelled "fake" when its image
is fake, whether or not its own patch shows a fake pixel, so two things may separate the mini
from the paper: the *geometry* (a cell that touches a fake region fires, and the map spills
around the region by up to half a patch) and the *calibration* (cells of fake images that see
only real pixels are labelled fake in training; they settle at a probability set by how common
they are, which the paper's fixed 0.5 threshold may cut through).

The stage measures both: DOLOS-mini is built at several sides (image side = input side; only
the sets Patches B and C read), Patches B and C are trained at each with the profile's
schedules under several seeds, and

- :func:`geometry_table` gives IoU at 0.5 and at the validation-chosen threshold, pixel AUC and
  B/C per side, with intervals that resample seeds and test images (paired: B and C on the same
  images), beside the *dilated mask* - the IoU of the true mask against the same mask dilated
  by half a receptive field, an oracle that reads the mask: what a map that marks exactly the
  fake region plus that much of a margin scores (a reference, not a bound: a map can spill
  less, or more in some places and less in others, and score above it);
- :func:`calibration_table` gives B's cell probabilities by kind of cell (cells of real images,
  cells of fake images that see only real pixels, that see some fake pixels, whose centre is
  fake), as histograms, and the share of real-only cells in B's training data with the
  probability it implies for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import metrics
from .claims import WEAK_RATIO, register_column
from .config import ConfigError, Paths, Profile
from .data.datasets import read_mask
from .data.layout import DatasetKey
from .data.mini import build_mini
from .evaluate import (CONVERGENCE_COLUMNS, convergence_row, load_run, masks_for, merge_convergence, seed_t_interval,
                       supervised_threshold)
from .experiments import CELEBA_TEST, get_experiment
from .models import build_model, card, methods
from .runs import resolve_run
from .trainings import Training

EXPERIMENTS = ("patches-B", "patches-C")
# What Patches B and C read: the builder's ``only`` (the 9k subset comes with repaint-p2)
BUILD_ONLY = ("real", "repaint-p2")
PAPER_INPUT = 299
DILATED = "dilated mask"          # the oracle reference row of geometry_table
# The IoU of each run: at the paper's 0.5, at its own threshold (weak B: without masks; C: its
# validation-mask one) and at its validation-mask threshold (for weak B an oracle: it reads masks
# its supervision does not have).
METRICS = ("iou", "iou_own", "iou_val")
WHERE = {"iou": "at 0.5", "iou_own": "at its own threshold (B: without masks)",
         "iou_val": "at the validation-mask threshold (an oracle for B)"}
CELL_KINDS = ("real image", "fake image, sees only real pixels", "fake image, sees some fake pixels",
              "fake image, centre on the fake region")


@dataclass(frozen=True)
class Point:
    """One side of the geometry study under one seed: the profile and paths its runs use."""

    size: int
    seed: int
    profile: Profile
    paths: Paths


def data_root(paths: Paths, profile: Profile, size: int) -> Path:
    """DOLOS-mini at ``size`` px: the study's own data root at the profile's side (so the
    Table 2 runs are the first seed's points there), else ``data/dolos-mini-<profile>-<size>px``."""
    if size == profile.image_size:
        return paths.data_root
    return paths.root / "data" / f"dolos-mini-{profile.name}-{size}px"


# The stage's own options (not the shared Profile's): the input sides it builds and trains at
# (image side = input side) and the seeds per side, per profile. ``./run_all.sh --set
# geometry.n_seeds=2`` (or notebook 11's parameters) changes them for one run.
SIDES = {"smoke": (48, 64), "mini": (96, 160, 224)}
N_SEEDS = {"smoke": 1, "mini": 3}


def stage_options(profile: Profile, sides=None, n_seeds: int | None = None) -> tuple[tuple[int, ...], int]:
    """(sides, seeds per side) of the stage under ``profile``: the arguments, else the stage's
    own for the profile; an error naming the problem when the profile has none or they are bad."""
    sides = tuple(int(s) for s in (sides or SIDES.get(profile.name, ())))
    n_seeds = int(n_seeds or N_SEEDS.get(profile.name, 1))
    if profile.build_sizes is None or not sides:
        raise ConfigError(f"profile {profile.name!r}: the geometry stage builds DOLOS-mini at "
                          f"several sides; it runs on the smoke and mini profiles")
    if n_seeds < 1:
        raise ConfigError(f"geometry n_seeds must be >= 1, got {n_seeds}")
    return sides, n_seeds


def points(profile: Profile, paths: Paths, sides=None, n_seeds: int | None = None) -> list[Point]:
    """Every (seed, side) of the stage: ``n_seeds`` seeds from ``profile.seed`` x ``sides``
    (``stage_options``), seed by seed."""
    sides, n_seeds = stage_options(profile, sides, n_seeds)
    out = []
    for k in range(n_seeds):      # seed-major: a cut-short run has every side
        for size in sides:
            p = Paths(root=paths.root, profile=paths.profile, data_root=data_root(paths, profile, size),
                      tag=paths.tag)
            seed = profile.seed + k
            out.append(Point(size, seed, profile.replace(image_size=size, input_size=size, seed=seed), p))
    return out


def build_data(profile: Profile, paths: Paths, sides=None, n_seeds: int | None = None,
               progress: bool = True) -> dict[int, dict]:
    """Build DOLOS-mini at every side of the stage but the profile's own (the data stage's);
    skipped where already built. Returns each side's build record. (``n_seeds``: the stage's
    other option, not used here.)"""
    out = {}
    for size in stage_options(profile, sides)[0]:
        root = data_root(paths, profile, size)
        if size == profile.image_size:
            continue
        out[size] = build_mini(root, profile.replace(image_size=size), seed=0, progress=progress,
                               only=BUILD_ONLY)
    return out


def experiments() -> list[str]:
    """The runs of every side: Patches B and C, and the setup B of every method whose full
    supervision is Patches' (a weak Patches of another loss, e.g. Patches-MIL)."""
    return list(EXPERIMENTS) + [f"{m}-B" for m in methods() if card(m).weak_variant_of == "patches"]


def trainings(profile: Profile, paths: Paths, seeds: int = 1, sides=None,
              n_seeds: int | None = None) -> list[Training]:
    """The stage's trainings (``trainings.Training``): ``experiments()`` at every point (the
    data of every side is built by :func:`build_data`, the stage's ``prepare``). ``seeds``
    (``--seeds``) is not used: the stage has its own ``n_seeds``."""
    pts = points(profile, paths, sides, n_seeds)
    return [Training(get_experiment(name), pt.profile, pt.paths,
                     {"image_size": pt.size, "input_size": pt.size, "seed": pt.seed},
                     f"{pt.size} px, seed {pt.seed}", f"-{pt.size}px-seed{pt.seed}")
            for pt in pts for name in experiments()]


# --- the receptive field, measured ------------------------------------------------------------

@dataclass(frozen=True)
class ReceptiveField:
    """A map cell's patch of the input: ``side`` px wide, cell ``i``'s centre at
    ``offset + i * jump`` (input pixels)."""

    side: int
    jump: float
    offset: float
    map_side: int
    input_size: int

    def boxes(self) -> tuple[np.ndarray, np.ndarray]:
        """Per cell index, the first and last input pixel its patch covers (clipped)."""
        c = self.offset + self.jump * np.arange(self.map_side)
        half = (self.side - 1) / 2
        lo = np.clip(np.floor(c - half + 1e-6), 0, self.input_size - 1).astype(int)
        hi = np.clip(np.ceil(c + half - 1e-6), 0, self.input_size - 1).astype(int)
        return lo, hi

    def centres(self) -> np.ndarray:
        return np.clip(np.round(self.offset + self.jump * np.arange(self.map_side)), 0,
                       self.input_size - 1).astype(int)


def receptive_field(method: str = "patches", input_size: int = 96, probes: int = 8,
                    seed: int = 0) -> ReceptiveField:
    """Measure a method's map-cell receptive field by gradients: the input pixels on which an
    interior cell's fake logit depends (union over ``probes`` random inputs, since max-pooling
    routes each gradient through one pixel of its window), and the shift between two
    neighbouring cells' patches. Measured at an input large enough for an interior cell's patch
    to lie inside it (at least 160 px: the patch, its stride and its offset do not depend on the
    input side), the map side at ``input_size``. Model weights do not matter (random init)."""

    torch.manual_seed(seed)
    model = build_model(method, "full").eval()
    at = max(input_size, 160)
    x = torch.randn(probes, 3, at, at, requires_grad=True)
    logits = model(x)["map_logits"]
    i = logits.shape[-1] // 2
    support = []
    for cell in (i, i + 1):
        g, = torch.autograd.grad(logits[:, 1, cell, cell].sum(), x, retain_graph=True)
        rows = torch.nonzero((g.abs().sum((0, 1)) > 0).any(1)).flatten().numpy()
        support.append((rows.min(), rows.max()))
    (a0, a1), (b0, b1) = support
    jump = float((b0 + b1) / 2 - (a0 + a1) / 2)
    return ReceptiveField(int(a1 - a0 + 1), jump, float((a0 + a1) / 2 - i * jump),
                          model.map_size(input_size), int(input_size))


def cell_kinds(masks: np.ndarray, rf: ReceptiveField) -> np.ndarray:
    """(N, h, w) kind of each map cell of fake images (indices into ``CELL_KINDS``: 1 its patch
    sees only real pixels, 2 it sees some fake pixels but its centre is real, 3 its centre is
    fake). ``masks``: (N, S, S) with 1 = fake at the input side."""
    masks = np.asarray(masks) > 0
    if masks.shape[-1] != rf.input_size:
        raise ValueError(f"masks are {masks.shape[-1]} px, the receptive field is measured at "
                         f"{rf.input_size} px")
    lo, hi = rf.boxes()
    c = rf.centres()
    integral = np.pad(masks.cumsum(1).cumsum(2), ((0, 0), (1, 0), (1, 0)))
    r0, r1 = lo[:, None], hi[:, None] + 1                            # rows (h, 1)
    c0, c1 = lo[None, :], hi[None, :] + 1                            # cols (1, w)
    fake_in_box = (integral[:, r1, c1] - integral[:, r0, c1] - integral[:, r1, c0]
                   + integral[:, r0, c0])
    centre_fake = masks[:, c[:, None], c[None, :]]
    return np.where(centre_fake, 3, np.where(fake_in_box > 0, 2, 1)).astype(np.int8)


# --- seed-and-image bootstrap ------------------------------------------------------------------

_draws, _boot_means = metrics.seed_image_draws, metrics.seed_image_means


def _boot_auc(pos: np.ndarray, neg: np.ndarray, draws) -> np.ndarray:
    """Replicates of the pooled pixel AUC from per-image histograms (seeds, images, bins)."""
    s, i = draws
    out = np.empty(len(s))
    for r in range(len(s)):
        sw = np.bincount(s[r], minlength=pos.shape[0]).astype(float)
        iw = np.bincount(i[r], minlength=pos.shape[1]).astype(float)
        w = sw[:, None] * iw[None, :]
        out[r] = metrics.histogram_auc(np.einsum("si,sib->b", w, pos), np.einsum("si,sib->b", w, neg))
    return out


# --- per run ----------------------------------------------------------------------------------

def _run_values(point: Point, exp_name: str) -> dict | None:
    """Per-image IoU at 0.5 and at the run's validation-chosen threshold, and per-image pixel
    histograms, of one trained run on the Repaint-P2 test set; None if not predicted."""

    run = resolve_run(get_experiment(exp_name), point.profile, point.paths)
    fake = load_run(run, CELEBA_TEST[0], point.profile)
    valid = load_run(run, CELEBA_TEST[0], point.profile, "valid")
    if fake is None or valid is None:
        return None
    masks = masks_for(fake)
    t, _ = metrics.oracle_threshold_iou(valid.maps, masks_for(valid))
    # the run's own threshold: without masks for weak B (evaluate.supervised_threshold), the
    # validation-mask one for C; NaN IoU when the validation split it needs is missing
    own = supervised_threshold(run, get_experiment(exp_name), point.profile, t, valid)
    pos, neg = metrics.pixel_histograms(fake.maps, masks)
    return {"iou": metrics.localization(fake.maps, masks).iou,
            "iou_own": (metrics.localization(fake.maps, masks, threshold=own).iou if own is not None
                        else np.full(len(fake.names), np.nan)),
            "iou_val": metrics.localization(fake.maps, masks, threshold=t).iou,
            "threshold": t, "own_threshold": own, "pos": pos, "neg": neg, "run": run.run_id, "names": fake.names}


def dilated_mask_iou(masks: np.ndarray, radius: int) -> np.ndarray:
    """Per-image IoU-lg of the true mask against the same mask dilated by ``radius`` px (a
    disc): what a map that marks every fake region plus a ``radius`` px margin scores. An oracle
    (it reads the mask) and a reference, not a bound: other maps can score above it."""
    import cv2

    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    grown = np.stack([cv2.dilate(m.astype(np.uint8), disc) for m in np.asarray(masks)])
    return metrics.localization(grown.astype(np.float32), masks).iou


def _summary(reps: np.ndarray, value: float, per_seed: list[float]) -> dict:
    """Value, 95% interval (the seed-and-image bootstrap, widened to Student's t interval of the
    seed values where there are several: a bootstrap over 3 seeds cannot leave their range), the
    seeds' range and values."""
    lo, hi = (np.nanquantile(reps, [0.025, 0.975]) if np.isfinite(reps).any() else (np.nan, np.nan))
    if len(per_seed) > 1:
        tlo, thi = seed_t_interval(per_seed)
        if np.isfinite(tlo):
            lo, hi = min(lo, tlo), max(hi, thi)
    return {"value": value, "ci_low": float(lo), "ci_high": float(hi),
            "seed_min": float(np.min(per_seed)), "seed_max": float(np.max(per_seed)),
            "seed_values": ",".join(f"{float(v):.4g}" for v in per_seed)}


def _side_rows(size: int, pts: list[Point], profile: Profile) -> list[dict]:
    """The rows of one side (see :func:`geometry_table`)."""
    rf = receptive_field("patches", size)
    base = {"size": size, "rf_px": rf.side, "rf_share": rf.side / size, "map_side": rf.map_side}
    names = experiments()
    vals = {e: [v for p in pts if (v := _run_values(p, e)) is not None] for e in names}
    n_seeds = min(len(vals[e]) for e in EXPERIMENTS)
    if n_seeds == 0:
        return [{**base, "row": "B", "metric": "iou", "value": np.nan, "seeds": 0}]
    draws = _draws(n_seeds, len(vals["patches-B"][0]["iou"]), profile.bootstrap, profile.seed)
    # B and C (Patches), then the weak methods built on Patches (rows named by experiment)
    labels = {"patches-B": "B", "patches-C": "C", **{e: e for e in names[2:] if len(vals[e]) >= n_seeds}}
    rows, reps, means = [], {}, {}
    for e, label in labels.items():
        vs = vals[e][:n_seeds]
        common = {**base, "row": label, "seeds": n_seeds, "runs": " ".join(v["run"] for v in vs)}
        for metric in METRICS:
            m = np.stack([v[metric] for v in vs])
            reps[label, metric], means[label, metric] = _boot_means(m, draws), m.mean(1)
            key = "own_threshold" if metric == "iou_own" else "threshold"
            rows.append({**common, "metric": metric,
                         "thresholds": " ".join("n/a" if v[key] is None else f"{v[key]:.2f}" for v in vs),
                         **_summary(100 * reps[label, metric], 100 * float(m.mean()), 100 * m.mean(1))})
        pos, neg = np.stack([v["pos"] for v in vs]), np.stack([v["neg"] for v in vs])
        per_seed = [100 * metrics.histogram_auc(p.sum(0), q.sum(0)) for p, q in zip(pos, neg)]
        rows.append({**common, "metric": "pixel_auc",
                     **_summary(100 * _boot_auc(pos, neg, draws),
                                100 * metrics.histogram_auc(pos.sum((0, 1)), neg.sum((0, 1))), per_seed)})
    for label in [lab for lab in labels.values() if lab != "C"]:
        for metric in METRICS:
            b, c = means[label, metric], means["C", metric]
            rows.append({**base, "row": f"{label}/C", "metric": metric, "seeds": n_seeds,
                         **_summary(reps[label, metric] / reps["C", metric], float(b.mean() / c.mean()), b / c)})
    # half a field, in the masks' pixels (the image side; the field is measured at the input side)
    iou = dilated_mask_iou(_test_masks(pts[0]), round(rf.side / 2 * pts[0].profile.image_size / size))
    rows.append({**base, "row": DILATED, "metric": "iou", "seeds": 0,
                 **_summary(100 * metrics.bootstrap_means(iou, profile.bootstrap, profile.seed),
                            100 * float(iou.mean()), [100 * float(iou.mean())])})
    return rows


def _test_masks(point: Point, key: str = CELEBA_TEST[0]) -> np.ndarray:
    """(N, S, S) masks (1 = fake) of a side's Repaint-P2 test images, as the predictions read
    them (the profile's ``max_test_images`` first files)."""

    folder = DatasetKey.parse(key).masks_dir(point.paths.data_root, "test")
    names = sorted(f for f in folder.iterdir() if f.suffix == ".png")[:point.profile.max_test_images]
    return np.stack([read_mask(f) for f in names])


def geometry_table(profile: Profile, paths: Paths, progress: bool = True, sides=None,
                   n_seeds: int | None = None) -> pd.DataFrame:
    """One row per (side, row, metric): rows ``B``, ``C``, ``B/C`` and ``dilated mask``; metrics
    ``iou`` (at 0.5), ``iou_own`` (at each run's own threshold: weak B's without masks, C's
    validation-mask one), ``iou_val`` (at each run's validation-mask threshold, an oracle for
    weak B), ``pixel_auc``;
    values in % (B/C as a ratio) with 95% intervals resampling seeds and images (B and C on the
    same draws), the range over seeds and each seed's value (``seed_values``), the seeds found
    and the receptive field's share of the image side; the weak methods built on Patches
    (``experiments()``) add their own rows and ``<experiment>/C``. Sides whose runs are missing have NaN values."""
    from tqdm.auto import tqdm

    pts = points(profile, paths, sides, n_seeds)
    rows = []
    for size in tqdm(list(dict.fromkeys(p.size for p in pts)), desc="geometry: sides", disable=not progress):
        rows += _side_rows(size, [p for p in pts if p.size == size], profile)
    cols = ["size", "rf_px", "rf_share", "map_side", "row", "metric", "value", "ci_low", "ci_high",
            "seed_min", "seed_max", "seed_values", "seeds", "thresholds", "runs"]
    return pd.DataFrame(rows).reindex(columns=cols)


def _histogram(values: np.ndarray, bins: int) -> np.ndarray:
    return np.histogram(np.clip(values, 0, 1), bins=np.linspace(0, 1, bins + 1))[0]


def calibration_table(profile: Profile, paths: Paths, bins: int = 40, progress: bool = True,
                      sides=None, n_seeds: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """B's cell probabilities on the test sets by kind of cell (``CELL_KINDS``), pooled over the
    seeds: ``(histograms, summary)``. ``histograms``: size, kind, bin_low, bin_high, count,
    density (share of the kind's cells). ``summary`` per size and kind: cells, mean probability,
    share above 0.5; and per size the share of real-only cells among the cells of B's fake
    training images (``train_real_only_share``) with the probability a cell that sees only real
    pixels is pushed towards in training (``settle``: the share of such cells that carry the
    label fake, with B's real and fake training images as they are drawn: where such a cell
    would be pushed if the label were all it learned, a prediction the measured mean can miss).
    ``mean_prob_ci_low/high``: a 95% interval resampling the test images (pooled over seeds;
    each image's cells together). ``fp_outside_real_only_share`` (per size): among the cells
    above 0.5 of fake images whose centre is real (false positives outside the region), the
    share that see only real pixels - the rest touch the region (spill)."""
    from tqdm.auto import tqdm


    pts = points(profile, paths, sides, n_seeds)
    hist_rows, summary = [], []
    exp = get_experiment("patches-B")
    for size in tqdm(list(dict.fromkeys(p.size for p in pts)), desc="calibration: sides", disable=not progress):
        rf = receptive_field("patches", size)
        probs: dict[int, list[np.ndarray]] = {k: [] for k in range(len(CELL_KINDS))}
        per_image: dict[int, list[np.ndarray]] = {k: [] for k in range(len(CELL_KINDS))}   # (sum, count) rows
        for p in (q for q in pts if q.size == size):
            run = resolve_run(exp, p.profile, p.paths)
            fake, real = load_run(run, CELEBA_TEST[0], p.profile), load_run(run, CELEBA_TEST[1], p.profile)
            if fake is None or real is None:
                continue
            kinds = cell_kinds(masks_for(fake), rf)
            maps = np.asarray(fake.maps, dtype=np.float32)
            rmaps = np.asarray(real.maps, dtype=np.float32)
            probs[0].append(rmaps.ravel())
            per_image[0].append(np.stack([rmaps.reshape(len(rmaps), -1).sum(1),
                                          np.full(len(rmaps), rmaps[0].size, float)], 1))
            for k in (1, 2, 3):
                probs[k].append(maps[kinds == k])
                sel = kinds == k
                per_image[k].append(np.stack([(maps * sel).reshape(len(maps), -1).sum(1),
                                              sel.reshape(len(sel), -1).sum(1).astype(float)], 1))
        train = training_shares(pts[[q.size for q in pts].index(size)], rf)
        rows = []
        for k, label in enumerate(CELL_KINDS):
            v = np.concatenate(probs[k]) if probs[k] else np.zeros(0)
            counts = _histogram(v, bins)
            edges = np.linspace(0, 1, bins + 1)
            hist_rows += [{"size": size, "kind": label, "bin_low": edges[j], "bin_high": edges[j + 1],
                           "count": int(counts[j]), "density": counts[j] / max(len(v), 1)}
                          for j in range(bins)]
            lo, hi = _ratio_ci(np.concatenate(per_image[k]) if per_image[k] else np.zeros((0, 2)),
                               profile.bootstrap, profile.seed)
            rows.append({"size": size, "rf_share": rf.side / size, "kind": label, "cells": len(v),
                         "mean_prob": float(v.mean()) if len(v) else np.nan,
                         "mean_prob_ci_low": lo, "mean_prob_ci_high": hi,
                         "share_above_0.5": float((v > 0.5).mean()) if len(v) else np.nan, **train})
        fp = [r["cells"] * r["share_above_0.5"] for r in rows[1:3]]
        for r in rows:
            r["fp_outside_real_only_share"] = fp[0] / sum(fp) if sum(fp) > 0 else np.nan
        summary += rows
    return pd.DataFrame(hist_rows), pd.DataFrame(summary)


def _ratio_ci(sums_counts: np.ndarray, n_boot: int, seed: int) -> tuple[float, float]:
    """95% bootstrap interval of sum(sums) / sum(counts), resampling rows (images)."""
    if not len(sums_counts) or sums_counts[:, 1].sum() == 0:
        return np.nan, np.nan
    rng = np.random.default_rng(seed)
    w = np.stack([np.bincount(rng.integers(0, len(sums_counts), len(sums_counts)), minlength=len(sums_counts))
                  for _ in range(n_boot)]).astype(float)
    reps = (w @ sums_counts[:, 0]) / np.maximum(w @ sums_counts[:, 1], 1e-12)
    lo, hi = np.quantile(reps, [0.025, 0.975])
    return float(lo), float(hi)


def training_shares(point: Point, rf: ReceptiveField) -> dict:
    """In B's training data at this side: the share of the fake images' cells whose patch sees
    only real pixels, and the probability such a cell is pushed to (``settle``): the share of
    all real-only cells (fake images' and every cell of a real image) labelled fake, with the
    real and fake training images as many as they are (the weak loop draws from both alike)."""

    exp = get_experiment("patches-B")
    fake_key = next(t.key for t in exp.train if t.key != "celebahq/real")
    folder = DatasetKey.parse(fake_key).masks_dir(point.paths.data_root, "train")
    masks = np.stack([read_mask(f) for f in sorted(folder.glob("*.png"))])
    n_real = len(list(DatasetKey.parse("celebahq/real").images_dir(point.paths.data_root, "train").glob("*.png")))
    share = float((cell_kinds(masks, rf) == 1).mean())
    n_fake = len(masks)
    return {"train_real_only_share": share,
            "settle": share * n_fake / (share * n_fake + n_real) if n_real + n_fake else np.nan}


def cell(geo: pd.DataFrame, size: int, row: str, metric: str) -> pd.Series | None:
    r = geo[(geo["size"] == size) & (geo["row"] == row) & (geo["metric"] == metric)]
    return r.iloc[0] if len(r) and r.iloc[0]["value"] == r.iloc[0]["value"] else None


def fmt_cell(r: pd.Series | None, ratio: bool = False) -> str:
    if r is None:
        return "missing"
    f = ".2f" if ratio else ".1f"
    return f"{r['value']:{f}} [{r['ci_low']:{f}}, {r['ci_high']:{f}}]"


def trend(geo: pd.DataFrame, metric: str, row: str = "B/C") -> str:
    """Whether ``row`` (B/C by default; e.g. ``patches-mil-B/C``) at ``metric`` rises from the
    smallest to the largest side: ``rises`` when the largest side's interval lies above the
    smallest's, ``falls`` when below, else ``flat within the intervals``; ``missing`` without both."""
    sizes = sorted(geo["size"].unique())
    a, b = cell(geo, sizes[0], row, metric), cell(geo, sizes[-1], row, metric)
    if a is None or b is None or len(sizes) < 2:
        return "missing"
    if b["ci_low"] > a["ci_high"]:
        return "rises"
    if b["ci_high"] < a["ci_low"]:
        return "falls"
    return "flat within the intervals"


def _moves(t: str) -> str:
    """``trend``'s answer as a verb phrase ("rises", "is flat within the intervals")."""
    return t if t in ("rises", "falls") else f"is {t}"


def _vs(a: dict | None, b: dict | None) -> str:
    """"above" / "below" / "within" for two cells' 95% intervals."""
    if a is None or b is None:
        return "missing"
    return "above" if a["ci_low"] > b["ci_high"] else "below" if a["ci_high"] < b["ci_low"] else "within"


def _cal_cell(k: pd.DataFrame, kind: str) -> str:
    r = k.loc[kind]
    ci = (f" [{r['mean_prob_ci_low']:.2f}, {r['mean_prob_ci_high']:.2f}]"
          if "mean_prob_ci_low" in r and pd.notna(r["mean_prob_ci_low"]) else "")
    return f"{r['mean_prob']:.2f}{ci}"


def confound_line(geo: pd.DataFrame) -> str:
    """What else changes with the side, so that B/C's change is not read as the field's alone."""
    sizes = sorted(geo["size"].unique())
    cells = " -> ".join(f"{int(geo[geo['size'] == s]['map_side'].iloc[0])}" for s in sizes)
    c = " -> ".join(fmt_cell(cell(geo, s, "C", "iou")) for s in sizes)
    return (f"Confounds: with the side, the map grows ({cells} cells a side) at the same number of "
            f"optimiser steps, and C moves too (IoU at 0.5 {c}); B/C is a ratio of two things that change.")


def other_weak_rows(geo: pd.DataFrame) -> list[str]:
    """The table's weak runs besides Patches B (e.g. ``patches-mil-B``), each with its own ``/C`` row."""
    rows = list(dict.fromkeys(geo["row"]))
    return [r for r in rows if r not in ("B", "C", "B/C", DILATED) and not r.endswith("/C") and f"{r}/C" in rows]


def _other_weak_line(geo: pd.DataFrame, size: int, row: str) -> str:
    def at(r: str, metric: str) -> str:
        return fmt_cell(cell(geo, size, r, metric), r.endswith("/C"))

    return (f"{size} px, {row}: " + "; ".join(f"IoU {WHERE[m]} {at(row, m)}, {row}/C {at(f'{row}/C', m)}"
                                             for m in METRICS) + f"; pixel AUC {at(row, 'pixel_auc')}")


def trend_line(geo: pd.DataFrame, row: str) -> str:
    """How ``row`` (a B/C) moves with the input side at each threshold, the oracle one labelled."""
    return (f"{row} {WHERE['iou']} {_moves(trend(geo, 'iou', row))} with the input side; "
            + "; ".join(f"{WHERE[m]} it {_moves(trend(geo, m, row))}" for m in METRICS[1:]) + ".")


def summary_lines(geo: pd.DataFrame, cal: pd.DataFrame | None = None) -> list[str]:
    """What the geometry and calibration tables show, in sentences with their numbers (no cause
    the tables do not measure); the other weak runs (Patches-MIL B) have their own lines."""
    out = []
    for size in sorted(geo["size"].unique()):
        share = geo[geo["size"] == size]["rf_share"].iloc[0]
        seeds = cell(geo, size, "B", "iou")
        n = int(seeds["seeds"]) if seeds is not None else 0
        out.append(f"{size} px (field {100 * share:.0f}% of the side, {n} seed(s); intervals over seeds and "
                   "images, at least Student's t over the seeds): "
                   + "; ".join(f"IoU {WHERE[m]} B {fmt_cell(cell(geo, size, 'B', m))}, C "
                               f"{fmt_cell(cell(geo, size, 'C', m))}, B/C {fmt_cell(cell(geo, size, 'B/C', m), True)}"
                               for m in METRICS) + "; pixel AUC B "
                   f"{fmt_cell(cell(geo, size, 'B', 'pixel_auc'))}, C {fmt_cell(cell(geo, size, 'C', 'pixel_auc'))}; "
                   f"dilated mask (reference) {fmt_cell(cell(geo, size, DILATED, 'iou'))}, B at 0.5 "
                   f"{_vs(cell(geo, size, 'B', 'iou'), cell(geo, size, DILATED, 'iou'))} it")
    out.append(trend_line(geo, "B/C"))
    for row in other_weak_rows(geo):
        out += [_other_weak_line(geo, size, row) for size in sorted(geo["size"].unique())]
        out.append(trend_line(geo, f"{row}/C"))
    out.append(confound_line(geo))
    if cal is not None and len(cal):
        for size, g in cal.groupby("size"):
            k = g.set_index("kind")
            ro, real, fake = (k.loc[CELL_KINDS[1]], k.loc[CELL_KINDS[0]], k.loc[CELL_KINDS[3]])
            fp = (f"; of the cells above 0.5 outside the fake region, {100 * ro['fp_outside_real_only_share']:.0f}% "
                  f"see only real pixels, the rest touch the region" if "fp_outside_real_only_share" in ro else "")
            above = {name: metrics.share_label(r["share_above_0.5"]) for name, r in (("ro", ro), ("real", real),
                                                                                     ("fake", fake))}
            out.append(f"{size} px calibration: cells of fake images that see only real pixels have mean "
                       f"probability {_cal_cell(k, CELL_KINDS[1])} ({above['ro']} above 0.5; "
                       f"cells of real images {_cal_cell(k, CELL_KINDS[0])}, {above['real']}; "
                       f"cells centred on the fake region {_cal_cell(k, CELL_KINDS[3])}, "
                       f"{above['fake']}){fp}. In B's training data "
                       f"{100 * ro['train_real_only_share']:.0f}% of a fake image's cells see only real "
                       f"pixels; if the label were all such a cell learned it would settle at {ro['settle']:.2f}, "
                       f"and it measures {ro['mean_prob']:.2f}.")
    return out


def convergence_rows(profile: Profile, paths: Paths, sides=None, n_seeds: int | None = None) -> pd.DataFrame:
    """``evaluate.convergence_table``'s rows for the stage's runs at its other sides (the
    profile's own side is Table 2's), named "<experiment> (<side> px)"."""
    rows = [convergence_row(f"{t.experiment.name} ({t.profile.input_size} px)", t.profile.seed,
                            resolve_run(t.experiment, t.profile, t.paths).checkpoint_dir / "train.json")
            for t in trainings(profile, paths, sides=sides, n_seeds=n_seeds)
            if t.profile.input_size != profile.input_size]
    return pd.DataFrame([r for r in rows if r is not None]).reindex(columns=CONVERGENCE_COLUMNS)


def with_convergence(training: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """``training.csv`` with the geometry stage's rows (``convergence_rows``) in place of any
    it had from an earlier run of the stage."""
    keep = training[~training["experiment"].astype(str).str.endswith(" px)")]
    return merge_convergence(keep, rows)


def report_paragraph(res: Path) -> list[str]:
    """What the opt-in geometry stage measured (``geometry.csv``, ``calibration.csv``), in
    sentences: the geometry stage's paragraph of REPORT.md; empty when it has not run."""
    f = res / "geometry.csv"
    if not f.exists():
        return []

    cal = res / "calibration.csv"
    body = summary_lines(pd.read_csv(f), pd.read_csv(cal) if cal.exists() else None)
    return ["Receptive-field geometry (opt-in stage `--only geometry`, [geometry.csv](geometry.csv), "
            "IoU-lg in %, 95% intervals over seeds and test images):", ""] + [f"- {x}" for x in body]


# The claims about weak supervision (T2-weak, headline), which the geometry stage measures again
# at larger inputs: its column of the claims table (``claims.register_column``), from its own table.
@register_column("geometry", reads="geometry.csv")
def geometry_column(geo: pd.DataFrame) -> dict[str, str]:
    """The second value the geometry stage gives the weak-supervision claims: Patches' B/C at
    the largest input side at 0.5 and at each run's own threshold (B's without masks), with
    their intervals, and which side a reader should weigh: the largest when B/C rises with the
    side at either of those (its receptive field covers a share of the image closer to the
    paper's), else the study's own. The validation-mask threshold, an oracle for weak B, decides
    nothing here."""

    sizes = sorted(geo["size"].unique())
    if len(sizes) < 2:
        return {}
    lo, hi = sizes[0], sizes[-1]
    share = 100 * float(geo[geo["size"] == hi]["rf_share"].iloc[0])
    ratio = (f"at {hi} px (receptive field {share:.0f}% of the side) Patches B/C is "
             f"{fmt_cell(cell(geo, hi, 'B/C', 'iou'), True)} at 0.5 and "
             f"{fmt_cell(cell(geo, hi, 'B/C', 'iou_own'), True)} at each run's own threshold (B's without masks) "
             f"(at {lo} px: {fmt_cell(cell(geo, lo, 'B/C', 'iou'), True)} and "
             f"{fmt_cell(cell(geo, lo, 'B/C', 'iou_own'), True)})")
    t05, town = trend(geo, "iou"), trend(geo, "iou_own")
    if "rises" in (t05, town):
        weigh = (f"B/C rises with the side ({t05} at 0.5, {town} at its own threshold): weigh the {hi} px value, "
                 f"the geometry nearer the paper's")
    else:
        weigh = (f"B/C does not rise with the side ({t05} at 0.5, {town} at its own threshold): the geometry "
                 f"is not what sets it; weigh this study's value")
    return {"T2-weak": f"{ratio}; the claim asks for B/C at least {WEAK_RATIO:g}; {weigh}",
            "headline": f"{ratio}, a weak drop of 1 - B/C; {weigh}"}
