"""The claims (dolos_core/claims.py) on hand-built per-image tables: each verdict from the
bootstrapped difference, paired on the images, with the reviewer's cases - a model at its
baseline (uninformative), verdicts that flip with the threshold, seeds."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dolos_core.claims import (COLUMNS, FAILS, HOLDS, MISSING, NO_COMPARISON, NOT_TESTABLE, OPEN, THRESHOLD,
                               UNINFORMATIVE, claims,
                               claims_table, final_verdict, sign_verdict, verdict_counts)
from dolos_core.experiments import FIG6_GENERATORS

T = "celebahq/repaint-p2"
N = 40


def _table(cells: dict | None = None, spread: float = 0.2, seeds: dict | None = None,
           thresholds: dict | None = None) -> pd.DataFrame:
    """Every cell the claims read, each image's value = the cell's value (%, at 0.5, at the
    validation-chosen threshold and, optionally, per-image pixel AUC) + the same per-image
    offset on every cell of a test set (from -spread to +spread): differences between cells are
    exact, single cells vary a lot. Learned models default to 50/50 (AUC 90), off-diagonal
    Figure 6 cells to 30/30, everything-fake to 10/10 (AUC 50), the mask prior to an empty map
    at 0.5 (IoU 0 on every image), 20 at its threshold, AUC 80. ``seeds``: experiment ->
    per-seed shifts (%); ``thresholds``: experiment -> its validation-chosen threshold (0.5)."""
    cells = dict(cells or {})
    keys = {}
    for m in ("gradcam", "patches", "attention"):
        for s in "ABC":
            keys[f"{m}-{s}", T] = (50, 50)
    for s in "ABC":
        keys[f"patches-{s}-ffhq", T] = (50, 50)
    for g in FIG6_GENERATORS:
        for h in FIG6_GENERATORS:
            keys[f"patches-full-{g}", f"celebahq/{h}"] = (60, 60) if g == h else (30, 30)
            keys[f"patches-full-allbut-{g}", f"celebahq/{h}"] = (40, 40) if g == h else (60, 60)
    for ts in (T, *(f"celebahq/{g}" for g in FIG6_GENERATORS)):
        keys["baseline-everything-fake", ts] = (10, 10, 50)
        keys["baseline-mask-prior", ts] = (0, 20, 80)
    keys.update(cells)
    offset = np.linspace(-spread, spread, N)
    rows = []
    for (exp, ts), v in keys.items():
        v05, vval, auc = (*v, 90)[:3]
        shifts = (seeds or {}).get(exp, [0.0]) if not exp.startswith("baseline") else [None]
        for k, shift in enumerate(shifts):
            d = (shift or 0.0) / 100
            rows.append(pd.DataFrame({
                "experiment": exp, "seed": None if shift is None else k, "test_set": ts,
                "image": [f"{i:03d}.png" for i in range(N)],
                "iou": 0.0 if v05 == 0 else np.clip(v05 / 100 + offset + d, -1, 2),
                "iou_val": np.clip(vval / 100 + offset + d, -1, 2), "iou_sup": np.clip(vval / 100 + offset + d, -1, 2),
                "auc": np.clip(auc / 100 + offset / 4, 0, 1),
                "threshold": (thresholds or {}).get(exp, 0.5)}))
    return pd.concat(rows, ignore_index=True)


def _rows(df: pd.DataFrame, n_boot: int = 200) -> dict:
    return claims(df, n_boot=n_boot).set_index("id").to_dict("index")


def test_sign_and_final_rules():
    assert sign_verdict(0.1, 3) == HOLDS and sign_verdict(-3, -0.1) == FAILS
    assert sign_verdict(-1, 1) == OPEN and sign_verdict(np.nan, 1) == MISSING
    assert final_verdict(HOLDS, HOLDS, []) == HOLDS
    assert final_verdict(FAILS, HOLDS, []) == THRESHOLD
    assert final_verdict(HOLDS, HOLDS, ["x did not learn"]) == UNINFORMATIVE
    assert final_verdict(MISSING, HOLDS, []) == MISSING
    assert final_verdict(NO_COMPARISON, OPEN, []) == OPEN and final_verdict(UNINFORMATIVE, HOLDS, []) == UNINFORMATIVE


def test_paired_differences_decide_where_single_intervals_overlap():
    """FFHQ-trained C 2 points below CelebA-HQ-trained C on every image: each cell's interval is
    ~+-5 points wide and they overlap, but the paired difference is exactly 2: holds."""
    r = _rows(_table({("patches-C", T): (52, 52), ("patches-C-ffhq", T): (50, 50)}))["T3-C"]
    assert r["verdict"] == HOLDS and r["quantity_05"] == pytest.approx(2.0)
    assert r["quantity_05_low"] == pytest.approx(2.0) and r["quantity_05_high"] == pytest.approx(2.0)
    assert "patches-C on repaint-p2: 52.0 [" in r["values"]
    lo, hi = (float(x) for x in r["values"].split("52.0 [")[1].split("]")[0].split(", "))
    assert hi - lo > 4 and lo < 51.9        # each cell alone overlaps the other's interval


def test_a_reference_that_did_not_learn_makes_the_claim_not_testable_here():
    """T3-B 'holds' at both thresholds (CelebA-trained B above FFHQ-trained B), but the
    CelebA-trained B ranks its fake pixels no better than the mask prior (per-image AUC 80 = the
    prior's): its verdict is "not testable here", the footing names the model in one phrase, and
    the note says why."""
    r = _rows(_table({("patches-B-ffhq", T): (10, 10), ("patches-B", T): (30, 30, 80)}))["T3-B"]
    assert r["verdict_05"] == HOLDS and r["verdict_own"] == HOLDS
    assert r["verdict"] == NOT_TESTABLE and r["footing"] == "patches-B did not learn"
    assert "patches-B did not learn: per-image pixel AUC 80.0" in r["note"]
    assert "patches-B-ffhq did not learn" not in r["note"]


def test_a_subject_undertrained_or_not_learned_is_not_testable_here():
    """T2-weak is about B against C: B not above the prior's AUC makes it "not testable here"
    ("patches-B did not learn"), never "does not hold" (a reader would take that as a finding
    about the paper); B learned but undertrained (validation loss still falling): "not testable
    here" too, "patches-B undertrained"; with its footing it is decided again."""
    table = _table({("patches-B", T): (10, 10, 80), ("patches-C", T): (60, 60)})
    r = _rows(table)["T2-weak"]
    assert r["verdict"] == NOT_TESTABLE and r["footing"] == "patches-B did not learn"
    assert r["verdict_05"] == FAILS                     # the quantity is still shown, not the verdict
    learned = _table({("patches-B", T): (10, 10, 95), ("patches-C", T): (60, 60)})
    training = pd.DataFrame({"experiment": ["patches-B"], "undertrained": [True]})
    r = claims(learned, n_boot=100, training=training).set_index("id").loc["T2-weak"]
    assert r["verdict"] == NOT_TESTABLE and r["footing"] == "patches-B undertrained"
    assert _rows(learned)["T2-weak"]["verdict"] == FAILS


def test_the_same_evidence_gives_the_same_verdict_to_the_papers_claim_and_ours():
    """One rule for every claim: two claims with the same parts, subjects and references, one
    marked "paper" and one "ours", get the same verdict, footing and quantity, whatever the
    evidence (a subject that learned, one that did not)."""
    from dolos_core.claims import Claim, Evidence, Part, assess

    for b_auc in (95, 80):
        ev = Evidence(_table({("patches-B", T): (50, 50, b_auc), ("patches-C", T): (60, 60)}), 100)
        def make(source):
            return Claim("x", source, "B reaches 0.75 of C",
                         (Part("B - 0.75 C", plus=(("patches-B", T),), minus=(("patches-C", T),), factor=0.75),),
                         (("patches-B", T), ("patches-C", T)), ("patches-B",), ("patches-C",))
        paper, ours = assess(ev, make("paper")), assess(ev, make("ours"))
        for k in ("verdict", "footing", "verdict_05", "verdict_own", "quantity_05", "quantity_05_low"):
            assert paper[k] == ours[k], (b_auc, k)
    assert paper["verdict"] == NOT_TESTABLE


def test_a_contrast_the_data_cannot_test_is_not_testable_here_part_by_part():
    """DOLOS-mini declares no dataset shift: the Table 3 claims are "not testable here" with the
    data's reason; the headline's dataset part is set aside and its generator part decides; a
    real root (nothing declared) decides them all."""
    from dolos_core.claims import claims
    from dolos_core.data.mini import NOT_TESTABLE as MINI

    table = _table()
    mini = claims(table, n_boot=100, untestable=MINI).set_index("id")
    assert mini.loc["T3-B", "verdict"] == NOT_TESTABLE and "dataset shift not in this data" in mini.loc["T3-B", "footing"]
    assert mini.loc["F6-generators", "verdict"] == NOT_TESTABLE
    real = claims(table, n_boot=100).set_index("id")
    assert real.loc["T3-B", "verdict"] != NOT_TESTABLE
    only_gen = {"dataset shift": MINI["dataset shift"]}
    head = claims(table, n_boot=100, untestable=only_gen).set_index("id").loc["headline"]
    assert "dataset drop - weak drop (set aside)" in head["parts"] and "set aside, the data cannot test it" in head["note"]
    assert head["verdict"] != NOT_TESTABLE
    # a part set aside shows its numbers and no verdict; a claim not testable here shows its
    # quantity as no verdict in claims.md
    aside = [p for p in head["parts"].split(" | ") if "(set aside)" in p][0]
    assert not any(v in aside for v in ("(holds)", "(does not hold)", "(inconclusive)"))
    from dolos_core.claims import claims_markdown
    md = claims_markdown(mini.reset_index())
    block = md[md.index("## T3-B"):md.index("## T3-C")]
    assert "not a verdict (its footing fails)" in block and "the interval alone would read" in block


def test_a_three_seed_interval_covers_the_t_interval_of_the_seed_values():
    """Seed-level inference: with 3 seeds the claim's interval is at least Student's t interval
    of the quantity computed seed by seed (a bootstrap over seeds cannot leave their range)."""
    from dolos_core.claims import Evidence, _interval
    from dolos_core.evaluate import seed_t_interval as t_interval

    shifts = [-8.0, 0.0, 8.0]
    table = _table({("patches-C", T): (52, 52), ("patches-C-ffhq", T): (50, 50)},
                   seeds={"patches-C": shifts, "patches-C-ffhq": [0.0, 0.0, 0.0]}, spread=0.01)
    ev = Evidence(table, 300)
    def q(m):
        return m("patches-C", T) - m("patches-C-ffhq", T)
    per_seed = ev.per_seed(q, "iou")
    assert per_seed == pytest.approx([2 - 8, 2, 2 + 8], abs=0.01)
    tlo, thi = t_interval(per_seed)
    point, lo, hi = _interval(ev, q, "iou")
    assert lo <= tlo + 1e-9 and hi >= thi - 1e-9 and thi - tlo > 2 * 8    # wider than the seeds' range


def test_the_weakest_part_decides_and_a_floor_cell_there_is_uninformative():
    """LDM hardest held-out (the reviewer's case): the held-out Repaint-P2-9k cell at 3, below
    both baselines, is the weakest part; the verdict is uninformative, and the note gives the
    quantity without it (40 - 25 = 15: holds). A rival at its floor that does not decide changes
    nothing: Grad-CAM B at 12, Attention B at 40, Patches B at 45: holds on the 5-point part."""
    cells = {("patches-full-allbut-repaint-p2-9k", "celebahq/repaint-p2-9k"): (3, 3),
             ("patches-full-allbut-ldm", "celebahq/ldm"): (25, 25)}
    r = _rows(_table(cells))["F6-LDM-hardest-held-out"]
    assert r["verdict"] == UNINFORMATIVE and r["quantity_05"] == pytest.approx(-22.0)
    assert "patches-full-allbut-repaint-p2-9k on repaint-p2-9k 3.0" in r["note"]
    assert "without it the quantity is 15.0 [" in r["note"] and "(holds)" in r["note"]
    r = _rows(_table({("gradcam-B", T): (12, 12), ("attention-B", T): (40, 40), ("patches-B", T): (45, 45)}))
    assert r["T2-best-B"]["verdict"] == HOLDS and r["T2-best-B"]["quantity_05"] == pytest.approx(5.0)


def test_a_claim_worded_per_cell_is_decided_per_cell():
    """F6-generators on its mean holds (in 60, out 30 on average) but one pair fails its wording:
    the Pluralistic model scores 65 on LaMa, above its own 60: does not hold, on that part."""
    r = _rows(_table({("patches-full-pluralistic", "celebahq/lama"): (65, 65)}))["F6-generators"]
    assert r["verdict"] == FAILS and r["quantity_05"] == pytest.approx(-5.0)


def test_an_empty_baseline_is_no_comparison():
    """Patches B against the mask prior: at 0.5 the prior marks nothing (IoU 0 everywhere), so
    that threshold is no comparison and the calibrated verdict alone decides (B 22 vs prior 20:
    2 points, intervals exact here: holds; with seeds spread it would be inconclusive)."""
    r = _rows(_table({("patches-B", T): (30, 22)}))["T2-weak-above-prior"]
    assert r["verdict_05"] == NO_COMPARISON and r["verdict_own"] == HOLDS and r["verdict"] == HOLDS
    assert "empty" in r["note"] and np.isnan(r["quantity_05"])
    # a part against the empty baseline says so at that threshold, not a verdict
    mil = _rows(_table({("patches-mil-B", T): (50, 50, 95), ("patches-C", T): (60, 60)}))["T2-patches-mil-B"]
    prior_part = [p for p in mil["parts"].split(" | ") if p.startswith("patches-mil-B - mask prior")][0]
    assert f"at 0.5 ({NO_COMPARISON})" in prior_part
    assert final_verdict(NO_COMPARISON, NO_COMPARISON, []) == NO_COMPARISON


def test_a_threshold_at_the_grid_edge_is_named():
    r = _rows(_table(thresholds={"patches-B": 0.999}))["T2-weak"]
    assert "grid's edge" in r["note"] and "patches-B (0.999)" in r["note"]
    assert "grid's edge" not in _rows(_table())["T2-weak"]["note"]


def test_a_verdict_that_flips_with_the_threshold_says_so():
    """Patches B below Grad-CAM B at 0.5 but above it at the validation-chosen thresholds, all
    models above their baselines: threshold-dependent, both verdicts shown."""
    r = _rows(_table({("gradcam-B", T): (30, 28), ("patches-B", T): (25, 40), ("attention-B", T): (22, 30)}))["T2-best-B"]
    assert (r["verdict_05"], r["verdict_own"], r["verdict"]) == (FAILS, HOLDS, THRESHOLD)
    assert r["quantity_05"] == pytest.approx(-5.0) and r["quantity_own"] == pytest.approx(10.0)


def test_headline_is_the_relative_drops_by_hand():
    """C 60, B 30 (weak drop 50% of C), FFHQ C 45 (dataset drop 25%), Figure 6 in 60 / out 20
    (generator drop 66.7%): min(25 - 50, 66.7 - 50) = -25 points of C: does not hold."""
    r = _rows(_table({("patches-C", T): (60, 60), ("patches-B", T): (30, 30), ("patches-C-ffhq", T): (45, 45)}))
    assert r["headline"]["quantity_05"] == pytest.approx(-25.0)
    assert r["headline"]["verdict"] == FAILS
    assert r["T2-weak"]["quantity_05"] == pytest.approx(30 - 0.75 * 60)


def test_headline_with_nothing_to_lose_is_missing_not_an_error():
    """A C model at IoU 0 (a smoke study's few steps) leaves the relative drops undefined: the
    headline is reported missing, the other claims are still decided."""
    r = _rows(_table({("patches-C", T): (0, 0)}, spread=0.0), n_boot=50)
    assert r["headline"]["verdict"] == MISSING
    assert r["T2-weak"]["verdict"] != MISSING


def test_ldm_hardest_in_domain_and_held_out():
    cells = {("patches-full-ldm", "celebahq/ldm"): (45, 45), ("patches-full-allbut-ldm", "celebahq/ldm"): (50, 50)}
    r = _rows(_table(cells))
    assert r["F6-LDM-hardest"]["verdict"] == HOLDS and r["F6-LDM-hardest"]["quantity_05"] == pytest.approx(15.0)
    assert r["F6-LDM-hardest-held-out"]["verdict"] == FAILS        # 50 on LDM, 40 on the others
    assert r["F6-generators"]["verdict"] == HOLDS and r["F6-more-generators"]["verdict"] == HOLDS
    # the smallest per-generator gain decides: one held-out generator below its single-generator mean
    cells[("patches-full-allbut-repaint-p2-9k", "celebahq/repaint-p2-9k")] = (25, 25)
    r = _rows(_table(cells))["F6-more-generators"]
    assert r["verdict"] == FAILS and r["quantity_05"] == pytest.approx(25 - 30)


def test_seeds_widen_the_interval_and_are_reported():
    base = {("patches-C", T): (52, 52), ("patches-C-ffhq", T): (50, 50)}
    one = _rows(_table(base))["T3-C"]
    three = _rows(_table(base, seeds={"patches-C": [-3.0, 0.0, 3.0], "patches-C-ffhq": [0.0, 0.0, 0.0]}))["T3-C"]
    assert one["seeds"] == "1" and three["seeds"] == "3"
    assert three["quantity_05_high"] - three["quantity_05_low"] > 1.0
    assert three["verdict"] == OPEN                    # the seed spread covers the 2-point gap


def test_undertrained_runs_are_named():
    from dolos_core.evaluate import convergence

    falling = [{"valid_loss": v} for v in (0.9, 0.8, 0.7, 0.6)]
    flat = [{"valid_loss": v} for v in (0.9, 0.6, 0.6, 0.6)]
    near_zero = [{"valid_loss": v} for v in (0.6, 0.01, 1e-3, 1e-4, 3e-5)]   # -97% as a relative drop
    assert convergence(falling)["undertrained"] and convergence(falling)["last_quarter_share"] == pytest.approx(100 / 3)
    assert convergence(falling)["reason"] == "still falling"
    assert not convergence(flat)["undertrained"] and not convergence(near_zero)["undertrained"]
    assert convergence(near_zero)["last_quarter_share"] < 0.1
    # a noisy epoch before the last one: best against best, (0.080 - 0.065) / (0.555 - 0.065), 3.1%
    spike = [{"valid_loss": v} for v in (0.555, 0.101, 0.080, 0.101, 0.065)]
    assert convergence(spike)["last_quarter_share"] == pytest.approx(100 * 0.015 / 0.49)
    assert not convergence(spike)["undertrained"]
    kept_first = convergence(flat, best_epoch=0)          # validation never better than after epoch 0
    assert kept_first["undertrained"] and kept_first["reason"] == "kept epoch 0"
    training = pd.DataFrame({"experiment": ["patches-C-ffhq", "patches-C"], "undertrained": [True, False]})
    r = claims(_table(), n_boot=50, training=training).set_index("id")
    assert r.loc["T3-C", "undertrained"] == "patches-C-ffhq" and r.loc["T2-weak", "undertrained"] == ""


def test_missing_runs_and_counts():
    df = _table()
    df = df[df.experiment != "patches-A-ffhq"]
    out = claims(df, n_boot=50)
    assert out.set_index("id").loc["T3-A", "verdict"] == MISSING
    assert list(out.columns) == COLUMNS + ["geometry"]       # the geometry stage's registered column
    text = verdict_counts(out)
    assert text.startswith("the paper's 11:") and "ours 5:" in text      # ours: 3 and Patches-MIL's two


def test_claims_table_without_per_image_is_empty(tmp_path):
    df = claims_table({"per_image.csv": tmp_path / "per_image.csv"})
    assert len(df) == 0 and list(df.columns) == COLUMNS + ["geometry"]


def test_footing_table_reads_the_profiles(tmp_path):
    """Generated from the profiles: the paper's schedules and starts, the mini's random starts
    when the weights folder is empty, map sides measured (37 at 299 px, 12 at 96 for Patches)."""
    from dolos_core.runner.report import footing_table

    t = footing_table(tmp_path).set_index("experiment")
    assert {"patches-C-ffhq", "patches-full-ldm", "patches-full-allbut-ldm", "patches-C-l1"} <= set(t.index)
    assert t.loc["patches-full-allbut-ldm", "paper steps"] == "150 x 500 = 75,000"
    assert t.loc["patches-B (geometry, 224 px)", "mini map"] == "28x28"       # the geometry's other sides
    assert pd.isna(t.loc["patches-B (geometry, 224 px)", "paper steps"])
    assert len(t) == 28 + 2 * 3           # Table 2 (11), 3, 8 single/held-out, 6 loss variants; 2 sides x 3
    assert t.loc["patches-B", "paper steps"] == "100 x 500 = 50,000" and t.loc["patches-B", "paper batch"] == 64
    assert t.loc["patches-B", "paper map"] == "37x37" and t.loc["patches-B", "mini map"] == "12x12"
    assert t.loc["gradcam-A", "paper start"] == "ImageNet Xception"
    assert t.loc["attention-C", "mini start"].startswith("random (no xcp_reg.tar")
    assert t.loc["attention-C", "paper lr"] == 3e-4 and t.loc["attention-B", "paper lr"] == 1e-4


def _geometry(bc_small: tuple, bc_large: tuple, oracle: tuple | None = None) -> pd.DataFrame:
    """A hand-built geometry.csv: Patches' B/C (value, low, high) at 96 and 224 px, at 0.5 and at
    the runs' own thresholds; at the validation-mask threshold the same, or ``oracle`` (small, large)."""
    rows = []
    for k, (size, share, bc) in enumerate(((96, 0.45, bc_small), (224, 0.19, bc_large))):
        for metric in ("iou", "iou_own", "iou_val"):
            v = oracle[k] if oracle and metric == "iou_val" else bc
            rows.append({"size": size, "rf_share": share, "row": "B/C", "metric": metric,
                         "value": v[0], "ci_low": v[1], "ci_high": v[2]})
    return pd.DataFrame(rows)


def test_weak_supervision_claims_carry_the_largest_geometry_and_which_to_weigh():
    from dolos_core.geometry import geometry_column

    rising = geometry_column(_geometry((0.30, 0.27, 0.33), (0.60, 0.55, 0.65)))
    assert set(rising) == {"T2-weak", "headline"}
    assert "at 224 px (receptive field 19% of the side) Patches B/C is 0.60 [0.55, 0.65]" in rising["T2-weak"]
    assert "weigh the 224 px value" in rising["T2-weak"] and "at least 0.75" in rising["T2-weak"]
    flat = geometry_column(_geometry((0.30, 0.25, 0.35), (0.32, 0.28, 0.36)))
    assert "does not rise" in flat["headline"] and "weigh this study's value" in flat["headline"]
    assert geometry_column(_geometry((0.3, 0.2, 0.4), (0.3, 0.2, 0.4)).query("size == 96")) == {}
    # only the validation-mask threshold (an oracle for weak B) rises: it decides nothing
    oracle = geometry_column(_geometry((0.30, 0.25, 0.35), (0.32, 0.28, 0.36),
                                       oracle=((0.44, 0.40, 0.49), (0.68, 0.65, 0.70))))
    assert "does not rise" in oracle["T2-weak"] and "0.68" not in oracle["T2-weak"]


def test_a_run_still_training_has_no_convergence_row_until_its_stage_adds_it(tmp_path):
    """The evaluate stage may read the loss variants' train.json while they still train: a half
    curve (here 2 of 4 epochs, falling) must not be judged, and the row the extensions stage adds
    later replaces nothing but its own experiment and seed."""
    from dolos_core.evaluate import CONVERGENCE_COLUMNS, convergence_row, merge_convergence

    f = tmp_path / "train.json"
    history = [{"valid_loss": v} for v in (0.9, 0.8, 0.7, 0.6)]
    f.write_text(json.dumps({"run_id": "abc", "best_epoch": 1, "history": history[:2], "done": False}))
    assert convergence_row("patches-C-l1", 0, f) is None
    f.write_text(json.dumps({"run_id": "abc", "best_epoch": 3, "history": history, "done": True}))
    row = convergence_row("patches-C-l1", 0, f)
    assert row["epochs"] == 4 and row["undertrained"] and row["reason"] == "still falling"
    old = pd.DataFrame([{"experiment": "patches-C", "seed": 0, "run": "x", "epochs": 4},
                        {"experiment": "patches-C", "seed": 1, "run": "y", "epochs": 4},
                        {"experiment": "patches-C-l1", "seed": 0, "run": "abc", "epochs": 1}]
                       ).reindex(columns=CONVERGENCE_COLUMNS)
    merged = merge_convergence(old, pd.DataFrame([row]).reindex(columns=CONVERGENCE_COLUMNS))
    assert list(zip(merged.experiment, merged.seed, merged.epochs)) == [
        ("patches-C", 0, 4), ("patches-C", 1, 4), ("patches-C-l1", 0, 4)]


def test_the_ratio_claims_say_what_another_ratio_would_decide():
    """T2-weak asks B >= 0.75 C (our reading of "weak labels cost little"): its note gives the
    quantity and verdict at 0.6 and 0.9 too. B 40, C 60: 40 - 0.6 x 60 = 4 holds, 40 - 0.9 x 60
    = -14 does not."""
    r = _rows(_table({("patches-B", T): (40, 40), ("patches-C", T): (60, 60)}))["T2-weak"]
    assert "at 0.6 x C: 4.0 [" in r["note"] and "(holds)" in r["note"]
    assert "at 0.9 x C: -14.0 [" in r["note"] and "(does not hold)" in r["note"]


def test_a_module_registers_its_own_claim_and_column_as_records(tmp_path):
    """Claims are records in a registry: a claim declared elsewhere (here, by this test, as a
    method's or a stage's file would) is listed after the study's own, decided by the same
    rules (Attention B 50 against 0.75 x Patches C 50: 12.5 points, holds), a duplicate id is
    refused, and a registered column is filled from its product where the product exists."""
    from dolos_core import claims as cl

    @cl.register_claims
    def extra():
        c = ("patches-C", T)
        return [cl.Claim("X-test", "ours", "Attention B reaches 0.75 of Patches C",
                         (cl.Part("attention-B - 0.75 patches-C", plus=(("attention-B", T),), minus=(c,),
                                  factor=0.75, refs=((c,),)),),
                         (("attention-B", T), c), ("attention-B",), ("patches-C",))]

    @cl.register_column("test_col", reads="seeds.csv")
    def col(t):
        return {"X-test": f"{len(t)} rows"}

    try:
        assert cl.claim_list()[-1].id == "X-test" and "seeds.csv" in cl.reads()
        per_image = tmp_path / "per_image.csv"
        _table().to_csv(per_image, index=False)
        pd.DataFrame({"a": [1, 2]}).to_csv(tmp_path / "seeds.csv", index=False)
        df = cl.claims_table({"per_image.csv": per_image, "seeds.csv": tmp_path / "seeds.csv"}, n_boot=100)
        r = df.set_index("id").loc["X-test"]
        assert r["verdict"] == HOLDS and r["quantity_05"] == pytest.approx(12.5, abs=1e-6)
        assert r["test_col"] == "2 rows" and pd.isna(df.set_index("id").loc["T2-weak", "test_col"])
        cl.register_claims(extra)        # the same function again: one registration, not two
        assert [c.id for c in cl.claim_list()].count("X-test") == 1

        @cl.register_claims
        def twice():
            return extra()
        with pytest.raises(ValueError, match="declared twice: X-test"):
            cl.claim_list()
        del cl._SOURCES[f"{twice.__module__}:{twice.__qualname__}"]
    finally:
        cl._SOURCES.pop(f"{extra.__module__}:{extra.__qualname__}", None)
        cl._COLUMNS.pop("test_col", None)
    assert "X-test" not in [c.id for c in cl.claim_list()]
