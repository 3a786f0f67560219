"""The training input pipeline, per worker: the per-item path (decode a PNG, Lanczos to 299 px,
normalise, collate; every epoch, as the loaders did before) against the decoded split
(``DecodedSplit``: decode and resize once into uint8, then gather batches and normalise and
flip on the device), for a weak-Patches epoch at the paper's 299 px on a real-layout set of
256 px PNGs that it writes.

    .venv/bin/python benchmarks/bench_input.py [--images 256] [--batches 20]

Prints images per second of each path on one worker (one process, one thread: the rate each
of a loader's workers gives): the per-item path does everything on the worker; the decoded
split's worker only gathers uint8 rows (normalising and flipping happen on the GPU), and its
one-time first pass decodes. The ratio after the first pass is the host-side speed-up; the
last line also times the normalise and flip on this CPU, the rate where no GPU takes them.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from _layout import write_layout
from dolos_core.data.datasets import ConcatDolos, DecodedSplit, DolosDataset, EpochSampler, collate, transform_for


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=256, help="images per class")
    ap.add_argument("--batches", type=int, default=20, help="batches of 64 per measured epoch")
    a = ap.parse_args()
    torch.set_num_threads(1)
    dev = torch.device("cpu")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "dolos"
        write_layout(root, a.images)
        tf = transform_for("patches", "weak", 299, train=True)
        ds = ConcatDolos([DolosDataset(root, k, "train", 299, transform=tf)
                          for k in ("celebahq/real", "celebahq/repaint-p2")])
        n_img = a.batches * 64

        def epoch(seed):
            return EpochSampler(len(ds), 64, a.batches, 0, seed, flip=True)

        t = time.perf_counter()
        for items in epoch(0):                       # the per-item path: what the loaders did
            b = collate([ds[i] for i in items])
            b["image"].to(dev).contiguous(memory_format=torch.channels_last)
        old = n_img / (time.perf_counter() - t)

        t = time.perf_counter()
        dec = DecodedSplit(ds, with_masks=False, cache_dir=Path(tmp) / "cache")
        first = len(ds) / (time.perf_counter() - t)
        t = time.perf_counter()
        for e in (1, 2):
            for items in epoch(e):
                dec.batch(items)                     # what a worker does: gather uint8
        new = 2 * n_img / (time.perf_counter() - t)
        t = time.perf_counter()
        for e in (1, 2):
            for items in epoch(e):
                DecodedSplit.on_device(dec.batch(items), dev)
        here = 2 * n_img / (time.perf_counter() - t)
    print(f"weak Patches at 299 px from 256 px PNGs, {2 * a.images} images, batches of 64, one worker:")
    print(f"  per-item path (decode + Lanczos + normalise every epoch): {old:8.1f} img/s")
    print(f"  decoded split, first pass (decode + Lanczos once):        {first:8.1f} img/s")
    print(f"  decoded split, after the first pass (gather uint8):       {new:8.1f} img/s")
    print(f"  ratio per worker after the first pass: {new / old:.1f}x")
    print(f"  (with the normalise and flip that a GPU does, done here on this CPU: {here:.1f} img/s, "
          f"{here / old:.1f}x)")


if __name__ == "__main__":
    main()
