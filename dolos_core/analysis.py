"""The analyses behind the extension notebooks and the example figures, as library functions:
the post-processing sweep (07), the robustness sweep (08), and the images each map grid shows
(01, 02, 06, 07). Every row is scored by ``evaluate.score``, the same interface as the tables.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from . import metrics
from .config import Paths, Profile
from .data.datasets import DolosDataset, read_mask
from .data.layout import DatasetKey, split_exists
from .evaluate import load_run, masks_for, score
from .experiments import CELEBA_TEST, Experiment, experiments_in
from .metrics import bootstrap_means, percentile_ci
from .perturb import make
from .postprocess import Pipeline
from .predict import cell_features, predict_perturbed
from .predictions import Predictions
from .runs import resolve_run
from .train import is_trained, load_trained


def _progress(items, desc: str, progress: bool):
    if not progress:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc)


# --- the post-processing sweep (notebook 07) ------------------------------------------------

def postprocess_pipelines(min_cluster_sizes=(300, 500, 1000), min_samples_values=(None, 50),
                          fit_pixels: int = 2000, min_cluster_fracs=(0.05, 0.1, 0.2),
                          feature_scores=(False, True)) -> list[Pipeline]:
    """The chains notebook 07 compares: ``none`` (Table 2's scoring), morphology, the largest
    component; the scalar HDBSCAN over a grid of ``min_cluster_size`` x ``min_samples``, and at
    the default 500 followed by the largest component; the feature HDBSCAN (FOCAL's recipe) over
    ``min_cluster_fracs`` x with and without the score appended (``feature_scores``)."""
    if not all(int(m) > 1 for m in min_cluster_sizes):
        raise ValueError(f"min_cluster_sizes must be integers > 1, got {list(min_cluster_sizes)}")
    if not all(s is None or int(s) > 0 for s in min_samples_values):
        raise ValueError(f"min_samples values must be None or > 0, got {list(min_samples_values)}")
    if not all(0 < float(f) < 1 for f in min_cluster_fracs):
        raise ValueError(f"min_cluster_fracs must lie in (0, 1), got {list(min_cluster_fracs)}")
    out = [Pipeline(("none",)), Pipeline(("morphology",)), Pipeline(("largest-component",))]
    for mcs in min_cluster_sizes:
        for ms in min_samples_values:
            p = {"min_cluster_size": int(mcs), "fit_pixels": int(fit_pixels)}
            if ms is not None:
                p["min_samples"] = int(ms)
            out.append(Pipeline(("hdbscan",), {"hdbscan": p}))
    out.append(Pipeline(("hdbscan", "largest-component"),
                        {"hdbscan": {"min_cluster_size": 500, "fit_pixels": int(fit_pixels)}}))
    for frac in min_cluster_fracs:
        for with_score in feature_scores:
            out.append(Pipeline(("hdbscan-features",), {"hdbscan-features": {
                "min_cluster_frac": float(frac), "with_score": bool(with_score)}}))
    return out


def default_hdbscan(pipelines: list[Pipeline]) -> str:
    """Name of the plain HDBSCAN chain at FOCAL-like defaults (``min_cluster_size`` 500,
    hdbscan's own ``min_samples``), else of the first plain HDBSCAN chain."""
    plain = [p for p in pipelines if p.steps == ("hdbscan",)]
    if not plain:
        raise ValueError("no plain hdbscan chain among the pipelines")
    for p in plain:
        hd = p.params.get("hdbscan", {})
        if hd.get("min_cluster_size") == 500 and "min_samples" not in hd:
            return p.name
    return plain[0].name


def variant(steps: tuple[str, ...] | str) -> str:
    """What kind of post-processing a chain is: ``none``, ``scalar HDBSCAN`` (one score per
    pixel), ``feature HDBSCAN`` (FOCAL's recipe) or ``filter`` (morphology, components)."""
    steps = tuple(steps.split("+")) if isinstance(steps, str) else steps
    if steps == ("none",):
        return "none"
    if "hdbscan-features" in steps:
        return "feature HDBSCAN"
    return "scalar HDBSCAN" if "hdbscan" in steps else "filter"


AREA_EDGES = (0.0, 0.05, 0.1, 0.2, 0.35, 0.5, 1.0)


def _gain(diff: np.ndarray, profile: Profile) -> dict:
    """Mean of per-image IoU differences (points) with its 95% bootstrap interval over images:
    a paired interval, both chains scored on the same images."""
    reps = bootstrap_means(diff, n=profile.bootstrap, seed=profile.seed)
    lo, hi = percentile_ci(reps)
    return {"gain": 100 * float(np.mean(diff)) if len(diff) else np.nan, "gain_ci_low": lo, "gain_ci_high": hi}


def postprocess_sweep(paths: Paths, profile: Profile, pipelines: list[Pipeline],
                      n_images: int, group: str = "table2", key: str = CELEBA_TEST[0],
                      n_examples: int = 3, progress: bool = True, device: str = "auto",
                      area_edges: tuple[float, ...] = AREA_EDGES) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Every pipeline on the first ``n_images`` fake test images of every experiment of
    ``group`` (the first pipeline must be ``none``: Table 2's scoring, which every gain is
    measured against). Feature pipelines read the model's per-cell features
    (``predict.cell_features``, the trained checkpoint on ``device``).

    Returns (rows, by_area, examples): one row per (experiment, pipeline) with IoU, ``gain`` =
    IoU minus ``none``'s and its paired bootstrap interval over images, seconds per image (the
    clustering; ``feature_sec_per_image`` the forward pass for the features); the same gains
    per bin of mask area (``area_edges``, fractions of the image: where "largest cluster = real"
    breaks is the last bin); and per experiment and pipeline the ``n_examples`` images the
    examples figure may show (its ``n_examples - 1`` of largest gain and its one of largest loss:
    masks, maps before and after; only those are kept, not every map of every chain)."""

    if not pipelines or pipelines[0].steps != ("none",):
        raise ValueError("the first pipeline must be Pipeline(('none',)): gains are measured against it")
    needs = any(p.needs_features for p in pipelines)
    rows, area_rows, examples = [], [], {}
    for e in _progress(experiments_in(group), "experiments", progress):
        pred = load_run(resolve_run(e, profile, paths), key, profile)
        if pred is None:
            continue
        masks = masks_for(pred)[:n_images]
        maps = pred.maps[:n_images].astype(np.float32)
        feats, feat_sec = None, np.nan
        if needs:
            t = time.time()
            feats, names = cell_features(e, profile, paths, key, limit=len(maps), device=device)
            feat_sec = (time.time() - t) / len(maps)
            if list(names) != [str(n) for n in pred.names[:len(maps)]]:
                raise ValueError(f"{e.name}: the test images of {key} are not those of its predictions: "
                                 f"rerun ./run_all.sh --only train,{e.name} --force")
        ious, picked = {}, {}
        for pipe in pipelines:
            out, sec = pipe.apply(maps, masks.shape[-1], features=feats if pipe.needs_features else None)
            loc = metrics.localization(out, masks)
            ious[pipe.name] = loc.iou
            diff = loc.iou - ious["none"]
            order = np.argsort(-diff, kind="stable")
            idx = list(order[:n_examples - 1]) + [int(order[-1])]
            picked[pipe.name] = {"idx": idx, "diff": diff[idx], "masks": masks[idx], "raw": maps[idx],
                                 "out": out[idx]}
            hd = pipe.params.get("hdbscan", {})
            hf = pipe.params.get("hdbscan-features", {})
            rows.append({"experiment": e.name, "method": e.method, "setup": e.setup,
                         "postprocess": pipe.name, "steps": "+".join(pipe.steps),
                         "variant": variant(pipe.steps),
                         "min_cluster_size": hd.get("min_cluster_size"), "min_samples": hd.get("min_samples"),
                         "min_cluster_frac": hf.get("min_cluster_frac"), "with_score": hf.get("with_score"),
                         **loc.summary(), **_gain(diff, profile),
                         # images the chain leaves in one piece: a binary map all real or all fake
                         # (one cluster), where its IoU says nothing about the clustering
                         "one_cluster_share": 100 * float(_uniform(out).mean()),
                         "sec_per_image": sec,
                         "feature_sec_per_image": feat_sec if pipe.needs_features else np.nan,
                         "n_images": len(maps)})
        area = masks.reshape(len(masks), -1).mean(1)
        bins = pd.cut(area, bins=list(area_edges), include_lowest=True)
        for pipe in pipelines[1:]:
            for b in bins.categories:
                sel = np.asarray(bins == b)
                area_rows.append({"experiment": e.name, "postprocess": pipe.name, "variant": variant(pipe.steps),
                                  "area_bin": metrics.area_label(b), "area_low": b.left, "area_high": b.right,
                                  "n_images": int(sel.sum()), "iou_none": 100 * float(np.mean(ious["none"][sel]))
                                  if sel.any() else np.nan,
                                  **_gain(ious[pipe.name][sel] - ious["none"][sel], profile)})
        examples[e.name] = picked
    pp = pd.DataFrame(rows)
    return pp, pd.DataFrame(area_rows), examples


def _uniform(maps: np.ndarray) -> np.ndarray:
    """(N,) whether each map is one value everywhere (after a chain: every pixel on one side)."""
    flat = np.asarray(maps).reshape(len(maps), -1)
    return (flat.max(1) - flat.min(1)) == 0


def postprocess_summary(pp: pd.DataFrame) -> pd.DataFrame:
    """Per pipeline: its variant, mean IoU, mean gain over ``none`` and its range over
    experiments, how many experiments it helps and hurts (interval above / below 0), ms per
    image; sorted by mean gain."""
    d = pp.assign(helps=pp.gain_ci_low > 0, hurts=pp.gain_ci_high < 0)
    return (d.groupby("postprocess")
            .agg(variant=("variant", "first"), one_cluster_share=("one_cluster_share", "mean"),
                 mean_iou=("iou", "mean"), mean_gain=("gain", "mean"),
                 min_gain=("gain", "min"), max_gain=("gain", "max"), helps=("helps", "sum"),
                 hurts=("hurts", "sum"), ms_per_image=("sec_per_image", lambda s: 1000 * s.mean()))
            .sort_values("mean_gain", ascending=False))


def postprocess_example(examples: dict, pp: pd.DataFrame, chain: str | None = None) -> dict:
    """What the examples figure shows: the chain that is not ``none`` of highest mean gain (or
    ``chain``) on the best-localizing model, on the images the sweep kept for it (largest
    gains, then the largest loss: the failure). Returns ``experiment``, ``chain``, ``idx``,
    ``labels``, ``masks``, the maps (the 0.5 threshold's and the chain's), the chain's
    ``mean_gain`` over the models and a ``title`` that says it (a "best" chain can lose)."""
    summary = postprocess_summary(pp[pp.steps != "none"])
    if chain is None:
        chain = summary.index[0]
    exp = pp[pp.steps == "none"].sort_values("iou").experiment.iloc[-1]
    ex = examples[exp][chain]
    labels = [f"gain {100 * d:+.0f}" for d in ex["diff"][:-1]] + [f"failure: {100 * ex['diff'][-1]:+.0f}"]
    gain = float(summary.loc[chain, "mean_gain"])
    title = (f"{exp}: the 0.5 threshold against {chain}\n(the chain of highest mean gain over the models: "
             f"{gain:+.2f} points" + ("; no chain gains on average" if gain <= 0 else "") + ")")
    return {"experiment": exp, "chain": chain, "idx": ex["idx"], "labels": labels, "masks": ex["masks"],
            "maps": {"threshold 0.5": ex["raw"], chain: ex["out"]}, "mean_gain": gain, "title": title}


# --- the robustness sweep (notebook 08) ------------------------------------------------------

def robustness_sweep(paths: Paths, profile: Profile, conditions: list[tuple[str, object]],
                     n_images: int, seed: int = 0, device: str = "auto", group: str = "table2",
                     keys: tuple[str, str] = CELEBA_TEST, progress: bool = True) -> pd.DataFrame:
    """Every trained experiment of ``group`` on perturbed copies of the fake and real test sets
    (``perturb.make``; ``("none", 0)`` = unperturbed), ``n_images`` each. One row per
    (experiment, condition), scored by ``evaluate.score``, with IoU's 95% bootstrap interval
    over the images (``iou_ci_low/high``) and the unperturbed IoU and AP beside it
    (``iou_clean``, ``ap_clean``)."""

    conditions = [("none", 0)] + [c for c in conditions if c[0] != "none"]
    fake_key, real_key = keys
    rows = []
    for e in _progress(experiments_in(group), "experiments", progress):
        if not is_trained(paths, e, profile):
            continue
        model = load_trained(e, profile, paths, device)
        for name, strength in conditions:
            pert = None if name == "none" else make(name, strength)
            fake = predict_perturbed(e, profile, paths, fake_key, pert, seed, device, limit=n_images, model=model)
            real = predict_perturbed(e, profile, paths, real_key, pert, seed + 1, device, limit=n_images, model=model)
            row = score(fake, real if e.supervision == "weak" else None, profile, extras=False)
            ious = metrics.localization(fake.maps, masks_for(fake)).iou
            lo, hi = metrics.bootstrap_mean_ci(ious, profile.bootstrap, profile.seed)
            rows.append({"experiment": e.name, "method": e.method, "setup": e.setup,
                         "perturbation": name, "strength": strength, "iou": row["iou"],
                         "iou_ci_low": lo, "iou_ci_high": hi,
                         "iou_sm": row["iou_sm"], "ap_mean": row.get("ap_mean", np.nan),
                         "n_images": len(fake.names)})
    rob = pd.DataFrame(rows)
    if len(rob):
        clean = rob[rob.perturbation == "none"].set_index("experiment")
        rob["iou_clean"] = rob["experiment"].map(clean["iou"])
        rob["ap_clean"] = rob["experiment"].map(clean["ap_mean"])
    return rob


# --- what the map grids show ----------------------------------------------------------------

def pick_by_area(masks: np.ndarray, n: int) -> np.ndarray:
    """Indices of ``n`` images spread evenly over the range of mask areas, smallest first."""
    area = masks.reshape(len(masks), -1).mean(1)
    order = np.argsort(area, kind="stable")
    return order[np.linspace(0, len(order) - 1, min(n, len(order))).astype(int)]


def test_images(paths: Paths, profile: Profile, pred: Predictions, idx) -> list[np.ndarray]:
    """The stored test images (uint8 HxWx3) of ``pred`` at indices ``idx``, by name."""

    ds = DolosDataset(paths.data_root, DatasetKey.parse(pred.meta["test_set"]), "test",
                      profile.image_size)
    pos = {n: i for i, n in enumerate(ds.names)}
    return [ds.load_raw(pos[str(pred.names[i])])[0] for i in idx]


def qualitative(paths: Paths, profile: Profile, n_images: int,
                experiments: list[Experiment] | None = None, key: str = CELEBA_TEST[0]) -> dict:
    """Inputs of the qualitative figure: ``n_images`` test images of ``key`` spread over mask
    area, with ``images``, ``masks``, ``names`` and ``maps`` (experiment -> (n, h, w)) for every
    experiment (default: Table 2's) that has predictions. Empty ``maps`` when none has."""
    experiments = experiments_in("table2") if experiments is None else experiments
    preds = {}
    for e in experiments:
        p = load_run(resolve_run(e, profile, paths), key, profile)
        if p is not None:
            preds[e.name] = p
    if not preds:
        return {"maps": {}}
    first = next(iter(preds.values()))
    for name, p in preds.items():
        if list(p.names) != list(first.names):
            raise ValueError(f"{name}'s predictions on {key} list other images than "
                             f"{next(iter(preds))}'s: rerun the predictions")
    masks = masks_for(first)
    idx = pick_by_area(masks, n_images)
    return {"images": test_images(paths, profile, first, idx), "masks": masks[idx],
            "names": [str(first.names[i]) for i in idx],
            "maps": {n: p.maps[idx].astype(np.float32) for n, p in preds.items()}}


def failure_cases(paths: Paths, profile: Profile, experiments: list[Experiment], n: int = 2,
                  key: str = CELEBA_TEST[0]) -> list[dict]:
    """Each experiment's ``n`` worst test images of ``key`` (lowest IoU-lg at 0.5; ties: the
    larger mask first), with its map, the mask, the image, that IoU and the mask area: what a
    failure of each setup looks like. Experiments without predictions are left out."""
    out = []
    for e in experiments:
        p = load_run(resolve_run(e, profile, paths), key, profile)
        if p is None:
            continue
        masks = masks_for(p)
        loc = metrics.localization(p.maps, masks)
        order = np.lexsort((-loc.mask_area, loc.iou))[:n]
        out.append({"experiment": e.name, "names": [str(p.names[i]) for i in order],
                    "iou": 100 * loc.iou[order], "area": 100 * loc.mask_area[order], "masks": masks[order],
                    "maps": p.maps[order].astype(np.float32), "images": test_images(paths, profile, p, order)})
    return out


def data_samples(root, keys: list[DatasetKey], split: str, n: int,
                 image_size: int) -> dict[str, list[tuple]]:
    """Up to ``n`` (image, mask or None) pairs per key whose ``split`` exists, keyed by the
    key's text (the data notebook's sample grid)."""

    out = {}
    for key in keys:
        if not split_exists(root, key, split):
            continue
        ds = DolosDataset(root, key, split, image_size)
        out[str(key)] = [ds.load_raw(i % len(ds)) for i in range(n)]
    return out


def mask_areas(root, keys: list[DatasetKey], split: str, image_size: int,
               limit: int = 300) -> pd.DataFrame:
    """Fake area (% of the image) of the first ``limit`` masks of each key with masks."""

    rows = []
    for key in keys:
        if not key.has_masks or not split_exists(root, key, split):
            continue
        ds = DolosDataset(root, key, split, image_size)
        for name in ds.names[:limit]:
            rows.append({"generator": key.generator, "area": 100 * read_mask(ds.masks_dir / name).mean()})
    return pd.DataFrame(rows, columns=["generator", "area"])


__all__ = ["postprocess_pipelines", "default_hdbscan", "variant", "postprocess_sweep", "postprocess_summary",
           "postprocess_example",
           "robustness_sweep", "pick_by_area", "test_images", "qualitative", "data_samples",
           "mask_areas"]


def postprocess_paragraph(res: Path) -> list[str]:
    """What the post-processing extension did, from ``postprocess.csv``: the best chain of each
    HDBSCAN variant against Table 2's scoring (mean gain over the models, its range, on how many
    models the paired interval lies above or below 0), and where the fake region is the
    majority: the extensions stage's paragraph of REPORT.md. Empty when it has not run."""
    f = res / "postprocess.csv"
    if not f.exists():
        return []
    pp = pd.read_csv(f)
    if "variant" not in pp or "area_bin" not in pp:
        return []
    rows, area = pp[pp.area_bin == "all"], pp[pp.area_bin != "all"]
    n_models, n_img = rows.experiment.nunique(), int(rows.n_images.iloc[0])
    out = []
    for variant in ("feature HDBSCAN", "scalar HDBSCAN"):
        d = rows[rows.variant == variant]
        if not len(d):
            continue
        by = d.groupby("postprocess")["gain"].mean()
        chain = by.idxmax()
        c = d[d.postprocess == chain]
        majority = area[(area.postprocess == chain) & (area.area_low >= 0.5) & (area.n_images > 0)]
        tail = ""
        if len(majority):
            w = majority.n_images
            tail = (f"; on the {int(w.sum())} images whose fake region is the majority it gains "
                    f"{(majority.gain * w).sum() / w.sum():+.1f} on average")
        one = (f"it leaves {d.groupby('postprocess')['one_cluster_share'].mean().loc[chain]:.0f}% of the images "
               f"in one cluster (all real or all fake; over every chain of the variant "
               f"{d['one_cluster_share'].mean():.0f}%), then " if "one_cluster_share" in d else "")
        out.append(f"{variant} at its best ({chain}): {one}{c.gain.mean():+.1f} IoU points on average over the "
                   f"{n_models} Table 2 models (from {c.gain.min():+.1f} to {c.gain.max():+.1f}; paired 95% "
                   f"interval above 0 for {int((c.gain_ci_low > 0).sum())}, below 0 for "
                   f"{int((c.gain_ci_high < 0).sum())}){tail}")
    if not out:
        return []
    return [f"Post-processing (extension after FOCAL, `{f.parent.name}/postprocess.csv`, {n_img} test "
            "images per model, gains against Table 2's 0.5 threshold): " + "; ".join(out) + "."]
