"""From saved predictions to the paper's tables: one row per experiment, one function per table.

Nothing here runs a model: every number comes from ``runs/<profile>/predictions``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from . import metrics
from .baselines import BASELINES, TRAIN_KEY, baseline_maps, fit_baselines, fit_mask_prior
from .config import Paths, Profile
from .data.layout import DatasetKey, split_exists
from .experiments import (
    CELEBA_TEST,
    EXPERIMENTS,
    FIG6_GENERATORS,
    FIG6_TEST,
    PAPER_GROUPS,
    SCALING_RUNS,
    Experiment,
    experiments_in,
    get_experiment,
    loss_variant_methods,
    plan_for,
    prediction_sets,
)
from .io import atomic_path
from .models import card
from .predictions import Predictions, load_predictions, predictions_current
from .runs import options_of, resolve_run

PAPER_COLUMNS = ["experiment", "method", "setup", "ap_mean", "ap_2std", "iou", "iou_sm", "acc",
                 "acc_sm"]
EXTRA_COLUMNS = ["iou_ci_low", "iou_ci_high", "ap_ci_low", "ap_ci_high", "pixel_ap", "pixel_auc",
                 "best_f1", "pixel_ap_img", "pixel_auc_img", "val_threshold", "iou_val_thr",
                 "iou_val_thr_ci_low", "iou_val_thr_ci_high", "label_threshold", "iou_label_thr",
                 "iou_label_thr_ci_low", "iou_label_thr_ci_high", "oracle_threshold", "oracle_iou",
                 "n_fake", "n_real"]


def load_run(run, key: str, profile: Profile, split: str = "test") -> Predictions | None:
    """Predictions of ``run`` (``runs.resolve_run``: this configuration's run) on one test
    set (or its ``valid`` split), or None (never another configuration's)."""
    p = run.predictions_file(key, split)
    return load_predictions(p) if predictions_current(p, profile) else None


def run_predictions(experiment: str, paths: Paths, profile: Profile, key: str = CELEBA_TEST[0],
                    split: str = "test") -> Predictions:
    """The saved predictions of ``experiment``'s run under this configuration on one test set
    (default: Table 2's fake test set); an error naming the file when they are not there."""
    run = resolve_run(get_experiment(experiment), profile, paths)
    pred = load_run(run, key, profile, split)
    if pred is None:
        raise FileNotFoundError(f"no current predictions of {run.label} on {key} ({split}): "
                                f"{run.predictions_file(key, split)}")
    return pred


_MASK_CACHE: dict[tuple, np.ndarray] = {}


def masks_for(pred: Predictions) -> np.ndarray:
    """Ground-truth masks of a prediction file, read once per process and test set."""
    key = (pred.meta.get("masks_dir"), tuple(pred.names[:3]), len(pred.names))
    if key not in _MASK_CACHE:
        _MASK_CACHE[key] = pred.masks()
    return _MASK_CACHE[key]


def _localization(pred: Predictions, profile: Profile, extras: bool = True,
                     masks: np.ndarray | None = None) -> dict:
    """The authors' localization metrics (%) of one fake test set, plus ours if ``extras``.
    ``masks``: the ground truth (N, H, W), 1 = fake; read from the layout when None."""
    masks = masks_for(pred) if masks is None else masks
    loc = metrics.localization(pred.maps, masks)
    row = loc.summary()
    row["n_fake"] = len(pred.names)
    if extras:
        row["iou_ci_low"], row["iou_ci_high"] = metrics.bootstrap_mean_ci(
            loc.iou, n=profile.bootstrap, seed=profile.seed)
        row.update(metrics.pooled_pixel_metrics(pred.maps, masks))
        per = metrics.per_image_pixel_metrics(pred.maps, masks)
        row["pixel_ap_img"] = 100 * float(np.nanmean(per["pixel_ap_img"]))
        row["pixel_auc_img"] = 100 * float(np.nanmean(per["pixel_auc_img"]))
        row["oracle_threshold"], row["oracle_iou"] = metrics.oracle_threshold_iou(pred.maps, masks)
    return row


def _detection(real: Predictions, fake: Predictions, profile: Profile,
                  extras: bool = True) -> dict:
    ap, ap2 = metrics.detection_ap(real.scores, fake.scores, profile.detection_repeats,
                                   profile.seed)
    row = {"ap_mean": ap, "ap_2std": ap2, "n_real": len(real.names)}
    if extras:
        row["ap_ci_low"], row["ap_ci_high"] = metrics.bootstrap_ap_ci(
            real.scores, fake.scores, n=min(profile.bootstrap, 200), seed=profile.seed)
    return row


def score(fake: Predictions, real: Predictions | None, profile: Profile, extras: bool = True,
          masks: np.ndarray | None = None) -> dict:
    """The one scoring interface: predictions on a fake test set (and on a real one, for
    detection AP) -> a result row (%). Every table, the post-processing sweep and the
    robustness sweep score through it. ``masks``: the ground truth (N, H, W), read from the
    layout when None; ``extras``: our intervals and threshold-free pixel metrics too."""
    row = _localization(fake, profile, extras, masks)
    if real is not None:
        row.update(_detection(real, fake, profile, extras))
    return row


def calibrated_iou(valid: Predictions, fake: Predictions, profile: Profile) -> dict:
    """Ours: the threshold that maximises mean IoU-lg on the validation split
    (``val_threshold``) and the test IoU-lg at that threshold (``iou_val_thr``, with its 95%
    bootstrap interval): the honest alternative to the paper's fixed 0.5, which is arbitrary for
    min-max-normalised Grad-CAM maps and for badly calibrated ones."""
    t, _ = metrics.oracle_threshold_iou(valid.maps, masks_for(valid))
    ious = metrics.localization(fake.maps, masks_for(fake), threshold=t).iou
    lo, hi = metrics.bootstrap_mean_ci(ious, profile.bootstrap, profile.seed)
    return {"val_threshold": t, "iou_val_thr": 100 * float(np.mean(ious)),
            "iou_val_thr_ci_low": lo, "iou_val_thr_ci_high": hi}


LABEL_RULES = ("otsu", "real-quantile")


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold (1979) of values in [0, 1]: the cut of their histogram that maximises the
    variance between the two sides, w0 w1 (m0 - m1)^2."""
    h, edges = np.histogram(np.asarray(values, dtype=np.float64).ravel(), bins=bins, range=(0.0, 1.0))
    p = h / max(h.sum(), 1)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(p)
    cum = np.cumsum(p * centres)
    m0 = cum / np.maximum(w0, 1e-12)
    m1 = (cum[-1] - cum) / np.maximum(1 - w0, 1e-12)
    return float(edges[1:][np.argmax(w0 * (1 - w0) * (m0 - m1) ** 2)])


def label_threshold(fake_valid: Predictions | None, real_valid: Predictions | None, rule: str = "otsu",
                    quantile: float = 0.99) -> float | None:
    """A threshold chosen without masks (ours, for weak setups, which have none), from the
    validation images and their labels only, never a mask (weakly supervised localizers tuned on
    masks measure the masks: Choe et al., CVPR 2020):

    - ``otsu`` (the default): Otsu's threshold of the map cells of the validation images labelled
      fake. A fake image's map mixes real and fake cells; Otsu splits the mix into its two modes.
    - ``real-quantile``: the ``quantile`` of the real validation images' cells (1 - quantile of
      real cells above it). Declared first; on DOLOS-mini's validation split it sits near 0.01
      for the sharp maps of Patches-MIL and over-segments them (docs/extensions.md).

    None without the split the rule reads."""
    if rule not in LABEL_RULES:
        raise ValueError(f"label rule must be one of {', '.join(LABEL_RULES)}, got {rule!r}")
    if rule == "otsu":
        return otsu_threshold(fake_valid.maps) if fake_valid is not None else None
    return float(np.quantile(np.asarray(real_valid.maps, dtype=np.float64), quantile)) if real_valid is not None else None


def run_label_threshold(run, profile: Profile, fake_valid: Predictions | None = None) -> float | None:
    """``run``'s threshold without masks under the profile's rule, reading only the validation
    split that rule needs (``fake_valid``: the fakes' predictions when already loaded)."""
    if profile.label_rule == "otsu":
        fake_valid = fake_valid if fake_valid is not None else load_run(run, CELEBA_TEST[0], profile, "valid")
        return label_threshold(fake_valid, None, "otsu")
    return label_threshold(None, load_run(run, CELEBA_TEST[1], profile, "valid"), profile.label_rule,
                           profile.label_quantile)


def label_iou(t: float | None, fake: Predictions, profile: Profile) -> dict:
    """The test IoU-lg at the threshold without masks ``t`` (``iou_label_thr``, with its 95%
    interval over test images) and the threshold (``label_threshold``); empty without one."""
    if t is None:
        return {}
    ious = metrics.localization(fake.maps, masks_for(fake), threshold=t).iou
    lo, hi = metrics.bootstrap_mean_ci(ious, profile.bootstrap, profile.seed)
    return {"label_threshold": t, "iou_label_thr": 100 * float(np.mean(ious)),
            "iou_label_thr_ci_low": lo, "iou_label_thr_ci_high": hi}


def experiment_row(exp: Experiment, paths: Paths, profile: Profile, extras: bool = True,
                   fake_key: str = CELEBA_TEST[0], real_key: str = CELEBA_TEST[1]) -> dict:
    """One table row; missing predictions give NaN (shown as missing, never as zero)."""
    row = {"experiment": exp.name, "method": exp.method, "setup": exp.setup,
           "supervision": exp.supervision}
    run = resolve_run(exp, profile, paths)       # resolved once: it scans the data folders
    fake = load_run(run, fake_key, profile)
    if fake is None:
        row["status"] = "missing"
        return row
    row["run"] = fake.meta.get("run_id")
    real = load_run(run, real_key, profile) if exp.supervision == "weak" else None
    row.update(score(fake, real, profile, extras))
    valid = load_run(run, fake_key, profile, "valid") if extras else None
    if valid is not None:
        row.update(calibrated_iou(valid, fake, profile))
    if extras:
        row.update(label_iou(run_label_threshold(run, profile, valid), fake, profile))
    row["status"] = "ok"
    return row


def _frame(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    for col in PAPER_COLUMNS + EXTRA_COLUMNS + ["status", "run"]:
        if col not in df:
            df[col] = np.nan
    return df[PAPER_COLUMNS + ["supervision", "status", "run"] + EXTRA_COLUMNS]


def baseline_rows(paths: Paths, profile: Profile, extras: bool = True) -> list[dict]:
    """Rows of the trivial baselines (``dolos_core.baselines``; ours), scored exactly as the
    experiments: ``baseline-<name>`` for each of ``baselines.BASELINES``. Empty when the data
    root lacks setup C's training split or the test sets."""

    fake_key, real_key = CELEBA_TEST
    need = [(TRAIN_KEY, "train"), (fake_key, "test"), (real_key, "test")]
    if not all(split_exists(paths.data_root, DatasetKey.parse(k), s) for k, s in need):
        return []
    fitted = fit_baselines(paths.data_root, seed=profile.seed)
    rows = []
    has_valid = split_exists(paths.data_root, DatasetKey.parse(fake_key), "valid")
    sets = [(fake_key, "test"), (real_key, "test")] + ([(fake_key, "valid")] if extras and has_valid else [])
    for name in BASELINES:
        preds = {}
        for key, split in sets:
            maps, scores, names = baseline_maps(name, paths.data_root, key, profile.max_test_images,
                                                fitted, split)
            k = DatasetKey.parse(key)
            mdir = k.masks_dir(paths.data_root, split)
            preds[key, split] = Predictions(maps, scores, names, {"label": k.label,
                                                                  "masks_dir": str(mdir) if mdir else None})
        row = {"experiment": f"baseline-{name}", "method": "baseline", "setup": None,
               "supervision": "none"}
        row.update(score(preds[fake_key, "test"], preds[real_key, "test"], profile, extras))
        if (fake_key, "valid") in preds:
            row.update(calibrated_iou(preds[fake_key, "valid"], preds[fake_key, "test"], profile))
        row["status"] = "ok"
        rows.append(row)
    return rows


def table2(paths: Paths, profile: Profile, extras: bool = True, baselines: bool = True,
           seeds: int = 1) -> pd.DataFrame:
    """Table 2 (paper 5.1): methods x setups on CelebA-HQ, then the trivial baselines (ours).
    The paper's columns are the profile's seed's run; with ``seeds`` > 1 the ``SEED_COLUMNS``
    add each experiment's mean over its seeds (``with_seeds``)."""
    rows = [experiment_row(e, paths, profile, extras) for e in experiments_in("table2")]
    df = _frame(rows + (baseline_rows(paths, profile, extras) if baselines else []))
    return with_seeds(df, paths, profile, seeds, ("table2",))


# What with_seeds adds: seeds found, IoU mean over them, its interval resampling seeds and test
# images together, the per-seed values, a t-interval over the seed means, the standard deviation.
SEED_COLUMNS = ["seeds", "iou_seeds", "iou_seeds_ci_low", "iou_seeds_ci_high", "iou_seed_values",
                "iou_seeds_t_low", "iou_seeds_t_high", "iou_seed_std"]
# ... and the seed_table spread column each is read from
SEED_SOURCES = dict(zip(SEED_COLUMNS, ["seeds", "iou_mean", "iou_ci_low", "iou_ci_high", "iou_values",
                                       "iou_t_low", "iou_t_high", "iou_std"]))
# The experiments whose seeds the claims read (``per_image_table``'s groups).
SEED_GROUPS = ("table2", "table3", "fig6-single", "fig6-allbut")


def with_seeds(df: pd.DataFrame, paths: Paths, profile: Profile, seeds: int,
               groups: tuple[str, ...]) -> pd.DataFrame:
    """``df`` with ``SEED_COLUMNS`` (``seed_table`` over ``groups``, on CelebA-HQ Repaint-P2)
    when ``seeds`` > 1; as it is otherwise (one seed: the intervals cover test images only)."""
    if seeds <= 1:
        return df
    spread = seed_table(paths, profile, seeds, groups)[1]
    spread = spread[spread["test_set"] == CELEBA_TEST[0]].set_index("experiment")
    out = df.copy()
    for col, src in SEED_SOURCES.items():
        out[col] = out["experiment"].map(spread[src]) if len(spread) else np.nan
    return out


def seed_t_interval(values, level: float = 0.95) -> tuple[float, float]:
    """Student's t interval of the mean of per-seed values (NaN with fewer than 2): with 3
    seeds, mean +- 4.30 standard errors. Beside the seeds-and-images bootstrap, which cannot be
    wider than the seeds' range and so understates what 3 seeds tell."""
    from scipy import stats

    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) < 2:
        return np.nan, np.nan
    half = stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    return float(v.mean() - half), float(v.mean() + half)


def transfer_table(paths: Paths, profile: Profile, seeds: int = 1) -> pd.DataFrame:
    """Ours: does less supervision generalize better? Setups B and C of every experiment with
    other generators' test sets (``Experiment.transfer_test``: a weak variant such as Patches-MIL
    and the method it varies), on their own generator's test set (``in domain``) and on each
    generator they do not train on (``held out``), with the held-out mean; per cell the mean over
    the seeds that have it of IoU-lg at 0.5, Student's t interval over the seed values, and the
    values. A missing test set or seed is left out (``seeds`` says how many a cell has)."""
    rows = []
    for e in [x for x in experiments_in("table2") if x.transfer_test]:
        keys = (e.test[0],) + e.transfer_test
        values: dict[str, list[float]] = {k: [] for k in (*keys, "held-out mean")}
        for k in range(seeds):
            prof = profile.replace(seed=profile.seed + k)
            run = resolve_run(e, prof, paths)
            got = {}
            for key in keys:
                pred = load_run(run, key, prof)
                if pred is not None:
                    got[key] = 100 * float(metrics.localization(pred.maps, masks_for(pred)).iou.mean())
                    values[key].append(got[key])
            if all(key in got for key in e.transfer_test):
                values["held-out mean"].append(float(np.mean([got[key] for key in e.transfer_test])))
        for key, vs in values.items():
            lo, hi = seed_t_interval(vs)
            rows.append({"experiment": e.name, "method": e.method, "setup": e.setup, "test_set": key,
                         "domain": "in domain" if key == e.test[0] else "held out",
                         "iou": float(np.mean(vs)) if vs else np.nan, "iou_t_low": lo, "iou_t_high": hi,
                         "seeds": len(vs), "iou_values": ", ".join(f"{v:.1f}" for v in vs)})
    cols = ["experiment", "method", "setup", "test_set", "domain", "iou", "iou_t_low", "iou_t_high", "seeds",
            "iou_values"]
    return pd.DataFrame(rows, columns=cols)


def seed_table(paths: Paths, profile: Profile, seeds: int,
               groups: tuple[str, ...] = SEED_GROUPS) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``--seeds N``: the experiments of ``groups`` trained with seeds ``profile.seed`` ...
    ``+ N - 1`` (each its own run), on each of their fake test sets (Table 2 and 3: CelebA-HQ
    Repaint-P2; Figure 6: each generator). Returns the per-seed rows (experiment, test_set,
    seed, iou, ap_mean (Table 2 only), run) and per experiment and test set the mean over the
    seeds that exist with two 95% intervals: resampling seeds and test images together
    (``iou_ci_low/high``) and Student's t over the seed means (``iou_t_low/high``,
    ``seed_t_interval``); the seed values, the standard deviation over seeds (ddof 1), min, max."""
    rows, per_image = [], {}
    for k in range(seeds):
        prof = profile.replace(seed=profile.seed + k)
        for e in experiments_in(*groups):
            run = resolve_run(e, prof, paths)
            for key in e.test:
                if DatasetKey.parse(key).label != 1 or (fake := load_run(run, key, prof)) is None:
                    continue
                ap = (experiment_row(e, paths, prof, extras=False).get("ap_mean", np.nan)
                      if e.group == "table2" and key == CELEBA_TEST[0] else np.nan)
                iou = metrics.localization(fake.maps, masks_for(fake)).iou
                rows.append({"experiment": e.name, "test_set": key, "seed": prof.seed, "iou": 100 * float(iou.mean()),
                             "ap_mean": ap, "run": run.run_id})
                per_image.setdefault((e.name, key), []).append(iou)
    per_seed = pd.DataFrame(rows, columns=["experiment", "test_set", "seed", "iou", "ap_mean", "run"])
    spread = (per_seed.groupby(["experiment", "test_set"], sort=False)
              .agg(seeds=("seed", "count"), iou_mean=("iou", "mean"), iou_std=("iou", "std"),
                   iou_min=("iou", "min"), iou_max=("iou", "max"), ap_mean=("ap_mean", "mean"),
                   ap_std=("ap_mean", "std")).reset_index())
    cis, ts, values = {}, {}, {}
    for cell, ious in per_image.items():
        v = np.stack(ious)
        reps = metrics.seed_image_means(v, metrics.seed_image_draws(len(v), v.shape[1], profile.bootstrap, profile.seed))
        cis[cell] = metrics.percentile_ci(reps)
        seed_means = 100 * v.mean(1)
        ts[cell] = seed_t_interval(seed_means)
        values[cell] = ", ".join(f"{x:.1f}" for x in seed_means)
    cells = list(zip(spread["experiment"], spread["test_set"]))
    spread.insert(4, "iou_ci_low", [cis.get(c, (np.nan, np.nan))[0] for c in cells])
    spread.insert(5, "iou_ci_high", [cis.get(c, (np.nan, np.nan))[1] for c in cells])
    spread.insert(6, "iou_t_low", [ts.get(c, (np.nan, np.nan))[0] for c in cells])
    spread.insert(7, "iou_t_high", [ts.get(c, (np.nan, np.nan))[1] for c in cells])
    spread.insert(8, "iou_values", [values.get(c, "") for c in cells])
    return per_seed, spread


def run_threshold(run, exp: Experiment, profile: Profile) -> float | None:
    """The threshold that maximises mean IoU-lg on every validation split with masks ``exp``
    predicts (``experiments.prediction_sets``; pooled), or None without one."""

    valid = [p for k, s in prediction_sets(exp) if s == "valid" and DatasetKey.parse(k).has_masks
             and (p := load_run(run, k, profile, s)) is not None]
    if not valid:
        return None
    maps = np.concatenate([v.maps for v in valid])
    t, _ = metrics.oracle_threshold_iou(maps, np.concatenate([masks_for(v) for v in valid]))
    return t


PER_IMAGE_GROUPS = ("table2", "table3", "fig6-single", "fig6-allbut")
PER_IMAGE_BASELINES = ("everything-fake", "mask-prior")


def supervised_threshold(run, exp: Experiment, profile: Profile, mask_threshold: float | None,
                         fake_valid: Predictions | None = None) -> float | None:
    """The second threshold a run may honestly choose, from what its supervision gives it: a
    weak run (setups A, B: image labels only) the threshold without masks
    (``run_label_threshold``; ``fake_valid``: the validation fakes when already loaded); a full
    run ``mask_threshold``, its validation-mask one (``run_threshold``). None without the
    validation split it needs."""
    return run_label_threshold(run, profile, fake_valid) if exp.supervision == "weak" else mask_threshold


def _image_rows(name: str, seed: int | None, key: str, maps: np.ndarray, names, masks: np.ndarray,
                threshold: float | None, sup_threshold: float | None = None) -> pd.DataFrame:
    loc = metrics.localization(maps, masks)

    def at(t):
        return metrics.localization(maps, masks, threshold=t).iou if t is not None else np.full(len(names), np.nan)
    iou_val = at(threshold)
    iou_sup = iou_val if sup_threshold == threshold else at(sup_threshold)
    auc = metrics.per_image_pixel_metrics(maps, masks)["pixel_auc_img"]
    return pd.DataFrame({"experiment": name, "seed": seed, "test_set": key, "image": names,
                         "area": loc.mask_area, "iou": loc.iou, "iou_val": iou_val, "iou_sup": iou_sup, "auc": auc,
                         "threshold": threshold, "sup_threshold": sup_threshold})


def per_image_table(paths: Paths, profile: Profile, seeds: int = 1) -> pd.DataFrame:
    """Per fake test image, the input of the claims' paired bootstrap (ours): IoU-lg at 0.5
    (``iou``), at the run's validation-chosen threshold (``iou_val``, with validation masks; NaN
    without validation predictions), at the threshold its supervision can choose (``iou_sup``,
    ``supervised_threshold``: without masks for weak runs, the validation-mask one for full runs
    and for the baselines, which are built from masks), per-image pixel AUC (``auc``, 0-1; NaN
    for an empty or full mask) and the mask area; for every experiment of Table 2, Table 3 and
    Figure 6 under seeds ``profile.seed`` ... ``+ seeds - 1`` (the seeds that exist), and for
    the baselines everything-fake and mask-prior on every fake test set (``seed`` empty; the
    mask prior's threshold chosen on the Repaint-P2 validation split, as Table 2's)."""

    frames = []
    for k in range(seeds):
        prof = profile.replace(seed=profile.seed + k)
        for e in experiments_in(*PER_IMAGE_GROUPS):
            run = resolve_run(e, prof, paths)
            threshold = sup = None
            for key in e.test + e.transfer_test:
                if DatasetKey.parse(key).label != 1 or (pred := load_run(run, key, prof)) is None:
                    continue
                if threshold is None:
                    threshold = run_threshold(run, e, prof)
                    sup = supervised_threshold(run, e, prof, threshold)
                frames.append(_image_rows(e.name, prof.seed, key, pred.maps, pred.names, masks_for(pred), threshold,
                                          sup))
    fake_sets = [k for k in dict.fromkeys((CELEBA_TEST[0], *FIG6_TEST))
                 if split_exists(paths.data_root, DatasetKey.parse(k), "test")]
    fitted = {"mask-prior": fit_mask_prior(paths.data_root)} if fake_sets else {}
    for name in PER_IMAGE_BASELINES if fake_sets else ():
        t = None
        if split_exists(paths.data_root, DatasetKey.parse(CELEBA_TEST[0]), "valid"):
            vm, _, vn = baseline_maps(name, paths.data_root, CELEBA_TEST[0], profile.max_test_images, fitted, "valid")
            vmask = Predictions(vm, np.zeros(len(vn)), vn, _meta(paths, CELEBA_TEST[0], "valid")).masks()
            t, _ = metrics.oracle_threshold_iou(vm, vmask)
        for key in fake_sets:
            maps, _, names = baseline_maps(name, paths.data_root, key, profile.max_test_images, fitted)
            masks = Predictions(maps, np.zeros(len(names)), names, _meta(paths, key, "test")).masks()
            frames.append(_image_rows(f"baseline-{name}", None, key, maps, names, masks, t, t))
    cols = ["experiment", "seed", "test_set", "image", "area", "iou", "iou_val", "iou_sup", "auc", "threshold",
            "sup_threshold"]
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)


def _meta(paths: Paths, key: str, split: str) -> dict:
    k = DatasetKey.parse(key)
    mdir = k.masks_dir(paths.data_root, split)
    return {"label": k.label, "masks_dir": str(mdir) if mdir else None}


def iou_by_area_table(paths: Paths, profile: Profile, group: str = "table2",
                      key: str = CELEBA_TEST[0]) -> pd.DataFrame:
    """Ours: mean IoU-lg (%) with its 95% interval, image count and the everything-fake
    baseline per bin of mask area, per experiment of ``group`` (``metrics.iou_by_area``);
    experiments without predictions are left out."""
    rows = []
    for e in experiments_in(group):
        pred = load_run(resolve_run(e, profile, paths), key, profile)
        if pred is None:
            continue
        loc = metrics.localization(pred.maps, masks_for(pred))
        d = metrics.iou_by_area(loc.iou, loc.mask_area, n_boot=profile.bootstrap, seed=profile.seed)
        d["experiment"], d["method"], d["setup"] = e.name, e.method, e.setup
        rows.append(d)
    if not rows:
        return pd.DataFrame(columns=["area_bin", "mean", "ci_low", "ci_high", "count", "everything_fake",
                                     "experiment", "method", "setup"])
    out = pd.concat(rows, ignore_index=True)
    out["area_bin"] = out["area_bin"].astype(str)
    return out


def table3(paths: Paths, profile: Profile, extras: bool = True, seeds: int = 1) -> pd.DataFrame:
    """Table 3 (paper 5.2): Patches trained on FFHQ data, tested on CelebA-HQ data; with
    ``seeds`` > 1 each experiment's mean over its seeds too (``with_seeds``)."""
    df = _frame([experiment_row(e, paths, profile, extras) for e in experiments_in("table3")])
    return with_seeds(df, paths, profile, seeds, ("table3",))


