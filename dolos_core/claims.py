"""The paper's claims (and a few of ours) against this run's evidence, decided on a bootstrap of
the difference each claim asserts.

Inputs: ``per_image.csv`` (``evaluate.per_image_table``): per fake test image and run, IoU-lg at
0.5 (``iou``) and at the run's validation-chosen threshold (``iou_val``), for every experiment
of Table 2, Table 3 and Figure 6 and every seed trained, and for the baselines everything-fake
and mask-prior on every fake test set; ``training.csv`` (``evaluate.convergence_table``), to
name the compared runs whose validation loss was still falling when they stopped
(``undertrained``: their numbers may move with a longer schedule).

Each claim is a quantity that is positive when the claim holds (e.g. Patches B minus 0.75 x
Patches C). It is computed from per-cell means (a cell: one experiment on one test set) and
bootstrapped: test images are resampled once per test set and shared by every cell on that set
(so comparisons on the same images are paired), and each experiment's seeds are resampled as
well when it has several. Verdicts:

- ``holds`` / ``does not hold``: the 95% interval of the quantity lies above / below 0;
- ``inconclusive``: it straddles 0;
- ``uninformative``: a model the claim compares did not learn on its own test set - at its
  validation-chosen threshold its IoU does not clear the everything-fake baseline or the mask
  prior at the prior's own validation-chosen threshold (paired intervals reaching 0); the note
  says which and by how much. Then the comparison says nothing about the claim;
- ``threshold-dependent``: the verdict at the paper's 0.5 (``verdict_05``) and the one at the
  validation-chosen thresholds (``verdict_val``, threshold-free in the sense that no fixed
  number decides it) disagree; both are shown;
- ``cannot be checked``: a cell the claim needs is missing.

The rules are tested on hand-built per-image tables (``tests/test_claims.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from .experiments import CELEBA_TEST, FIG6_GENERATORS
from .models import card, methods

WEAK_RATIO = 0.75          # "B close to C": at least this share of C's IoU
# Second-hand context (DeCLIP, Smeu et al., WACV 2025, re-measuring Patch-Forensics on DOLOS)
DECLIP_PATCHES = {"in_domain": 69.0, "out_of_domain": 20.0}

HOLDS, FAILS, OPEN, MISSING = "holds", "does not hold", "inconclusive", "cannot be checked"
UNINFORMATIVE, THRESHOLD = "uninformative", "threshold-dependent"
METRICS = ("iou", "iou_val")
FAKE_ALL, PRIOR = "baseline-everything-fake", "baseline-mask-prior"
TEST = CELEBA_TEST[0]


class Evidence:
    """Per-cell means of ``per_image.csv`` with their bootstrap replicates (see module doc)."""

    def __init__(self, per_image: pd.DataFrame, n_boot: int = 1000, seed: int = 0):
        self.n_boot = n_boot
        rng = np.random.default_rng(seed)
        self.cells: dict[tuple[str, str], dict[str, np.ndarray]] = {}
        self._img_w: dict[str, np.ndarray] = {}
        for ts, g in per_image.groupby("test_set", sort=True):
            images = np.array(sorted(g["image"].unique()))
            n = len(images)
            self._img_w[ts] = np.stack([np.bincount(rng.integers(0, n, n), minlength=n)
                                        for _ in range(n_boot)]).astype(float)
            for exp, ge in g.groupby("experiment", sort=True):
                seeds = sorted(ge["seed"].fillna(-1).unique())
                arrays = {}
                for metric in METRICS:
                    piv = (ge.assign(seed=ge["seed"].fillna(-1))
                           .pivot_table(index="seed", columns="image", values=metric, dropna=False)
                           .reindex(index=seeds, columns=images))
                    arrays[metric] = piv.to_numpy(dtype=float)
                self.cells[exp, ts] = arrays
        self._seed_w: dict[str, np.ndarray] = {}
        for exp in sorted({e for e, _ in self.cells}):
            s = next(a["iou"].shape[0] for (e, _), a in self.cells.items() if e == exp)
            self._seed_w[exp] = (np.stack([np.bincount(rng.integers(0, s, s), minlength=s) for _ in range(n_boot)])
                                 .astype(float) if s > 1 else np.ones((n_boot, 1)))

    def seeds(self, exp: str) -> int:
        return next((a["iou"].shape[0] for (e, _), a in self.cells.items() if e == exp), 0)

    def has(self, exp: str, ts: str, metric: str = "iou") -> bool:
        a = self.cells.get((exp, ts), {}).get(metric)
        return a is not None and bool(np.isfinite(a).any())

    def mean(self, exp: str, ts: str, metric: str) -> tuple[float, np.ndarray]:
        """The cell's mean (%) and its bootstrap replicates (NaN entries are left out)."""
        if not self.has(exp, ts, metric):
            return np.nan, np.full(self.n_boot, np.nan)
        v = self.cells[exp, ts][metric]
        ok = np.isfinite(v)
        v0 = np.where(ok, v, 0.0)
        sw, iw = self._seed_w[exp], self._img_w[ts]
        num = np.einsum("rs,si,ri->r", sw, v0, iw)
        den = np.einsum("rs,si,ri->r", sw, ok.astype(float), iw)
        return 100 * float(v0.sum() / ok.sum()), 100 * num / np.maximum(den, 1e-12)


