"""The paper's claims against this run's evidence: one row per finding of Table 2, Table 3 and
Figure 6, with this run's numbers and their 95% intervals, the trivial baselines beside them,
and a verdict decided by the intervals (never by point estimates alone):

- ``holds``: the intervals separate in the direction the paper states;
- ``does not hold``: they separate in the other direction;
- ``inconclusive``: they overlap;
- ``cannot be checked``: an experiment the claim needs is missing.

The statements are the study's (docs/STUDY.md, "Findings"); the rules and their thresholds live
here and are tested on hand-built tables (``tests/test_claims.py``). Inputs are the CSVs the
evaluation writes: ``table2``, ``table3`` (IoU-lg with ``iou_ci_low/high``) and
``cross_generator_domains`` (``evaluate.domain_summary``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

METHODS = ("gradcam", "patches", "attention")
WEAK_RATIO = 0.75          # "B close to C": at least this share of C's IoU
# Second-hand context (DeCLIP, Smeu et al., WACV 2025, re-measuring Patch-Forensics on DOLOS)
DECLIP_PATCHES = {"in_domain": 69.0, "out_of_domain": 20.0}

HOLDS, FAILS, OPEN, MISSING = "holds", "does not hold", "inconclusive", "cannot be checked"


class Value:
    """A number with its 95% interval (all in %); NaN when missing."""

    def __init__(self, v=np.nan, lo=np.nan, hi=np.nan):
        self.v, self.lo, self.hi = float(v), float(lo), float(hi)

    @property
    def missing(self) -> bool:
        return bool(np.isnan(self.v))

    def scaled(self, k: float) -> "Value":
        return Value(self.v * k, self.lo * k, self.hi * k)

    def __str__(self) -> str:
        if self.missing:
            return "missing"
        if np.isnan(self.lo):
            return f"{self.v:.1f}"
        return f"{self.v:.1f} [{self.lo:.1f}, {self.hi:.1f}]"


def _value(df: pd.DataFrame | None, name: str, col: str = "iou", ci: str = "iou") -> Value:
    if df is None or name not in set(df["experiment"]):
        return Value()
    r = df.set_index("experiment").loc[name]
    return Value(r.get(col, np.nan), r.get(f"{ci}_ci_low", np.nan), r.get(f"{ci}_ci_high", np.nan))


def greater(a: Value, b: Value) -> str:
    """Verdict of "a > b" from the two intervals."""
    if a.missing or b.missing:
        return MISSING
    if a.lo > b.hi:
        return HOLDS
    if a.hi < b.lo:
        return FAILS
    return OPEN


def above_zero(d: Value) -> str:
    """Verdict of "d > 0" from d's own interval (a difference bootstrapped as one quantity)."""
    if d.missing:
        return MISSING
    return HOLDS if d.lo > 0 else FAILS if d.hi < 0 else OPEN


def _all(verdicts: list[str]) -> str:
    if MISSING in verdicts:
        return MISSING
    if all(v == HOLDS for v in verdicts):
        return HOLDS
    return FAILS if FAILS in verdicts else OPEN


def _baselines(t2: pd.DataFrame) -> str:
    parts = []
    for name, label in (("everything-fake", "all fake"), ("everything-real", "all real"),
                        ("mask-prior", "mask prior")):
        v = _value(t2, f"baseline-{name}")
        if not v.missing:
            parts.append(f"{label} {v}")
    return "; ".join(parts) or "missing"


def _domain(dom: pd.DataFrame | None, panel: str, quantity: str) -> Value:
    if dom is None:
        return Value()
    r = dom[(dom.panel == panel) & (dom.quantity == quantity)]
    if not len(r):
        return Value()
    r = r.iloc[0]
    return Value(r["iou"], r["ci_low"], r["ci_high"])