def loss_variants_table(paths: Paths, profile: Profile) -> pd.DataFrame:
    """Extension: the localization-loss variants beside their paper baseline (setup C)."""
    exps = [EXPERIMENTS[f"{m}-C"] for m in loss_variant_methods()] + experiments_in("loss-variants")
    rows = []
    for e in exps:
        row = experiment_row(e, paths, profile, extras=True)
        row["loss"] = e.loss.localize if e.loss.localize != "paper" else (
            card(e.method).map_loss)
        row["rho_class"], row["rho_localize"] = e.loss.rho_class, e.loss.rho_localize
        rows.append(row)
    df = _frame(rows)
    extra = pd.DataFrame(rows)[["loss", "rho_class", "rho_localize"]]
    return pd.concat([df[["experiment", "method"]], extra,
                      df.drop(columns=["experiment", "method", "setup", "ap_mean", "ap_2std"])],
                     axis=1)


def scaling_table(paths: Paths, profile: Profile) -> pd.DataFrame:
    """Budget scaling: each run of ``SCALING_RUNS`` with its setup, init, budget factor and the
    training steps it took (from its ``train.json``), beside its Table 2 metrics."""


    rows = []
    for name in SCALING_RUNS:
        e = EXPERIMENTS[name]
        row = experiment_row(e, paths, profile, extras=True)
        epochs, iters = plan_for(e, profile)
        f = resolve_run(e, profile, paths).checkpoint_dir / "train.json"
        seconds = json.loads(f.read_text()).get("seconds") if f.exists() else None
        init = options_of(e, profile).get("weak_init", "pytorch")
        rows.append({"experiment": name, "setup": e.setup, "init": init,
                     "budget": e.epoch_factor, "steps": epochs * iters,
                     "images": epochs * iters * profile.schedule(e.method, e.supervision).batch_size,
                     "train_s": seconds, **{k: v for k, v in row.items()
                                             if k not in ("experiment", "method", "setup", "supervision")}})
    return pd.DataFrame(rows)


