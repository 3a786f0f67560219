"""One experiment on several GPUs: PyTorch DistributedDataParallel under ``torchrun``.

``train_experiment(..., gpus=K)`` (``./run_all.sh --gpus-per-experiment K``) holds the run's
lock, writes what the ranks need to a file in the run's folder and starts
``python -m torch.distributed.run --standalone --nproc_per_node K -m dolos_core.ddp FILE``.
Every rank runs the one training loop (``train._train``):

- the global batch and the learning rate are the schedule's: each rank takes every K-th image
  of each batch (``ShardedBatches``), and DDP averages the gradients, so one step sees the
  same images as one process does;
- batch-norm statistics are taken over the global batch, as on one GPU: on GPUs the layers
  become PyTorch's ``SyncBatchNorm``; on the CPU (``gloo``, which the tests use), where
  ``SyncBatchNorm`` refuses to run, ``CPUSyncBatchNorm2d`` sums the statistics over the ranks
  with the differentiable ``torch.distributed.nn.functional.all_reduce``;
- the validation split is sharded and gathered, so every rank takes the same decisions;
- rank 0 alone writes ``best.pt``, ``last.pt`` and ``train.json``; their tensors are the
  plain model's, so a run started under DDP resumes in one process and the other way round.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import torch
import torch.distributed as dist


def rank_world() -> tuple[int, int]:
    """(rank, world size): (0, 1) outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class ShardedBatches:
    """This rank's share of every batch of a batch sampler: items ``rank, rank + world, ...``.
    With a global batch divisible by ``world``, every rank gets batches of the same size."""

    def __init__(self, batches, rank: int, world: int):
        self.batches, self.rank, self.world = batches, rank, world

    def __iter__(self):
        for b in self.batches:
            yield b[self.rank::self.world]

    def __len__(self) -> int:
        return len(self.batches)


class CPUSyncBatchNorm2d(torch.nn.BatchNorm2d):
    """``BatchNorm2d`` whose training statistics are the global batch's: per-channel sums and
    sums of squares are added over the ranks (differentiably, so the gradients flow through
    the shared statistics as they do in one process). PyTorch's ``SyncBatchNorm`` does this
    on GPUs only; this one serves CPU processes (``gloo``). Same parameters and buffers."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        c = x.shape[1]
        local = torch.cat([x.sum((0, 2, 3)), (x * x).sum((0, 2, 3)),
                           x.new_tensor([x.numel() / c])])
        total = all_reduce(local)
        n = total[-1]
        mean = total[:c] / n
        var = total[c:2 * c] / n - mean * mean
        with torch.no_grad():
            self.num_batches_tracked += 1
            m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
            self.running_mean.mul_(1 - m).add_(m * mean.detach())
            self.running_var.mul_(1 - m).add_(m * var.detach() * n / (n - 1))
        y = (x - mean[None, :, None, None]) * torch.rsqrt(var[None, :, None, None] + self.eps)
        return y * self.weight[None, :, None, None] + self.bias[None, :, None, None]


def sync_batchnorm(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Batch norm over the global batch: PyTorch's ``SyncBatchNorm`` on CUDA, else
    ``CPUSyncBatchNorm2d`` (the layers keep their tensors, so checkpoints are unchanged)."""
    if device.type == "cuda":
        return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for mod in model.modules():
        if type(mod) is torch.nn.BatchNorm2d and mod.affine and mod.track_running_stats:
            mod.__class__ = CPUSyncBatchNorm2d
    return model


def gather(obj) -> list:
    """Every rank's ``obj``, in rank order, on every rank."""
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def mean_over_ranks(x: float) -> float:
    t = torch.tensor([float(x)], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    return float(t.item()) / dist.get_world_size()


def launch(exp, profile, paths, run, device: str, force: bool, gpus: int,
           max_epochs: int | None = None):
    """Train ``exp`` into ``run`` with ``gpus`` processes under torchrun (the caller holds the
    run's lock); return the ``TrainResult`` that rank 0 wrote."""
    from .config import resolve_device
    from .io import atomic_path, read_json
    from .train import TrainResult, finished_or_reset

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
        threads = int(os.environ.get("OMP_NUM_THREADS") or torch.get_num_threads())
        env["OMP_NUM_THREADS"] = str(max(1, threads // gpus))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}",
           "-m", "dolos_core.ddp", str(spec)]
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


def _rank_main(spec_file: str) -> None:
    """One rank, started by torchrun: join the group, train, leave."""
    from .train import _train

    spec = pickle.loads(Path(spec_file).read_bytes())
    cuda = spec["device"] == "cuda"
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if cuda:
        torch.cuda.set_device(local)
    dist.init_process_group("nccl" if cuda else "gloo")
    try:
        device = torch.device("cuda", local) if cuda else torch.device(spec["device"])
        _train(spec["exp"], spec["profile"], spec["paths"], spec["run"], device, force=False,
               progress=False, max_epochs=spec["max_epochs"])
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    _rank_main(sys.argv[1])
