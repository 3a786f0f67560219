"""One training loop for every method and setup (docs/STUDY.md 'Training').

Adam; per method and supervision the profile's learning rate, batch size and epochs x
iterations; validation loss after every epoch; the checkpoint with the lowest validation loss is
kept (``best.pt``). After each epoch ``last.pt`` (model, optimiser, history) and ``train.json``
(resolved config, curve) are written atomically, so an interrupted run resumes from its last
finished epoch and ends with the same weights as an uninterrupted one: batches, flips and
dropout are seeded by (seed, epoch).
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import Paths, Profile, resolve_device
from .data.datasets import ConcatDolos, DecodedSplit, DolosDataset, EpochSampler, Transform, transform_for
from .data.layout import DatasetKey
from .experiments import Experiment, plan_for
from .io import atomic_path, load_torch, read_json, save_torch, write_json
from .locks import Locked, hold
from .models import DolosModel, build_model, card
from .numerics import autocast, ddp_cpu_threads, set_numerics, training_threads
from .progress import TrainingProgress
from .runs import experiment_init, other_runs, resolve_run, run_for_training, options_of, write_manifest
from .weights import InitChoice


@dataclass
class TrainResult:
    experiment: str
    checkpoint: Path
    history: list[dict]
    best_epoch: int
    seconds: float
    resumed_from: int
    skipped: bool = False


def run_dir(paths: Paths, exp: Experiment, profile: Profile) -> Path:
    """The folder of ``exp``'s run under this configuration (``runs.resolve_run``)."""

    return resolve_run(exp, profile, paths).checkpoint_dir


def _finished(folder: Path) -> bool:
    f = folder / "train.json"
    return f.exists() and read_json(f).get("done", False) and (folder / "best.pt").exists()


def finished_or_reset(exp: Experiment, out_dir: Path, force: bool) -> TrainResult | None:
    """The finished run in ``out_dir`` as a skipped result (unless ``force``); with ``force``,
    its files are removed so it trains from the start. None: there is training to do."""
    if not force and _finished(out_dir):
        meta = read_json(out_dir / "train.json")
        return TrainResult(exp.name, out_dir / "best.pt", meta["history"], meta["best_epoch"],
                           meta["seconds"], resumed_from=meta["epochs"], skipped=True)
    if force:
        for name in ("best.pt", "last.pt", "train.json"):
            (out_dir / name).unlink(missing_ok=True)
    return None


def is_trained(paths: Paths, exp: Experiment, profile: Profile, device: str | None = None,
               processes: int = 1) -> bool:
    """Whether ``exp`` has a finished run under exactly this configuration; with ``device``, the
    run a training on that device with ``processes`` processes would make in this process (its
    numerics), not one read from elsewhere."""
    if device is not None:
        return _finished(run_for_training(exp, profile, paths, device, processes).checkpoint_dir)
    return _finished(run_dir(paths, exp, profile))


def build_split(exp: Experiment, data_root: Path, split: str, input_size: int,
                limit: int | None = None, transform: Transform | None = None) -> ConcatDolos:
    """The concatenated datasets of an experiment for ``train`` or ``valid`` (weak training:
    the real and the fake splits, whole, shuffled together by the sampler)."""
    parts = [DolosDataset(data_root, DatasetKey.parse(ts.key), split, input_size, limit=limit,
                          transform=transform) for ts in exp.train]
    return ConcatDolos(parts)


def experiment_transform(exp: Experiment, model: DolosModel, input_size: int,
                         train: bool = True) -> Transform:
    """The authors' transform for this experiment's method and supervision, masks resized to
    the model's map (see ``data.transform_for``)."""
    map_size = model.map_size(input_size) if exp.supervision == "full" else None
    return transform_for(exp.method, exp.supervision, input_size, map_size, train=train)


def make_model(exp: Experiment, init: InitChoice | None = None, options: dict | None = None) -> DolosModel:
    """``exp``'s network from ``init`` (random when None), with its method's ``options``
    (``runs.options_of``; None: the card's defaults)."""
    start = init.path if init is not None and init.kind == "file" else "random"
    options = card(exp.method).options_for(exp.supervision, options)
    return build_model(exp.method, exp.supervision, init=start, loss_cfg=exp.loss, **options)


