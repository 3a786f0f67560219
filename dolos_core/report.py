"""``results/<profile>/REPORT.md``: every table and figure of a run, with the environment it
came from (package versions, device, git commit, data root and its counts, timings). It is what
a user attaches to a bug report or a paper appendix."""

from __future__ import annotations

import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from .config import Paths, Profile, resolve_device
from .io import atomic_path

TABLES = [
    ("table2", "Table 2 · methods x setups on CelebA-HQ (paper 5.1)"),
    ("table3", "Table 3 · Patches trained on FFHQ, tested on CelebA-HQ (paper 5.2)"),
    ("cross_generator", "Figure 6 data · cross-generator IoU-lg (paper 5.3)"),
    ("loss_variants", "Extension (FakeLocator) · localization-loss variants"),
    ("postprocess", "Extension (FOCAL) · map post-processing"),
    ("robustness", "Extension (FakeLocator) · robustness to perturbations"),
    ("scaling", "Budget scaling · Patches B and C against training steps (opt-in stage)"),
]
PAPER_COLS = ["experiment", "method", "setup", "ap_mean", "ap_2std", "iou", "iou_sm", "acc", "acc_sm"]


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


def _git(root: Path) -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=10).stdout.strip()
        # what a run writes itself (results/, figures/) does not make the code dirty
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)results", ":(exclude)figures"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (rev or "unknown") + (" (with uncommitted changes)" if dirty else "")
    except Exception:
        return "unknown"


def _shown(path: Path, root: Path) -> str:
    """``path`` relative to the checkout when inside it (no machine paths in a report)."""
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return str(path)


def _code_line(paths: Paths) -> str:
    """Which code made this report: the checkout of the imported ``dolos_core`` and its git
    commit; ``this checkout`` when that is where the report is written."""
    from .locks import code_root

    code = code_root()
    where = "this checkout" if code == Path(paths.root).resolve() else f"the checkout at {code}"
    return f"{where}, git commit {_git(code)}"


def _training_runs(paths: Paths, profile: Profile) -> pd.DataFrame | None:
    """One row per experiment trained under this configuration, from its ``train.json``."""
    from .evaluate import training_runs

    rows = []
    for name, m in sorted(training_runs(paths, profile).items()):
        iters = m.get("iters_per_epoch", m.get("schedule", {}).get("iters_per_epoch"))
        rows.append({"experiment": name, "run": m.get("run_id", "?"), "init": m.get("init", "?"),
                     "epochs x iters": f"{m.get('epochs')} x {iters}",
                     "batch": m.get("schedule", {}).get("batch_size"), "input": m.get("input_size"),
                     "resize": m.get("transform", {}).get("resize", "?"), "train s": m.get("seconds")})
    return pd.DataFrame(rows) if rows else None


def write_report(paths: Paths, profile: Profile, timings: dict, skipped: dict | None = None) -> Path:
    res, figs = paths.results, paths.figures
    lines = [f"# DOLOS reproduction · {profile.name} profile", ""]
    if profile.name != "paper":
        lines += ["> Data: **DOLOS-mini**, a synthetic stand-in in the DOLOS layout built by this "
                  "repository (see README, 'DOLOS-mini'). Its numbers check the pipeline and the "
                  "methods' behaviour; they are not comparable with the paper's.", ""]
    lines += ["## Environment", "",
              f"- generated: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
              f"- code: {_code_line(paths)}",
              f"- machine: {platform.platform()}, {platform.processor() or platform.machine()}",
              f"- device (auto): {resolve_device('auto')}",
              f"- data root: `{_shown(paths.data_root, paths.root)}`",
              "- packages: " + ", ".join(f"{k} {v}" for k, v in _versions().items()), ""]
    summary = res / "data_summary.csv"
    if summary.exists():
        d = pd.read_csv(summary)
        d = d[d["images"] > 0]
        lines += ["### Data", "", d[["source", "generator", "split", "images", "size"]].to_markdown(index=False), ""]
    if timings:
        lines += ["### Timings", "", "| stage | time (s) |", "|---|---|"]
        lines += [f"| {k} | {v:.0f} |" for k, v in timings.items()] + [""]
    runs = _training_runs(paths, profile)
    if runs is not None:
        lines += ["### Training runs", "",
                  "The run of each experiment every table here reads (`run`: the hash of its "
                  "configuration, `runs/<profile>/checkpoints/<experiment>/<run>/`), what it "
                  "started from (`init`; see README, 'Running on DOLOS'), its schedule as run, "
                  "and its training time.", "",
                  runs.to_markdown(index=False, floatfmt=".0f"), ""]
    if skipped:
        lines += ["### Skipped experiments (data missing)", ""]
        lines += [f"- `{k}`: {v[0]}" for k, v in skipped.items()] + [""]
    lines += ["## Tables", ""]
    for stem, title in TABLES:
        f = res / f"{stem}.csv"
        if not f.exists():
            continue
        df = pd.read_csv(f)
        if stem in ("table2", "table3"):
            df = df[[c for c in PAPER_COLS if c in df]]
        lines += [f"### {title}", "", f"[{stem}.csv]({stem}.csv) · [{stem}.md]({stem}.md) · "
                  f"[{stem}.tex]({stem}.tex)", "",
                  df.to_markdown(index=False, floatfmt=".1f", missingval="missing"), ""]
    lines += ["## Figures", ""]
    if figs.exists():
        for png in sorted(figs.glob("*.png")):
            rel = Path("..") / ".." / "figures" / paths.output_name / png.name
            lines += [f"- [{png.stem}]({rel}) ([pdf]({rel.with_suffix('.pdf')}))"]
    lines += [""]
    out = res / "REPORT.md"
    res.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        tmp.write_text("\n".join(lines))
    return out
