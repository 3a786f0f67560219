"""The pooling of Patches-MIL, chosen on DOLOS-mini's validation split (never on test).

    .venv/bin/python benchmarks/mil_sweep.py [--profile mini] [--seeds 1] [--jobs 2]

Trains weak Patches-MIL in setup B (real vs inpainted, image labels) once per pooling of the
image logit (``dolos_core.models.patches_mil.pool_logits``), and the paper's weak Patches (every
cell takes the image label) beside them, one torch thread each, and scores each on the
validation split: IoU-lg at the paper's fixed 0.5 on the inpainted validation images, the
threshold-free pooled pixel AUC, the share of real validation images' pixels above 0.5 (where the
maps fire on reals), and detection AP (real vs inpainted validation images). Writes
``results/<profile>/mil_sweep.csv`` and ``.md``; the choice (``PatchesMILNet.pooling``) is the
best IoU at 0.5 on validation.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd
import torch

from dolos_core import metrics
from dolos_core.config import get_paths, get_profile, repo_root
from dolos_core.data.datasets import DolosDataset
from dolos_core.data.layout import DatasetKey
from dolos_core.evaluate import load_run, masks_for
from dolos_core.experiments import get_experiment
from dolos_core.io import atomic_path
from dolos_core.resize import nearest
from dolos_core.models import register_model
from dolos_core.models.patches_mil import PatchesMILNet
from dolos_core.predict import predict_dataset, predict_experiment, test_transform
from dolos_core.runs import resolve_run
from dolos_core.train import load_trained, train_experiment

# name -> (pooling, k, r): the variants swept (the paper's weak Patches is "paper").
VARIANTS = {"max": ("max", 0.1, 5.0), "topk-5%": ("topk", 0.05, 5.0), "topk-10%": ("topk", 0.1, 5.0),
            "topk-25%": ("topk", 0.25, 5.0), "lse-r5": ("lse", 0.1, 5.0), "noisy-or": ("noisy-or", 0.1, 5.0)}


def _variant(name: str, spec: tuple) -> type:
    """A registered Patches-MIL with one pooling, as its own method (its own run ids)."""
    method = "milsweep-" + name.replace("%", "").replace("-", "")
    cls = type(f"MILSweep_{method}", (PatchesMILNet,), {
        "method": method, "pooling": spec[0], "k": spec[1], "r": spec[2], "__module__": __name__,
        "card": dataclasses.replace(PatchesMILNet.card, label=f"MIL {name}")})
    return register_model(cls)


SWEEP = {name: _variant(name, spec).method for name, spec in VARIANTS.items()}
SWEEP["paper (every cell the image label)"] = "patches"


def _train_one(args: tuple) -> str:
    method, profile_name, seed, root = args
    torch.set_num_threads(1)
    prof = get_profile(profile_name, seed=seed)
    paths = get_paths(profile_name, root=root)
    exp = get_experiment(f"{method}-B")
    train_experiment(exp, prof, paths, device="cpu", progress=False)
    predict_experiment(exp, prof, paths, device="cpu", progress=False)
    return exp.name


def _valid_row(name: str, method: str, prof, paths) -> dict:
    exp = get_experiment(f"{method}-B")
    run = resolve_run(exp, prof, paths)
    fake = load_run(run, "celebahq/repaint-p2", prof, "valid")
    masks = masks_for(fake)
    loc = metrics.localization(fake.maps, masks)
    model = load_trained(exp, prof, paths, "cpu")
    real_ds = DolosDataset(paths.data_root, DatasetKey.parse("celebahq/real"), "valid", prof.input_size,
                           transform=test_transform(exp, prof))
    with torch.no_grad():
        real_maps, real_scores, _ = predict_dataset(model, real_ds, torch.device("cpu"), prof.predict_batch_size)
    ap, _ = metrics.detection_ap(real_scores, fake.scores, prof.detection_repeats, prof.seed)
    lo, hi = metrics.bootstrap_mean_ci(loc.iou, prof.bootstrap, prof.seed)
    return {"pooling": name, "seed": prof.seed, "run": run.run_id,
            "iou_05": 100 * float(loc.iou.mean()), "iou_05_ci_low": lo, "iou_05_ci_high": hi,
            "pixel_auc": metrics.pooled_pixel_metrics(fake.maps, masks)["pixel_auc"],
            "real_pixels_above_05": 100 * float((real_maps.astype(np.float32) > 0.5).mean()),
            "fake_pixels_above_05_outside": 100 * float(((fake.maps.astype(np.float32) > 0.5)
                                                         & ~_at_map(masks, fake.maps.shape[1:])).mean()),
            "detection_ap": ap, "n_valid_fake": len(fake.names), "n_valid_real": len(real_scores)}


def _at_map(masks: np.ndarray, side: tuple) -> np.ndarray:
    """Masks (N, H, W) -> boolean (N, h, w) at the map's cells (nearest, pixel centres)."""
    return nearest(masks, tuple(side)) > 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="mini")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--root", default=str(repo_root()))
    args = ap.parse_args(argv)
    prof = get_profile(args.profile)
    paths = get_paths(args.profile, root=args.root)
    if not paths.data_root.is_dir():
        from dolos_core.data.mini import build_mini

        build_mini(paths.data_root, prof, seed=0, progress=True)
    todo = [(m, args.profile, s, args.root) for s in range(args.seeds) for m in SWEEP.values()]
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with ProcessPoolExecutor(args.jobs) as pool:
        for done in pool.map(_train_one, todo):
            print(f"trained {done}", flush=True)
    rows = [_valid_row(name, m, get_profile(args.profile, seed=s), paths)
            for s in range(args.seeds) for name, m in SWEEP.items()]
    df = pd.DataFrame(rows)
    out = paths.results / "mil_sweep"
    out.parent.mkdir(parents=True, exist_ok=True)
    df.round(3).to_csv(out.with_suffix(".csv"), index=False)
    text = (f"Patches-MIL pooling sweep, setup B, {args.profile} profile, validation split "
            f"({args.seeds} seed(s); IoU-lg at 0.5 with its 95% bootstrap interval over images)\n\n"
            + df.to_markdown(index=False, floatfmt=".1f") + "\n")
    with atomic_path(out.with_suffix(".md")) as tmp:
        tmp.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
