"""The paper's findings, checked against a run's numbers.

Each finding is a statement of the DOLOS paper and a rule that decides, from Table 2, Table 3
and the cross-generator table of *this* run, whether it holds. The rules and their thresholds
live here (tested in ``tests/test_findings.py``), not in a notebook. A finding whose
experiments are missing is reported as "cannot be checked", never as holding.

Rules:

1. Patches localizes best: in every setup A, B, C its IoU is the highest of the three methods.
2. Patches loses little from weak labels: setup B's IoU is at least ``WEAK_RATIO`` (0.75) of
   setup C's.
3a. Localization drops across datasets: in every setup, Patches trained on FFHQ scores a lower
    IoU on CelebA-HQ than Patches trained on CelebA-HQ.
3b. Localization drops across generators: in the single-generator panel of Figure 6, the mean
    out-of-domain IoU is below the mean in-domain IoU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

METHODS = ("gradcam", "patches", "attention")
WEAK_RATIO = 0.75


@dataclass(frozen=True)
class Finding:
    key: str
    statement: str
    holds: bool | None          # None: cannot be checked (missing experiments)
    evidence: str

    @property
    def verdict(self) -> str:
        return {True: "holds", False: "does not hold"}.get(
            self.holds, "cannot be checked (missing experiments)")

    def line(self) -> str:
        return f"{self.key}. {self.statement}: {self.verdict} - {self.evidence}"


def _get(series: pd.Series, name: str) -> float:
    v = series.get(name, np.nan)
    return float(v) if v is not None else np.nan


def check_findings(table2: pd.DataFrame, table3: pd.DataFrame | None = None,
                   cross_generator: pd.DataFrame | None = None) -> list[Finding]:
    """Every finding's verdict from this run's tables (``evaluate.table2``, ``table3``,
    ``cross_generator``; IoU-lg in %)."""
    iou = table2.set_index("experiment")["iou"]
    out = []
    bests = {}
    for setup in "ABC":
        vals = {m: _get(iou, f"{m}-{setup}") for m in METHODS}
        bests[setup] = None if any(np.isnan(v) for v in vals.values()) else max(vals, key=vals.get)
    holds = None if any(b is None for b in bests.values()) else all(b == "patches" for b in bests.values())
    out.append(Finding("1", "Patches localizes best (in every setup)", holds,
                       "best per setup: " + ", ".join(f"{s} {b}" for s, b in bests.items())))
    b, c = _get(iou, "patches-B"), _get(iou, "patches-C")
    holds = None if np.isnan(b) or np.isnan(c) else bool(b >= WEAK_RATIO * c)
    out.append(Finding("2", f"Patches loses little from weak labels (B at least {WEAK_RATIO:g}x C)",
                       holds, f"B {b:.1f} vs C {c:.1f}"))
    t3 = table3.set_index("experiment")["iou"] if table3 is not None else pd.Series(dtype=float)
    pairs = [(_get(iou, f"patches-{s}"), _get(t3, f"patches-{s}-ffhq")) for s in "ABC"]
    holds = None if any(np.isnan(a) or np.isnan(f) for a, f in pairs) else all(f < a for a, f in pairs)
    out.append(Finding("3a", "Localization drops across datasets (FFHQ-trained below "
                       "CelebA-HQ-trained, each setup)", holds,
                       ", ".join(f"{s}: {a:.1f} -> {f:.1f}" for s, (a, f) in zip("ABC", pairs))))
    holds, evidence = None, "no single-generator results"
    if cross_generator is not None and cross_generator["iou"].notna().any():
        from .evaluate import domain_averages

        avg = domain_averages(cross_generator)
        if "single" in avg.index and {"in_domain", "out_of_domain"} <= set(avg.columns):
            ind, outd = avg.loc["single", "in_domain"], avg.loc["single", "out_of_domain"]
            if not (np.isnan(ind) or np.isnan(outd)):
                holds, evidence = bool(outd < ind), f"in {ind:.1f} vs out {outd:.1f}"
    out.append(Finding("3b", "Localization drops across generators (out-of-domain below "
                       "in-domain)", holds, evidence))
    return out