Quantity = Callable[[Callable[[str, str], object]], object]


def _interval(ev: Evidence, q: Quantity, metric: str) -> tuple[float, float, float]:
    """Point value and 95% interval of a quantity of cell means under ``metric``."""
    point = q(lambda e, t: ev.mean(e, t, metric)[0])
    reps = np.asarray(q(lambda e, t: ev.mean(e, t, metric)[1]), dtype=float)
    if not np.isfinite(point) or not np.isfinite(reps).any():
        return np.nan, np.nan, np.nan
    lo, hi = np.nanquantile(reps, [0.025, 0.975])
    return float(point), float(lo), float(hi)


def sign_verdict(lo: float, hi: float) -> str:
    """Verdict of "the quantity is positive" from its interval."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return MISSING
    return HOLDS if lo > 0 else FAILS if hi < 0 else OPEN


def final_verdict(v05: str, vval: str, uninformative: list[str]) -> str:
    """The row's verdict from the two metrics' verdicts and the models that did not learn."""
    if MISSING in (v05, vval):
        return MISSING if v05 == MISSING else v05
    if uninformative:
        return UNINFORMATIVE
    return v05 if v05 == vval else THRESHOLD


def _fmt(v: tuple[float, float, float]) -> str:
    return "missing" if not np.isfinite(v[0]) else f"{v[0]:.1f} [{v[1]:.1f}, {v[2]:.1f}]"


def _own_cells(exp: str) -> list[str]:
    """The test sets on which a model's own learning is judged: its training generator(s)'
    test sets for Figure 6, CelebA-HQ Repaint-P2 otherwise."""
    if exp.startswith("patches-full-allbut-"):
        held = exp.removeprefix("patches-full-allbut-")
        return [f"celebahq/{g}" for g in FIG6_GENERATORS if g != held]
    if exp.startswith("patches-full-"):
        return [f"celebahq/{exp.removeprefix('patches-full-')}"]
    return [TEST]


def learned(ev: Evidence, exp: str) -> tuple[bool | None, str]:
    """Whether ``exp`` learned on its own test sets: at its validation-chosen threshold (0.5
    without one) its IoU clears the everything-fake baseline and the mask prior (at the prior's
    own validation-chosen threshold), both as paired 95% intervals above 0. None if missing."""
    cells = _own_cells(exp)
    metric = "iou_val" if all(ev.has(exp, t, "iou_val") for t in cells) else "iou"
    if not all(ev.has(exp, t, metric) for t in cells):
        return None, ""

    failed, mine = [], None
    for base, label, bmetric in ((FAKE_ALL, "everything fake", "iou"), (PRIOR, "the mask prior", "iou_val")):
        if not all(ev.has(base, t, bmetric) for t in cells):
            continue
        d, mine, theirs = _paired(ev, exp, base, cells, metric, bmetric)
        if not d[1] > 0:
            failed.append(f"{label} {_fmt(theirs)}")
    if not failed:
        return True, ""
    where = "IoU at its validation-chosen threshold" if metric == "iou_val" else "IoU at 0.5"
    return False, f"{exp} did not learn: {where} {_fmt(mine)} does not clear {' nor '.join(failed)}"


def _paired(ev: Evidence, exp: str, base: str, cells: list[str], metric: str, bmetric: str):
    """Intervals of mean(exp at ``metric``) - mean(base at ``bmetric``) over ``cells`` (paired on
    the images), of the first and of the second."""
    a = [ev.mean(exp, t, metric) for t in cells]
    b = [ev.mean(base, t, bmetric) for t in cells]
    out = []
    for point, reps in ((np.mean([x[0] for x in a]) - np.mean([x[0] for x in b]),
                         np.mean([x[1] for x in a], 0) - np.mean([x[1] for x in b], 0)),
                        (np.mean([x[0] for x in a]), np.mean([x[1] for x in a], 0)),
                        (np.mean([x[0] for x in b]), np.mean([x[1] for x in b], 0))):
        lo, hi = np.nanquantile(reps, [0.025, 0.975])
        out.append((float(point), float(lo), float(hi)))
    return out


@dataclass(frozen=True)
class Claim:
    """One claim: ``quantity`` (of cell means, positive when it holds), the cells it shows, the
    models whose learning it needs, the test sets whose baselines it shows."""

    id: str
    source: str            # "paper" or "ours"
    claim: str
    quantity: Quantity
    shown: tuple[tuple[str, str], ...]
    models: tuple[str, ...]
    test_sets: tuple[str, ...] = (TEST,)
    unit: str = "IoU points"


def _t2(m: str, s: str) -> tuple[str, str]:
    return (f"{m}-{s}", TEST)


def _diag(g: str) -> tuple[str, str]:
    return (f"patches-full-{g}", f"celebahq/{g}")


def _held(g: str) -> tuple[str, str]:
    return (f"patches-full-allbut-{g}", f"celebahq/{g}")


def _off() -> list[tuple[str, str]]:
    return [(f"patches-full-{g}", f"celebahq/{h}") for g in FIG6_GENERATORS for h in FIG6_GENERATORS if g != h]


def _mean_of(cells):
    return lambda m: sum(m(*c) for c in cells) / len(cells)


def claim_list() -> list[Claim]:
    """The claims checked, the paper's first (docs/STUDY.md, "Findings")."""
    out = []
    # the paper's rivals (Grad-CAM, Attention, and any other method not marked as ours)
    rivals = [m for m in methods() if m != "patches" and not card(m).beyond_paper]
    count = {2: "two", 3: "three", 4: "four"}.get(len(rivals) + 1, str(len(rivals) + 1))
    for s in "ABC":
        p, others = _t2("patches", s), tuple(_t2(r, s) for r in rivals if _has_setup(r, s))
        out.append(Claim(f"T2-best-{s}", "paper", f"Patches localizes best of the {count} methods (setup {s})",
                         lambda m, p=p, others=others: np.min([m(*p) - m(*o) for o in others], axis=0),
                         (p, *others), (p[0], *(o[0] for o in others))))
    b, c = _t2("patches", "B"), _t2("patches", "C")
    out.append(Claim("T2-weak", "paper", f"Weak labels cost Patches little: setup B reaches at least "
                     f"{WEAK_RATIO:g} of setup C's IoU", lambda m: m(*b) - WEAK_RATIO * m(*c),
                     (b, c), (b[0], c[0])))
    for s in "ABC":
        home, away = _t2("patches", s), (f"patches-{s}-ffhq", TEST)
        out.append(Claim(f"T3-{s}", "paper", f"Localization drops across datasets: Patches trained on FFHQ "
                         f"is below Patches trained on CelebA-HQ, on CelebA-HQ (setup {s})",
                         lambda m, h=home, w=away: m(*h) - m(*w), (home, away), (home[0], away[0])))
    diag, off = [_diag(g) for g in FIG6_GENERATORS], _off()
    singles = tuple(f"patches-full-{g}" for g in FIG6_GENERATORS)
    fig6_sets = tuple(f"celebahq/{g}" for g in FIG6_GENERATORS)
    out.append(Claim("F6-generators", "paper", "Localization drops across generators: trained on one generator, "
                     "IoU on the other three is below IoU on its own",
                     lambda m: _mean_of(diag)(m) - _mean_of(off)(m), tuple(diag), singles, fig6_sets))

    def frac_drop(hi, lo):
        def drop(m):            # a drop as a fraction of ``hi``; NaN where ``hi`` is 0 (nothing to lose)
            top = np.asarray(hi(m), dtype=float)
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.where(top > 0, (top - np.asarray(lo(m), dtype=float)) / np.where(top > 0, top, 1), np.nan)
        return drop

    weak = frac_drop(lambda m: m(*c), lambda m: m(*b))
    data = frac_drop(lambda m: m(*c), lambda m: m("patches-C-ffhq", TEST))
    gen = frac_drop(_mean_of(diag), _mean_of(off))
    out.append(Claim("headline", "paper", "Patches is less sensitive to weak supervision than to a change of "
                     "dataset or of generator: its relative drop from C to B is below both the dataset drop "
                     "(C to FFHQ-trained C) and the generator drop (Figure 6, in to out of domain)",
                     lambda m: 100 * np.minimum(data(m) - weak(m), gen(m) - weak(m)),
                     (b, c, ("patches-C-ffhq", TEST)), (b[0], c[0], "patches-C-ffhq", *singles),
                     (TEST, *fig6_sets), unit="points of C's IoU (%)"))
    ldm = "ldm"
    others = [g for g in FIG6_GENERATORS if g != ldm]
    out.append(Claim("F6-LDM-hardest", "paper", "LDM is the hardest generator in domain: trained and tested on "
                     "LDM, Patches scores below each other generator's in-domain cell",
                     lambda m: np.minimum.reduce([m(*_diag(g)) - m(*_diag(ldm)) for g in others]),
                     tuple(diag), singles, fig6_sets))
    out.append(Claim("F6-LDM-hardest-held-out", "paper", "LDM is the hardest held-out generator: trained on the "
                     "other three, Patches scores lower on LDM than on any other held-out generator",
                     lambda m: np.minimum.reduce([m(*_held(g)) - m(*_held(ldm)) for g in others]),
                     tuple(_held(g) for g in FIG6_GENERATORS),
                     tuple(f"patches-full-allbut-{g}" for g in FIG6_GENERATORS), fig6_sets))
    out.append(Claim("T2-weak-above-baseline", "ours", "Weakly supervised Patches (B) localizes above marking "
                     "everything fake", lambda m: m(*b) - m(FAKE_ALL, TEST), (b, (FAKE_ALL, TEST)), ()))
    out.append(Claim("T2-weak-above-prior", "ours", "Weakly supervised Patches (B) localizes above where fakes "
                     "usually are (the mask prior)", lambda m: m(*b) - m(PRIOR, TEST), (b, (PRIOR, TEST)), ()))
    held = [_held(g) for g in FIG6_GENERATORS]

    def gain_per_generator(m):      # the smallest gain: a mean could be carried by two near-twin generators
        return np.minimum.reduce([m(*_held(g)) - _mean_of([(f"patches-full-{h}", f"celebahq/{g}")
                                                            for h in FIG6_GENERATORS if h != g])(m)
                                  for g in FIG6_GENERATORS])
    out.append(Claim("F6-more-generators", "ours", "Training on three generators helps every held-out one: on each "
                     "generator, the model trained on the other three scores above the mean of the single-generator "
                     "models trained on another generator (the smallest of the four gains)",
                     gain_per_generator, tuple(held), tuple(e for e, _ in held) + singles, fig6_sets))
    for m in methods():           # ours: a method that changes only the weak loss of another
        base = card(m).full_from
        if base is None:
            continue
        mine, theirs = _t2(m, "B"), _t2(base, "B")
        out.append(Claim(f"T2-{m}-B", "ours", f"{card(m).label}'s weak loss localizes better than the paper's "
                         f"weak {card(base).label} with the same labels and network (setup B)",
                         lambda f, a=mine, b=theirs: f(*a) - f(*b), (mine, theirs), (mine[0], theirs[0])))
    return out


