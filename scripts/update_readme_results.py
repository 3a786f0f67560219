"""Copy the mini profile's regenerated results into README.md: each ``<!-- gen:NAME -->...<!--
/gen -->`` span from its file (``SPANS``: the study's wall clock from ``bench_study.py``'s
tables), and between the ``mini-results`` markers the summary sentences that REPORT.md shows (both built from
``results/mini/*.csv`` by ``dolos_core.runner.report`` and ``dolos_core.claims``), the geometry stage's
answer, and links to the claims, Table 2 and the report. So the README says
exactly what ``./run_all.sh`` produced. A maintainer's tool: run it after a mini study, then
commit."""

import re
from pathlib import Path

import pandas as pd

from dolos_core.claims import claims_table, reads
from dolos_core.runner.stages import product
from dolos_core.geometry import cell, fmt_cell, trend
from dolos_core.geometry import summary_lines as summary_lines_geo
from dolos_core.runner.report import summary_lines

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- mini-results:start -->", "<!-- mini-results:end -->"


def _study_minutes(t: pd.DataFrame, res: Path) -> str:
    return f"{float(t.loc[t['stage'].str.startswith('total'), 'seconds'].iloc[0]) / 60:.1f}"


def _geometry_summary(geo: pd.DataFrame, res: Path) -> str:
    c = res / "calibration.csv"
    lines = summary_lines_geo(geo, pd.read_csv(c) if c.exists() else None)
    return "\n" + "\n".join(f"- {x}" for x in lines) + "\n"


def _seeds_needed(t: pd.DataFrame, res: Path) -> str:
    t = t.set_index("seed spread")
    med, worst = t.loc["median cell"], t.loc["noisiest cell"]
    return (f"a cell of the median seed spread ({med['s (IoU points)']:.1f} IoU points between seeds) needs "
            f"{med['effect 10']} seeds for a 10-point effect, {med['effect 5']} for a 5-point one and "
            f"{med['effect 2']} for a 2-point one; the noisiest cells ({worst['s (IoU points)']:.1f} points) need "
            f"{worst['effect 10']} seeds for 10 points")


def _mil_goal(t: pd.DataFrame, res: Path) -> str:
    g = t.iloc[0]
    return (f"\nover {int(g['seeds'])} seeds Patches-MIL B reads {g['mil_B_mean']:.1f} [{g['mil_B_t_low']:.1f}, "
            f"{g['mil_B_t_high']:.1f}] (Student's t over seeds) against Patches C's {g['patches_C_mean']:.1f}: B/C "
            f"{g['ratio_of_means']:.2f} at 0.5, the goal {'met' if g['ratio_goal_met'] else 'not met'} (at its "
            f"threshold without masks {g['ratio_label_thr']:.2f}); B's interval is "
            f"{'above' if g['above_baselines'] else 'not above'} the higher trivial baseline "
            f"({g['floor']:.1f}). Where it misses: by mask area below, by generator in the transfer table.\n")


def _mil_by_area(t: pd.DataFrame, res: Path) -> str:
    def at(r) -> str:
        ci = f" [{r['iou_t_low']:.1f}, {r['iou_t_high']:.1f}]" if pd.notna(r["iou_t_low"]) else ""
        return f"{r['iou']:.1f}{ci} ({int(r['n_images'])} images)"

    def ends(exp: str) -> str:
        g = t[t.experiment == exp]
        return f"{exp} {at(g.iloc[0])} -> {at(g.iloc[-1])}" if len(g) else f"{exp} missing"
    return "; ".join(ends(e) for e in ("patches-mil-A", "patches-A", "patches-mil-B", "patches-C",
                                       "baseline-everything-fake"))


def _geometry_time(geo: pd.DataFrame, res: Path) -> str:
    """Each larger side's training time per model, from its runs' own ``train.json`` (seconds of
    training, summed over resumptions), and their sum in hours of one thread."""
    rows = geo[(geo["metric"] == "iou") & geo["runs"].notna() & ~geo["row"].str.contains("/")]
    rows = rows[rows["size"] > rows["size"].min()]
    total, parts = 0.0, []
    for (size, row), g in rows.groupby(["size", "row"], sort=True):
        secs = []
        for run in " ".join(g["runs"].astype(str)).split():
            found = sorted(ROOT.glob(f"runs/mini/checkpoints/*/{run}/train.json"))
            if found:
                secs.append(float(pd.read_json(found[0], typ="series")["seconds"]))
        if secs:
            total += sum(secs)
            name = row if row.startswith("patches") else f"Patches {row}"
            parts.append(f"{name} at {size} px {min(secs) / 60:.1f}-{max(secs) / 60:.1f} min ({len(secs)} runs)")
    if not parts:
        return "(no training times found: the runs are not in this checkout)"
    return f"{'; '.join(parts)}; together {total / 3600:.1f} h of one thread"


