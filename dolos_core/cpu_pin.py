"""Which CPU kernels torch computes with, decided before torch computes anything.

On a CPU, PyTorch, oneDNN and MKL each pick their kernels by the instruction set they find: the
same training on an AVX-512 machine and on an AVX2 machine sums its floats in another order, and
a few hundred steps later the two have learned different weights. So every process that imports
``dolos_core`` pins the three to their x86-64 AVX2 code paths (:data:`PIN`), as environment
variables each library reads once, at its first use:

- ``ATEN_CPU_CAPABILITY=avx2``: PyTorch's own vectorised kernels (batch norm, activations, Adam);
- ``ONEDNN_MAX_CPU_ISA=AVX2``: oneDNN's convolutions;
- ``MKL_CBWR=AVX2,STRICT``: MKL's matrix products, in its conditional numerical reproducibility
  mode (the same AVX2 branch on every processor that has it, bit for bit).

The package's ``__init__`` calls :func:`apply` before anything imports torch, and child processes
(notebook kernels, pool workers, Slurm jobs, torchrun ranks) inherit the variables, so a training
computes with the same kernels wherever it runs. ``DOLOS_CPU_NUMERICS=native`` (what
``./run_all.sh --set cpu_numerics=native`` exports) leaves each library to pick the fastest
kernels of the CPU it finds; the run id then names that CPU (``numerics.identity``). A variable
the user set is never overwritten. This module imports nothing heavy: it runs before torch.
"""

from __future__ import annotations

import os
import platform
import sys

MODES = ("avx2", "native")
ENV = "DOLOS_CPU_NUMERICS"
PIN = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2,STRICT"}
X86 = ("x86_64", "AMD64", "amd64", "i686", "x86")

# What this process looked like when dolos_core was first imported: whether torch was already
# loaded (then it may have computed with other kernels before the pin). The pin variables that
# dolos_core set, here or in a parent process, are listed in ``DOLOS_CPU_PIN_SET`` (inherited with
# them): only those are taken back by ``set_mode("native")``, never a variable the user set.
torch_before_pin = False
MARK = "DOLOS_CPU_PIN_SET"


def _ours() -> set[str]:
    return {k for k in os.environ.get(MARK, "").split(",") if k in PIN}


def mode() -> str:
    """The mode this process asks for: ``DOLOS_CPU_NUMERICS`` (default ``avx2``)."""
    value = os.environ.get(ENV, "avx2").strip().lower() or "avx2"
    if value not in MODES:
        raise ValueError(f"{ENV}={value!r}: choose one of {', '.join(MODES)}")
    return value


def x86() -> bool:
    return platform.machine() in X86


def apply() -> None:
    """Set the pin's variables (mode ``avx2`` on x86-64) unless already set; called once, by the
    package's ``__init__``. An invalid ``DOLOS_CPU_NUMERICS`` is reported when a run starts."""
    global torch_before_pin
    torch_before_pin = "torch" in sys.modules
    try:
        wanted = mode()
    except ValueError:
        return
    if wanted == "avx2" and x86():
        ours = _ours()
        for key, value in PIN.items():
            if key not in os.environ:
                os.environ[key] = value
                ours.add(key)
        if ours:
            os.environ[MARK] = ",".join(sorted(ours))


def set_mode(value: str) -> None:
    """For the runner, before it starts any process that computes: ask every child for ``value``
    (``avx2`` or ``native``); ``native`` takes back the pin variables this module set."""
    if value not in MODES:
        raise ValueError(f"cpu_numerics must be one of {', '.join(MODES)}, got {value!r}")
    os.environ[ENV] = value
    if value == "native":
        for key in sorted(_ours()):
            os.environ.pop(key, None)
        os.environ.pop(MARK, None)
    else:
        apply()


def pinned_env() -> bool:
    """Whether every pin variable holds the pin's value in this process's environment."""
    return all(os.environ.get(k, "").lower() == v.lower() for k, v in PIN.items())