def _has_setup(method: str, setup: str) -> bool:
    """Whether ``method`` trains its own setup (a method whose full supervision is another's has
    no setup C of its own)."""
    return not (setup == "C" and card(method).full_from)


def _baselines(ev: Evidence, test_sets) -> str:
    parts = []
    for ts in test_sets:
        fa = _interval(ev, lambda m, t=ts: m(FAKE_ALL, t), "iou")
        pr = _interval(ev, lambda m, t=ts: m(PRIOR, t), "iou_val")
        parts.append(f"{ts.split('/')[1]}: everything fake {_fmt(fa)}, mask prior at its threshold {_fmt(pr)}")
    return "; ".join(parts)


def assess(ev: Evidence, c: Claim, undertrained: set[str] = frozenset()) -> dict:
    """One claims row (see ``claims_table`` for the columns); ``undertrained``: the experiments
    whose validation loss was still falling when training stopped (``evaluate.convergence``)."""
    q = {m: _interval(ev, c.quantity, m) for m in METRICS}
    v05, vval = sign_verdict(*q["iou"][1:]), sign_verdict(*q["iou_val"][1:])
    notes = []
    for exp in c.models:
        ok, note = learned(ev, exp)
        if ok is False:
            notes.append(note)
    values = "; ".join(f"{e} on {t.split('/')[1]}: {_fmt(_interval(ev, lambda m, e=e, t=t: m(e, t), 'iou'))} "
                       f"at 0.5, {_fmt(_interval(ev, lambda m, e=e, t=t: m(e, t), 'iou_val'))} at val."
                       for e, t in c.shown)
    seeds = sorted({ev.seeds(e) for e in c.models} or {ev.seeds(c.shown[0][0])})
    return {"id": c.id, "source": c.source, "claim": c.claim,
            "quantity_05": q["iou"][0], "quantity_05_low": q["iou"][1], "quantity_05_high": q["iou"][2],
            "quantity_val": q["iou_val"][0], "quantity_val_low": q["iou_val"][1],
            "quantity_val_high": q["iou_val"][2], "unit": c.unit,
            "verdict_05": v05, "verdict_val": vval, "verdict": final_verdict(v05, vval, notes),
            "values": values, "baselines": _baselines(ev, c.test_sets),
            "seeds": "-".join(str(s) for s in (seeds[0], seeds[-1])) if seeds[0] != seeds[-1] else str(seeds[0]),
            "note": "; ".join(notes),
            "undertrained": " ".join(sorted(({e for e, _ in c.shown} | set(c.models)) & set(undertrained)))}


