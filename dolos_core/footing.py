"""The paper's footing on a GPU (ours; the opt-in ``footing`` stage): Patches B, Patches C and
Patches-MIL B (every weak method built on Patches) at the paper's input side, 299 px from
256 px images, with the paper's schedules (learning rate, batch, 500 iterations per epoch), one
seed, stopped by validation loss or by a budget of training images, whichever comes first; then
their B/C, printed and tabled (``footing.csv``).

    ./run_all.sh --only footing --device cuda                # DOLOS-mini built at 256 px
    ./run_all.sh --only footing --data-root /data/dolos      # a real-layout root, as it is
    ./run_all.sh --only footing --list                       # its images, and GPU hours if measured

Why: the mini study trains at 96 px for a few hundred steps, where Patches' 43 px receptive
field is 45% of the image side (14% at 299 px) and weak Patches has not converged
(docs/STUDY.md, "Where the mini study stands"); this stage is the smallest run that puts B/C on
the paper's footing, sized for a few minutes of one GPU.

The budget: ``minutes`` (stage option, default 8) of one GPU for the three trainings' steps
together, turned into training images from the rates ``benchmarks/gpu_check.py`` measured
(``results/paper/gpu_check.json``) and shared in proportion to the paper's schedules, so each
training gets the same share of its own (``images_per_training``); where no GPU check has been
run, ``FALLBACK_IMAGES`` per training in all (``--set footing.max_images=N`` sets the total
outright). Per-epoch validation and the test predictions are not in the budget. A training stops early once its
validation loss has not improved for ``PATIENCE`` epochs (``Profile.patience``); the checkpoint
kept is the best by validation loss, as everywhere in the study.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from .config import ConfigError, Paths, Profile
from .data.mini import build_mini
from .experiments import get_experiment
from .geometry import BUILD_ONLY, METRICS, PAPER_INPUT, WHERE, Point, _side_rows, experiments
from .models import card
from .models.card import Schedule
from .trainings import Training, gpu_throughput

# Image side of the data it builds (DOLOS's PNGs are 256 px) and the input side, per profile;
# the smoke profile's are small (seconds, for the tests).
IMAGE_SIDE = {"smoke": 64, "mini": 256, "paper": 256}
INPUT_SIDE = {"smoke": 72, "mini": PAPER_INPUT, "paper": PAPER_INPUT}
PATIENCE = {"smoke": 1, "mini": 3, "paper": 3}
MINUTES = 8.0
# Training images per training when no GPU check says what ``minutes`` buys (an unmeasured
# default, not an estimate: --list says "not measured" beside it).
FALLBACK_IMAGES = 200_000


@dataclasses.dataclass(frozen=True)
class Plan:
    """The stage under one profile: its data root, sides, each experiment's schedule, and where
    the image budget came from."""

    paths: Paths
    image_size: int
    input_size: int
    schedules: dict[str, Schedule]
    budget: str


def _sides(profile: Profile) -> tuple[int, int]:
    if profile.name not in INPUT_SIDE:
        raise ConfigError(f"profile {profile.name!r}: the footing stage knows smoke, mini and paper")
    return IMAGE_SIDE[profile.name], INPUT_SIDE[profile.name]


def data_paths(profile: Profile, paths: Paths) -> Paths:
    """Where it trains: the data root given (a real-layout root, or the paper profile's) as it
    is; the profile's own DOLOS-mini (not given) rebuilt at the footing's image side, in
    ``data/dolos-mini-<profile>-<side>px`` (the study's own root when the sides agree)."""
    image, _ = _sides(profile)
    default = Paths(root=paths.root, profile=paths.profile).data_root
    if profile.build_sizes is None or paths.data_root != default or image == profile.image_size:
        return paths
    return dataclasses.replace(paths, data_root=paths.root / "data" / f"dolos-mini-{profile.name}-{image}px")


def _paper_schedule(profile: Profile, name: str) -> Schedule:
    """``name``'s paper schedule (its card's; the smoke profile's own, for the tests)."""
    e = get_experiment(name)
    return (profile.schedule(e.method, e.supervision) if profile.name == "smoke"
            else card(e.method).schedule("paper", e.supervision))


def _paper_images(profile: Profile, name: str) -> int:
    s = _paper_schedule(profile, name)
    return s.batch_size * s.iters_per_epoch * s.epochs


def images_per_training(profile: Profile, root: Path, minutes: float | None = None,
                        max_images: int | None = None) -> tuple[dict[str, int], str]:
    """Training images each experiment may use, and where the number came from. The budget is
    shared in proportion to the paper's schedules, so every training gets the same share of its
    own (weak Patches' 3.2 M images are eight times full Patches' 0.4 M): ``max_images`` in all
    when given; else ``minutes`` of one GPU at the rates the GPU check measured at this precision
    (less what each training pays once, ``root``'s ``results/paper/gpu_check.json``); else
    ``FALLBACK_IMAGES`` in all. Per-epoch validation and the test predictions are not in it."""
    names = experiments()
    cases = {n: get_experiment(n).case for n in names}
    paper = {n: _paper_images(profile, n) for n in names}
    if max_images is not None:
        if int(max_images) < 1:
            raise ConfigError(f"footing max_images must be >= 1, got {max_images}")
        total, why = int(max_images), f"{int(max_images):,} training images in all (--set)"
    else:
        minutes = float(MINUTES if minutes is None else minutes)
        if not minutes > 0:
            raise ConfigError(f"footing minutes must be > 0, got {minutes}")
        rate = gpu_throughput(root, profile.precision) or {}
        once = gpu_throughput(root, profile.precision, "once_s") or {}
        if all(c in rate for c in cases.values()):
            # share f of every paper schedule: sum_n (f x paper_n / rate_n + once_n) = 60 x minutes
            seconds = 60 * minutes - sum(once.get(c, 0.0) for c in cases.values())
            f = max(0.0, seconds) / sum(paper[n] / rate[c] for n, c in cases.items())
            return ({n: max(1, int(f * paper[n])) for n in names},
                    f"{minutes:g} GPU minutes of training steps at the rates of results/paper/gpu_check.json "
                    f"({profile.precision}): {100 * min(f, 1):.1f}% of each paper schedule")
        total, why = FALLBACK_IMAGES * len(names), (f"{FALLBACK_IMAGES * len(names):,} training images in all "
                                                     "(no GPU check: minutes not measured)")
    f = total / sum(paper.values())
    return {n: max(1, int(f * paper[n])) for n in names}, f"{why}: {100 * min(f, 1):.1f}% of each paper schedule"


def plan(profile: Profile, paths: Paths, minutes: float | None = None, max_images: int | None = None) -> Plan:
    """Each experiment's schedule: the paper's (its card's ``paper`` schedule; the smoke
    profile's own for the tests), its epochs cut to the image budget (at least one)."""
    image, inp = _sides(profile)
    budget, why = images_per_training(profile, paths.root, minutes, max_images)
    out = {}
    for name in experiments():
        e, base = get_experiment(name), _paper_schedule(profile, name)
        per_epoch = base.batch_size * base.iters_per_epoch
        out[e.case] = dataclasses.replace(base, epochs=max(1, min(base.epochs, budget[name] // per_epoch)))
    return Plan(data_paths(profile, paths), image, inp, out, why)


def overrides(p: Plan, profile: Profile) -> dict:
    """The profile fields a footing training changes (notebook 02's ``overrides``)."""
    return {"image_size": p.image_size, "input_size": p.input_size, "patience": PATIENCE[profile.name],
            "schedules": {k: dataclasses.asdict(s) for k, s in p.schedules.items()}}


def build_data(profile: Profile, paths: Paths, minutes=None, max_images=None, progress: bool = True) -> dict:
    """The stage's ``prepare``: DOLOS-mini at the footing's image side (only the sets its
    trainings read), unless it trains on a given root or the study's own."""
    p = plan(profile, paths, minutes, max_images)
    if p.paths.data_root == paths.data_root:
        return {}
    return build_mini(p.paths.data_root, profile.replace(image_size=p.image_size), seed=0, progress=progress,
                      only=BUILD_ONLY)


def _planned(profile: Profile, paths: Paths, minutes=None, max_images=None) -> tuple[Plan, dict, Profile]:
    """The plan, the profile fields it changes and the profile its trainings run under."""
    p = plan(profile, paths, minutes, max_images)
    ov = overrides(p, profile)
    return p, ov, profile.replace(**ov)


def trainings(profile: Profile, paths: Paths, seeds: int = 1, minutes=None, max_images=None) -> list[Training]:
    """Patches B, Patches C and Patches-MIL B at the footing (one seed; ``seeds`` unused)."""
    p, ov, prof = _planned(profile, paths, minutes, max_images)
    return [Training(get_experiment(n), prof, p.paths, ov, f"{p.input_size} px from {p.image_size} px",
                     f"-footing{p.input_size}px")
            for n in experiments()]


def footing_table(profile: Profile, paths: Paths, minutes=None, max_images=None) -> pd.DataFrame:
    """The geometry stage's rows (``geometry._side_rows``: B, C, each weak method built on
    Patches, B/C at 0.5 and at the validation-chosen threshold, pixel AUC, the dilated mask) for
    the footing's one seed, with the schedule each run used and the budget's source."""
    p, _, prof = _planned(profile, paths, minutes, max_images)
    rows = _side_rows(p.input_size, [Point(p.input_size, profile.seed, prof, p.paths)], prof)
    t = pd.DataFrame(rows)
    t.insert(1, "image_size", p.image_size)
    t["budget"] = p.budget
    t["schedules"] = "; ".join(f"{k} {s.epochs}x{s.iters_per_epoch}x{s.batch_size}" for k, s in p.schedules.items())
    how = {("B" if n == "patches-B" else "C" if n == "patches-C" else n): how_it_stopped(n, prof, p)
           for n in experiments()}
    t["stopped"] = t["row"].map(lambda r: how.get(r, ""))
    return t


def how_it_stopped(name: str, prof: Profile, p: Plan) -> str:
    """How a footing run ended, from its ``train.json``: epochs run of those planned (the paper's
    schedule cut to the budget), stopped by the patience or not, and whether its validation loss was still falling
    (``evaluate.convergence``); "not trained" without it."""
    import json

    from .evaluate import convergence
    from .runs import resolve_run

    e = get_experiment(name)
    f = resolve_run(e, prof, p.paths).checkpoint_dir / "train.json"
    if not f.exists():
        return "not trained"
    meta = json.loads(f.read_text())
    history, planned = meta.get("history", []), p.schedules[e.case].epochs
    why = ("stopped by the patience" if len(history) < planned and meta.get("done")
           else "every planned epoch run" if meta.get("done") else "not finished")
    conv = convergence(history, meta.get("best_epoch"))
    state = f"undertrained: {conv['reason']}" if conv["undertrained"] else "converged"
    return f"{len(history)} of {planned} epochs, {why}, {state}"


def summary_lines(t: pd.DataFrame) -> list[str]:
    """How each run stopped, then B/C (and each weak method's /C) at 0.5, at each run's own
    threshold (B's without masks) and at the validation-mask threshold (an oracle for B)."""
    stopped = t.dropna(subset=["stopped"]).drop_duplicates("row")
    out = ["; ".join(f"{r['row']}: {r['stopped']}" for _, r in stopped.iterrows() if r["stopped"])]
    for row in [r for r in t["row"].dropna().unique() if str(r).endswith("/C")]:
        for metric in METRICS:
            r = t[(t.row == row) & (t.metric == metric)]
            if not len(r):
                continue
            x = r.iloc[0]
            out.append(f"{row} {WHERE[metric]}: {x['value']:.2f} [{x['ci_low']:.2f}, {x['ci_high']:.2f}] (one seed; "
                       "interval over test images)" if pd.notna(x["value"]) else f"{row} {WHERE[metric]}: n/a")
    return [x for x in out if x]


def run_stage(study, minutes=None, max_images=None) -> None:
    """The stage's function after its trainings (``--set footing.NAME=VALUE`` gives its options):
    ``footing.csv`` and its Markdown in the results, B/C printed."""
    from .evaluate import save_table

    t = footing_table(study.profile, study.paths, minutes, max_images)
    study.paths.results.mkdir(parents=True, exist_ok=True)
    save_table(t, study.paths.results, "footing", floatfmt=".3g")
    print(f"footing ({t['size'].iloc[0]} px input, {t['image_size'].iloc[0]} px images; {t['budget'].iloc[0]}):")
    for line in summary_lines(t) or ["no B/C: a run is missing"]:
        print(f"  {line}", flush=True)


def report_paragraph(res: Path) -> list[str]:
    """The footing stage's paragraph of REPORT.md (empty when it has not run)."""
    f = res / "footing.csv"
    if not f.exists():
        return []
    t = pd.read_csv(f)
    return [f"Paper footing (opt-in stage `footing`, one seed, {t['size'].iloc[0]} px input from "
            f"{t['image_size'].iloc[0]} px images, {t['budget'].iloc[0]}; schedules {t['schedules'].iloc[0]}): "
            + "; ".join(summary_lines(t)) + "."]
