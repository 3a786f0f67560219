"""``results/<profile>/REPORT.md``: a run's report. A one-screen summary in prose (every number
from this run's tables, with its interval), the paper's claims against the evidence
(``dolos_core.claims``), a glossary, the figures embedded with captions saying what to look
at, the short tables (long ones linked as CSVs), and where the numbers came from: code checkout
and commit (a loud warning for a dirty tree), machine, device, packages, data, the run and
training time of every experiment."""

from __future__ import annotations

import os
import platform
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from ..claims import claims_markdown, claims_table, reads, save_claims, verdict_counts
from ..config import Paths, Profile, get_profile, resolve_device
from ..evaluate import EXACT_COLUMNS, markdown, training_runs
from ..experiments import experiments_in, get_experiment, plan_for
from ..geometry import SIDES
from ..geometry import experiments as geometry_experiments
from ..io import atomic_path
from ..locks import code_root
from ..models import build_model, card, methods
from ..runs import code_hash
from ..weights import WEIGHT_FILES, default_weights_dir, paper_start, resolve_init
from . import stages as stage_table
from .notebooks import git_commit, log

SHORT_TABLES = ("table2", "table3", "loss_variants", "seed_spread")     # shown; the others are linked
SHOWN_COLUMNS = {"loss_variants": ["experiment", "method", "loss", "rho_class", "iou", "iou_ci_low",
                                   "iou_ci_high", "iou_val_thr", "val_threshold", "pixel_auc", "status"]}
GLOSSARY = [
    ("IoU-lg (`iou`)", "the authors' localization metric: the fake-probability map upsampled to "
     "the mask (bicubic), thresholded at 0.5, intersection over union with the mask, per image "
     "(an empty prediction of an empty mask counts 1), averaged over fake test images, in %"),
    ("IoU-sm (`iou_sm`)", "the same with the mask downsampled to the map (nearest) instead"),
    ("`acc`, `acc_sm`", "pixel accuracy, the same two ways"),
    ("AP (`ap_mean`)", "detection: average precision of image scores, real vs fake test images, "
     "on balanced subsets (as many reals as fakes), mean of 5; weak setups only"),
    ("`ap_2std`", "twice the standard deviation of those 5 APs. With as many reals as fakes "
     "(DOLOS-mini) every subset is the whole set and it is 0 by construction; read `ap_ci`"),
    ("95% interval (`*_ci_low`, `*_ci_high`)", "ours: percentile bootstrap over test images "
     "(1000 resamples for IoU; 200, reals and fakes resampled separately, for AP)"),
    ("pixel AP / AUC", "ours, threshold-free: every pixel of every fake test image ranked by its "
     "map value (pooled; `_img`: per image, then averaged). Chance is the fake share (AP) or 50 (AUC)"),
    ("IoU at valid. threshold", "ours: IoU-lg on the test set at the threshold that maximises it "
     "on the validation split (`val_threshold`), beside the paper's fixed 0.5. It uses validation "
     "masks: an oracle for the weak setups A and B, which have none"),
    ("IoU at the threshold without masks", "ours: IoU-lg on the test set at `label_threshold`, Otsu's "
     "threshold of the map cells of the validation images labelled fake (`label_rule`; `real-quantile`: "
     "the 0.99 quantile of the real validation images' cells): chosen from images and labels only, the "
     "operating point a weak setup can honestly pick"),
    ("oracle IoU", "ours: IoU at the single threshold that is best on the test set itself (an "
     "optimistic bound, not a result)"),
    ("setups A / B / C", "A: real vs fully generated images, image labels; B: real vs partially "
     "inpainted images, image labels; C: inpainted images with their masks (full supervision)"),
    ("baselines", "`everything-fake` (IoU = mean mask area), `everything-real`, `mask-prior` (the "
     "training masks' per-pixel fake share), `pixel-lr` (per-pixel colour/noise logistic "
     "regression): what a map scores without learning generators"),
    ("verdict", "first the footing: *not testable here* (with the reason in one phrase) when a model the claim "
     "reads did not learn or was undertrained, or when every part needs a contrast the data cannot test "
     "(DOLOS-mini declares no dataset shift, and generator transfer set by its builder); otherwise holds / "
     "does not hold when the 95% interval of the claimed quantity (its weakest part; bootstrap over images "
     "and seeds, at least as wide as Student's t over the seeds) lies above / below 0 at 0.5 and at each "
     "run's own threshold alike; inconclusive when it straddles 0; threshold-dependent when the two "
     "thresholds disagree; uninformative when the weakest part compares with a cell at its trivial "
     "baselines; no comparison at a threshold where the baseline's map is empty; cannot be checked when a "
     "run is missing. The same rules for the paper's claims and ours"),
    ("own threshold", "the second threshold of every claim: the one a run's supervision lets it choose, "
     "without masks for weak runs (the threshold without masks), with validation masks for full runs and "
     "for the mask prior (built from masks)"),
    ("learning test", "threshold-free, the same for every claim: per-image pixel AUC on the model's own "
     "test sets above the mask prior's and above 0.5 (paired 95% intervals)"),
    ("run", "the hash of an experiment's configuration (`runs/<profile>/checkpoints/<experiment>/<run>/`)"),
]