def claims(t2: pd.DataFrame, t3: pd.DataFrame | None = None,
           dom: pd.DataFrame | None = None) -> list[dict]:
    """The claims of one run: dicts with ``id``, ``source``, ``claim`` (the paper's statement),
    ``evidence`` (this run's values with intervals), ``baselines`` and ``verdict``."""
    base = _baselines(t2)
    rows = []
    for s in "ABC":
        v = {m: _value(t2, f"{m}-{s}") for m in METHODS}
        others = [m for m in METHODS if m != "patches"]
        verdict = _all([greater(v["patches"], v[m]) for m in others])
        rows.append({"id": f"T2-best-{s}", "source": "Table 2",
                     "claim": f"Patches localizes best of the three methods (setup {s})",
                     "evidence": ", ".join(f"{m} {v[m]}" for m in METHODS),
                     "baselines": base, "verdict": verdict})
    b, c = _value(t2, "patches-B"), _value(t2, "patches-C")
    rows.append({"id": "T2-weak", "source": "Table 2",
                 "claim": f"Weak labels cost Patches little: setup B reaches at least "
                          f"{WEAK_RATIO:g} of setup C's IoU",
                 "evidence": f"B {b}, {WEAK_RATIO:g} x C {c.scaled(WEAK_RATIO)}",
                 "baselines": base, "verdict": greater(b, c.scaled(WEAK_RATIO))})
    fake_all = _value(t2, "baseline-everything-fake")
    rows.append({"id": "T2-weak-above-baseline", "source": "Table 2 (ours)",
                 "claim": "Weakly supervised Patches (B) localizes above marking everything fake",
                 "evidence": f"B {b}", "baselines": base, "verdict": greater(b, fake_all)})
    b_cal = _value(t2, "patches-B", "iou_val_thr", "iou_val_thr")
    prior_cal = _value(t2, "baseline-mask-prior", "iou_val_thr", "iou_val_thr")
    rows.append({"id": "T2-weak-above-prior", "source": "Table 2 (ours)",
                 "claim": "Weakly supervised Patches (B) localizes above where fakes usually are: "
                          "both at their validation-chosen thresholds, B above the mask prior",
                 "evidence": f"B {b_cal}, mask prior {prior_cal}", "baselines": base,
                 "verdict": greater(b_cal, prior_cal)})
    for s in "ABC":
        home, away = _value(t2, f"patches-{s}"), _value(t3, f"patches-{s}-ffhq")
        rows.append({"id": f"T3-{s}", "source": "Table 3",
                     "claim": f"Localization drops across datasets: Patches trained on FFHQ is below "
                              f"Patches trained on CelebA-HQ, on CelebA-HQ (setup {s})",
                     "evidence": f"CelebA-HQ-trained {home}, FFHQ-trained {away}",
                     "baselines": base, "verdict": greater(home, away)})
    ind, outd = _domain(dom, "single", "in_domain"), _domain(dom, "single", "out_of_domain")
    drop = _domain(dom, "single", "drop")
    rows.append({"id": "F6-generators", "source": "Figure 6",
                 "claim": "Localization drops across generators: trained on one generator, "
                          "IoU on the other three is below IoU on its own",
                 "evidence": f"in-domain {ind}, out-of-domain {outd}, drop {drop}",
                 "baselines": base, "verdict": above_zero(drop)})
    held = _domain(dom, "all-but", "out_of_domain")
    rows.append({"id": "F6-more-generators", "source": "Figure 6 (our reading)",
                 "claim": "Training on three generators helps the held-out one: its IoU is above "
                          "the single-generator out-of-domain IoU",
                 "evidence": f"held-out (all-but) {held}, single out-of-domain {outd}",
                 "baselines": base, "verdict": greater(held, outd)})
    rows.append({"id": "context-DeCLIP", "source": "DeCLIP (WACV 2025), second-hand",
                 "claim": "Context, not a claim of the paper: Patch-Forensics re-measured on DOLOS "
                          f"averages ~{DECLIP_PATCHES['in_domain']:.0f} IoU in-domain and "
                          f"~{DECLIP_PATCHES['out_of_domain']:.0f} out-of-domain",
                 "evidence": f"this run: in-domain {ind}, out-of-domain {outd}",
                 "baselines": base, "verdict": "context"})
    return rows


def _read(d: Path, stem: str) -> pd.DataFrame | None:
    f = Path(d) / f"{stem}.csv"
    return pd.read_csv(f) if f.exists() else None


def claims_table(results_dir: str | Path, paper_dir: str | Path | None = None) -> pd.DataFrame:
    """The claims table of the run in ``results_dir`` (its CSVs), with a ``paper profile``
    column from ``paper_dir`` (``results/paper``) when that holds a Table 2, else empty."""
    t2 = _read(results_dir, "table2")
    if t2 is None:
        return pd.DataFrame(columns=["id", "source", "claim", "evidence", "baselines", "verdict",
                                     "paper profile"])
    df = pd.DataFrame(claims(t2, _read(results_dir, "table3"),
                             _read(results_dir, "cross_generator_domains")))
    paper_col = [""] * len(df)
    if paper_dir is not None and _read(paper_dir, "table2") is not None and Path(paper_dir) != Path(results_dir):
        pc = claims(_read(paper_dir, "table2"), _read(paper_dir, "table3"),
                    _read(paper_dir, "cross_generator_domains"))
        paper_col = [f"{r['verdict']}: {r['evidence']}" for r in pc]
    df["paper profile"] = paper_col
    return df


__all__ = ["claims", "claims_table", "Value", "greater", "above_zero", "HOLDS", "FAILS", "OPEN",
           "MISSING", "WEAK_RATIO"]
