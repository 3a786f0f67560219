"""dolos_core: the library behind the DOLOS reproduction (WACV 2024, arXiv 2311.04584)."""

__version__ = "0.1.0"
