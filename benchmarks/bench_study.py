"""How long the default study takes from nothing on this machine, stage by stage.

    .venv/bin/python benchmarks/bench_study.py [--label one-seed] [--goal-min 30] [-- RUN_ALL_ARGS...]

Clones this checkout's HEAD into a temporary folder (a fresh clone: no data, no runs), runs
``./run_all.sh`` there with the given arguments (default: none, the one-seed mini study; e.g.
``-- --seeds 3`` for the committed study) using this environment's Python (``DOLOS_PYTHON``:
the environment's own set-up, a few minutes once, is not part of the number), and writes
``results/<profile>/study_time[-LABEL].csv`` and ``.md`` here - the wall clock, each stage's time
(the runner's own ``runs/<profile>/timings.json``), the command, commit, cores and torch
threads - and ``figures/<profile>/study_time[-LABEL].png``, the stages as bars against the goal.
docs/mini.md and the README quote these files; nothing is typed in.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--label", default="", help="suffix of the output files (e.g. one-seed, three-seeds)")
    ap.add_argument("--goal-min", type=float, default=30.0, help="the goal drawn on the figure, minutes")
    ap.add_argument("--profile", default="mini")
    ap.add_argument("run_all", nargs=argparse.REMAINDER, help="after --: ./run_all.sh's arguments")
    args = ap.parse_args(argv)
    extra = [a for a in args.run_all if a != "--"]
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=True).stdout.strip()
    env = {**os.environ, "DOLOS_PYTHON": os.environ.get("DOLOS_PYTHON", sys.executable)}
    with tempfile.TemporaryDirectory(prefix="bench_study_") as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        cmd = ["./run_all.sh", "--profile", args.profile, *extra]
        print(f"[bench] {' '.join(cmd)} in a fresh clone of {commit}", flush=True)
        t0 = time.time()
        r = subprocess.run(cmd, cwd=clone, env=env)
        wall = time.time() - t0
        if r.returncode != 0:
            sys.exit(f"./run_all.sh failed (exit {r.returncode}) after {wall:.0f} s")
        timings = json.loads((clone / "runs" / args.profile / "timings.json").read_text())
        same = compare_with_committed(clone / "results" / args.profile, REPO / "results" / args.profile)
    rows = [{"stage": s, "seconds": round(float(v), 1)} for s, v in timings.items()]
    rows.append({"stage": "total (wall clock)", "seconds": round(wall, 1)})
    df = pd.DataFrame(rows)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    meta = {"command": " ".join(cmd), "commit": commit, "cores": cores, "goal_min": args.goal_min}
    df = df.assign(**meta)
    stem = f"study_time{'-' + args.label if args.label else ''}"
    res, figs = REPO / "results" / args.profile, REPO / "figures" / args.profile
    res.mkdir(parents=True, exist_ok=True)
    figs.mkdir(parents=True, exist_ok=True)
    df.to_csv(res / f"{stem}.csv", index=False)
    (res / f"{stem}.md").write_text(
        f"`{meta['command']}` in a fresh clone of {commit}, {cores} cores (environment set up beforehand):\n\n"
        + df[["stage", "seconds"]].assign(minutes=lambda d: (d.seconds / 60).round(1)).to_markdown(index=False)
        + "\n\nThe run's tables against the committed ones (the first seed's columns on every row both have, "
        "the seed columns - mean over seeds, its intervals, spread - on the rows with as many seeds in both, "
        "`seed_rows`; run ids equal means the same configuration and training code):\n\n"
        + same.to_markdown(index=False) + "\n")
    same.to_csv(res / f"{stem}-vs-committed.csv", index=False)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = df[df.stage != "total (wall clock)"]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(df) + 1.4))
    ax.barh(list(stages.stage) + ["total (wall clock)"], list(stages.seconds / 60) + [wall / 60],
            color=["tab:blue"] * len(stages) + ["tab:grey"])
    ax.axvline(args.goal_min, color="tab:red", ls="--", label=f"goal {args.goal_min:g} min")
    for y, v in enumerate(list(stages.seconds / 60) + [wall / 60]):
        ax.text(v, y, f" {v:.1f}", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("minutes")
    ax.set_title(f"{meta['command']} · fresh clone of {commit} · {cores} cores", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(figs / f"{stem}.png", dpi=120)
    print(df[["stage", "seconds"]].to_string(index=False))
    print(same.to_string(index=False))
    print(f"written: {res / stem}.csv, .md; {figs / stem}.png")
    return 0


# The first seed's numbers of the tables a claim reads; the timing columns differ from run to run.
COMPARED = {"table2": ("iou", "ap_mean", "acc", "pixel_auc", "pixel_ap", "iou_val_thr", "oracle_iou"),
            "table3": ("iou", "ap_mean", "acc", "pixel_auc"),
            "cross_generator": ("iou",)}
# The seed columns: compared on the rows whose seed count is the same in both tables (a one-seed
# run's mean over seeds is its first seed, not the committed 3-seed mean).
SEED_COMPARED = ("iou_seeds", "iou_seeds_ci_low", "iou_seeds_ci_high", "iou_seeds_t_low", "iou_seeds_t_high",
                 "iou_seed_std")


def compare_with_committed(made: Path, committed: Path) -> pd.DataFrame:
    """Per table: rows compared, rows whose run id differs, the largest absolute difference over
    the compared columns (0 = every digit the same), and how many rows had their seed columns
    compared too (those with as many seeds in both)."""
    out = []
    for stem, cols in COMPARED.items():
        a, b = made / f"{stem}.csv", committed / f"{stem}.csv"
        if not (a.exists() and b.exists()):
            out.append({"table": stem, "rows": 0, "run_ids_differ": None, "max_abs_diff": None, "seed_rows": 0})
            continue
        da, db = pd.read_csv(a), pd.read_csv(b)
        keys = [k for k in ("experiment", "train", "test") if k in da.columns and k in db.columns]
        m = da.merge(db, on=keys, suffixes=("", "_committed"))
        cols = [c for c in cols if c in da.columns and c in db.columns]
        diffs = [float((m[c] - m[f"{c}_committed"]).abs().max()) for c in cols]
        seeded = m[m["seeds"] == m["seeds_committed"]] if "seeds_committed" in m else m.iloc[:0]
        diffs += [float((seeded[c] - seeded[f"{c}_committed"]).abs().max()) for c in SEED_COMPARED
                  if c in da.columns and c in db.columns and len(seeded)]
        diff = max((d for d in diffs if d == d), default=float("nan"))
        runs = int((m["run"].fillna("") != m["run_committed"].fillna("")).sum()) if "run_committed" in m else None
        out.append({"table": stem, "rows": len(m), "run_ids_differ": runs, "max_abs_diff": round(diff, 6),
                    "seed_rows": int(seeded["iou_seeds"].notna().sum()) if "iou_seeds" in seeded else 0})
    return pd.DataFrame(out)


if __name__ == "__main__":
    sys.exit(main())
