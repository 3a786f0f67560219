"""Training throughput: the model step alone vs the full training loop (data loading included).

    .venv/bin/python benchmarks/bench_train.py [--size 128] [--batch 16] [--steps 10]

Prints images/s for each method's train step on random tensors and for the real loop on the
smoke or mini DOLOS-mini, and their ratio: the data pipeline must not be the bottleneck
(ratio close to 1). On a CUDA device it also times bf16 autocast.
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch

from dolos_core.config import get_paths, get_profile, resolve_device
from dolos_core.data.datasets import EpochSampler, collate
from dolos_core.experiments import get_experiment
from dolos_core.models import build_model, list_models
from dolos_core.train import build_split
from torch.utils.data import DataLoader


def step_rate(method, sup, size, batch, steps, device, bf16=False):
    torch.manual_seed(0)
    model = build_model(method, sup).to(device).to(memory_format=torch.channels_last).train()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    x = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=torch.channels_last)
    b = {"image": x, "label": torch.randint(0, 2, (batch,), device=device),
         "mask": (torch.rand(batch, size, size, device=device) > 0.8).float()}
    ctx = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

    def step():
        with ctx:
            out = model(b["image"])
        loss = model.loss(out, b)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(2):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.time()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batch * steps / (time.time() - t)


def loop_rate(exp_name, profile, batch, steps, device):
    """The real loop: DataLoader over DOLOS-mini + the same step."""
    prof = get_profile(profile)
    paths = get_paths(profile)
    exp = get_experiment(exp_name)
    ds = build_split(exp, paths.data_root, "train", prof.input_size)
    torch.manual_seed(0)
    model = build_model(exp.method, exp.supervision).to(device).to(memory_format=torch.channels_last).train()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    loader = DataLoader(ds, batch_sampler=EpochSampler(len(ds), batch, steps + 2, 0, 0, True),
                        collate_fn=collate, num_workers=prof.num_workers)
    t = None
    for i, batch_ in enumerate(loader):
        if i == 2:
            t = time.time()
        x = batch_["image"].to(device).contiguous(memory_format=torch.channels_last)
        batch_ = {**batch_, "image": x, "label": batch_["label"].to(device), "mask": batch_["mask"].to(device)}
        loss = model.loss(model(x), batch_)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return batch * steps / (time.time() - t), prof.input_size


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--profile", default="mini")
    ap.add_argument("--device", default="auto")
    a = ap.parse_args()
    dev = resolve_device(a.device)
    print(f"device {dev}, threads {torch.get_num_threads()}, input {a.size} px, batch {a.batch}")
    for method, sup in list_models():
        r = step_rate(method, sup, a.size, a.batch, a.steps, dev)
        extra = ""
        if dev.type == "cuda":
            extra = f"   bf16 {step_rate(method, sup, a.size, a.batch, a.steps, dev, bf16=True):7.1f} img/s"
        print(f"  model step  {method:<9} {sup:<4} {r:7.1f} img/s{extra}")
    for exp in ("patches-C", "gradcam-B"):
        try:
            loop, size = loop_rate(exp, a.profile, a.batch, a.steps, dev)
        except Exception as exc:  # no DOLOS-mini built yet
            print(f"  loop {exp}: skipped ({exc}); build it with ./run_all.sh --only data")
            continue
        e = get_experiment(exp)
        step = step_rate(e.method, e.supervision, size, a.batch, a.steps, dev)
        print(f"  full loop   {exp:<14} {loop:7.1f} img/s vs step {step:7.1f} img/s at {size} px: ratio {loop / step:.2f}")


if __name__ == "__main__":
    main()
