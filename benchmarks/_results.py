"""The command line of the benchmarks that read a profile's committed results: ``--profile``
and ``--root`` (the checkout whose ``results/<profile>/`` they read and write)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dolos_core.config import get_paths, repo_root


def results_dir(argv, doc: str) -> Path:
    """``results/<profile>/`` of the checkout the command line names."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="mini")
    ap.add_argument("--root", default=str(repo_root()))
    args = ap.parse_args(argv)
    return get_paths(args.profile, root=args.root).results