def tables() -> list[tuple[str, str]]:
    """(stem, title) of every table REPORT.md names, stage by stage (``Stage.tables``)."""
    return [t for st in stage_table.STAGE_TABLE for t in st.tables]


def captions() -> dict[str, str]:
    """Figure stem -> caption, from every stage's record (``Stage.captions``), in table order."""
    return {k: v for st in stage_table.STAGE_TABLE for k, v in st.captions.items()}


# Figures a benchmark writes beside the stages' (``benchmarks/``, run on demand), by stem prefix.
BENCHMARK_CAPTIONS = {
    "study_time-": "A benchmark's figure, not a stage's (`benchmarks/bench_study.py`, run on demand): the "
                   "wall clock of each stage of `./run_all.sh` from a fresh clone, against its goal; the "
                   "numbers, the command and the commit are in [{stem}.md]({stem}.md).",
    "mil_by_area": "A benchmark's figure, not a stage's (`benchmarks/mil_by_area.py`, from the study's "
                   "per_image.csv): IoU-lg at 0.5 by mask area on the Repaint-P2 test images, mean over seeds "
                   "with Student's t band; look at how Patches-MIL A (dashed) and Patches A move as the mask "
                   "grows, and at where Patches-MIL B falls short of Patches C. Numbers: "
                   "[{stem}.md]({stem}.md).",
}


def figure_caption(stem: str) -> str:
    """A figure's caption: its stage's (``captions``), else the benchmark's that wrote it, else ''."""
    caps = captions()
    if stem in caps:
        return caps[stem]
    return next((c.format(stem=stem) for prefix, c in BENCHMARK_CAPTIONS.items() if stem.startswith(prefix)), "")


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("torch", "torchvision", "timm", "numpy", "pandas", "scikit-learn", "hdbscan",
                "opencv-python-headless", "papermill"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _shown(path: Path, root: Path) -> str:
    """``path`` relative to the checkout when inside it (no machine paths in a report)."""
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return str(path)


def _code_line(paths: Paths) -> str:
    """Which code made this report: the checkout of the imported ``dolos_core`` and its git
    commit; ``this checkout`` when that is where the report is written."""

    code = code_root()
    where = "this checkout" if code == Path(paths.root).resolve() else f"the checkout at {code}"
    return f"{where}, git commit {git_commit(code)}"


def _training_runs(paths: Paths, profile: Profile) -> pd.DataFrame | None:
    """One row per experiment trained under this configuration, from its ``train.json``."""

    rows = []
    for name, m in sorted(training_runs(paths, profile).items()):
        iters = m.get("iters_per_epoch", m.get("schedule", {}).get("iters_per_epoch"))
        rows.append({"experiment": name, "run": m.get("run_id", "?"),
                     "code": m.get("run_config", {}).get("code", "not recorded"), "init": m.get("init", "?"),
                     "epochs x iters": f"{m.get('epochs')} x {iters}",
                     "batch": m.get("schedule", {}).get("batch_size"), "input": m.get("input_size"),
                     "resize": m.get("transform", {}).get("resize", "?"), "train s": m.get("seconds"),
                     "ran on": ", ".join(str(x) for x in (m.get("host"), m.get("device")) if x)
                     + (f" x {m['processes']} processes" if m.get("processes", 1) > 1 else "")})
    return pd.DataFrame(rows) if rows else None


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    out = f"{platform.platform()}; CPU {cpu} ({os.cpu_count()} cores)"
    import torch

    if torch.cuda.is_available():
        out += f"; GPU {torch.cuda.get_device_name(0)}"
    return out


def _ci(row, col: str, ci: str) -> str:
    v = row.get(col)
    if v is None or pd.isna(v):
        return "missing" if row.get("status") == "missing" else "n/a"
    lo, hi = row.get(f"{ci}_ci_low"), row.get(f"{ci}_ci_high")
    return f"{v:.1f} [{lo:.1f}, {hi:.1f}]" if lo is not None and not pd.isna(lo) else f"{v:.1f}"


def paper_numbers(path: str | None) -> dict[str, float]:
    """experiment -> the paper's IoU-lg, from the user's file (``Profile.paper_numbers``: a CSV
    with ``experiment`` and ``iou``); empty without one. A file that cannot be read is an error
    naming it."""
    if not path:
        return {}
    f = Path(path).expanduser()
    try:
        t = pd.read_csv(f)
        return {str(e): float(v) for e, v in zip(t["experiment"], t["iou"])}
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"paper_numbers {f}: not a CSV with columns experiment and iou ({exc})") from None