@torch.no_grad()
def validate(model: DolosModel, batches, device: torch.device,
             world: int = 1, precision: str = "fp32") -> tuple[float, float | None]:
    """Mean validation loss over ``batches`` (dicts on ``device``, ``DecodedSplit.on_device``),
    and the validation AP (%) of the image scores when the split holds both real and fake
    images (weak supervision; None otherwise). AP is only watched: the checkpoint is chosen by
    the loss, as the authors do. Under DDP (``world`` > 1) each rank validates its shard and
    the parts are gathered, so every rank gets the whole split's numbers."""
    from sklearn.metrics import average_precision_score

    model.eval()
    total, n = 0.0, 0
    scores, labels = [], []
    for batch in batches:
        with autocast(device, precision):
            out = model(batch["image"])
        total += float(model.loss(out, batch)) * len(batch["label"])
        n += len(batch["label"])
        scores.append(out["score"].float().cpu().numpy())
        labels.append(batch["label"].cpu().numpy())
    if world > 1:
        from .ddp import gather

        parts = gather((total, n, scores, labels))
        total, n = sum(p[0] for p in parts), sum(p[1] for p in parts)
        scores, labels = [s for p in parts for s in p[2]], [y for p in parts for y in p[3]]
    y = np.concatenate(labels) if labels else np.zeros(0)
    ap = (100 * float(average_precision_score(y, np.concatenate(scores)))
          if len(np.unique(y)) == 2 else None)
    return total / max(n, 1), ap


# Seconds a training waits for another process's lock on its run: an interrupted run's kernel
# exits within a second or two of its parent.
RUN_LOCK_WAIT = 20.0


def train_experiment(exp: Experiment, profile: Profile, paths: Paths, device: str = "auto",
                     init: str | None = None, force: bool = False, progress: bool = True,
                     max_epochs: int | None = None, gpus: int = 1) -> TrainResult:
    """Train ``exp`` (see ``train_run``) holding its run's lock: two processes never write one
    run; a second one stops at once with a message naming the first. ``gpus`` > 1 trains it
    with DistributedDataParallel on that many processes under ``torchrun`` (``dolos_core.ddp``;
    one per GPU, or CPU processes with the ``gloo`` backend): same global batch, learning rate,
    checkpoints and resume as one process."""

    if init:
        profile = profile.replace(init=init)
    # resolved once (it scans the data folders): this configuration under this process's numerics
    run = run_for_training(exp, profile, paths, device, processes=gpus)
    try:
        with hold(run.checkpoint_dir / ".lock", f"the run {exp.name}/{run.run_id}", wait=RUN_LOCK_WAIT):
            if gpus > 1:
                return launch_ddp(exp, profile, paths, run, device, force, gpus, max_epochs)
            dev = resolve_device(device)
            with training_threads(dev):      # on a CPU: one result per run id, alone or beside others
                return train_run(exp, profile, paths, run, dev, force, progress, max_epochs)
    except Locked as exc:
        raise RuntimeError(str(exc)) from None


@dataclass
class _Setup:
    """What one training works with, built once (``_prepare``)."""

    model: DolosModel
    net: torch.nn.Module          # what a step calls: the model, or its DDP wrapper
    opt: torch.optim.Optimizer
    sched: object
    epochs: int
    iters: int
    flip: bool
    config: dict
    train_ds: object
    valid_ds: object


@dataclass
class _State:
    """Where a training stands: restored from ``last.pt`` on resume (``_resume``)."""

    history: list
    start: int = 0
    best_loss: float = float("inf")
    best_epoch: int = -1
    seconds: float = 0.0


