"""Patches-MIL's weak loss, chosen on DOLOS-mini's validation split with image labels only.

    .venv/bin/python benchmarks/mil_sweep.py [--profile mini] [--seeds 1] [--finalists 3 --final-seeds 3] [--jobs 2]

Trains weak Patches-MIL in setup B (real vs inpainted, image labels) once per variant of its loss
(``VARIANTS``: a pooling of the cell logits, its k, and the weights of the terms of
``dolos_core.models.patches_mil.MIL_TERMS``, each a card option set through the profile's
``method_options``, so every variant is a run of its own id), and the paper's weak Patches (every
cell takes the image label) beside them; one torch thread each. Then the ``--finalists`` best
variants again under ``--final-seeds`` seeds.

**The choice reads image labels only** (never a mask, never a test image): on the validation
split, the highest detection AP of the pooled image score (real vs inpainted validation images;
mean over seeds); within ``TIE`` points of the best, the most inpainted validation images found at
a threshold without masks (``evaluate.label_threshold``'s ``real-quantile`` rule, declared first:
their top cell above the 0.99 quantile of the real validation images' cells); then the simplest
variant (fewest terms, the
order of ``VARIANTS``). Weakly supervised localizers tuned on masks measure the masks (Choe et
al., CVPR 2020).

**What the masks say, as an oracle beside it** (not used to choose): IoU-lg at 0.5 and at the
threshold without masks, pixel AUC, and IoU-lg at 0.5 by mask-area bin (the cost of a small k on
large masks). Writes ``results/<profile>/mil_sweep.{csv,md}`` (one row per variant and seed),
``mil_sweep_choice.md`` (the means, the rule, the choice) and ``mil_k_by_area.{csv,md}``.
"""

from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd
import torch

from dolos_core import metrics
from dolos_core.config import get_paths, get_profile, repo_root
from dolos_core.evaluate import label_threshold, load_run, masks_for
from dolos_core.experiments import CELEBA_TEST, get_experiment
from dolos_core.io import atomic_path
from dolos_core.predict import predict_experiment
from dolos_core.runs import resolve_run
from dolos_core.train import train_experiment

# name -> Patches-MIL's options (its card's; the rest at their defaults); "paper": weak Patches.
VARIANTS = {
    "paper (every cell the image label)": None,
    "max": {"pooling": "max"},
    "topk-2%": {"pooling": "topk", "k": 0.02},
    "topk-5%": {"pooling": "topk", "k": 0.05},
    "topk-10%": {"pooling": "topk", "k": 0.1},
    "topk-25%": {"pooling": "topk", "k": 0.25},
    "lse-r5": {"pooling": "lse", "r": 5.0},
    "noisy-or": {"pooling": "noisy-or"},
    "softk-r2": {"pooling": "softk", "r": 2.0},
    "topk-5% + rank": {"pooling": "topk", "k": 0.05, "rank": 1.0},
    "topk-5% + rank + suppress": {"pooling": "topk", "k": 0.05, "rank": 1.0, "suppress": 1.0},
    "topk-5% + rank + suppress + sparsity": {"pooling": "topk", "k": 0.05, "rank": 1.0, "suppress": 1.0,
                                             "sparsity": 0.1},
    "softk-r2 + rank + suppress": {"pooling": "softk", "r": 2.0, "rank": 1.0, "suppress": 1.0},
}
TIE = 0.5                                      # detection AP points within which variants tie
AREA_BINS = (0.0, 0.02, 0.05, 0.1, 0.2, 1.0)   # mask area (share of the image) bins of the k table


def _profile(profile_name: str, seed: int, options: dict | None):
    base = get_profile(profile_name, seed=seed)
    if options is None:
        return base
    mil = {**base.method_options.get("patches-mil", {}), **options}
    return get_profile(profile_name, seed=seed, method_options={"patches-mil": mil})


def _experiment(options: dict | None):
    return get_experiment("patches-B" if options is None else "patches-mil-B")


