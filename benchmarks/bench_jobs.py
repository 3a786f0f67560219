"""Wall-clock of the study with N trainings at once against one at a time.

    .venv/bin/python benchmarks/bench_jobs.py [--profile mini] [--jobs 1 2] [--only data,train]

Runs ``./run_all.sh --profile P --only STAGES --jobs N`` for each N in a fresh output root
(``--repo``: a temporary folder; nothing of this checkout's ``runs/`` is touched), one after
another, and prints each run's wall-clock, its stage times and the speed-up over the first N.
On a GPU node each training gets its own GPU; on a CPU machine each gets its share of the
cores. The default is the mini profile's data and training stages (~20 min per N on 2 CPU
cores); ``--only data,train,evaluate,extensions,report`` times the whole default study.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="mini", choices=["smoke", "mini", "paper"])
    ap.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--only", default="data,train")
    ap.add_argument("--extra", nargs=argparse.REMAINDER, default=[],
                    help="more ./run_all.sh arguments (e.g. --data-root DIR for the paper profile)")
    args = ap.parse_args()
    env = {**os.environ, "DOLOS_PYTHON": os.environ.get("DOLOS_PYTHON", sys.executable)}
    rows = []
    for n in args.jobs:
        with tempfile.TemporaryDirectory(prefix=f"bench_jobs{n}_") as root:
            cmd = [str(REPO / "run_all.sh"), "--profile", args.profile, "--only", args.only,
                   "--jobs", str(n), "--repo", root, *args.extra]
            t0 = time.time()
            r = subprocess.run(cmd, capture_output=True, text=True, env=env)
            wall = time.time() - t0
            if r.returncode != 0:
                sys.exit(f"--jobs {n} failed (exit {r.returncode}):\n{r.stdout[-3000:]}{r.stderr[-2000:]}")
            summary = r.stdout[r.stdout.index("== summary"):]
            stages = dict(re.findall(r"^  (\w+)\s+(\d+m\d+s|\d+s)$", summary, re.M))
            rows.append((n, wall, stages))
            print(f"--jobs {n}: {wall:.0f} s  " + "  ".join(f"{k} {v}" for k, v in stages.items()), flush=True)
    base = rows[0][1]
    for n, wall, _ in rows:
        print(f"--jobs {n}: {wall:7.0f} s wall-clock, x{base / wall:.2f} against --jobs {rows[0][0]}")


if __name__ == "__main__":
    main()