def _claim_verdicts(t: pd.DataFrame, res: Path) -> str:
    """How many claims (paper's, ours) read each verdict, and the footing's commonest reasons."""
    t = t[t["source"].isin(["paper", "ours"])]
    counts = t.groupby(["verdict", "source"]).size().unstack(fill_value=0)
    verdicts = "; ".join(f"{v}: {int(r.get('paper', 0))} of the paper's, {int(r.get('ours', 0))} of ours"
                         for v, r in counts.iterrows())
    def kinds(footing) -> set[str]:        # "patches-B did not learn" -> "a model did not learn"
        out = set()
        for x in str(footing).split("; ") if isinstance(footing, str) else ():
            out.add(f"a model {x.split(' ', 1)[1]}" if x.endswith(("did not learn", "undertrained")) else x)
        return out
    reasons = pd.Series([k for f in t["footing"] for k in kinds(f)])
    top = "; ".join(f"{why} ({n})" for why, n in reasons.value_counts().items())
    return (f"of {len(t)} claims, {verdicts}. Why, in claims (one claim may have several reasons): "
            f"{top or 'none'}")


def _provenance(report: str, res: Path) -> str:
    """Where the committed results come from, read from REPORT.md's own lines and the training
    runs it lists: the commit, the command, how many runs under how many training codes."""
    def line(prefix: str) -> str:
        return next((x[len(prefix):] for x in report.splitlines() if x.startswith(prefix)), "not recorded")
    runs = res / "training_runs.csv"
    codes = ""
    if runs.exists():
        t = pd.read_csv(runs)
        counts = t["code"].value_counts()
        codes = (f" It reads {len(t)} trained runs, made under {len(counts)} training code(s) "
                 f"({', '.join(f'{c}: {n}' for c, n in counts.items())}; REPORT.md's training runs name each).")
    return (f"\nREPORT.md's code line: {line('- code: ')}. Its command: {line('- command: ')}.{codes}\n")


def _label_rules(t: pd.DataFrame, res: Path) -> str:
    def row(variant: str, label: str) -> str:
        r = t[(t.variant == variant) & (t.seed == t.seed.min())]
        if not len(r):
            return f"{label} not measured"
        r = r.iloc[0]
        return (f"{label} {r['iou_real-quantile']:.1f} at it against {r['iou_otsu']:.1f} at Otsu's and "
                f"{r['iou_05']:.1f} at 0.5")
    paper = row("paper (every cell the image label)", "the paper's weak Patches")
    return f"{row('topk-5%', 'top-5% MIL scores')}; {paper}"


# Generated spans of the README and docs/*.md outside the results block: name -> (the results
# file it reads, what to write without it, (table, results folder) -> text)
SPANS = {
    "study-time-one-seed": ("study_time-one-seed.csv", "not measured", _study_minutes),
    "study-time-three-seeds": ("study_time-three-seeds.csv", "not measured", _study_minutes),
    "geometry-summary": ("geometry.csv", "\n(the geometry stage has not run: `./run_all.sh --only geometry`)\n",
                         _geometry_summary),
    "seeds-needed": ("seeds_needed.csv", "(not measured: benchmarks/seeds_needed.py)", _seeds_needed),
    "mil-goal": ("mil_goal_summary.csv", "\n(not measured under this code yet: `benchmarks/mil_goal.py` after a "
                 "3-seed study)\n", _mil_goal),
    "mil-by-area": ("mil_by_area.csv", "(not measured: `benchmarks/mil_by_area.py`)", _mil_by_area),
    "geometry-time": ("geometry.csv", "(the geometry stage has not run)", _geometry_time),
    "claim-verdicts": ("claims.csv", "(no claims.csv yet)", _claim_verdicts),
    "provenance": ("REPORT.md", "\n(no REPORT.md yet)\n", _provenance),
    "label-rules": ("label_rules.csv", "(not measured: `benchmarks/label_rules.py`)", _label_rules),
}
DOCS = ("README.md", "docs/mini.md", "docs/STUDY.md", "docs/extensions.md", "docs/running.md")


