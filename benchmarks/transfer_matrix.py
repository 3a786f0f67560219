"""DOLOS-mini's cross-generator structure, measured on the validation split (never on test).

    .venv/bin/python benchmarks/transfer_matrix.py [--profile mini] [--jobs 2] [--allbut] [--label NAME]

Builds DOLOS-mini's CelebA-HQ fakes (``--root``, default ``runs/bench-transfer/``), trains the
single-generator Patches models of Figure 6 (full supervision, the profile's schedule, one
torch thread each) and, with ``--allbut``, the models trained on the other three, and scores
each on every generator's *validation* split: IoU-lg at 0.5 (%, 95% bootstrap interval over
images). Prints the matrix (rows: trained on; columns: tested on) and writes
``results/<profile>/transfer_matrix[-LABEL].csv`` and ``.md``. What it is for: ``dolos_core/data/mini.py``
gives each generator its traces, and this says which generators share them (a model trained
on one localizes another's fakes) before any test set is read.
"""

from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dolos_core import metrics
from dolos_core.config import get_paths, get_profile, repo_root
from dolos_core.data.datasets import DolosDataset
from dolos_core.data.layout import DatasetKey
from dolos_core.data.mini import build_mini
from dolos_core.experiments import FIG6_GENERATORS, get_experiment
from dolos_core.io import atomic_path
from dolos_core.predict import predict_dataset, test_transform
from dolos_core.predictions import Predictions
from dolos_core.train import load_trained, train_experiment

BUILT = ("real", "repaint-p2", "ldm", "lama", "pluralistic")


def _train_one(args: tuple) -> str:
    name, profile_name, root = args
    torch.set_num_threads(1)
    train_experiment(get_experiment(name), get_profile(profile_name), get_paths(profile_name, root=root),
                     device="cpu", progress=False)
    return name


def _cell(name: str, gen: str, prof, paths) -> dict:
    exp = get_experiment(name)
    model = load_trained(exp, prof, paths, "cpu")
    key = DatasetKey.parse(f"celebahq/{gen}")
    ds = DolosDataset(paths.data_root, key, "valid", prof.input_size, transform=test_transform(exp, prof))
    with torch.no_grad():
        maps, scores, names = predict_dataset(model, ds, torch.device("cpu"), prof.predict_batch_size)
    masks = Predictions(maps, scores, np.asarray(names),
                        {"masks_dir": str(key.masks_dir(paths.data_root, "valid"))}).masks()
    iou = metrics.localization(maps, masks).iou
    lo, hi = metrics.bootstrap_mean_ci(iou, prof.bootstrap, prof.seed)
    return {"trained": name.removeprefix("patches-full-"), "tested": gen, "iou": 100 * float(iou.mean()),
            "iou_ci_low": lo, "iou_ci_high": hi, "n": len(iou)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="mini")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--allbut", action="store_true", help="also the models trained on the other three")
    ap.add_argument("--root", default=None, help="output root (default runs/bench-transfer)")
    ap.add_argument("--label", default="", help="suffix of the CSV's name (e.g. before, after)")
    ap.add_argument("--render", default=None, metavar="CSV", help="only write CSV's matrix as markdown")
    args = ap.parse_args(argv)
    if args.render:
        print(render(Path(args.render), args.profile))
        return 0
    root = Path(args.root or repo_root() / "runs" / "bench-transfer")
    prof, paths = get_profile(args.profile), get_paths(args.profile, root=root)
    build_mini(paths.data_root, prof, seed=0, progress=True, only=BUILT)
    names = [f"patches-full-{g}" for g in FIG6_GENERATORS]
    names += [f"patches-full-allbut-{g}" for g in FIG6_GENERATORS] if args.allbut else []
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with ProcessPoolExecutor(args.jobs) as pool:
        for done in pool.map(_train_one, [(n, args.profile, str(root)) for n in names]):
            print(f"trained {done}", flush=True)
    df = pd.DataFrame([_cell(n, g, prof, paths) for n in names for g in FIG6_GENERATORS])
    out = get_paths(args.profile).results / f"transfer_matrix{'-' + args.label if args.label else ''}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        df.round(2).to_csv(tmp, index=False)
    print(render(out, args.profile))
    return 0


def render(csv: Path, profile: str = "mini") -> str:
    """The matrix of ``csv`` as markdown, written beside it (``.md``) and returned."""
    df = pd.read_csv(csv)
    cells = df.assign(text=[f"{r.iou:.1f} [{r.iou_ci_low:.1f}, {r.iou_ci_high:.1f}]" for r in df.itertuples()])
    rows = list(dict.fromkeys(df["trained"]))
    text = (f"IoU-lg at 0.5 (%, 95% interval over images) on each generator's validation split; rows: trained "
            f"on (Patches, full supervision, {profile} profile, one seed); `benchmarks/transfer_matrix.py`\n\n"
            + cells.pivot(index="trained", columns="tested", values="text")
            .reindex(index=rows, columns=list(FIG6_GENERATORS)).to_markdown() + "\n")
    with atomic_path(Path(csv).with_suffix(".md")) as tmp:
        tmp.write_text(text)
    return text


if __name__ == "__main__":
    sys.exit(main())
