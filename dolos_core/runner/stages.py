"""The study as a table of stages: what each runs, trains and waits for. Standard library only
(``./run_all.sh`` reads it to check its arguments before any environment exists).

A stage trains its experiments (``trains``: ``paper`` = every experiment of Table 2, Table 3 and
Figure 6; ``loss-variants``; ``scaling``) and then executes its notebooks in order. ``after``
names the stages whose trainings and outputs its notebooks read: one after another
(``--jobs 1``), the stages simply run in table order; with parallel trainings (``--jobs N``,
``--executor slurm``) every chosen stage's trainings start once the data is there, and a
stage's notebooks start as soon as the trainings of the stages it reads are done (the
evaluation runs while the extensions still train). Opt-in stages run only when named in
``--only``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    name: str
    help: str
    notebooks: tuple[str, ...] = ()
    trains: str | None = None
    opt_in: bool = False
    after: tuple[str, ...] = ()


STAGE_TABLE = (
    Stage("data", "build DOLOS-mini, or check a real data root", ("01_data",)),
    Stage("train", "train and predict every experiment of the paper", trains="paper",
          after=("data",)),
    Stage("evaluate", "Tables 2 and 3, Figure 6, qualitative maps",
          ("03_main_table", "04_cross_dataset", "05_cross_generator", "06_qualitative"),
          after=("train",)),
    Stage("extensions", "loss variants, post-processing, robustness",
          ("07_postprocessing", "08_robustness", "09_loss_variants"), trains="loss-variants",
          after=("train",)),
    Stage("scaling", "budget scaling of weak labels (opt-in: only when named)",
          ("10_budget_scaling",), trains="scaling", opt_in=True, after=("train",)),
    Stage("geometry", "receptive-field geometry of weak labels: Patches B and C at several input "
                      "sides and seeds (opt-in: only when named)",
          ("11_geometry",), trains="geometry", opt_in=True, after=("data",)),
    Stage("report", "REPORT.md from the tables", after=("evaluate", "extensions", "scaling", "geometry")),
    Stage("publish", "the executed notebooks and their HTML, for readers "
                     "(results/<profile>/notebooks/, results/<profile>/html/index.html)",
          after=("report",)),
)
STAGES = tuple(s.name for s in STAGE_TABLE)
BY_NAME = {s.name: s for s in STAGE_TABLE}
DEFAULT_STAGES = tuple(s.name for s in STAGE_TABLE if not s.opt_in)
