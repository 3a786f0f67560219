"""What the report and the figures keep: byte-stable figures, the sections of a report made in a
fresh clone, the paper's numbers from a user's file."""

from __future__ import annotations

import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from dolos_core.plots import save_figure  # noqa: E402


def test_a_figure_saved_twice_is_the_same_png_and_pdf(tmp_path):
    """No creation date nor software version in the files: the committed PDFs stay byte-stable
    across runs, so regenerating an unchanged study leaves git status clean."""
    def draw():
        fig, ax = plt.subplots()
        ax.plot([1, 2, 3], [3, 1, 2])
        ax.set_title("same figure")
        return fig

    first = [p.read_bytes() for p in save_figure(draw(), tmp_path / "a", "fig")]
    time.sleep(1.1)                   # a creation date would differ by now
    second = [p.read_bytes() for p in save_figure(draw(), tmp_path / "b", "fig")]
    assert first == second and b"CreationDate" not in first[1]


def test_report_only_in_a_fresh_clone_keeps_timings_and_training_runs(tmp_path):
    """``--only report`` where no run is on disk (a fresh clone): REPORT.md keeps its Timings and
    Training-runs sections from the report stage's own products (timings.csv,
    training_runs.csv), and a report made with runs writes those products."""
    import pandas as pd

    from dolos_core.config import get_paths, get_profile
    from dolos_core.runner.report import write_report

    paths = get_paths("smoke", root=tmp_path)
    paths.results.mkdir(parents=True)
    pd.DataFrame({"stage": ["train", "evaluate"], "seconds": [120.0, 30.0]}).to_csv(
        paths.results / "timings.csv", index=False)
    pd.DataFrame({"experiment": ["patches-B"], "run": ["abcdef0123"], "init": ["random"]}).to_csv(
        paths.results / "training_runs.csv", index=False)
    text = write_report(paths, get_profile("smoke"), {}).read_text()
    assert "### Timings" in text and "| train | 120 |" in text
    assert "### Training runs" in text and "abcdef0123" in text
    write_report(paths, get_profile("smoke"), {"data": 5.0})          # this run's timings replace them
    assert pd.read_csv(paths.results / "timings.csv")["stage"].tolist() == ["data"]


def test_the_papers_numbers_come_from_a_users_file_else_not_available(tmp_path):
    """REPORT.md's Table 2 has a column for the paper's IoU-lg, filled from the user's CSV
    (``--set paper_numbers=FILE``) and "not available" without one; a bad file is named."""
    import pandas as pd
    import pytest

    from dolos_core.runner.report import compact_table, paper_numbers

    t2 = pd.DataFrame({"experiment": ["patches-B", "patches-C"], "iou": [20.0, 60.0], "iou_ci_low": [18.0, 58.0],
                       "iou_ci_high": [22.0, 62.0], "status": ["ok", "ok"]})
    f = tmp_path / "paper.csv"
    pd.DataFrame({"experiment": ["patches-C"], "iou": [71.3]}).to_csv(f, index=False)
    shown = compact_table(t2, paper_numbers(str(f))).set_index("experiment")["paper's IoU-lg"]
    assert shown.to_dict() == {"patches-B": "not available", "patches-C": "71.3"}
    assert (compact_table(t2)["paper's IoU-lg"] == "not available").all()
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="bad.csv: not a CSV with columns experiment and iou"):
        paper_numbers(str(tmp_path / "bad.csv"))


def test_the_summary_leads_with_the_seed_mean_and_its_seed_interval(tmp_path):
    """With 3 seeds the summary gives each trained row's mean over seeds with Student's t interval
    over them (patches-C 60.4 [46.5, 74.4], though seed 0's run alone reads 62.7 [60.6, 64.8]),
    picks the best by that mean, and labels what it reads from the first seed only; with one
    seed, the run's own value and its interval over images."""
    import pandas as pd

    from dolos_core.runner.report import summary_lines

    rows = [dict(experiment="patches-C", iou=62.7, iou_ci_low=60.6, iou_ci_high=64.8, seeds=3, iou_seeds=60.4,
                 iou_seeds_t_low=46.5, iou_seeds_t_high=74.4, pixel_auc_img=99.2, ap_mean=float("nan")),
            dict(experiment="attention-C", iou=63.0, iou_ci_low=61.0, iou_ci_high=65.0, seeds=3, iou_seeds=50.0,
                 iou_seeds_t_low=40.0, iou_seeds_t_high=60.0, ap_mean=float("nan")),
            dict(experiment="patches-B", iou=18.0, iou_ci_low=16.3, iou_ci_high=19.7, seeds=3, iou_seeds=17.1,
                 iou_seeds_t_low=13.1, iou_seeds_t_high=21.1, pixel_auc_img=91.6, ap_mean=90.0, ap_ci_low=88.0,
                 ap_ci_high=92.0),
            dict(experiment="baseline-everything-fake", iou=11.2, iou_ci_low=9.7, iou_ci_high=12.9)]
    pd.DataFrame(rows).to_csv(tmp_path / "table2.csv", index=False)
    text = summary_lines(tmp_path, None)[0]
    assert "mean of 3 seeds, Student's t interval over the seeds" in text
    assert "setup C: patches-C 60.4 [46.5, 74.4]" in text and "62.7" not in text
    assert "reaches 17.1 [13.1, 21.1] against 60.4 [46.5, 74.4]" in text
    assert "pixel AUC per image (the first seed's run) is 91.6" in text
    pd.DataFrame(rows).assign(seeds=1).to_csv(tmp_path / "table2.csv", index=False)
    text = summary_lines(tmp_path, None)[0]
    assert "one seed, 95% interval over test images" in text and "setup C: attention-C 63.0 [61.0, 65.0]" in text