def span_text(name: str, res: Path) -> str:
    """The text of the generated span ``name`` from ``res`` (its fallback without its file)."""
    if name not in SPANS:
        raise KeyError(f"README span gen:{name}: no generator in SPANS")
    file, fallback, fn = SPANS[name]
    if not (res / file).exists():
        return fallback
    data = (res / file).read_text() if file.endswith(".md") else pd.read_csv(res / file)
    return fn(data, res)


def fill_spans(text: str, res: Path) -> str:
    """Every ``<!-- gen:NAME -->old<!-- /gen -->`` of ``text`` with ``SPANS[NAME](res)`` in place of
    ``old``; an unknown name is an error."""
    def one(m: re.Match) -> str:
        return f"<!-- gen:{m.group(1)} -->{span_text(m.group(1), res)}<!-- /gen -->"
    return re.sub(r"<!-- gen:([\w-]+) -->(.*?)<!-- /gen -->", one, text, flags=re.S)


def geometry(res: Path) -> list[str]:
    """The geometry stage's answer for Patches B/C, smallest and largest side (every side, the
    other weak runs, the confounds and the calibration are in docs/mini.md and REPORT.md)."""
    f = res / "geometry.csv"
    if not f.exists():
        return []
    geo = pd.read_csv(f)
    sizes = sorted(geo["size"].unique())
    lo, hi = sizes[0], sizes[-1]

    def ends(metric: str) -> str:
        return (f"{fmt_cell(cell(geo, lo, 'B/C', metric), True)} -> {fmt_cell(cell(geo, hi, 'B/C', metric), True)} "
                f"({trend(geo, metric)})")
    return [f"Receptive-field geometry ([`geometry.csv`](results/mini/geometry.csv), opt-in stage, intervals over "
            f"seeds and images): Patches B/C from {lo} to {hi} px input at 0.5 {ends('iou')}, at the "
            f"validation-chosen threshold {ends('iou_val')}; every side, Patches-MIL B and the calibration: "
            "[docs/mini.md](docs/mini.md).", ""]


def main() -> None:
    res = ROOT / "results" / "mini"
    claims = (pd.read_csv(product(res, "claims.csv")) if product(res, "claims.csv").exists()
              else claims_table({n: product(res, n) for n in reads()}, data_root=ROOT / "data" / "dolos-mini-mini"))
    spread = res / "seed_spread.csv"
    seeds = int(pd.read_csv(spread)["seeds"].max()) if spread.exists() else 1
    how = ("one seed" if seeds == 1 else
           f"every experiment a claim reads trained under {seeds} seeds: a trained model's IoU is the mean over "
           "its seeds with Student's t interval over them, what is read from the first seed alone says so")
    made = [x[len("- command: "):].split(" (")[0] for x in (res / "REPORT.md").read_text().splitlines()
            if x.startswith("- command: ")]
    made_by = f" Made by {made[0]} at the commit REPORT.md names." if made else ""
    lines = [START, "", "*Generated by `scripts/update_readme_results.py` from `results/mini/` "
             f"(DOLOS-mini, not DOLOS; 95% intervals in brackets; {how}).{made_by}*", "",
             *summary_lines(res, claims), "",
             *geometry(res),
             "The claims with their evidence: [`results/mini/claims.md`](results/mini/claims.md); Table 2: "
             "[`results/mini/table2.md`](results/mini/table2.md); everything, with every figure: "
             "[`results/mini/REPORT.md`](results/mini/REPORT.md).", "",
             "![Table 2 on DOLOS-mini](figures/mini/table2_iou.png)", "", END]
    readme = ROOT / "README.md"
    text = readme.read_text()
    a, b = text.index(START), text.index(END) + len(END)
    readme.write_text(text[:a] + "\n".join(lines) + text[b:])
    for doc in DOCS:
        f = ROOT / doc
        f.write_text(fill_spans(f.read_text(), res))


if __name__ == "__main__":
    main()