def _train_one(args: tuple) -> str:
    name, profile_name, seed, root = args
    torch.set_num_threads(1)
    prof = _profile(profile_name, seed, VARIANTS[name])
    paths = get_paths(profile_name, root=root)
    exp = _experiment(VARIANTS[name])
    train_experiment(exp, prof, paths, device="cpu", progress=False)
    predict_experiment(exp, prof, paths, device="cpu", progress=False)
    return f"{name} (seed {seed})"


def _area_bin(area: np.ndarray) -> np.ndarray:
    labels = [f"{lo:.0%}-{hi:.0%}" for lo, hi in zip(AREA_BINS[:-1], AREA_BINS[1:])]
    return np.array(labels, dtype=object)[np.clip(np.digitize(area, AREA_BINS[1:-1]), 0, len(labels) - 1)]


def _rows(name: str, profile_name: str, seed: int, paths) -> tuple[dict, list[dict]]:
    options = VARIANTS[name]
    prof = _profile(profile_name, seed, options)
    run = resolve_run(_experiment(options), prof, paths)
    fake = load_run(run, CELEBA_TEST[0], prof, "valid")
    real = load_run(run, CELEBA_TEST[1], prof, "valid")
    if fake is None or real is None:
        raise FileNotFoundError(f"{name} seed {seed}: no validation predictions in {run.predictions_dir}")
    t = label_threshold(fake, real, "real-quantile", prof.label_quantile)     # the rule the sweep ran with
    ap, _ = metrics.detection_ap(real.scores, fake.scores, prof.detection_repeats, prof.seed)
    found = 100 * float((fake.maps.reshape(len(fake.maps), -1).max(1) > t).mean())
    # the oracle columns: masks read only from here on
    masks = masks_for(fake)
    at05, atl = metrics.localization(fake.maps, masks), metrics.localization(fake.maps, masks, threshold=t)
    lo, hi = metrics.bootstrap_mean_ci(at05.iou, prof.bootstrap, prof.seed)
    row = {"variant": name, "seed": seed, "run": run.run_id,
           "detection_ap": ap, "fakes_found_at_label_thr": found, "label_threshold": t,
           "oracle_iou_05": 100 * float(at05.iou.mean()), "oracle_iou_05_ci_low": lo, "oracle_iou_05_ci_high": hi,
           "oracle_iou_label_thr": 100 * float(atl.iou.mean()),
           "oracle_pixel_auc": metrics.pooled_pixel_metrics(fake.maps, masks)["pixel_auc"],
           "n_valid_fake": len(fake.names), "n_valid_real": len(real.names)}
    area = masks.reshape(len(masks), -1).mean(1)
    by = pd.DataFrame({"bin": _area_bin(area), "iou": 100 * at05.iou})
    areas = [{"variant": name, "seed": seed, "area_bin": b, "n_images": len(g), "oracle_iou_05": g.iou.mean()}
             for b, g in by.groupby("bin", sort=False)]
    return row, areas


def choose(means: pd.DataFrame) -> tuple[str, list[str]]:
    """The variant the rule picks from per-variant means (image-label columns only), and the
    rule's steps in words."""
    mil = means[~means.index.str.startswith("paper")]
    best_ap = mil["detection_ap"].max()
    tied = mil[mil["detection_ap"] >= best_ap - TIE]
    best_found = tied["fakes_found_at_label_thr"].max()
    tied2 = tied[tied["fakes_found_at_label_thr"] >= best_found - 1e-9]
    order = list(VARIANTS)
    pick = min(tied2.index, key=lambda v: (len(VARIANTS[v] or {}), order.index(v)))
    steps = [f"highest detection AP: {best_ap:.1f}; within {TIE:g} points: {', '.join(tied.index)}",
             f"most fakes found at the threshold without masks among them: {best_found:.1f}%: {', '.join(tied2.index)}",
             f"the simplest of those: **{pick}**"]
    return pick, steps