def cross_generator_cells(paths: Paths, profile: Profile) -> list[tuple[dict, np.ndarray | None]]:
    """Every (training, test generator) cell of Figure 6: its row and per-image IoU-lg (None
    when missing). Read once and pass to ``cross_generator`` and ``domain_summary``."""
    cells = []
    for e in experiments_in("fig6-single", "fig6-allbut"):
        panel = "single" if e.group == "fig6-single" else "all-but"
        train = e.name.replace("patches-full-allbut-", "").replace("patches-full-", "")
        train_label = train if panel == "single" else f"all but {train}"
        run = resolve_run(e, profile, paths)
        for key in FIG6_TEST:
            gen = key.split("/")[1]
            pred = load_run(run, key, profile)
            ious = metrics.localization(pred.maps, masks_for(pred)).iou if pred is not None else None
            cells.append(({"train": train_label, "test": gen, "panel": panel, "experiment": e.name,
                           "run": pred.meta.get("run_id") if pred is not None else None,
                           "in_domain": (gen == train) if panel == "single" else (gen != train)},
                          ious))
    return cells


def cross_generator(paths: Paths, profile: Profile, cells: list | None = None, seeds: int = 1) -> pd.DataFrame:
    """Figure 6 (paper 5.3): IoU-lg of each Patches-full training on each generator's test
    set, with its 95% bootstrap interval (ours). Columns: train, test, iou, iou_ci_low,
    iou_ci_high, panel (``single`` or ``all-but``), experiment, run, in_domain; with ``seeds`` > 1
    also each cell's mean over seeds (``SEED_COLUMNS``: the seeds-and-images bootstrap,
    Student's t over the seed means, the seed values)."""
    rows = []
    for row, ious in cells if cells is not None else cross_generator_cells(paths, profile):
        iou = 100 * float(np.mean(ious)) if ious is not None else np.nan
        lo, hi = (metrics.bootstrap_mean_ci(ious, profile.bootstrap, profile.seed)
                  if ious is not None else (np.nan, np.nan))
        rows.append({"train": row["train"], "test": row["test"], "iou": iou, "iou_ci_low": lo,
                     "iou_ci_high": hi, **{k: row[k] for k in ("panel", "experiment", "run", "in_domain")}})
    out = pd.DataFrame(rows)
    if seeds > 1 and len(out):
        spread = seed_table(paths, profile, seeds, ("fig6-single", "fig6-allbut"))[1]
        spread = spread.set_index(["experiment", "test_set"])
        keys = list(zip(out["experiment"], "celebahq/" + out["test"]))
        for col, src in SEED_SOURCES.items():
            out[col] = [spread[src].get(k, np.nan) for k in keys]
    return out


