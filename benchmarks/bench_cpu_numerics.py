"""What the CPU pin costs, and whether it holds: each mini training step with the pinned x86-64
AVX2 kernels (the default, ``dolos_core/cpu_pin.py``) against the CPU's native ones.

    .venv/bin/python benchmarks/bench_cpu_numerics.py [--size 96] [--batch 16] [--steps 6] [--reps 2]

Per method and supervision (every registered model; the mini's input side, one torch thread, as
a CPU training computes): images/s of a whole optimiser step (forward, backward, Adam, channels-
last, as ``train.py``) on a fixed random batch, each mode in its own fresh process (the kernels
are chosen once per process), the modes alternated ``--reps`` times and the fastest kept; and a
hash of the weights after ``--steps`` steps. Equal hashes across reps say a mode repeats itself;
a pinned hash that differs from the native one says the pin changed the kernels on this CPU.
The pinned hashes are the check of "the same numbers on another machine": run this there and
the ``same_as_committed`` column compares its pinned hashes with the committed file's.

Writes ``results/mini/cpu_numerics.csv`` and ``.md`` (the committed file is read first, for the
comparison); ``--out /tmp/cpu_numerics`` writes elsewhere and leaves the committed file alone.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))


def _worker(size: int, batch: int, steps: int) -> None:
    """In a fresh process: one JSON line per model (img/s, weights hash, kernels in effect)."""
    import torch

    from bench_cpu_pace import make_step
    from dolos_core.models import list_models
    from dolos_core.numerics import cpu_kernels

    torch.set_num_threads(1)
    for method, sup in list_models():
        step, model = make_step(method, sup, "today", size, batch)
        step()                                   # warm-up (counted in the hash, not the time)
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        dt = time.perf_counter() - t0
        h = hashlib.sha256()
        for name, t in sorted(model.state_dict().items()):
            h.update(name.encode() + t.detach().contiguous().numpy().tobytes())
        print(json.dumps({"method": method, "supervision": sup, "img_per_s": batch * steps / dt,
                          "weights": h.hexdigest()[:12], "kernels": cpu_kernels()}), flush=True)


def _env(mode: str) -> dict:
    from dolos_core import cpu_pin

    env = {k: v for k, v in os.environ.items() if k not in cpu_pin.PIN}
    env.update({cpu_pin.ENV: mode, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)})
    return env


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--out", default=str(REPO / "results" / "mini" / "cpu_numerics"))
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        _worker(args.size, args.batch, args.steps)
        return 0
    import pandas as pd

    out = Path(args.out)
    ref = REPO / "results" / "mini" / "cpu_numerics.csv"
    committed = pd.read_csv(ref) if ref.exists() else None
    rows = []
    for rep in range(args.reps):
        for mode in ("avx2", "native"):
            cmd = [sys.executable, __file__, "--worker", "--size", str(args.size), "--batch", str(args.batch),
                   "--steps", str(args.steps)]
            proc = subprocess.run(cmd, env=_env(mode), capture_output=True, text=True)
            if proc.returncode:
                print(proc.stderr[-3000:], file=sys.stderr)
                return proc.returncode
            for line in proc.stdout.splitlines():
                if line.startswith("{"):
                    r = json.loads(line)
                    rows.append({**r, "mode": mode, "rep": rep})
                    print(f"rep {rep} {mode:6s} {r['method']:12s} {r['supervision']:4s} {r['img_per_s']:6.1f} img/s "
                          f"weights {r['weights']}  ({r['kernels']})", flush=True)
    df = pd.DataFrame(rows)
    keys = ["method", "supervision"]
    table = []
    for (method, sup), g in df.groupby(keys, sort=False):
        pin, nat = g[g["mode"] == "avx2"], g[g["mode"] == "native"]
        row = {"method": method, "supervision": sup, "input_size": args.size, "batch": args.batch,
               "img_per_s_pinned": pin["img_per_s"].max(), "img_per_s_native": nat["img_per_s"].max(),
               "pin_cost": nat["img_per_s"].max() / pin["img_per_s"].max() - 1,
               "pinned_repeats": pin["weights"].nunique() == 1, "native_repeats": nat["weights"].nunique() == 1,
               "weights_pinned": pin["weights"].iloc[0], "weights_native": nat["weights"].iloc[0],
               "pin_changes_kernels": pin["weights"].iloc[0] != nat["weights"].iloc[0]}
        if committed is not None:
            ref = committed[(committed["method"] == method) & (committed["supervision"] == sup)]
            row["same_as_committed"] = bool(len(ref)) and ref["weights_pinned"].iloc[0] == row["weights_pinned"]
        table.append(row)
    t = pd.DataFrame(table)
    total = (1 / t["img_per_s_pinned"]).sum() / (1 / t["img_per_s_native"]).sum() - 1
    kernels = " / ".join(dict.fromkeys(df["kernels"]))
    import platform

    import torch

    head = (f"CPU numerics: pinned x86-64 AVX2 against native kernels (`benchmarks/bench_cpu_numerics.py`), "
            f"one torch thread, input {args.size} px, batch {args.batch}, {args.steps} steps after one warm-up, "
            f"fastest of {args.reps} alternated fresh processes per mode; torch {torch.__version__}, "
            f"{platform.machine()}, {os.cpu_count()} cores. Kernels seen: {kernels}.\n\n"
            f"`pin_cost`: how much faster native is (native img/s / pinned img/s - 1; negative: the pin is faster). "
            f"Time of one step of each model in turn, pinned against native: {100 * total:+.1f}%.\n\n")
    out.parent.mkdir(parents=True, exist_ok=True)
    t.round(4).to_csv(out.with_suffix(".csv"), index=False)
    out.with_suffix(".md").write_text(head + t.to_markdown(index=False, floatfmt=".3g") + "\n")
    print(head + t.to_markdown(index=False, floatfmt=".3g"))
    print(f"written: {out}.csv, .md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