def _write(df: pd.DataFrame, out, text: str) -> None:
    df.round(3).to_csv(out.with_suffix(".csv"), index=False)
    with atomic_path(out.with_suffix(".md")) as tmp:
        tmp.write_text(text)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="mini")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--finalists", type=int, default=3, help="variants trained again under --final-seeds seeds")
    ap.add_argument("--final-seeds", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--root", default=str(repo_root()))
    args = ap.parse_args(argv)
    prof = get_profile(args.profile)
    paths = get_paths(args.profile, root=args.root)
    if not paths.data_root.is_dir():
        from dolos_core.data.mini import build_mini

        build_mini(paths.data_root, prof, seed=0, progress=True)
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    def train(todo):
        with ProcessPoolExecutor(args.jobs) as pool:
            for done in pool.map(_train_one, todo):
                print(f"trained {done}", flush=True)

    def score(names, seeds):
        rows, areas = [], []
        for s in seeds:
            for n in names:
                r, a = _rows(n, args.profile, prof.seed + s, paths)
                rows.append(r)
                areas += a
        return pd.DataFrame(rows), pd.DataFrame(areas)

    seeds = range(args.seeds)
    train([(n, args.profile, prof.seed + s, args.root) for s in seeds for n in VARIANTS])
    df, areas = score(list(VARIANTS), seeds)
    means = df.groupby("variant", sort=False).mean(numeric_only=True)
    ranked = choose(means)[0]
    mil = means[~means.index.str.startswith("paper")]
    finalists = [ranked] + [v for v in mil.sort_values(["detection_ap", "fakes_found_at_label_thr"],
                                                       ascending=False).index if v != ranked][:args.finalists - 1]
    more = range(args.seeds, args.final_seeds)
    if args.finalists and len(more):
        names = finalists + [next(iter(VARIANTS))]           # the paper's weak Patches beside them
        train([(n, args.profile, prof.seed + s, args.root) for s in more for n in names])
        d2, a2 = score(names, more)
        df, areas = pd.concat([df, d2], ignore_index=True), pd.concat([areas, a2], ignore_index=True)
    means = df.groupby("variant", sort=False).agg(
        seeds=("seed", "nunique"), **{c: (c, "mean") for c in df.columns if c not in ("variant", "seed", "run")})
    pick, steps = choose(means)
    out = paths.results / "mil_sweep"
    out.parent.mkdir(parents=True, exist_ok=True)
    head = (f"Patches-MIL loss sweep, setup B, {args.profile} profile, validation split (never test), "
            f"{args.seeds} seed(s) per variant, the {args.finalists} finalists and the paper's weak Patches under "
            f"{args.final_seeds}. Columns `detection_ap` and `fakes_found_at_label_thr` read image labels only and "
            "choose; `oracle_*` read the validation masks and do not.\n\n")
    _write(df, out, head + df.to_markdown(index=False, floatfmt=".1f") + "\n")
    choice = (head + "Means over seeds:\n\n" + means.reset_index().to_markdown(index=False, floatfmt=".1f")
              + "\n\nThe rule (image labels only):\n\n" + "\n".join(f"{i + 1}. {s}" for i, s in enumerate(steps))
              + "\n\nThe oracle's pick (highest mean IoU-lg at 0.5 on the validation masks, for comparison only): "
              + f"{means['oracle_iou_05'][~means.index.str.startswith('paper')].idxmax()}.\n")
    with atomic_path(paths.results / "mil_sweep_choice.md") as tmp:
        tmp.write_text(choice)
    k_rows = areas[areas.variant.str.match(r"^(max|topk-\d+%|paper.*)$")]
    k_by_area = k_rows.groupby(["variant", "area_bin"], sort=False).agg(
        seeds=("seed", "nunique"), n_images=("n_images", "mean"), oracle_iou_05=("oracle_iou_05", "mean")).reset_index()
    _write(k_by_area, paths.results / "mil_k_by_area",
           "IoU-lg at 0.5 (validation masks: an oracle analysis, not a choice) of each k of the top-k pooling, "
           "max pooling and the paper's weak Patches, by mask area (share of the image); mean over seeds\n\n"
           + k_by_area.pivot(index="variant", columns="area_bin", values="oracle_iou_05").to_markdown(floatfmt=".1f")
           + "\n")
    print(choice)
    return 0


if __name__ == "__main__":
    sys.exit(main())