def domain_summary(paths: Paths, profile: Profile, cells: list | None = None) -> pd.DataFrame:
    """The text of paper 5.3 with uncertainty (ours): per panel, the mean IoU-lg over its
    in-domain and its out-of-domain cells, and the in-minus-out drop, each with a 95%
    bootstrap interval (images resampled within every cell, the cells then averaged)."""
    cells = cells if cells is not None else cross_generator_cells(paths, profile)
    cells = [(r, v) for r, v in cells if v is not None]
    rows = []
    for panel in ("single", "all-but"):
        reps = {}
        for dom in (True, False):
            group = [v for r, v in cells if r["panel"] == panel and r["in_domain"] == dom]
            if group:
                reps[dom] = np.mean([metrics.bootstrap_means(v, profile.bootstrap, profile.seed + i)
                                     for i, v in enumerate(group)], axis=0)
                rows.append({"panel": panel, "quantity": "in_domain" if dom else "out_of_domain",
                             "iou": 100 * float(np.mean([np.mean(v) for v in group])),
                             **dict(zip(("ci_low", "ci_high"), metrics.percentile_ci(reps[dom]))),
                             "cells": len(group)})
        if len(reps) == 2:
            ind = [r["iou"] for r in rows if r["panel"] == panel]
            lo, hi = metrics.percentile_ci(reps[True] - reps[False])
            rows.append({"panel": panel, "quantity": "drop", "iou": ind[0] - ind[1], "ci_low": lo,
                         "ci_high": hi, "cells": None})
    return pd.DataFrame(rows, columns=["panel", "quantity", "iou", "ci_low", "ci_high", "cells"])