COLUMNS = ["id", "source", "claim", "verdict", "verdict_05", "verdict_val", "quantity_05",
           "quantity_05_low", "quantity_05_high", "quantity_val", "quantity_val_low",
           "quantity_val_high", "unit", "values", "baselines", "seeds", "note", "undertrained",
           "geometry"]

# The claims about weak supervision, which the geometry stage measures again at larger inputs.
GEOMETRY_CLAIMS = ("T2-weak", "headline")


def geometry_column(geo: pd.DataFrame) -> dict[str, str]:
    """The second value the geometry stage gives the weak-supervision claims: Patches' B/C at
    the largest input side (at 0.5 and at the validation-chosen threshold, with its seed-and-
    image interval), and which side a reader should weigh: the largest when B/C rises with the
    side (its receptive field covers a share of the image closer to the paper's), else the
    study's own."""
    from .geometry import cell as _gcell, fmt_cell as gfmt, trend

    sizes = sorted(geo["size"].unique())
    if len(sizes) < 2:
        return {}
    lo, hi = sizes[0], sizes[-1]
    share = 100 * float(geo[geo["size"] == hi]["rf_share"].iloc[0])
    ratio = (f"at {hi} px (receptive field {share:.0f}% of the side) Patches B/C is "
             f"{gfmt(_gcell(geo, hi, 'B/C', 'iou'), True)} at 0.5 and "
             f"{gfmt(_gcell(geo, hi, 'B/C', 'iou_val'), True)} at the validation-chosen threshold "
             f"(at {lo} px: {gfmt(_gcell(geo, lo, 'B/C', 'iou'), True)} and "
             f"{gfmt(_gcell(geo, lo, 'B/C', 'iou_val'), True)})")
    t05, tval = trend(geo, "iou"), trend(geo, "iou_val")
    if "rises" in (t05, tval):
        weigh = (f"B/C rises with the side ({t05} at 0.5, {tval} calibrated): weigh the {hi} px value, "
                 f"the geometry nearer the paper's")
    else:
        weigh = (f"B/C does not rise with the side ({t05} at 0.5, {tval} calibrated): the geometry is "
                 f"not what sets it; weigh this study's value")
    return {"T2-weak": f"{ratio}; the claim asks for B/C at least {WEAK_RATIO:g}; {weigh}",
            "headline": f"{ratio}, a weak drop of 1 - B/C; {weigh}"}


