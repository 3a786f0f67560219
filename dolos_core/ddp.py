"""One experiment on several GPUs: PyTorch DistributedDataParallel under ``torchrun``.

``train_experiment(..., gpus=K)`` (``./run_all.sh --gpus-per-experiment K``) holds the run's
lock, writes what the ranks need to a file in the run's folder and starts
``python -m torch.distributed.run --standalone --nproc_per_node K -m dolos_core.ddp_worker FILE``
(``train.launch_ddp``; the ranks start in ``ddp_worker``).
Every rank runs the one training loop (``train.train_run``):

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