def _prepare(exp: Experiment, profile: Profile, paths: Paths, run, dev: torch.device, world: int) -> _Setup:
    """The model (seeded, at its starting weights, on the device), the datasets, the optimiser
    and the configuration recorded with the run."""
    sched = profile.schedule(exp.method, exp.supervision)
    if sched.batch_size % world:
        raise ValueError(f"{exp.name}: batch size {sched.batch_size} does not split over {world} "
                         "processes; choose a number of GPUs per experiment that divides it")
    epochs, iters = plan_for(exp, profile)
    start_from = experiment_init(exp, profile, paths)
    torch.manual_seed(profile.seed)
    set_numerics(profile.precision, profile.gpu_deterministic and dev.type == "cuda")
    model = make_model(exp, start_from, options_of(exp, profile))
    tf_train = experiment_transform(exp, model, profile.input_size, train=True)
    tf_valid = dataclasses.replace(tf_train, flip=False)  # same transform, never flipped
    model = model.to(dev).to(memory_format=torch.channels_last)
    net = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        from .ddp import sync_batchnorm

        model = sync_batchnorm(model, dev)      # statistics over the global batch, as in one process
        net = DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None,
                                      find_unused_parameters=True)  # e.g. full Attention's tail
    valid_limit = profile.max_valid_images
    if profile.max_iters is not None:  # a capped (dry) run validates on at most what it trains on
        cap = max(1, epochs * iters * sched.batch_size // max(1, len(exp.train)))
        valid_limit = cap if valid_limit is None else min(valid_limit, cap)
    config = {
        "experiment": dataclasses.asdict(exp), "profile": profile.name,
        "schedule": dataclasses.asdict(sched), "epochs": epochs, "iters_per_epoch": iters,
        "seed": profile.seed, "input_size": profile.input_size, "precision": profile.precision,
        "init": start_from.label,
        "init_file": str(start_from.path) if start_from.path else None, "device": str(dev),
        "data_root": str(paths.data_root), "transform": dataclasses.asdict(tf_train),
        "run_id": run.run_id, "run_config": run.config, "processes": world, "host": socket.gethostname(),
    }
    train_ds = build_split(exp, paths.data_root, "train", profile.input_size, transform=tf_train)
    valid_ds = build_split(exp, paths.data_root, "valid", profile.input_size, limit=valid_limit,
                           transform=tf_valid)
    config["n_train"], config["n_valid"] = len(train_ds), len(valid_ds)
    opt = torch.optim.Adam(model.parameters(), lr=sched.lr, fused=dev.type == "cuda" or None)
    return _Setup(model, net, opt, sched, epochs, iters, tf_train.flip, config, train_ds, valid_ds)


def _resume(setup: _Setup, last_path: Path, meta_path: Path) -> _State:
    """The state of an interrupted run (model, optimiser, curve, best so far), or a fresh one.
    The curve comes from ``last.pt`` itself: a process stopped between writing ``last.pt`` and
    ``train.json`` leaves a ``train.json`` one epoch behind (an older ``last.pt`` without its
    curve falls back to ``train.json``, cut at the epoch it resumes from)."""
    state = _State(history=[])
    if last_path.exists():
        saved = load_torch(last_path)
        setup.model.load_state_dict(saved["model"])
        setup.opt.load_state_dict(saved["optimizer"])
        state.start = int(saved["epoch"]) + 1
        if "history" in saved:
            state.history = list(saved["history"])
        elif meta_path.exists():
            state.history = [h for h in read_json(meta_path)["history"] if h["epoch"] < state.start]
        state.best_loss, state.best_epoch = float(saved["best_loss"]), int(saved["best_epoch"])
        state.seconds = float(saved.get("seconds", 0.0))
    setup.config["resumed_from"] = state.start   # the first epoch this process trained (0: from the start)
    return state


def _train_epoch(setup: _Setup, train_data: DecodedSplit, profile: Profile, epoch: int,
                 dev: torch.device, rank: int, world: int, bar, progress: TrainingProgress | None = None) -> float:
    """One epoch of steps (batches, flips and dropout seeded by seed and epoch); its mean loss
    (over the ranks under DDP)."""
    from .ddp import ShardedBatches

    torch.manual_seed(profile.seed * 1000 + epoch)  # dropout, identical on resume
    sampler = EpochSampler(len(train_data), setup.sched.batch_size, setup.iters, profile.seed, epoch,
                           flip=setup.flip)
    batches = sampler if world == 1 else ShardedBatches(sampler, rank, world)
    model = setup.model
    model.train()
    losses = []                  # on the device: no host synchronisation per step
    for k, items in enumerate(batches):
        batch = DecodedSplit.on_device(train_data.batch(items), dev)
        with autocast(dev, profile.precision):
            out = setup.net(batch["image"])
        loss = model.loss(out, batch)
        setup.opt.zero_grad(set_to_none=True)
        loss.backward()
        setup.opt.step()
        losses.append(loss.detach())
        if progress is not None:
            progress.step(epoch, epoch * setup.iters + k + 1, losses[-1])
        if bar is not None:
            bar.update(1)
            if k % 10 == 0 or k == setup.iters - 1:
                bar.set_postfix(epoch=epoch, loss=f"{float(losses[-1]):.3f}")
    losses = torch.stack(losses).double().cpu().numpy()   # float32 values, averaged in float64
    if not np.isfinite(losses).all():
        bad = int(np.flatnonzero(~np.isfinite(losses))[0])
        raise FloatingPointError(f"{setup.config['experiment']['name']}: loss became {losses[bad]} "
                                 f"at epoch {epoch}, step {bad}")
    train_loss = float(np.mean(losses))
    if world > 1:                # the mean over ranks: the global batch's mean loss
        from .ddp import mean_over_ranks

        train_loss = mean_over_ranks(train_loss)
    return train_loss


def _record(setup: _Setup, state: _State, out_dir: Path, epoch: int, row: dict, main: bool) -> None:
    """Add an epoch to the curve; keep the best weights by validation loss; write ``last.pt``
    and ``train.json`` (rank 0 only), so the run can resume after this epoch."""
    state.history.append(row)
    model = setup.model
    if row["valid_loss"] < state.best_loss:
        state.best_loss, state.best_epoch = row["valid_loss"], epoch
        if main:
            save_torch(out_dir / "best.pt", {k: v.cpu() for k, v in model.state_dict().items()})
    if main:
        save_torch(out_dir / "last.pt", {"model": model.state_dict(), "optimizer": setup.opt.state_dict(),
                                         "epoch": epoch, "best_loss": state.best_loss,
                                         "best_epoch": state.best_epoch, "seconds": state.seconds,
                                         "history": state.history})
        _write_meta(setup, state, out_dir, done=False)


def _write_meta(setup: _Setup, state: _State, out_dir: Path, done: bool) -> None:
    write_json(out_dir / "train.json", {**setup.config, "history": state.history, "best_epoch": state.best_epoch,
                                        "best_valid_loss": state.best_loss,
                                        "seconds": round(state.seconds, 2), "done": done})


def train_run(exp: Experiment, profile: Profile, paths: Paths, run, device: str | torch.device = "auto",
           force: bool = False, progress: bool = True,
           max_epochs: int | None = None) -> TrainResult:
    """Train ``exp`` under ``profile`` (its ``init`` already set) into ``run``; resume from
    ``last.pt`` if a previous run stopped. ``max_epochs`` stops early (after that many epochs
    in total) without marking the run done: it simulates an interruption for tests.

    The run trains into the folder of its configuration (``runs.resolve_run``): a changed
    configuration never overwrites, or returns, another configuration's run.

    Under ``torchrun`` (``dolos_core.ddp``) every rank runs this function: each takes its share
    of every batch (the global batch is the schedule's), gradients are averaged by DDP, the
    validation split is sharded and gathered, and only rank 0 writes.
    """
    from .ddp import rank_world

    rank, world = rank_world()
    main = rank == 0
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    out_dir = run.checkpoint_dir
    finished = finished_or_reset(exp, out_dir, force)
    if finished is not None:
        return finished
    setup = _prepare(exp, profile, paths, run, dev, world)
    state = _resume(setup, out_dir / "last.pt", out_dir / "train.json")
    resumed_from = state.start
    # Each split decoded and resized once (uint8, in a cache beside the runs); batches are
    # gathered from it, normalised and flipped on the device: no loader restarts, no decoding
    # per epoch, bit for bit the images the per-item dataset gives (DecodedSplit).
    full, cache = exp.supervision == "full", paths.runs / "cache"
    train_data = DecodedSplit(setup.train_ds, full, cache, profile.num_workers, progress and main)
    valid_data = DecodedSplit(setup.valid_ds, full, cache, profile.num_workers, progress and main)
    mine = list(range(rank, len(valid_data), world))
    step = profile.predict_batch_size
    valid_chunks = [mine[i:i + step] for i in range(0, len(mine), step)]
    if dev.type == "cuda" and not profile.gpu_deterministic:
        torch.backends.cudnn.benchmark = True       # fixed input shapes: pick the fastest kernels
    if main:
        write_manifest(out_dir, run)
    stop = setup.epochs if max_epochs is None else min(setup.epochs, max_epochs)
    bar = None
    if progress and main:
        from tqdm.auto import tqdm

        bar = tqdm(total=(stop - state.start) * setup.iters, desc=exp.name, unit="it", leave=True)
    progress = None
    if main:         # runs/<profile>/progress/ for the runner; TensorBoard when it is installed
        name = f"{exp.name}-{run.run_id}"
        progress = TrainingProgress(paths.runs / "progress", name,
                                    f"{exp.name} (seed {profile.seed}, {profile.input_size} px)", setup.epochs,
                                    setup.iters, setup.sched.batch_size, state.start,
                                    tensorboard_dir=paths.runs / "tensorboard" / name)
    try:
        for epoch in range(state.start, stop):
            if _patience_spent(state, profile):
                break
            t0 = time.time()
            train_loss = _train_epoch(setup, train_data, profile, epoch, dev, rank, world, bar, progress)
            valid_batches = (DecodedSplit.on_device(valid_data.batch(c), dev) for c in valid_chunks)
            val, val_ap = validate(setup.model, valid_batches, dev, world, profile.precision)
            state.seconds += time.time() - t0
            row = {"epoch": epoch, "step": (epoch + 1) * setup.iters, "train_loss": train_loss,
                   "valid_loss": val, "valid_ap": val_ap, "seconds": round(state.seconds, 2)}
            if bar is None and world > 1 and main:
                print(f"{exp.name} epoch {epoch}: train loss {train_loss:.4f}, valid loss {val:.4f} "
                      f"({world} processes, {state.seconds:.0f} s)", flush=True)
            _record(setup, state, out_dir, epoch, row, main)
            if progress is not None:
                progress.epoch(row, setup.opt.param_groups[0]["lr"])
    finally:
        early = _patience_spent(state, profile)
        if progress is not None:
            progress.close("done" if len(state.history) >= setup.epochs or early else "stopped")
    if bar is not None:
        bar.close()
    return _finish(exp, setup, state, out_dir, stop == setup.epochs or early, main, resumed_from)


def _patience_spent(state: _State, profile: Profile) -> bool:
    """Whether the validation loss has not improved for ``profile.patience`` epochs (early
    stopping; never without a patience). Read from the curve, so a resumed run stops where an
    uninterrupted one would."""
    return (profile.patience is not None and state.best_epoch >= 0
            and len(state.history) - 1 - state.best_epoch >= profile.patience)


def _finish(exp: Experiment, setup: _Setup, state: _State, out_dir: Path, done: bool, main: bool,
            resumed_from: int) -> TrainResult:
    """The run's last record (``done`` when every epoch ran); ``last.pt`` goes once it is done."""
    best_path = out_dir / "best.pt"
    if not main:
        return TrainResult(exp.name, best_path, state.history, state.best_epoch, state.seconds, resumed_from)
    if setup.epochs == 0:     # max_iters=0: the starting weights are the result (e.g. a released model)
        save_torch(best_path, {k: v.cpu() for k, v in setup.model.state_dict().items()})
        setup.config["evaluated_as_loaded"] = True
    _write_meta(setup, state, out_dir, done)
    if done:
        (out_dir / "last.pt").unlink(missing_ok=True)  # the optimiser state is only needed to resume
    return TrainResult(exp.name, best_path, state.history, state.best_epoch, state.seconds, resumed_from)


def load_trained(exp: Experiment, profile: Profile, paths: Paths, device: str = "auto", run=None) -> DolosModel:
    """The best checkpoint of ``exp``'s run under this configuration, in eval mode. ``run``: the
    run already resolved (``runs.resolve_run`` scans the data folders; a caller that has it
    passes it)."""

    run = run if run is not None else resolve_run(exp, profile, paths, device)
    best = run.checkpoint_dir / "best.pt"
    if not best.exists():
        others = other_runs(exp, paths, run)
        hint = (f"; runs of other configurations exist ({', '.join(others)}), none of this one"
                if others else "")
        raise FileNotFoundError(f"{best}: experiment {exp.name} has not been trained with this "
                                f"configuration (run ./run_all.sh --profile {profile.name} --only train,{exp.name})"
                                f"{hint}")
    model = make_model(exp)  # random start; the checkpoint replaces every tensor
    model.load_state_dict(load_torch(best))
    dev = resolve_device(device)
    return model.to(dev).to(memory_format=torch.channels_last).eval()


def launch_ddp(exp, profile, paths, run, device: str, force: bool, gpus: int,
           max_epochs: int | None = None):
    """Train ``exp`` into ``run`` with ``gpus`` processes under torchrun (the caller holds the
    run's lock); return the ``TrainResult`` that rank 0 wrote."""


    out = run.checkpoint_dir
    meta_path = out / "train.json"
    finished = finished_or_reset(exp, out, force)
    if finished is not None:
        return finished
    dev = resolve_device(device)
    if dev.type == "mps":
        raise RuntimeError(f"{exp.name}: several processes per experiment need CUDA GPUs (nccl) "
                           "or the CPU (gloo); Apple MPS has no distributed backend")
    if dev.type == "cuda" and torch.cuda.device_count() < gpus:
        raise RuntimeError(f"{exp.name}: {gpus} GPUs per experiment asked for, but this process "
                           f"sees {torch.cuda.device_count()} (CUDA_VISIBLE_DEVICES="
                           f"{os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')})")
    resumed_from = 0
    if (out / "last.pt").exists() and meta_path.exists():
        resumed_from = len(read_json(meta_path)["history"])
    spec = out / "ddp-spec.pkl"
    with atomic_path(spec) as tmp:
        tmp.write_bytes(pickle.dumps({"exp": exp, "profile": profile, "paths": paths, "run": run,
                                      "device": dev.type, "max_epochs": max_epochs}))
    env = dict(os.environ)
    if dev.type != "cuda":      # CPU processes share the cores
        env["OMP_NUM_THREADS"] = str(ddp_cpu_threads(gpus))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}",
           "-m", "dolos_core.ddp_worker", str(spec)]
    print(f"{exp.name}: DistributedDataParallel on {gpus} {'GPUs' if dev.type == 'cuda' else 'CPU processes (gloo)'}",
          flush=True)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    tail: list[str] = []
    for line in proc.stdout:            # rank 0's per-epoch lines, shown where the call was made;
        if line.startswith(f"{exp.name} epoch "):   # the rest only when it fails
            print(line, end="", flush=True)
        tail = (tail + [line])[-40:]
    rc = proc.wait()
    spec.unlink(missing_ok=True)
    if rc != 0:
        raise RuntimeError(f"{exp.name}: distributed training failed (torchrun exit status {rc}); "
                           "its last lines:\n" + "".join(tail[-15:]))
    meta = read_json(meta_path)
    return TrainResult(exp.name, out / "best.pt", meta["history"], meta["best_epoch"], meta["seconds"],
                       resumed_from=resumed_from)
