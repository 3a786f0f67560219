"""The one definition of ``./run_all.sh``'s command line (standard library only: the script
checks its arguments with it before setting up any environment)."""

from __future__ import annotations

import argparse
import sys

from .stages import STAGE_TABLE


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return n


def build_parser() -> argparse.ArgumentParser:
    stages = "; ".join(f"{s.name}: {s.help}" for s in STAGE_TABLE)
    p = argparse.ArgumentParser(
        prog="./run_all.sh",
        description="Run the DOLOS study, stage by stage, with papermill (DOLOS-mini by default). "
                    f"Stages, in order: {stages}.")
    p.add_argument("--profile", default="mini", choices=["smoke", "mini", "paper"],
                   help="smoke (seconds, for tests), mini (default: DOLOS-mini on a CPU), "
                        "paper (the real data, the paper's schedules, a GPU)")
    p.add_argument("--data-root", default=None, metavar="DIR",
                   help="a DOLOS dataset in the real layout (default: DOLOS-mini, built at "
                        "data/dolos-mini-<profile>/)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"],
                   help="auto = CUDA, then MPS, then CPU")
    p.add_argument("--only", default=None, metavar="A[,B...]",
                   help="only these stages and/or experiments (names: --list); opt-in stages "
                        "run only when named here")
    p.add_argument("--seeds", type=_positive, default=1, metavar="N",
                   help="train Table 2's experiments with N seeds (the profile's seed, +1, ...); "
                        "the report shows their spread (default 1)")
    p.add_argument("--force", action="store_true", help="redo finished work of the chosen stages")
    p.add_argument("--yes", action="store_true",
                   help="do not ask before a long run (paper profile on a CPU)")
    p.add_argument("--list", action="store_true", help="print the experiments and exit")
    p.add_argument("--init", default=None, metavar="paper|auto|random|FILE",
                   help="starting weights (paper profile: paper = ImageNet for Grad-CAM, the FFD "
                        "checkpoint for Attention, read from --weights; mini and smoke: auto = "
                        "those files when present, random otherwise)")
    p.add_argument("--weights", default=None, metavar="DIR",
                   help="folder of weight files (default: weights/; README, 'Weights')")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a profile field (repeatable), e.g. --set max_iters=2 "
                        "--set schedules.patches-weak.lr=1e-4")
    p.add_argument("--tag", default="", metavar="NAME",
                   help="a variant's name: its tables and figures go to results/<profile>-NAME/ "
                        "and figures/<profile>-NAME/ (runs are kept per configuration either way)")
    p.add_argument("--tests", action="store_true",
                   help="set up the environment, then run the test suite (nothing else)")
    p.add_argument("--repo", default=None, help=argparse.SUPPRESS)  # tests: another output root
    return p


def parse_args(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(argv)


if __name__ == "__main__":          # ./run_all.sh: check the arguments, print help
    parse_args(sys.argv[1:])