def _update_script():
    """``scripts/update_readme_results.py`` as a module (scripts/ is not a package)."""
    import importlib
    import sys

    from .conftest import REPO

    sys.path.insert(0, str(REPO / "scripts"))
    try:
        return importlib.import_module("update_readme_results")
    finally:
        sys.path.remove(str(REPO / "scripts"))


def test_the_docs_generated_spans_are_filled_from_the_results(tmp_path):
    """``scripts/update_readme_results.py`` fills each ``<!-- gen:NAME -->`` span from its results
    file (the study's wall clock: 2,151.4 s = 35.9 minutes), writes the stated fallback without
    it, and refuses a span it has no generator for."""

    import pandas as pd
    import pytest


    upd = _update_script()
    text = "took <!-- gen:study-time-one-seed -->old<!-- /gen --> minutes; <!-- gen:seeds-needed -->x<!-- /gen -->"
    pd.DataFrame({"stage": ["data", "total (wall clock)"], "seconds": [63.2, 2151.4]}).to_csv(
        tmp_path / "study_time-one-seed.csv", index=False)
    out = upd.fill_spans(text, tmp_path)
    assert "took <!-- gen:study-time-one-seed -->35.9<!-- /gen --> minutes" in out
    assert "<!-- gen:seeds-needed -->(not measured: benchmarks/seeds_needed.py)<!-- /gen -->" in out
    assert upd.fill_spans(out, tmp_path) == out                 # filling again changes nothing
    with pytest.raises(KeyError, match="gen:nope"):
        upd.fill_spans("<!-- gen:nope -->1<!-- /gen -->", tmp_path)


def test_the_claim_verdicts_span_counts_claims_not_models(tmp_path):
    """The claims' verdicts by source, and each footing reason counted once per claim: a claim
    with two undertrained models counts once under "a model undertrained"."""

    import pandas as pd


    upd = _update_script()
    pd.DataFrame({"id": ["a", "b", "c", "ctx"], "source": ["paper", "paper", "ours", "context"],
                  "verdict": ["not testable here", "holds", "not testable here", ""],
                  "footing": ["patches-B undertrained; patches-C undertrained; dataset shift not in this data",
                              None, "patches-B did not learn", None]}).to_csv(tmp_path / "claims.csv", index=False)
    text = upd.span_text("claim-verdicts", tmp_path)
    assert text.startswith("of 3 claims, holds: 1 of the paper's, 0 of ours; not testable here: 1 of the paper's, "
                           "1 of ours.")
    assert "a model undertrained (1)" in text and "a model did not learn (1)" in text
    assert "dataset shift not in this data (1)" in text


def test_the_geometry_time_span_sums_each_runs_own_training_time(tmp_path, monkeypatch):
    """The larger sides' training times come from each run's train.json (60 s and 180 s for
    Patches B at 160 px: 1.0-3.0 min; 0.1 h in all with C's 120 s); the smallest side is the
    study's own runs and is left out; a run not in the checkout is skipped."""
    import json

    import pandas as pd


    upd = _update_script()
    monkeypatch.setattr(upd, "ROOT", tmp_path)
    for exp, run, secs in (("patches-B", "r1", 60.0), ("patches-B", "r2", 180.0), ("patches-C", "r3", 120.0),
                           ("patches-B", "r0", 999.0)):
        d = tmp_path / "runs/mini/checkpoints" / exp / run
        d.mkdir(parents=True)
        (d / "train.json").write_text(json.dumps({"seconds": secs}))
    geo = pd.DataFrame({"size": [96, 160, 160, 160], "row": ["B", "B", "C", "B/C"],
                        "metric": ["iou"] * 4, "runs": ["r0", "r1 r2 gone", "r3", None]})
    text = upd._geometry_time(geo, tmp_path)
    assert text == ("Patches B at 160 px 1.0-3.0 min (2 runs); Patches C at 160 px 2.0-2.0 min (1 runs); "
                    "together 0.1 h of one thread")
