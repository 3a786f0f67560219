"""Evaluation speed: the vectorised localization metrics vs a per-image loop in the authors'
style (Pillow resize per image, NumPy IoU), on 8,500 maps of 37x37 against 256x256 masks.

    .venv/bin/python benchmarks/bench_metrics.py [--n 8500]

Prints both times, the ratio and the largest difference between the two results.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from PIL import Image

from dolos_core.metrics import localization


def per_image(maps, masks, tau=0.5):
    ious, ious_sm, accs, accs_sm = [], [], [], []
    for pred_sm, true_lg in zip(maps, masks):
        pred_lg = np.array(Image.fromarray(pred_sm).resize(true_lg.shape))
        pb, ps = pred_lg > tau, pred_sm > tau
        true_sm = np.array(Image.fromarray(true_lg).resize(pred_sm.shape, resample=Image.NEAREST)).astype(bool)
        t = true_lg.astype(bool)
        for p, m, io, ac in ((pb, t, ious, accs), (ps, true_sm, ious_sm, accs_sm)):
            u = (p | m).sum()
            io.append(1.0 if u == 0 else (p & m).sum() / u)
            ac.append(np.mean(p == m))
    return np.array(ious), np.array(ious_sm), np.array(accs), np.array(accs_sm)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=8500)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    ramp = np.linspace(-0.3, 0.3, 37, dtype=np.float32)
    maps = np.clip(rng.random((a.n, 37, 37), dtype=np.float32) * 0.6 + 0.2 + ramp, 0, 1)
    masks = np.zeros((a.n, 256, 256), np.uint8)
    for i in range(a.n):
        y, x = rng.integers(0, 200, 2)
        masks[i, y:y + rng.integers(5, 56), x:x + rng.integers(5, 56)] = 1
    t = time.time()
    ours = localization(maps, masks)
    t_ours = time.time() - t
    t = time.time()
    ref = per_image(maps, masks)
    t_ref = time.time() - t
    diff = max(np.abs(ours.iou - ref[0]).max(), np.abs(ours.iou_sm - ref[1]).max(),
               np.abs(ours.acc - ref[2]).max(), np.abs(ours.acc_sm - ref[3]).max())
    print(f"{a.n} maps 37x37 vs masks 256x256")
    print(f"  vectorised (dolos_core.metrics.localization): {t_ours:7.2f} s")
    print(f"  per-image loop (authors' style):              {t_ref:7.2f} s")
    print(f"  speed-up: {t_ref / t_ours:.1f}x   largest per-image difference: {diff:.2e}")
    print(f"  mean IoU-lg: ours {100 * ours.iou.mean():.3f}  loop {100 * ref[0].mean():.3f}")


if __name__ == "__main__":
    main()