def compact_table(df: pd.DataFrame, paper: dict[str, float] | None = None) -> pd.DataFrame:
    """Table 2 / 3 as the report shows them: the paper's columns with our intervals, the paper's
    own IoU-lg where a user supplied it (``paper_numbers``; "not available" otherwise: no source
    this project can reach has them), and pixel AUC; every other column is in the CSV."""
    out = []
    paper = paper or {}
    for _, r in df.iterrows():
        theirs = paper.get(r["experiment"])
        out.append({"experiment": r["experiment"],
                    "paper's IoU-lg": "not available" if theirs is None else f"{theirs:.1f}",
                    "IoU-lg [95% CI]": _ci(r, "iou", "iou"),
                    "IoU-sm": _ci(r, "iou_sm", "iou_sm"),
                    "AP [95% CI]": _ci(r, "ap_mean", "ap") if not pd.isna(r.get("ap_mean")) else "",
                    "ap_2std": "" if pd.isna(r.get("ap_2std")) else f"{r['ap_2std']:.1f}",
                    "pixel AUC (per image)": _ci(r, "pixel_auc_img", "pixel_auc_img"),
                    "IoU at the threshold without masks (ours)": "n/a" if pd.isna(r.get("iou_label_thr", float("nan")))
                    else f"{_ci(r, 'iou_label_thr', 'iou_label_thr')} at {r['label_threshold']:.3g}",
                    "IoU at valid. threshold (ours; uses validation masks, an oracle for weak setups)":
                        "n/a" if pd.isna(r.get("iou_val_thr", float("nan")))
                        else f"{_ci(r, 'iou_val_thr', 'iou_val_thr')} at {r['val_threshold']:g}",
                    **({"IoU over seeds: mean [seeds x images] [t over seeds] (values)": _seed_cell(r)}
                       if "iou_seeds" in df else {}),
                    "run": r.get("run") if isinstance(r.get("run"), str) else ""})
    return pd.DataFrame(out)


def _seed_cell(r) -> str:
    """A row's IoU over seeds: the mean, the seeds-and-images bootstrap, Student's t over the
    seed means (which, unlike the bootstrap, can be wider than the seeds' range) and the values."""
    if pd.isna(r.get("iou_seeds")):
        return ""
    t = ("" if pd.isna(r.get("iou_seeds_t_low")) else
         f" [{r['iou_seeds_t_low']:.1f}, {r['iou_seeds_t_high']:.1f}]")
    return (f"{r['iou_seeds']:.1f} [{r['iou_seeds_ci_low']:.1f}, {r['iou_seeds_ci_high']:.1f}]{t} "
            f"({r.get('iou_seed_values', '')}; {int(r['seeds'])} seeds)")


