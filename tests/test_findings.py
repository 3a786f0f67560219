"""The paper's findings check (dolos_core/findings.py) on hand-built tables."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dolos_core.findings import check_findings


def _t2(**iou):
    rows = [{"experiment": f"{m}-{s}", "iou": iou.get(f"{m}_{s}", 10.0)}
            for m in ("gradcam", "patches", "attention") for s in "ABC"]
    return pd.DataFrame(rows)


def _verdicts(findings):
    return {f.key: f.holds for f in findings}


def test_findings_hold_where_the_numbers_say_so():
    t2 = _t2(patches_A=30, patches_B=45, patches_C=60)          # B = 0.75 x C exactly
    t3 = pd.DataFrame({"experiment": ["patches-A-ffhq", "patches-B-ffhq", "patches-C-ffhq"],
                       "iou": [20.0, 40.0, 50.0]})
    cg = pd.DataFrame({"panel": ["single"] * 4, "in_domain": [True, True, False, False],
                       "iou": [60.0, 40.0, 10.0, 20.0]})
    v = _verdicts(check_findings(t2, t3, cg))
    assert v == {"1": True, "2": True, "3a": True, "3b": True}


def test_findings_fail_at_the_thresholds():
    t2 = _t2(patches_A=30, patches_B=44.9, patches_C=60, gradcam_B=50)   # gradcam best in B
    t3 = pd.DataFrame({"experiment": ["patches-A-ffhq", "patches-B-ffhq", "patches-C-ffhq"],
                       "iou": [20.0, 40.0, 60.0]})                       # C does not drop
    cg = pd.DataFrame({"panel": ["single", "single"], "in_domain": [True, False], "iou": [30.0, 30.0]})
    findings = check_findings(t2, t3, cg)
    assert _verdicts(findings) == {"1": False, "2": False, "3a": False, "3b": False}
    assert "B 44.9 vs C 60.0" in findings[1].line()


def test_missing_experiments_cannot_be_checked():
    t2 = _t2()
    t2.loc[t2.experiment == "patches-C", "iou"] = np.nan
    findings = check_findings(t2, None, None)
    assert all(f.holds is None for f in findings)
    assert all("cannot be checked" in f.line() for f in findings)