def claims(per_image: pd.DataFrame, n_boot: int = 1000, seed: int = 0,
           training: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every claim of ``claim_list`` assessed on one run's per-image table, plus the DeCLIP
    context row (not a claim of the paper). ``training``: ``evaluate.convergence_table``; the
    ``undertrained`` column names the compared runs still improving when they stopped."""
    ev = Evidence(per_image, n_boot, seed)
    under = set(training.loc[training["undertrained"].astype(bool), "experiment"]) if training is not None else set()
    rows = [assess(ev, c, under) for c in claim_list()]
    ind = _interval(ev, _mean_of([_diag(g) for g in FIG6_GENERATORS]), "iou")
    outd = _interval(ev, _mean_of(_off()), "iou")
    rows.append({"id": "context-DeCLIP", "source": "context", "verdict": "context",
                 "claim": "Context, not a claim of the paper: Patch-Forensics re-measured on DOLOS (DeCLIP, "
                          f"WACV 2025) averages ~{DECLIP_PATCHES['in_domain']:.0f} IoU in-domain and "
                          f"~{DECLIP_PATCHES['out_of_domain']:.0f} out-of-domain",
                 "values": f"this run: in-domain {_fmt(ind)}, out-of-domain {_fmt(outd)}"})
    return pd.DataFrame(rows).reindex(columns=COLUMNS)


def claims_table(results_dir: str | Path, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """The claims of the run whose ``per_image.csv`` is in ``results_dir`` (empty without it)."""
    f = Path(results_dir) / "per_image.csv"
    if not f.exists():
        return pd.DataFrame(columns=COLUMNS)
    t = Path(results_dir) / "training.csv"
    out = claims(pd.read_csv(f), n_boot, seed, pd.read_csv(t) if t.exists() else None)
    g = Path(results_dir) / "geometry.csv"
    if g.exists():
        out["geometry"] = out["geometry"].astype(object)
        for cid, text in geometry_column(pd.read_csv(g)).items():
            out.loc[out["id"] == cid, "geometry"] = text
    return out


def verdict_counts(df: pd.DataFrame) -> str:
    """"the paper's 9: 4 hold, ...; ours 3: ..." - the paper's claims counted apart from ours."""
    parts = []
    for source, label in (("paper", "the paper's"), ("ours", "ours")):
        d = df[df.source == source]
        if len(d):
            counts = d["verdict"].value_counts()
            parts.append(f"{label} {len(d)}: " + ", ".join(f"{n} {v}" for v, n in counts.items()))
    return "; ".join(parts)


__all__ = ["claims", "claims_table", "claim_list", "geometry_column", "Evidence", "assess", "learned", "sign_verdict",
           "final_verdict", "verdict_counts", "HOLDS", "FAILS", "OPEN", "MISSING", "UNINFORMATIVE",
           "THRESHOLD", "WEAK_RATIO"]
