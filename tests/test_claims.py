"""The claims table (dolos_core/claims.py) on hand-built tables: verdicts follow the intervals."""

from __future__ import annotations

import pandas as pd

from dolos_core.claims import FAILS, HOLDS, MISSING, OPEN, Value, claims, claims_table, greater


def _t2(half_width=1.0, **iou):
    rows = [{"experiment": f"{m}-{s}", "iou": iou.get(f"{m}_{s}", 10.0)}
            for m in ("gradcam", "patches", "attention") for s in "ABC"]
    rows.append({"experiment": "baseline-everything-fake", "iou": 12.0})
    df = pd.DataFrame(rows)
    df["iou_ci_low"], df["iou_ci_high"] = df["iou"] - half_width, df["iou"] + half_width
    return df


def _t3(a, b, c, half_width=1.0):
    df = pd.DataFrame({"experiment": ["patches-A-ffhq", "patches-B-ffhq", "patches-C-ffhq"], "iou": [a, b, c]})
    df["iou_ci_low"], df["iou_ci_high"] = df["iou"] - half_width, df["iou"] + half_width
    return df


def _dom(ind, outd, drop_lo, drop_hi, held=30.0):
    return pd.DataFrame([
        {"panel": "single", "quantity": "in_domain", "iou": ind, "ci_low": ind - 2, "ci_high": ind + 2},
        {"panel": "single", "quantity": "out_of_domain", "iou": outd, "ci_low": outd - 2, "ci_high": outd + 2},
        {"panel": "single", "quantity": "drop", "iou": ind - outd, "ci_low": drop_lo, "ci_high": drop_hi},
        {"panel": "all-but", "quantity": "out_of_domain", "iou": held, "ci_low": held - 2, "ci_high": held + 2}])


def _verdicts(rows):
    return {r["id"]: r["verdict"] for r in rows}


def test_interval_rule():
    assert greater(Value(10, 9, 11), Value(5, 4, 8.9)) == HOLDS
    assert greater(Value(10, 9, 11), Value(5, 4, 9.0)) == OPEN          # touching intervals
    assert greater(Value(5, 4, 6), Value(10, 9, 11)) == FAILS
    assert greater(Value(), Value(1, 0, 2)) == MISSING


def test_claims_hold_where_the_intervals_separate():
    t2 = _t2(patches_A=30, patches_B=50, patches_C=60)     # B 50 [49, 51] vs 0.75 C = 45 [44.25, 45.75]
    v = _verdicts(claims(t2, _t3(20, 40, 50), _dom(60, 20, 30, 50)))
    assert v["T2-best-A"] == v["T2-best-B"] == v["T2-best-C"] == HOLDS
    assert v["T2-weak"] == HOLDS and v["T2-weak-above-baseline"] == HOLDS
    assert v["T3-A"] == v["T3-B"] == v["T3-C"] == HOLDS
    assert v["F6-generators"] == HOLDS and v["F6-more-generators"] == HOLDS
    assert v["context-DeCLIP"] == "context"
    assert v["T2-weak-above-prior"] == MISSING          # no calibrated IoU in these tables


def test_weak_patches_against_the_mask_prior_at_calibrated_thresholds():
    t2 = _t2(patches_B=20)
    extra = pd.DataFrame([{"experiment": "baseline-mask-prior", "iou": 0.0, "iou_ci_low": 0.0, "iou_ci_high": 0.0}])
    t2 = pd.concat([t2, extra], ignore_index=True)
    t2["iou_val_thr"] = t2["experiment"].map({"patches-B": 31.0, "baseline-mask-prior": 24.0})
    t2["iou_val_thr_ci_low"], t2["iou_val_thr_ci_high"] = t2["iou_val_thr"] - 2, t2["iou_val_thr"] + 2
    row = next(r for r in claims(t2) if r["id"] == "T2-weak-above-prior")
    assert row["verdict"] == HOLDS and "B 31.0 [29.0, 33.0], mask prior 24.0 [22.0, 26.0]" == row["evidence"]
    t2.loc[t2.experiment == "patches-B", "iou_val_thr_ci_low"] = 25.0
    assert next(r for r in claims(t2) if r["id"] == "T2-weak-above-prior")["verdict"] == OPEN


def test_claims_fail_or_stay_open_where_the_numbers_say_so():
    t2 = _t2(patches_A=30, patches_B=44, patches_C=60, gradcam_B=50)   # gradcam best in B
    t2.loc[t2.experiment == "patches-C", ["iou_ci_low", "iou_ci_high"]] = [50, 70]   # wide C
    v = _verdicts(claims(t2, _t3(20, 40, 60.5), _dom(40, 38, -1, 5, held=10)))
    assert v["T2-best-B"] == FAILS and v["T2-best-A"] == HOLDS
    assert v["T2-weak"] == OPEN                       # 44 [43, 45] vs 0.75 x [50, 70] = [37.5, 52.5]
    assert v["T3-C"] == OPEN and v["T3-A"] == HOLDS   # 60 [59, 61] vs 60.5 [59.5, 61.5]
    assert v["F6-generators"] == OPEN and v["F6-more-generators"] == FAILS
    assert "B 44.0 [43.0, 45.0]" in next(r for r in claims(t2) if r["id"] == "T2-weak")["evidence"]


def test_missing_experiments_are_never_a_verdict(tmp_path):
    t2 = _t2().query("experiment != 'patches-B'")
    v = _verdicts(claims(t2))
    assert v["T2-weak"] == MISSING and v["T2-best-B"] == MISSING and v["T3-A"] == MISSING
    assert v["F6-generators"] == MISSING
    t2.to_csv(tmp_path / "table2.csv", index=False)
    df = claims_table(tmp_path)
    assert list(df.columns[-2:]) == ["verdict", "paper profile"] and (df["paper profile"] == "").all()