def training_runs(paths: Paths, profile: Profile, groups: tuple[str, ...] | None = None) -> dict[str, dict]:
    """The ``train.json`` (config and curve) of every experiment trained under this
    configuration (only those of ``groups`` when given), in the registry's order."""

    out = {}
    for name, e in EXPERIMENTS.items():
        if groups is not None and e.group not in groups:
            continue
        f = resolve_run(e, profile, paths).checkpoint_dir / "train.json"
        if f.exists():
            out[name] = json.loads(f.read_text())
    return out


UNDERTRAINED_SHARE = 5.0   # % of its whole fall the validation loss still made over the last quarter


def convergence(history: list[dict], best_epoch: int | None = None) -> dict:
    """Whether a training stopped before it was done. ``last_quarter_share``: how much the best
    validation loss improved over the last quarter of epochs (at least one): the best value of
    the last quarter below the best value before it, as a % of the curve's whole range (its
    highest minus its lowest value). Best against best, so one noisy epoch just before the last
    quarter does not read as a fall (a loss 0.080, 0.101, 0.065 improved by 0.015, not 0.036);
    the range, so a near-zero flat loss does not read -97% for a fall of 1e-4 as a relative drop
    would. A negative share: the last quarter did not reach the earlier best. ``undertrained`` with its ``reason``:
    "still falling" when that share exceeds ``UNDERTRAINED_SHARE`` %, "kept epoch 0" when the
    checkpoint kept (the best validation epoch) is the first of several: validation never got
    better than after one epoch, what a run that learned nothing shows."""
    v = [h["valid_loss"] for h in history if h.get("valid_loss") is not None]
    if len(v) < 2:
        return {"epochs": len(v), "last_quarter_share": np.nan, "undertrained": False, "reason": ""}
    q = max(1, int(round(len(v) / 4)))
    span = max(v) - min(v)
    share = 100 * (min(v[:-q]) - min(v[-q:])) / span if span > 0 else 0.0
    reason = ("kept epoch 0" if best_epoch == 0 else
              "still falling" if share > UNDERTRAINED_SHARE else "")
    return {"epochs": len(v), "last_quarter_share": float(share), "undertrained": bool(reason), "reason": reason}