def summary_lines(res: Path, claims: pd.DataFrame | None) -> list[str]:
    """The one-screen summary: sentences built from this run's tables only."""
    f = stage_table.product(res, "table2.csv")
    if not f.exists():
        return ["No Table 2 yet: run the train and evaluate stages."]
    t2 = pd.read_csv(f).set_index("experiment")
    out = []
    most = pd.to_numeric(t2["seeds"], errors="coerce").max() if "seeds" in t2 else float("nan")
    n_seeds = int(most) if pd.notna(most) and most >= 1 else 1

    def val(name, col="iou", ci="iou"):
        return _ci(t2.loc[name], col, ci) if name in t2.index else "missing"

    def iou(name):
        """A trained row's IoU at 0.5 as the mean over its seeds with Student's t interval over
        them (several seeds), else its one run's with the interval over images; baselines have
        no seed."""
        if name not in t2.index:
            return "missing"
        r = t2.loc[name]
        if n_seeds > 1 and pd.notna(r.get("iou_seeds")) and pd.notna(r.get("iou_seeds_t_low")):
            return f"{r['iou_seeds']:.1f} [{r['iou_seeds_t_low']:.1f}, {r['iou_seeds_t_high']:.1f}]"
        return val(name)

    def score(name):
        r = t2.loc[name]
        return r.get("iou_seeds") if n_seeds > 1 and pd.notna(r.get("iou_seeds")) else r.get("iou")

    floor = max([t2.loc[n].get(c, float("nan")) for n, c in (("baseline-everything-fake", "iou"),
                                                               ("baseline-mask-prior", "iou_val_thr"))
                 if n in t2.index] or [float("nan")])
    best = []
    for s in "ABC":
        names = [f"{m}-{s}" for m in methods() if f"{m}-{s}" in t2.index]
        d = pd.Series({n: score(n) for n in names}, dtype=float).dropna()
        if len(d):
            top = d.idxmax()
            r = t2.loc[top]
            low = r.get("iou_seeds_t_low") if n_seeds > 1 and pd.notna(r.get("iou_seeds_t_low")) else r.get("iou_ci_low")
            flag = " - not above the trivial baselines" if pd.notna(floor) and pd.notna(low) and low <= floor else ""
            best.append(f"setup {s}: {top} {iou(top)}{flag}")
    how = (f"mean of {n_seeds} seeds, Student's t interval over the seeds" if n_seeds > 1
           else "one seed, 95% interval over test images")
    if best:
        out.append(f"Highest IoU-lg at 0.5 per setup (Table 2, %, {how}; the highest is not good "
                   "unless it clears the baselines below): " + "; ".join(best) + ".")
    if "baseline-everything-fake" in t2.index:
        prior = ""
        if "baseline-mask-prior" in t2.index:
            prior = f" and the mask prior {val('baseline-mask-prior')} at 0.5"
            if not pd.isna(t2.loc["baseline-mask-prior"].get("iou_val_thr", float("nan"))):
                prior += (f", {val('baseline-mask-prior', 'iou_val_thr', 'iou_val_thr')} at its "
                          "validation-chosen threshold")
        out.append(f"Marking every pixel fake scores {val('baseline-everything-fake')}{prior} (no seed: "
                   "intervals over test images): a localizer means something only above these.")
    first = " (the first seed's run)" if n_seeds > 1 else ""
    if "patches-B" in t2.index and "patches-C" in t2.index:
        out.append(f"Patches with image labels only (setup B) reaches {iou('patches-B')} against "
                   f"{iou('patches-C')} with masks (C); its pixel AUC per image{first} is "
                   f"{t2.loc['patches-B'].get('pixel_auc_img', float('nan')):.1f} against "
                   f"{t2.loc['patches-C'].get('pixel_auc_img', float('nan')):.1f}.")
    weak = [n for n in t2.index if n.endswith(("-A", "-B")) and not pd.isna(t2.loc[n, "ap_mean"])]
    if weak:
        lo = min(weak, key=lambda n: t2.loc[n, "ap_mean"])
        hi = max(weak, key=lambda n: t2.loc[n, "ap_mean"])
        out.append(f"Detection AP of the weak models{first} ranges from {lo} {val(lo, 'ap_mean', 'ap')} to "
                   f"{hi} {val(hi, 'ap_mean', 'ap')} (chance 50).")
    if claims is not None and len(claims):
        out.append(f"Claims checked below ({verdict_counts(claims)}).")
    return [" ".join(out)]


