"""What each stage of the study trains: lists of trainings, built by the library, read by the
runner (a stage's record names one of these functions, ``runner.stages.Stage.trains``).

A :class:`Training` is one experiment under one profile and data root: the runner executes
notebook 02 for it with ``overrides`` on top of the study's own (a seed, an input side). Each
function here has the same shape, ``(profile, paths, seeds, **options) -> list[Training]``:
``seeds`` is ``--seeds N`` (used by the functions whose trainings a claim reads) and
``options`` the stage's own options (docs/development.md, "Add a stage").
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .config import Paths, Profile
from .experiments import EXPERIMENTS, PAPER_GROUPS, SCALING_RUNS, Experiment


@dataclass(frozen=True)
class Training:
    """One training: ``experiment`` under ``profile`` on ``paths.data_root``. ``overrides``:
    the profile fields it changes from the study's (notebook 02's ``overrides``); ``label``:
    how logs name it beside the stage (``seed 1``, ``160 px, seed 2``); ``suffix``: what its
    executed notebook's name adds to ``02_train-<experiment>``."""

    experiment: Experiment
    profile: Profile
    paths: Paths
    overrides: dict = field(default_factory=dict)
    label: str = ""
    suffix: str = ""


def seeded(exps: list[Experiment], profile: Profile, paths: Paths, seeds: int = 1) -> list[Training]:
    """``exps`` under the profile's seed and, with ``seeds`` > 1, under the next seeds too
    (each seed its own configuration, so its own run), seed-major."""
    out = []
    for k in range(max(1, seeds)):
        if k == 0:
            out += [Training(e, profile, paths) for e in exps]
            continue
        prof = profile.replace(seed=profile.seed + k)
        out += [Training(e, prof, paths, {"seed": prof.seed}, f"seed {prof.seed}", f"-seed{prof.seed}")
                for e in exps]
    return out


def paper(profile: Profile, paths: Paths, seeds: int = 1) -> list[Training]:
    """Every experiment of the paper's Table 2, Table 3 and Figure 6 (every one a claim reads),
    under ``seeds`` seeds."""
    return seeded([e for e in EXPERIMENTS.values() if e.group in PAPER_GROUPS], profile, paths, seeds)


def loss_variants(profile: Profile, paths: Paths, seeds: int = 1) -> list[Training]:
    """The FakeLocator loss variants (one seed: no claim reads them)."""
    return seeded([e for e in EXPERIMENTS.values() if e.group == "loss-variants"], profile, paths)


def scaling(profile: Profile, paths: Paths, seeds: int = 1) -> list[Training]:
    """The budget-scaling runs (one seed)."""
    return seeded([EXPERIMENTS[n] for n in SCALING_RUNS], profile, paths)


# --- what a GPU was measured to do (benchmarks/gpu_check.py) ---------------------------------

def gpu_check_record(root: Path) -> dict | None:
    """``results/paper/gpu_check.json`` (written by ``benchmarks/gpu_check.py``), or None when no
    check has been run there."""
    f = root / "results" / "paper" / "gpu_check.json"
    return json.loads(f.read_text()) if f.exists() else None


def gpu_throughput(root: Path, precision: str = "fp32", key: str = "img_s") -> dict | None:
    """Measured steady training images per second per ``method-supervision`` on a GPU at
    ``precision`` (``key="once_s"``: the seconds a training pays once), from the GPU check's
    record (``gpu_check_record``), or None when there is none."""
    data = gpu_check_record(root) or {}
    out = {m: float(v[f"{precision}_{key}"]) for m, v in data.get("train", {}).items()
           if f"{precision}_{key}" in v}
    return out or None
