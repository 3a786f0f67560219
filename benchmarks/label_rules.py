"""The thresholds without masks compared on validation (an oracle check, read once).

    .venv/bin/python benchmarks/label_rules.py [--profile mini] [--seed 0]

For the paper's weak Patches and the Patches-MIL variants of ``benchmarks/mil_sweep.py`` (their
runs must exist: run the sweep first), each rule of ``evaluate.label_threshold`` (``otsu``,
``real-quantile``) on the validation images and labels, and IoU-lg on the inpainted validation
images at 0.5 and at each rule's threshold (the masks read here only to compare the rules).
Writes ``results/<profile>/label_rules.{csv,md}``.
"""

from __future__ import annotations

import argparse
import sys

import pandas as pd

import mil_sweep as sweep
from dolos_core import metrics
from dolos_core.config import get_paths, repo_root
from dolos_core.evaluate import LABEL_RULES, label_threshold, load_run, masks_for, save_table
from dolos_core.experiments import CELEBA_TEST
from dolos_core.runs import resolve_run

SHOWN = ("paper (every cell the image label)", "max", "topk-5%", "topk-25%", "lse-r5", "topk-5% + rank")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="mini")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--root", default=str(repo_root()))
    args = ap.parse_args(argv)
    paths = get_paths(args.profile, root=args.root)
    rows = []
    for name in SHOWN:
        prof = sweep._profile(args.profile, args.seed, sweep.VARIANTS[name])
        run = resolve_run(sweep._experiment(sweep.VARIANTS[name]), prof, paths)
        fake = load_run(run, CELEBA_TEST[0], prof, "valid")
        real = load_run(run, CELEBA_TEST[1], prof, "valid")
        if fake is None or real is None:
            raise SystemExit(f"{name}: no validation predictions in {run.predictions_dir}: run benchmarks/mil_sweep.py")
        masks = masks_for(fake)
        row = {"variant": name, "seed": args.seed, "run": run.run_id,
               "iou_05": 100 * float(metrics.localization(fake.maps, masks).iou.mean())}
        for rule in LABEL_RULES:
            t = label_threshold(fake, real, rule, prof.label_quantile)
            row[f"{rule}_threshold"] = t
            row[f"iou_{rule}"] = 100 * float(metrics.localization(fake.maps, masks, threshold=t).iou.mean())
        rows.append(row)
    df = pd.DataFrame(rows)
    save_table(df, paths.results, "label_rules", floatfmt=".3g")
    print(df.to_markdown(index=False, floatfmt=".3g"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
