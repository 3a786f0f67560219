"""Training at the CPU's pace: each method's training step on one thread, against the limit a
plain matrix product measures on the same thread, for today's path (channels-last, oneDNN on,
float32) and each option tried.

    .venv/bin/python benchmarks/bench_cpu_pace.py [--size 96] [--batch 16] [--steps 6] [--compile]

Per method (the mini's input side, the setups' supervisions), one torch thread (what a CPU
training computes with, ``numerics.TRAIN_CPU_THREADS``): images/s of a whole optimiser step
(forward, backward, Adam) on random tensors, the FLOPs of that step (three forwards, counted by
``torch.utils.flop_counter``: ``step_gflop``) and so the GFLOP/s reached, as a share of the
GFLOP/s of a 1024 x 1024 float32 matrix product on the same thread. Options, each a change of
today's path (``today``: channels-last tensors, as ``train.py`` moves them, oneDNN on,
float32): ``contiguous`` (the default layout), ``no-mkldnn``
(oneDNN off), ``bf16`` (CPU bfloat16 autocast) and, with ``--compile``, ``torch.compile``. For
each, the largest absolute difference of the loss after ``--steps`` steps from today's path: 0
means the same bits. Writes ``results/mini/cpu_pace.csv`` and ``.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import time

import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

from dolos_core.config import repo_root
from dolos_core.models import build_model, list_models


def matmul_gflops(n: int = 1024, reps: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n ** 3 * reps / (time.perf_counter() - t0) / 1e9


def _batch(size: int, batch: int) -> dict:
    g = torch.Generator().manual_seed(1)
    return {"image": torch.randn(batch, 3, size, size, generator=g), "label": torch.arange(batch) % 2,
            "mask": (torch.rand(batch, size, size, generator=g) > 0.8).float()}


def make_step(method: str, sup: str, option: str, size: int, batch: int):
    """(one optimiser step on a fixed random batch -> its loss, the model) along ``option``'s path."""
    torch.manual_seed(0)
    model = build_model(method, sup).train()
    ctx = contextlib.nullcontext()
    if option != "contiguous":                  # today's path: channels-last weights and batches
        model = model.to(memory_format=torch.channels_last)
    if option == "bf16":
        ctx = torch.autocast("cpu", dtype=torch.bfloat16)
    net = torch.compile(model) if option == "compile" else model
    opt = torch.optim.Adam(model.parameters(), 1e-4)
    b = _batch(size, batch)
    x = b["image"] if option == "contiguous" else b["image"].contiguous(memory_format=torch.channels_last)

    def step():
        opt.zero_grad(set_to_none=True)
        with ctx:
            out = net(x)
            loss = model.loss(out, b)
        loss.backward()
        opt.step()
        return loss.item()

    return step, model


def run(method: str, sup: str, option: str, size: int, batch: int, steps: int) -> tuple[float, float, float]:
    """(images/s, GFLOP per image, final loss) of ``steps`` optimiser steps after one warm-up."""
    step, _ = make_step(method, sup, option, size, batch)
    with torch.backends.mkldnn.flags(enabled=option != "no-mkldnn"):
        step()                                   # the warm-up step
        t0 = time.perf_counter()
        for _ in range(steps):
            last = step()
        dt = time.perf_counter() - t0
    return batch * steps / dt, step_gflop(method, size), last


def step_gflop(method: str, size: int) -> float:
    """GFLOP of one image's training step, estimated as three forward passes (the backward
    costs about twice the forward): the forward of the method's network (its ``full`` model,
    under no_grad) counted by ``torch.utils.flop_counter``. The counter's own backward count is
    not used: it reads ~10x the forward for Xception's depthwise convolutions, more than the
    arithmetic. A lower bound for weak Grad-CAM, whose forward also takes a gradient."""
    model = build_model(method, "full").eval()
    with FlopCounterMode(display=False) as flops, torch.no_grad():
        model(torch.randn(1, 3, size, size))
    return 3 * flops.get_total_flops() / 1e9


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--compile", action="store_true", help="also torch.compile (slow to compile)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    peak = matmul_gflops()
    print(f"one thread: float32 matrix product {peak:.1f} GFLOP/s", flush=True)
    options = ["today", "contiguous", "no-mkldnn", "bf16"] + (["compile"] if args.compile else [])
    rows = []
    for method, sup in list_models():
        base_loss = None
        for option in options:
            try:
                rate, gflop, loss = run(method, sup, option, args.size, args.batch, args.steps)
            except Exception as exc:          # an option this build does not support
                print(f"{method} {sup} {option}: {type(exc).__name__}: {exc}", flush=True)
                continue
            base_loss = loss if option == "today" else base_loss
            rows.append({"method": method, "supervision": sup, "option": option, "img_per_s": rate,
                         "gflop_per_img": gflop, "gflops": rate * gflop, "share_of_matmul": rate * gflop / peak,
                         "loss_diff": abs(loss - base_loss) if base_loss is not None else float("nan")})
            print(f"{method:12s} {sup:4s} {option:13s} {rate:6.1f} img/s  {gflop:5.2f} GFLOP/img  "
                  f"{100 * rate * gflop / peak:5.1f}% of the matmul  loss diff {rows[-1]['loss_diff']:.2e}",
                  flush=True)
    df = pd.DataFrame(rows)
    out = repo_root() / "results" / "mini" / "cpu_pace"
    df.round(4).to_csv(out.with_suffix(".csv"), index=False)
    out.with_suffix(".md").write_text(
        f"One torch thread, input {args.size} px, batch {args.batch}; matrix-product limit {peak:.1f} GFLOP/s "
        f"(`benchmarks/bench_cpu_pace.py`):\n\n" + df.to_markdown(index=False, floatfmt=".3g") + "\n")
    print(f"written: {out}.csv, .md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
