"""The GPU check: throughput and memory of every model at the paper's 299 px, and from them
the hours each paper experiment needs. At most ~5 minutes on one GPU.

    .venv/bin/python benchmarks/gpu_check.py                # CUDA; writes results/paper/gpu_check.{md,json}
    .venv/bin/python benchmarks/gpu_check.py --quick --device cpu --out /tmp/x   # a smoke test

Per method and supervision, at the paper's batch size, in fp32 (the authors' numerics, the
paper profile's ``precision``), in fp32 with deterministic algorithms (the profile's
``gpu_deterministic``: what repeating a GPU run to the bit costs; the network alone) and in bf16
autocast: training images/s of the study's own loop (``train_experiment`` on a real-layout set
of 256 px PNGs it writes: decoding once, steps, validation)
and of the network alone on a batch already on the GPU (an upper bound), prediction
images/s at batch 1 (the authors' way), batched, and through ``predict_experiment`` (decoding
included), and peak GPU memory in fp32. Then the aggregate training images/s of 1, 2 and 4
trainings sharing the GPU (``concurrency``, on the case the paper's experiments spend most hours
on). The paper profile's estimate (``./run_all.sh --profile paper``) reads the loop's rate at its
``precision`` from ``gpu_check.json``, and ``--trainings-per-gpu auto`` the fastest concurrency
that fits the GPU's memory by the measured peaks.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch

from dolos_core.config import get_profile, repo_root, resolve_device
from dolos_core.experiments import EXPERIMENTS, PAPER_GROUPS
from dolos_core.io import atomic_path, write_json
from dolos_core.models import build_model, list_models
from dolos_core.runner.plan import auto_trainings_per_gpu, estimate_hours, estimate_wallclock
from dolos_core.numerics import autocast, set_numerics

CASES = list_models()


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def _batch(n, size, dev, map_side=None):
    g = torch.Generator().manual_seed(0)
    mask = torch.zeros(n, size, size)
    mask[:, size // 4: size // 2, size // 4: size // 2] = 1
    return {"image": torch.randn(n, 3, size, size, generator=g).to(dev).contiguous(memory_format=torch.channels_last),
            "label": (torch.arange(n) % 2).to(dev), "mask": mask.to(dev),
            "has_mask": torch.ones(n, dtype=torch.bool, device=dev)}


def _trainer(method, sup, batch_size, size, dev, precision, deterministic=False):
    """One optimisation step of the network alone on a batch already on ``dev``, as a function."""
    torch.manual_seed(0)
    set_numerics(precision, deterministic)
    model = build_model(method, sup).to(dev).to(memory_format=torch.channels_last).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    batch = _batch(batch_size, size, dev)
    ctx = autocast(dev, precision)

    def step():
        with ctx:
            out = model(batch["image"])
        loss = model.loss(out, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def train_speed(method, sup, batch_size, size, dev, precision, steps, warmup, deterministic=False):
    step = _trainer(method, sup, batch_size, size, dev, precision, deterministic)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for i in range(warmup + steps):
        if i == warmup:
            _sync(dev)
            t0 = time.perf_counter()
        step()
    _sync(dev)
    sec = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() / 2**30 if dev.type == "cuda" else float("nan")
    return steps * batch_size / sec, peak


def _concurrent_worker(method, sup, batch_size, size, device, steps, warmup, threads, barrier, queue):
    torch.set_num_threads(threads)
    dev = torch.device(device)
    step = _trainer(method, sup, batch_size, size, dev, "fp32")
    for _ in range(warmup):
        step()
    _sync(dev)
    barrier.wait()                      # every training starts its timed steps together
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(dev)
    queue.put((steps * batch_size, time.perf_counter() - t0))


def concurrency(method, sup, batch_size, size, dev, counts=(1, 2, 4), steps=20, warmup=3) -> dict[int, float]:
    """Aggregate training images/s of ``c`` trainings at once on one device, for each ``c`` of
    ``counts``: ``c`` processes (as ``--trainings-per-gpu c`` runs them), each the network alone
    at fp32 on its own batch, timed from a common start: all their images over the slowest's
    seconds. On a CPU the cores are shared as the job pool shares them."""
    import multiprocessing as mp
    import os

    ctx = mp.get_context("spawn")
    cores = os.cpu_count() or 1
    out = {}
    for c in counts:
        barrier, queue = ctx.Barrier(c), ctx.Queue()
        procs = [ctx.Process(target=_concurrent_worker, args=(method, sup, batch_size, size, str(dev), steps, warmup,
                                                              max(1, cores // c), barrier, queue)) for _ in range(c)]
        for p in procs:
            p.start()
        res = [queue.get(timeout=900) for _ in procs]
        for p in procs:
            p.join()
        out[c] = sum(n for n, _ in res) / max(sec for _, sec in res)
    return out


def predict_speed(method, sup, batch_size, size, dev, n_images, precision):
    torch.manual_seed(0)
    set_numerics(precision)
    model = build_model(method, sup).to(dev).to(memory_format=torch.channels_last).eval()
    x = _batch(batch_size, size, dev)["image"]
    ctx = autocast(dev, precision)
    with ctx:
        model.predict(x)  # warm-up
        _sync(dev)
        t0 = time.perf_counter()
        done = 0
        while done < n_images:
            model.predict(x)
            done += batch_size
        _sync(dev)
    return done / (time.perf_counter() - t0)


def real_loop_speed(method, sup, size, device, root: Path, iters: tuple[int, int], precision: str, n_test: int):
    """The study's own loop on a real-layout set of 256 px PNGs (``_layout``), timed at two
    lengths so that what a training pays once (cuDNN autotuning under ``cudnn.benchmark``, the
    first decode into the cache, the first kernels, a validation pass) cancels: one capped
    training of the method's setup-A (weak) or setup-C (full) experiment at ``size`` with
    ``iters[0]`` steps, one with ``iters[1]``, both from scratch (``force``). Returns (the steady
    training images/s: the extra images over the extra seconds; the one-time seconds of a
    training: the short one's time minus its images at the steady rate; prediction images/s of
    ``n_test`` test images through ``predict_experiment``, decoding included)."""
    from dolos_core.config import get_paths
    from dolos_core.experiments import get_experiment
    from dolos_core.predict import predict_experiment
    from dolos_core.train import train_experiment

    exp = get_experiment(f"{method}-{'A' if sup == 'weak' else 'C'}")
    paths = get_paths("paper", root / "dolos", root=root)
    seconds, images = [], []
    for n in iters:
        prof = get_profile("paper").replace(input_size=size, max_iters=n, precision=precision, init="random",
                                            max_test_images=n_test)
        res = train_experiment(exp, prof, paths, device, force=True, progress=False)
        seconds.append(res.history[0]["seconds"])
        images.append(n * prof.schedule(method, sup).batch_size)
    steady = (images[1] - images[0]) / max(seconds[1] - seconds[0], 1e-9)
    once = max(0.0, seconds[0] - images[0] / steady)
    t0 = time.perf_counter()
    predict_experiment(exp, prof, paths, device, force=True, progress=False)
    return steady, once, n_test / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--quick", action="store_true", help="tiny sizes and steps (a smoke test, not a measurement)")
    ap.add_argument("--out", default=None, help="folder for gpu_check.md/.json (default results/paper)")
    args = ap.parse_args()
    dev = resolve_device(args.device)
    paper = get_profile("paper")
    size = 64 if args.quick else paper.input_size
    steps, warmup, n_pred = (1, 1, 2) if args.quick else (10, 3, 64)
    out_dir = Path(args.out) if args.out else repo_root() / "results" / "paper"
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu"
    print(f"GPU check on {name} ({dev}), {size} px, torch {torch.__version__}")
    import tempfile

    from _layout import write_layout

    tmp = tempfile.TemporaryDirectory()
    root = Path(tmp.name)
    n_files, loop_iters, n_test = (8, (1, 3), 4) if args.quick else (160, (20, 120), 256)
    write_layout(root / "dolos", n_files, splits=("train", "valid", "test"), generators=("p2", "repaint-p2"))
    train = {}
    for method, sup in CASES:
        bs = paper.schedule(method, sup).batch_size
        if args.quick:
            bs = 2
        fp32, peak = train_speed(method, sup, bs, size, dev, "fp32", steps, warmup)
        det, _ = train_speed(method, sup, bs, size, dev, "fp32", steps, warmup, deterministic=True)
        set_numerics("fp32")                    # deterministic algorithms off again
        bf16, _ = train_speed(method, sup, bs, size, dev, "bf16", steps, warmup)
        p1 = predict_speed(method, sup, 1, size, dev, 1 if args.quick else n_pred // 4, paper.precision)
        pb = predict_speed(method, sup, 2 if args.quick else paper.predict_batch_size, size, dev,
                           2 if args.quick else n_pred * 8, paper.precision)
        loop = {p: real_loop_speed(method, sup, size, args.device, root, loop_iters, p, n_test)
                for p in ("fp32", "bf16")}
        key = f"{method}-{sup}"
        train[key] = {"batch_size": bs, "fp32_img_s": round(loop["fp32"][0], 1), "bf16_img_s": round(loop["bf16"][0], 1),
                      "fp32_once_s": round(loop["fp32"][1], 1), "bf16_once_s": round(loop["bf16"][1], 1),
                      "model_fp32_img_s": round(fp32, 1), "model_bf16_img_s": round(bf16, 1),
                      "model_fp32_deterministic_img_s": round(det, 1),
                      "peak_gb": round(peak, 2), "predict_b1_img_s": round(p1, 1),
                      "predict_batched_img_s": round(pb, 1), "predict_loop_img_s": round(loop[paper.precision][2], 1)}
        why = ""
        if loop["fp32"][0] < 0.5 * fp32:
            why = (" · NOTE: the loop's steady rate is below half the network's: input-bound (decoding, "
                   "the loader) or validation-bound at these lengths")
        train[key]["note"] = why.removeprefix(" · NOTE: ")
        print(f"  {key:<15} model fp32 {fp32:7.1f} / deterministic {det:7.1f} / bf16 {bf16:7.1f} img/s · "
              f"the study's loop, steady, fp32 "
              f"{loop['fp32'][0]:7.1f} / bf16 {loop['bf16'][0]:7.1f} img/s, once per training "
              f"{loop['fp32'][1]:5.1f} / {loop['bf16'][1]:5.1f} s · predict b1 {p1:7.1f} / batched "
              f"{pb:7.1f} / loop {loop[paper.precision][2]:7.1f} img/s · peak {peak:5.2f} GB{why}", flush=True)
    tmp.cleanup()
    hours = estimate_hours(EXPERIMENTS.values(), paper,
                           throughput={k: v[f"{paper.precision}_img_s"] for k, v in train.items()},
                           once={k: v[f"{paper.precision}_once_s"] for k, v in train.items()})
    paper_hours = {k: v for k, v in hours.items() if EXPERIMENTS[k].group in PAPER_GROUPS}
    paper_h = sum(paper_hours.values())
    # Trainings sharing the GPU: measured on the case the paper's experiments spend most hours on.
    per_case: dict[str, float] = {}
    for k, v in paper_hours.items():
        per_case[EXPERIMENTS[k].case] = per_case.get(EXPERIMENTS[k].case, 0.0) + v
    heavy = max(per_case, key=per_case.get)
    method, sup = heavy.rsplit("-", 1)
    counts = (1, 2) if args.quick else (1, 2, 4)
    rates = concurrency(method, sup, train[heavy]["batch_size"], size, dev, counts,
                        *((1, 1) if args.quick else (20, 3)))
    gpu_gb = torch.cuda.get_device_properties(dev).total_memory / 2**30 if dev.type == "cuda" else None
    result = {"device": name, "torch": torch.__version__, "input_size": size, "quick": args.quick,
              "gpu_total_gb": round(gpu_gb, 1) if gpu_gb else None, "train": train,
              "concurrency": {"case": heavy, "img_s": {str(c): round(r, 1) for c, r in rates.items()}},
              "hours": {k: round(v, 2) for k, v in hours.items()}}
    per, speedup, why = auto_trainings_per_gpu(result, {EXPERIMENTS[k].case for k in paper_hours}, gpu_gb)
    one_gpu = estimate_wallclock(paper_hours, per, 1, per, speedup)
    result["concurrency"].update(best=per, speedup=round(speedup, 3), one_gpu_wallclock_h=round(one_gpu, 2))
    print(f"  {len(counts)} concurrency levels on {heavy}: "
          + ", ".join(f"{c} at once {r:.1f} img/s" for c, r in rates.items())
          + f" -> {why}; the paper's experiments on this one GPU: {one_gpu:.1f} h of wall-clock", flush=True)
    write_json(out_dir / "gpu_check.json", result)
    lines = [f"# GPU check: {name}", "",
             f"`benchmarks/gpu_check.py` at {size} px, torch {torch.__version__}"
             + (" (QUICK: not a measurement)" if args.quick else ""), "",
             "Training rates: *loop* = the study's own training loop on a real-layout set of 256 px PNGs, "
             f"timed at {loop_iters[0]} and {loop_iters[1]} steps: the *steady* rate is the extra images over "
             "the extra seconds, *once* what a training pays one time (autotuning, the first decode, the "
             "first kernels, validation); the estimates read both. *model* = the network alone on a batch "
             "already on the GPU (an upper bound).", "",
             "| model | batch | loop fp32 img/s (steady) | once fp32 s | loop bf16 img/s (steady) | once bf16 s "
             "| model fp32 img/s | model fp32 deterministic img/s | model bf16 img/s | predict batch 1 img/s "
             "| predict batched img/s | predict loop img/s | peak GB | note |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for k, v in train.items():
        lines.append(f"| {k} | {v['batch_size']} | {v['fp32_img_s']} | {v['fp32_once_s']} | {v['bf16_img_s']} | "
                     f"{v['bf16_once_s']} | {v['model_fp32_img_s']} | {v['model_fp32_deterministic_img_s']} | "
                     f"{v['model_bf16_img_s']} | "
                     f"{v['predict_b1_img_s']} | {v['predict_batched_img_s']} | {v['predict_loop_img_s']} | "
                     f"{v['peak_gb']} | {v['note']} |")
    lines += ["", f"Trainings sharing the GPU ({heavy}, the case the paper's experiments spend most hours on; "
              "the network alone at fp32, each training its own process, timed from a common start):", "",
              "| trainings at once | aggregate img/s | speed-up over one |", "|---|---|---|"]
    lines += [f"| {c} | {r:.1f} | {r / rates[1]:.2f} |" for c, r in rates.items()]
    lines += ["", f"`--trainings-per-gpu auto` reads this: {why}. The paper's experiments on this one GPU: "
              f"{one_gpu:.1f} h of wall-clock (their {paper_h:.1f} GPU-hours, {per} at a time at the measured "
              "aggregate rate; the longest training is the floor)."]
    lines += ["", f"Training hours per experiment at the paper's schedules and precision ({paper.precision}; "
              f"paper's experiments: {paper_h:.1f} h in all; "
              f"with the extensions: {sum(hours.values()):.1f} h):", "", "| experiment | hours |", "|---|---|"]
    lines += [f"| {k} | {v:.2f} |" for k, v in hours.items()]
    with atomic_path(out_dir / "gpu_check.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    print(f"wrote {out_dir / 'gpu_check.md'} ({paper_h:.1f} GPU-hours for the paper's experiments)")


if __name__ == "__main__":
    main()
