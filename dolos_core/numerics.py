"""The numerics of training and prediction, in one place both find: the float precision, on a
CPU the number of threads and the kernels a training computes with, and what a run id records of
them (:func:`identity`).

- ``fp32`` (the authors' numerics, PyTorch 1.13's defaults: float32 with TF32 convolutions) or
  ``bf16`` (bfloat16 autocast on CUDA: faster on some networks, not the authors').
- On a CPU, a training computes with ``TRAIN_CPU_THREADS`` intra-op threads whatever else runs
  beside it: the thread count changes how a convolution's sums are split, so the floats, and over
  hundreds of steps what a training learns. With it fixed, a run id names one result, whether
  it trained alone (``--jobs 1``) or beside others (``--jobs 2``). Parallelism on a CPU comes
  from trainings side by side (``--jobs``), not from threads inside one.
- The CPU's kernels: pinned to x86-64 AVX2 by default (``cpu_pin``), ``native`` on request.
- On a GPU, ``deterministic=True`` asks cuDNN and PyTorch for deterministic algorithms (the same
  result on the same GPU model and versions, at a cost ``benchmarks/gpu_check.py`` measures).

:func:`identity` is what decides a run's arithmetic: the device kind, on a CPU the kernels as they
are in effect (``x86-64 AVX2 (pinned)`` or ``native: ...`` with what was found), the libraries'
versions and the threads; on a GPU its model, CUDA, cuDNN and whether algorithms are
deterministic. It is part of a run's id (``runs.run_for_training``): a run made under other
numerics never shares an id with one it cannot equal.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import re

import torch

from . import cpu_pin

PRECISIONS = ("fp32", "bf16")
TRAIN_CPU_THREADS = 1


def set_numerics(precision: str, deterministic: bool = False) -> None:
    """The float settings of a run. Both keep the authors' PyTorch 1.13 defaults for what
    autocast leaves in float32: TF32 convolutions on, TF32 matrix products off. ``deterministic``
    (GPU runs): deterministic cuDNN and PyTorch algorithms, no autotuning."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cuda.matmul.allow_tf32 = False
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = deterministic
    torch.use_deterministic_algorithms(deterministic, warn_only=True)


@functools.lru_cache(maxsize=None)
def _library_versions() -> dict:
    """MKL's and oneDNN's versions as torch reports them (its build configuration)."""
    text = torch.__config__.show()
    mkl = re.search(r"Math Kernel Library Version ([\d.]+)(?:-Product Build (\d+))?", text)
    dnn = re.search(r"MKL-DNN v([\d.]+)", text)
    return {"mkl": " ".join(g for g in mkl.groups() if g) if mkl else None, "onednn": dnn.group(1) if dnn else None}


@functools.lru_cache(maxsize=None)
def _cpu_flags() -> str:
    """The CPU's vendor and the instruction-set flags that change which kernels run."""
    vendor, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("vendor_id") and ":" in line:
                    vendor = line.split(":", 1)[1].strip()
                elif line.startswith(("flags", "Features")) and ":" in line:
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    keep = sorted(f for f in flags if f in ("avx2", "fma", "avx_vnni", "avx512f", "avx512_bf16",
                                            "avx512_fp16", "avx512_vnni", "amx_tile", "asimd", "sve", "sve2"))
    return " ".join([vendor, *keep])


def cpu_kernels() -> str:
    """The CPU kernels this process computes with: ``x86-64 AVX2 (pinned)`` when the pin is in
    effect (its variables set and PyTorch's dispatch at AVX2), else ``native: <dispatch level>
    <vendor> <flags>``. Calling it fixes PyTorch's dispatch level for the process."""
    level = torch.backends.cpu.get_cpu_capability()
    if cpu_pin.x86() and cpu_pin.pinned_env() and level == "AVX2":
        return "x86-64 AVX2 (pinned)"
    return f"native: {level} {_cpu_flags()}"


def ddp_cpu_threads(processes: int) -> int:
    """Threads of each of ``processes`` CPU ranks of one training (they share the cores)."""
    return max(1, int(os.environ.get("OMP_NUM_THREADS") or torch.get_num_threads()) // processes)


_said: set[str] = set()


def _say_once(text: str) -> None:
    if text not in _said:
        _said.add(text)
        print(text, flush=True)


def check_cpu_pin(wanted: str) -> str:
    """The kernels in effect (:func:`cpu_kernels`), with one line, once per process, when they are
    not the ``wanted`` mode's (``avx2`` or ``native``): torch computed before dolos_core pinned it,
    this CPU cannot take the pin, or the kernel was started with the other mode."""
    if wanted not in cpu_pin.MODES:
        raise ValueError(f"cpu_numerics must be one of {', '.join(cpu_pin.MODES)}, got {wanted!r}")
    kernels = cpu_kernels()
    pinned = kernels.startswith("x86-64")
    if wanted == "avx2" and not pinned:
        if not cpu_pin.x86():
            why = f"this CPU ({platform.machine()}) cannot take the x86-64 AVX2 pin"
        elif cpu_pin.torch_before_pin and cpu_pin.pinned_env():
            why = "torch computed in this process before dolos_core pinned its kernels"
        elif cpu_pin.pinned_env():
            why = "this CPU has no AVX2"
        else:
            why = f"this process was started with {cpu_pin.ENV}=native or its own kernel variables"
        _say_once(f"cpu numerics: {why}; computing with {kernels}: these runs get ids of their own")
    elif wanted == "native" and pinned:
        _say_once(f"cpu numerics: native asked for, but this process was started pinned ({kernels}); "
                  f"start it with {cpu_pin.ENV}=native (./run_all.sh --set cpu_numerics=native does)")
    return kernels


def identity(device: torch.device, precision: str = "fp32", processes: int = 1,
             cpu_numerics: str = "avx2", deterministic: bool = False) -> dict:
    """What decides a run's arithmetic on ``device`` in this process (part of its run id)."""
    out: dict = {"device": device.type, "torch": torch.__version__.split("+")[0], "precision": precision,
                 "processes": processes}
    if device.type == "cpu":
        threads = TRAIN_CPU_THREADS if processes == 1 else ddp_cpu_threads(processes)
        out.update(kernels=check_cpu_pin(cpu_numerics), threads=threads, **_library_versions())
    elif device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        out.update(gpu=torch.cuda.get_device_name(index), cuda=torch.version.cuda,
                   cudnn=torch.backends.cudnn.version(), deterministic=deterministic)
    else:
        out.update(machine=platform.machine(), system=platform.platform(terse=True))
    return out


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
