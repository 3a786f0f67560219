"""Evaluation at the paper's scale in bounded memory: one test set of 8,500 fake images (the
Repaint-P2 CelebA-HQ test split), scored exactly as Table 2 scores it (``evaluate.score``:
the authors' IoU/accuracy in both variants, bootstrap interval, pooled and per-image pixel AP/AUC,
best F1, oracle threshold), for synthetic maps of

- 299 x 299 (weak Grad-CAM: maps at the input resolution) and
- 37 x 37 (Patches),

against 256 x 256 masks. Each case runs in its own process, so its peak resident memory (RSS)
is its own. Goal: at most 4 GB and 60 s per test set on 2 CPU cores.

    .venv/bin/python benchmarks/bench_eval_scale.py [--n 8500] [--sizes 299 37]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np


def synthetic(n: int, map_size: int, mask_size: int = 256, seed: int = 0):
    """Masks with one rectangle each (1 = fake) and noisy float16 maps that roughly find it."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, mask_size, mask_size), np.uint8)
    maps = np.empty((n, map_size, map_size), np.float16)
    grid = (np.arange(map_size) + 0.5) / map_size
    for i in range(n):
        y0, x0 = rng.integers(0, mask_size // 2, 2)
        h, w = rng.integers(mask_size // 10, mask_size // 2, 2)
        masks[i, y0:y0 + h, x0:x0 + w] = 1
        fy = ((grid >= y0 / mask_size) & (grid < (y0 + h) / mask_size)).astype(np.float32)
        fx = ((grid >= x0 / mask_size) & (grid < (x0 + w) / mask_size)).astype(np.float32)
        m = 0.7 * np.outer(fy, fx) + 0.3 * rng.random((map_size, map_size), dtype=np.float32)
        maps[i] = m.astype(np.float16)
    return maps, masks


def one_case(n: int, map_size: int) -> dict:
    from dolos_core.config import get_profile
    from dolos_core.evaluate import score
    from dolos_core.predictions import Predictions

    maps, masks = synthetic(n, map_size)
    pred = Predictions(maps, np.zeros(n, np.float32), np.array([f"{i:05d}.png" for i in range(n)]),
                       {"label": 1, "masks_dir": None})
    t0 = time.perf_counter()
    row = score(pred, None, get_profile("paper"), extras=True, masks=masks)
    sec = time.perf_counter() - t0
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kB -> GB (Linux)
    data_gb = (maps.nbytes + masks.nbytes) / 2**30
    return {"n": n, "map": map_size, "seconds": round(sec, 1), "peak_rss_gb": round(peak_gb, 2),
            "inputs_gb": round(data_gb, 2), "iou": round(row["iou"], 2),
            "pixel_auc_img": round(row["pixel_auc_img"], 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=8500)
    ap.add_argument("--sizes", type=int, nargs="+", default=[299, 37])
    ap.add_argument("--case", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.case is not None:
        print(json.dumps(one_case(args.n, args.case)))
        return
    import torch

    print(f"{args.n} fake test images, masks 256x256, torch threads {torch.get_num_threads()}")
    print(f"{'map':>9} {'seconds':>8} {'peak RSS':>9} {'inputs':>7}  goal: <= 60 s, <= 4 GB")
    for size in args.sizes:
        out = subprocess.run([sys.executable, __file__, "--n", str(args.n), "--case", str(size)],
                             capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        ok = "ok" if r["seconds"] <= 60 and r["peak_rss_gb"] <= 4 else "OVER GOAL"
        print(f"{size:>4}x{size:<4} {r['seconds']:>8.1f} {r['peak_rss_gb']:>7.2f} GB "
              f"{r['inputs_gb']:>5.2f} GB  {ok}  (IoU {r['iou']:.1f}, pixel AUC {r['pixel_auc_img']:.1f})")


if __name__ == "__main__":
    main()