def _start_label(method: str, supervision: str, profile: Profile, root: Path) -> str:
    if profile.init == "paper":
        key = paper_start(method, supervision)
        if key is None:
            return card(method).random_label(supervision, profile.options_for(method, supervision))
        return {"imagenet": "ImageNet Xception", "ffd": "FFD Xception (Dang et al.)"}.get(key, WEIGHT_FILES[key].what)
    return resolve_init(method, supervision, profile.init, profile.weights_dir or default_weights_dir(root),
                        profile.options_for(method, supervision)).label


FOOTING_GROUPS = ("table2", "table3", "fig6-single", "fig6-allbut", "loss-variants")


def footing_table(root: Path, names: tuple[str, ...] = ("mini", "paper"),
                  groups: tuple[str, ...] = FOOTING_GROUPS) -> pd.DataFrame:
    """Per experiment a claim or a table reads (Table 2, Table 3, Figure 6, the loss variants),
    what each profile trains with: starting weights (as this checkout's weights folder resolves
    them), learning rate, batch, optimiser steps, input side and map side (measured by a forward
    pass); then the geometry stage's runs at each of its sides (the first profile's own stage).
    Generated from the profiles, so it cannot drift from them."""

    sides: dict[tuple[str, int], int] = {}

    def cols(e, prof, label: str) -> dict:
        sched = prof.schedule(e.method, e.supervision)
        epochs, iters = plan_for(e, prof)
        if (e.method, prof.input_size) not in sides:
            sides[e.method, prof.input_size] = build_model(e.method, "full").map_size(prof.input_size)
        side = sides[e.method, prof.input_size]
        return {f"{label} start": _start_label(e.method, e.supervision, prof, root), f"{label} lr": sched.lr,
                f"{label} batch": sched.batch_size, f"{label} steps": f"{epochs} x {iters} = {epochs * iters:,}",
                f"{label} input": prof.input_size, f"{label} map": f"{side}x{side}"}

    rows = []
    for e in experiments_in(*groups):
        row = {"experiment": e.name}
        for name in names:
            row.update(cols(e, get_profile(name), name))
        rows.append(row)
    first = get_profile(names[0])
    for side in SIDES.get(first.name, ()):
        if side == first.input_size:
            continue
        for name in geometry_experiments():
            rows.append({"experiment": f"{name} (geometry, {side} px)",
                         **cols(get_experiment(name), first.replace(image_size=side, input_size=side), names[0])})
    return pd.DataFrame(rows)


def _claims_block(claims: pd.DataFrame) -> list[str]:
    """The claims as claims.md shows them (one block per claim), its title left to the report."""
    text = claims_markdown(claims).split("\n")
    first = next(i for i, line in enumerate(text) if line.startswith("## "))
    return [line.replace("## ", "### ", 1) if line.startswith("## ") else line for line in text[first:]]


def _figure_order(png: Path, order: list[str]):
    return (png.stem not in order, order.index(png.stem) if png.stem in order else 0, png.stem)


def seeds_line(res: Path, profile: Profile) -> str:
    """What the intervals of this report cover: test images of one training, or seeds too."""
    f = stage_table.product(res, "seed_spread.csv")
    n = int(pd.read_csv(f)["seeds"].max()) if f.exists() else 1
    if n > 1:
        return (f"Seeds: the experiments the claims read were trained under up to {n} seeds each "
                f"(seed {profile.seed} and the next; [seed_spread.csv](seed_spread.csv)). Tables 2 and 3 show "
                f"seed {profile.seed}'s run in the paper's columns and the mean over seeds beside it "
                "(`iou_seeds`, its interval resampling seeds and test images, Student's t interval "
                "over the seed means, which can be wider than the seeds' range, and the seed values); "
                "[seed_spread.csv](seed_spread.csv) has the same for Table 3 and every Figure 6 cell; the "
                "claims resample seeds and images.")
    return ("Seeds: one (the profile's). Every interval in this report covers the test images of one "
            "training, not the spread between trainings; `./run_all.sh --seeds 3` trains every "
            "experiment a claim reads under three seeds.")