CONVERGENCE_COLUMNS = ["experiment", "seed", "run", "epochs", "best_epoch", "last_quarter_share",
                       "undertrained", "reason"]


def convergence_row(name: str, seed: int, train_json: Path) -> dict | None:
    """One ``CONVERGENCE_COLUMNS`` row from a run's ``train.json``; None before it exists and
    while the run still trains (a half curve would be judged as a whole one)."""
    if not train_json.exists():
        return None
    m = json.loads(train_json.read_text())
    if not m.get("done", False):
        return None
    return {"experiment": name, "seed": seed, "run": m.get("run_id"), "best_epoch": m.get("best_epoch"),
            **convergence(m.get("history", []), m.get("best_epoch"))}


def convergence_table(paths: Paths, profile: Profile, seeds: int = 1,
                      groups: tuple[str, ...] = PAPER_GROUPS + ("loss-variants",)) -> pd.DataFrame:
    """Every finished run of the paper's experiments (each seed) and of the loss variants (the
    profile's seed; ``groups`` picks among them): its kept epoch and whether it stopped before it
    was done (``convergence``). Columns: experiment, seed, run, epochs, best_epoch,
    last_quarter_share (%), undertrained, reason. A run still training is left out: the stage
    that waits for it adds its row (``merge_convergence``)."""
    rows = []
    for k in range(seeds):
        prof = profile.replace(seed=profile.seed + k)
        for name, e in EXPERIMENTS.items():
            if e.group not in groups or (k and e.group not in PAPER_GROUPS):
                continue
            row = convergence_row(name, prof.seed, resolve_run(e, prof, paths).checkpoint_dir / "train.json")
            if row is not None:
                rows.append(row)
    return pd.DataFrame(rows).reindex(columns=CONVERGENCE_COLUMNS)


