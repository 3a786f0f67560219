"""dolos_core: the library behind the DOLOS reproduction (WACV 2024, arXiv 2311.04584)."""

from . import cpu_pin as _cpu_pin

_cpu_pin.apply()      # before anything imports torch: the CPU kernels every training uses

__version__ = "0.1.0"