def run_stage(study) -> None:
    """The report stage (``Stage.run``): REPORT.md for the study the pipeline runs."""
    path = write_report(study.paths, study.profile, study.all_timings(), study.skipped, study.command)
    log(f"  wrote {path}")


def _kept(res: Path, timings: dict, runs: pd.DataFrame | None) -> tuple[dict, pd.DataFrame | None]:
    """The report's timings and training runs, written beside it (``timings.csv``,
    ``training_runs.csv``, the report stage's products) when this checkout has them (its
    ``runs/``), else read from there: a fresh clone's ``--only report`` keeps both sections."""
    tf, rf = stage_table.product(res, "timings.csv"), stage_table.product(res, "training_runs.csv")
    res.mkdir(parents=True, exist_ok=True)
    if timings:
        with atomic_path(tf) as tmp:
            pd.DataFrame({"stage": list(timings), "seconds": list(timings.values())}).to_csv(tmp, index=False)
    elif tf.exists():
        t = pd.read_csv(tf)
        timings = dict(zip(t["stage"], t["seconds"].astype(float)))
    if runs is not None:
        with atomic_path(rf) as tmp:
            runs.to_csv(tmp, index=False)
    elif rf.exists():
        runs = pd.read_csv(rf)
    return timings, runs


def write_report(paths: Paths, profile: Profile, timings: dict, skipped: dict | None = None,
                 command: str | None = None) -> Path:
    res, figs = paths.results, paths.figures
    code = _code_line(paths)
    lines = [f"# DOLOS reproduction · {profile.name} profile" + (f" · {paths.tag}" if paths.tag else ""), ""]
    if "uncommitted" in code or "unknown" in code:
        lines += [f"> **WARNING: these results come from code with uncommitted changes or of unknown "
                  f"version ({code}). They cannot be traced to a commit.**", ""]
    if profile.name != "paper":
        lines += ["> Data: **DOLOS-mini**, a synthetic stand-in in the DOLOS layout built by this "
                  "repository (docs/mini.md). Its numbers check the pipeline and the "
                  "methods' behaviour on a world built to have the paper's structure; they are not "
                  "comparable with the paper's numbers, and agreement with the paper here is not "
                  "evidence about DOLOS.", ""]
    evaluated = stage_table.product(res, "per_image.csv").exists()
    claims = (claims_table({n: stage_table.product(res, n) for n in reads()}, profile.bootstrap, profile.seed,
                           paths.data_root) if evaluated else None)
    if claims is not None and len(claims):   # written again: the report also knows the geometry stage

        save_claims(claims, res)
    lines += ["## Summary", ""] + summary_lines(res, claims) + [""] + [seeds_line(res, profile), ""]
    lines += stage_table.paragraphs(res)       # each stage's own paragraph (Stage.paragraph)
    if claims is not None and len(claims):
        lines += ["## The paper's claims against this run", "",
                  "Each claim under the same rules, the paper's and ours: its footing first (the models it "
                  "reads learned and converged; the contrast it tests present in the data), else *not "
                  "testable here*; then a quantity that is positive when it holds, bootstrapped over test "
                  "images (paired) and seeds and widened to Student's t over the seeds, decided at the "
                  "paper's 0.5 and at each run's own threshold (weak runs: chosen without masks) (glossary). "
                  "The compared values and every test set's baselines: [claims.csv](claims.csv); the same "
                  "blocks: [claims.md](claims.md).", "",
                  *_claims_block(claims)]
    if profile.name != "paper":
        lines += ["## Footing: this profile against the paper's", "",
                  "What each run a claim or a table reads trains with here and in the paper profile, "
                  "and the geometry stage's runs at its other sides (generated from the profiles; "
                  "`start` as this checkout's weights folder resolves it):", "",
                  markdown(footing_table(paths.root, (profile.name, "paper")), "n/a"), ""]
    lines += ["## Glossary", ""] + [f"- **{k}**: {v}." for k, v in GLOSSARY] + [""]
    lines += ["## Figures", ""]
    if figs.exists():
        caps = captions()
        for png in sorted(figs.glob("*.png"), key=lambda p: _figure_order(p, list(caps))):
            rel = Path("..") / ".." / "figures" / paths.output_name / png.name
            pdf = f" ([pdf]({rel.with_suffix('.pdf')}))" if png.with_suffix(".pdf").exists() else ""
            lines += [f"**{png.stem}**{pdf}. {figure_caption(png.stem)}", "",
                      f"![{png.stem}]({rel})", ""]
    lines += ["## Tables", ""]
    for stem, title in tables():
        f = stage_table.product(res, f"{stem}.csv")
        if not f.exists():
            continue
        links = f"[{stem}.csv]({stem}.csv) · [{stem}.md]({stem}.md) · [{stem}.tex]({stem}.tex)"
        df = pd.read_csv(f)
        if stem in ("table2", "table3"):
            shown = compact_table(df, paper_numbers(profile.paper_numbers)).to_markdown(index=False)
            lines += [f"### {title}", "", links, "", shown, ""]
        elif stem in SHORT_TABLES:
            shown = [c for c in SHOWN_COLUMNS.get(stem, df.columns) if c in df]
            lines += [f"### {title}", "", links + (" (every column)" if len(shown) < len(df.columns) else ""), "",
                      markdown(df[shown], floatfmt=[
                          ".3g" if c in EXACT_COLUMNS else ".1f" for c in shown]), ""]
        else:
            lines += [f"### {title}", "", f"{len(df)} rows: {links}", ""]
    lines += ["## Where these numbers come from", "",
              f"- generated: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
              f"- code: {code}; training code {code_hash()} (part of every run id; each run's "
              "own is in the training runs below)",
              *([f"- command: `{command}` (the last run that wrote this report; the executed "
                 "notebooks name the commit each ran at)"] if command else []),
              f"- machine: {_machine()}",
              f"- device (auto): {resolve_device('auto')}",
              f"- data root: `{_shown(paths.data_root, paths.root)}`",
              "- packages: " + ", ".join(f"{k} {v}" for k, v in _versions().items()), ""]
    summary = stage_table.product(res, "data_summary.csv")
    if summary.exists():
        d = pd.read_csv(summary)
        d = d[d["images"] > 0]
        lines += ["### Data", "", d[["source", "generator", "split", "images", "size"]].to_markdown(index=False), ""]
    timings, runs = _kept(res, timings, _training_runs(paths, profile))
    if timings:
        lines += ["### Timings", "", "Wall-clock seconds of the last run of each stage (a stage that "
                  "found its work finished only checked it); each experiment's own training time is "
                  "in the next table.", "", "| stage | time (s) |", "|---|---|"]
        lines += [f"| {k} | {v:.0f} |" for k, v in timings.items()] + [""]
    if runs is not None:
        inits = ", ".join(f"{k} ({v})" for k, v in runs["init"].value_counts().items())
        lines += ["### Training runs", "",
                  "The run of each experiment every table here reads (`run`: the hash of its "
                  "configuration and code, `runs/<profile>/checkpoints/<experiment>/<run>/`; "
                  "`code`: the hash of the training code it was trained with, the models, data "
                  "pipeline, losses and training loop; this checkout's is "
                  f"{code_hash()}), what it "
                  f"started from (`init`; here: {inits}; docs/running.md), its schedule "
                  "as run, its training time in seconds and where it ran.", "",
                  runs.to_markdown(index=False, floatfmt=".0f"), ""]
    if skipped:
        lines += ["### Skipped experiments (data missing)", ""]
        lines += [f"- `{k}`: {v[0]}" for k, v in skipped.items()] + [""]
    out = res / "REPORT.md"
    res.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        tmp.write_text("\n".join(lines))
    return out