def merge_convergence(training: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """``training.csv`` (``convergence_table``) with ``rows`` in place of its rows of the same
    experiment and seed, and added where it had none."""
    if not len(rows):
        return training
    key = ["experiment", "seed"]
    old = training.set_index(key).index.isin(rows.set_index(key).index)
    return pd.concat([training[~old], rows], ignore_index=True).reindex(columns=CONVERGENCE_COLUMNS)


EXACT_COLUMNS = {"val_threshold", "oracle_threshold", "threshold", "budget", "rho_class", "rho_localize",
                 "rf_share", "strength", "settle"}


MISSING_TEXT, NOT_APPLICABLE = "missing", "n/a"


def markdown(df: pd.DataFrame, empty: str = NOT_APPLICABLE, **kw) -> str:
    """``df`` as a Markdown table whose empty cells read ``empty`` ("n/a": a value that does not
    apply), except in the rows of a run that should exist and does not (``status`` "missing"),
    whose empty cells read "missing" (tabulate prints a float NaN as "nan" whatever its
    ``missingval``)."""
    shown = df.astype(object).where(df.notna(), None)
    if "status" in df.columns:
        gone = (df["status"] == MISSING_TEXT).to_numpy()
        for c in shown.columns:
            col = shown[c].copy()
            col[gone & col.isna().to_numpy()] = MISSING_TEXT
            shown[c] = col
    return shown.to_markdown(index=False, missingval=empty, **kw)


def table_markdown(df: pd.DataFrame, floatfmt: str = ".1f", missing: str = NOT_APPLICABLE) -> str:
    """A saved table's Markdown (``save_table``'s ``.md``): ``floatfmt`` for every float column
    but thresholds, budgets and weights, which keep their digits (0.45 is not "0.5", a 0.25
    budget not "0.2"); empty cells as ``markdown`` says."""
    fmts = [".3g" if c in EXACT_COLUMNS else floatfmt for c in df.columns]
    return markdown(df, missing, floatfmt=fmts) + "\n"


def save_table(df: pd.DataFrame, results_dir: Path, stem: str, floatfmt: str = ".1f",
               missing: str = NOT_APPLICABLE) -> list[Path]:
    """Write ``stem``.csv, .md and .tex atomically; empty values stay empty in the CSV and read
    "n/a" in the Markdown (``missing``), "missing" in the rows of runs that should exist and do
    not (``markdown``)."""
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    out = []
    csv = results_dir / f"{stem}.csv"
    with atomic_path(csv) as tmp:
        df.to_csv(tmp, index=False, float_format="%.4f")
    out.append(csv)
    md = results_dir / f"{stem}.md"
    with atomic_path(md) as tmp:
        tmp.write_text(table_markdown(df, floatfmt, missing))
    out.append(md)
    tex = results_dir / f"{stem}.tex"
    with atomic_path(tex) as tmp:
        tmp.write_text(df.to_latex(index=False, na_rep="--", formatters={
            c: (lambda x, f=(".3g" if c in EXACT_COLUMNS else floatfmt): "--" if pd.isna(x) else f"{x:{f}}")
            for c in df.columns if pd.api.types.is_float_dtype(df[c])}))
    out.append(tex)
    return out


def paper_view(df: pd.DataFrame) -> pd.DataFrame:
    """The paper's columns only (what Table 2 / 3 print)."""
    return df[PAPER_COLUMNS]


__all__ = ["table2", "table3", "cross_generator", "loss_variants_table",
           "save_table", "paper_view", "experiment_row", "score",
           "FIG6_GENERATORS"]


def convergence_paragraph(res: Path) -> list[str]:
    """The runs that stopped before they were done (``training.csv``: still falling, or kept
    their first epoch), in one sentence: the evaluate stage's paragraph of REPORT.md; empty when
    not evaluated."""

    f = res / "training.csv"
    if not f.exists():
        return []
    t = pd.read_csv(f)
    if "reason" not in t:
        return []
    flagged = t[t["undertrained"].astype(bool)]
    if not len(flagged):
        return [f"No run stopped before it was done ({len(t)} runs; [training.csv](training.csv))."]
    names = ", ".join(f"{r.experiment} (seed {r.seed}: {r.reason}"
                      + (f", {r.last_quarter_share:.0f}% of its fall in the last quarter)" if r.reason == "still falling"
                         else ")") for r in flagged.itertuples())
    return [f"**Undertrained**: {len(flagged)} of {len(t)} runs stopped before they were done - their "
            f"validation loss still made more than {UNDERTRAINED_SHARE:g}% of its whole fall over the last "
            f"quarter of their epochs, or they kept their first epoch ([training.csv](training.csv)): {names}. "
            "Their numbers may move with a longer schedule; the claims that read them name them "
            "(`undertrained`)."]
