"""The numerics of training and prediction, in one place both find: the float precision and,
on a CPU, the number of threads a training computes with.

- ``fp32`` (the authors' numerics, PyTorch 1.13's defaults: float32 with TF32 convolutions) or
  ``bf16`` (bfloat16 autocast on CUDA: faster on some networks, not the authors').
- On a CPU, a training computes with ``TRAIN_CPU_THREADS`` intra-op threads whatever else runs
  beside it: the thread count changes how a convolution's sums are split, so the floats, and over
  hundreds of steps what a training learns. With it fixed, a run id names one result, whether
  it trained alone (``--jobs 1``) or beside others (``--jobs 2``). Parallelism on a CPU comes
  from trainings side by side (``--jobs``), not from threads inside one.
"""

from __future__ import annotations

import contextlib

import torch

PRECISIONS = ("fp32", "bf16")
TRAIN_CPU_THREADS = 1


def set_numerics(precision: str) -> None:
    """The float settings of a run. Both keep the authors' PyTorch 1.13 defaults for what
    autocast leaves in float32: TF32 convolutions on, TF32 matrix products off."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cuda.matmul.allow_tf32 = False


def autocast(device: torch.device, precision: str = "fp32"):
    """The forward pass's precision: ``fp32`` (the authors' numerics: no autocast) or ``bf16``
    (bfloat16 autocast on CUDA, for speed; on CPU and MPS the pass stays float32)."""
    if precision == "bf16" and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def training_threads(device: torch.device):
    """Inside: a CPU training's fixed thread count (``TRAIN_CPU_THREADS``); the caller's count
    is put back on leaving (a notebook kernel goes on with its own). Other devices: unchanged."""
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(TRAIN_CPU_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(before)
