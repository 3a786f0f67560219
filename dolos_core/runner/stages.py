"""The study as a table of stages: one record per stage says everything the runner knows about
it. Standard library only (``./run_all.sh`` reads it to check its arguments before any
environment exists).

A stage trains (``trains``: the library function that lists its trainings,
``"module:function"``, ``(profile, paths, seeds, **options) -> list[trainings.Training]``;
``prepare``: one run before them, ``(profile, paths, **options)``, e.g. building data;
``seeded``: whether ``--seeds N`` applies, for the trainings a claim reads), then executes its
notebooks in order. ``after`` names the stages whose trainings and outputs its notebooks read:
one after another (``--jobs 1``) the stages simply run in table order; with parallel trainings
(``--jobs N``, ``--executor slurm``) every chosen stage's trainings start once the data is
there, and a stage's notebooks start as soon as the trainings of the stages it reads are done.
Opt-in stages run only when named in ``--only``. ``options``: the stage's own parameters
(passed to its trainings function and, by name, to its notebooks; ``--set STAGE.NAME=VALUE``);
``params``: the study-wide values its notebooks take (``seeds``, ``build``, ``force``);
``tables``: (stem, title) of the tables REPORT.md shows for it; ``products``: the other files it
writes in ``results/<profile>/`` (a table's CSV is a product too): anything outside the stage
opens them through :func:`product`, never by a name of its own; ``paragraph``: the library
function that writes the stage's paragraph of REPORT.md from its products,
``(results) -> list[str]`` (empty: nothing to say yet); ``run``: a function run after its
notebooks with the study and the stage's own options, ``(study, **options) -> None``
(the report and the publication are stages like any
other); ``captions``: figure stem -> what to look at. The published reading order is the
table's order of notebooks, the training notebook (``02_train``, one executed copy per training) first. Adding a stage:
docs/development.md, "Add a stage".
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Mapping

TRAIN_NOTEBOOK = "02_train"


@dataclass(frozen=True)
class Stage:
    name: str
    help: str
    notebooks: tuple[str, ...] = ()
    trains: str | None = None
    prepare: str | None = None      # "module:function" run before its trainings (e.g. building data)
    seeded: bool = False
    opt_in: bool = False
    after: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    params: tuple[str, ...] = ()
    tables: tuple[tuple[str, str], ...] = ()
    captions: Mapping[str, str] = field(default_factory=dict)
    products: tuple[str, ...] = ()      # file names in results/<profile>/ besides its tables' CSVs
    paragraph: str | None = None        # "module:function", (results: Path) -> list[str]
    run: str | None = None              # "module:function", (study, **options) -> None, after its notebooks
    gpu: bool = False                   # its trainings are sized for a GPU: --list gives their GPU hours

    @property
    def files(self) -> tuple[str, ...]:
        """Every file it writes in ``results/<profile>/``: its tables' CSV, Markdown and LaTeX
        copies, and its other products."""
        return tuple(f"{stem}.{ext}" for stem, _ in self.tables for ext in ("csv", "md", "tex")) + self.products


STAGE_TABLE = [
    Stage("data", "build DOLOS-mini, or check a real data root", ("01_data",), params=("build", "force"),
          products=("data_summary.csv",),
          captions={"data_samples": "Sample test images per generator, fake regions outlined.",
                    "mask_area": "Fake area per generator."}),
    Stage("train", "train and predict every experiment of the paper", trains="dolos_core.trainings:paper",
          seeded=True, after=("data",),
          captions={"training_curves": "Training and validation loss (and validation AP for weak runs) of "
                                       "every experiment; a loss flat at 0.693 has learnt nothing."}),
    Stage("evaluate", "Tables 2 and 3, Figure 6, qualitative maps",
          ("03_main_table", "04_cross_dataset", "05_cross_generator", "06_qualitative"),
          after=("train",), params=("seeds",),
          products=("per_image.csv", "training.csv", "training.md", "seeds.csv", "claims.csv", "claims.md",
                    "cross_generator_domains.csv", "cross_generator_domains.md"),
          paragraph="dolos_core.evaluate:convergence_paragraph",
          tables=(("table2", "Table 2 · methods x setups on CelebA-HQ (paper 5.1)"),
                  ("table3", "Table 3 · Patches trained on FFHQ, tested on CelebA-HQ (paper 5.2)"),
                  ("cross_generator", "Figure 6 data · cross-generator IoU-lg (paper 5.3)"),
                  ("seed_spread", "Spread over training seeds (--seeds N)"),
                  ("transfer", "Ours · weak against full supervision on generators they do not train on")),
          captions={
              "table2_iou": "Table 2 at a glance: bars are the first seed's runs with 95% intervals over "
                            "test images (pixel AUC per image, averaged: the learning test's); with several seeds, diamonds "
                            "are the mean over seeds with Student's t interval and dots each seed. Look at "
                            "whether each bar clears the everything-fake and mask-prior lines (IoU) and "
                            "chance (AUC, AP), and at setup B against C.",
              "cross_generator": "Figure 6 (with several seeds: each cell's mean over seeds, its t interval "
                                 "and the seeds' values). Look at each row's boxed in-domain cell against the "
                                 "rest of the row (left), and at the dashed held-out cells (right).",
              "table3_iou": "Table 3. Patches trained on FFHQ data, tested on CelebA-HQ data, beside the "
                            "CelebA-HQ-trained runs, against both trivial baselines; diamonds: the mean "
                            "over seeds.",
              "qualitative_raw": "Maps of every Table 2 model on the same test images, on one fixed 0-1 "
                                 "scale (a flat map is an unsure model); under each, that image's IoU.",
              "qualitative_binary": "The same maps at the 0.5 threshold: what IoU-lg counts.",
              **{f"qualitative_{g}": f"Patches B and C and Patches-MIL B, trained on Repaint-P2, on {g} test images "
                                     "(fixed 0-1 scale, each image's IoU-lg under its map)"
                 for g in ("repaint-p2", "ldm", "lama", "pluralistic")},
              "qualitative_failures": "Two failures per setup: each row one of the two test images its model "
                                      "(Patches A, B, C, Patches-MIL B) scores worst on; look at whether the map "
                                      "fires elsewhere, stays cold on a small region, or blurs over a larger one.",
              "transfer": "Ours: trained on Repaint-P2, tested on it (own) and on the generators it never saw, "
                          "with their mean: weak Patches-MIL B and Patches B beside full-supervision Patches C "
                          "(hatched); bars: mean over seeds, Student's t interval over seeds, dots: each seed.",
              "iou_by_area": "IoU against mask size. The everything-fake baseline also rises with area, so "
                             "a rising line is only informative above it."}),
    Stage("extensions", "loss variants, post-processing, robustness",
          ("07_postprocessing", "08_robustness", "09_loss_variants"), trains="dolos_core.trainings:loss_variants",
          after=("train",), paragraph="dolos_core.analysis:postprocess_paragraph",
          tables=(("loss_variants", "Extension (FakeLocator) · localization-loss variants"),
                  ("postprocess", "Extension (FOCAL) · map post-processing"),
                  ("robustness", "Extension (FakeLocator) · robustness to perturbations")),
          captions={
              "loss_variants": "Extension: localization loss variants (setup C), 95% intervals over test images, "
                                 "each bar's IoU written over it (a bar at 0 is a result, not a missing run): the "
                                 "paper's own map loss (Patches: cross-entropy per cell; Attention: BCE), L1 and L2 "
                                 "regression of the map on the mask, and L1 with the class loss, which also trains on "
                                 "real images.",
              "postprocess": "Extension: IoU gain of each post-processing over none (Table 2's scoring), "
                             "with paired 95% intervals; feature HDBSCAN is FOCAL's recipe, scalar HDBSCAN "
                             "clusters one score per pixel. Bold: the interval excludes 0.",
              "postprocess_by_area": "Extension: the scalar and the feature HDBSCAN chain of highest mean gain, by "
                                     "mask area; the dotted line marks 50%, past which the largest-cluster rule "
                                     "would call a fake majority real (where the test masks reach it).",
              "postprocess_examples": "Extension: the 0.5 threshold against the post-processing chain of highest "
                                      "mean gain (its gain is in the title: it can be below 0) on the best model's "
                                      "maps: its two best images and its worst (the failure).",
              "robustness": "Extension: IoU under test-time perturbations on the first test images "
                            "(one seed, bands: 95% intervals over those images); the first point of each "
                            "line is the clean test set. On DOLOS-mini a collapse under a 1-px blur or a 0.5x "
                            "resize is a property of its generators' traces (pixel-level noise and texture the "
                            "builder draws), not evidence about the real generators' robustness."}),
    Stage("scaling", "budget scaling of weak labels (opt-in: only when named)",
          ("10_budget_scaling",), trains="dolos_core.trainings:scaling", opt_in=True, after=("train",),
          tables=(("scaling", "Budget scaling · Patches B and C against training steps (opt-in stage)"),),
          captions={"budget_scaling": "Budget scaling: IoU, pixel AUC and AP of Patches B and C against steps."}),
    Stage("geometry", "receptive-field geometry of weak labels: Patches B and C (and the weak methods built "
                      "on Patches) at several input sides and seeds (opt-in: only when named)",
          ("11_geometry",), trains="dolos_core.geometry:trainings", prepare="dolos_core.geometry:build_data",
          opt_in=True, after=("data",),
          options=("sides", "n_seeds"), products=("calibration.csv", "calibration_histograms.csv"),
          paragraph="dolos_core.geometry:report_paragraph",
          tables=(("geometry", "Receptive-field geometry · Patches B and C against the input side (opt-in stage)"),),
          captions={
              "geometry": "Geometry: Patches B and C (and the weak methods built on Patches, e.g. Patches-MIL B, each "
                          "in its method's colour; C in grey) against the receptive "
                          "field's share of the image side, at 0.5, at each run's own threshold (weak B's chosen "
                          "without masks) and at the validation-mask threshold (an oracle for weak B), with the "
                          "dilated mask (an oracle reference: the mask against itself dilated by half a field); "
                          "means over seeds with 95% intervals over seeds and images (at least Student's t over "
                          "the seeds), each seed's value as a dot.",
              "calibration": "Geometry, the calibration half: weak Patches' cell probabilities by kind of "
                             "cell, the 0.5 threshold (solid), the measured mean of real-only cells of fake "
                             "images with its interval (dotted, shaded) and the share of such cells labelled "
                             "fake in training (dashed); per-kind means and intervals under each panel."}),
    Stage("footing", "the paper's footing on a GPU: Patches B, C and Patches-MIL B at 299 px from 256 px images, "
                     "the paper's schedules stopped by validation loss or an image budget, one seed; prints "
                     "their B/C (opt-in: only when named)",
          trains="dolos_core.footing:trainings", prepare="dolos_core.footing:build_data", opt_in=True,
          after=("data",), options=("minutes", "max_images"), gpu=True, run="dolos_core.footing:run_stage",
          paragraph="dolos_core.footing:report_paragraph",
          tables=(("footing", "Paper footing · Patches B, C and Patches-MIL B at 299 px, one seed (opt-in stage)"),)),
    Stage("report", "REPORT.md from the tables", after=("evaluate", "extensions", "scaling", "geometry", "footing"),
          products=("REPORT.md", "timings.csv", "training_runs.csv"), run="dolos_core.runner.report:run_stage"),
    Stage("publish", "the executed notebooks and their HTML, for readers "
                     "(results/<profile>/notebooks/, results/<profile>/html/index.html)",
          after=("report",), run="dolos_core.runner.publish:run_stage"),
]


def function_of(ref: str) -> Callable:
    """``"module:function"`` of a stage record -> the function (imported when first needed)."""
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


def product(results: Path | str, name: str) -> Path:
    """The path of ``name`` in ``results`` (a profile's results folder), a file some stage
    declares it writes (``Stage.files``); a name no stage declares is an error (a file read by a
    name its stage does not know)."""
    if not any(name in s.files for s in STAGE_TABLE):
        raise KeyError(f"no stage declares {name!r} among its products (stages.STAGE_TABLE)")
    return Path(results) / name


def paragraphs(results: Path | str) -> list[str]:
    """Every stage's paragraph of REPORT.md (``Stage.paragraph``), in table order, each
    followed by a blank line; stages with nothing to say yet give nothing."""
    out: list[str] = []
    for s in STAGE_TABLE:
        if s.paragraph:
            lines = function_of(s.paragraph)(Path(results))
            out += [*lines, ""] if lines else []
    return out


def names() -> tuple[str, ...]:
    return tuple(s.name for s in STAGE_TABLE)


def by_name() -> dict[str, Stage]:
    return {s.name: s for s in STAGE_TABLE}


def default_stages() -> tuple[str, ...]:
    return tuple(s.name for s in STAGE_TABLE if not s.opt_in)


def reading_order() -> tuple[str, ...]:
    """The chapters in reading order: every stage's notebooks in table order, the training
    notebook where the first stage that trains comes."""
    out: list[str] = []
    for s in STAGE_TABLE:
        if s.trains and TRAIN_NOTEBOOK not in out:
            out.append(TRAIN_NOTEBOOK)
        out += [n for n in s.notebooks if n not in out]
    return tuple(out)


def declare(stage: Stage, before: str | None = None) -> None:
    """Add (or replace) a stage in the table, before the stage named ``before`` (default: before
    ``report``, so the report and the publication come after it). A user's or a test's stage."""
    remove(stage.name)
    at = next((i for i, s in enumerate(STAGE_TABLE) if s.name == (before or "report")), len(STAGE_TABLE))
    STAGE_TABLE.insert(at, stage)
    report = next((i for i, s in enumerate(STAGE_TABLE) if s.name == "report"), None)
    if report is not None and stage.name not in STAGE_TABLE[report].after:
        STAGE_TABLE[report] = replace(STAGE_TABLE[report], after=STAGE_TABLE[report].after + (stage.name,))


def remove(name: str) -> None:
    """Take a stage out of the table (a test's toy stage, when the test ends)."""
    STAGE_TABLE[:] = [s for s in STAGE_TABLE if s.name != name]
    for i, s in enumerate(STAGE_TABLE):
        if name in s.after:
            STAGE_TABLE[i] = replace(s, after=tuple(a for a in s.after if a != name))
