"""The paper's claims (and a few of ours) against this run's evidence, decided on a bootstrap of
the difference each claim asserts.

Inputs: ``per_image.csv`` (``evaluate.per_image_table``): per fake test image and run, IoU-lg at
0.5 (``iou``) and at the run's validation-chosen threshold (``iou_val``), for every experiment
of Table 2, Table 3 and Figure 6 and every seed trained, and for the baselines everything-fake
and mask-prior on every fake test set; ``training.csv`` (``evaluate.convergence_table``), to
name the compared runs whose validation loss was still falling when they stopped
(``undertrained``: their numbers may move with a longer schedule).

Each claim is a quantity that is positive when the claim holds (e.g. Patches B minus 0.75 x
Patches C), made of one or more *parts*, one per cell its wording speaks of ("below its own on
the other three": one part per pair); the claim's quantity is the weakest part (their minimum),
never a mean that one good cell could carry. It is computed from per-cell means (a cell: one
experiment on one test set) and bootstrapped: test images are resampled once per test set and
shared by every cell on that set (so comparisons on the same images are paired), and each
experiment's seeds are resampled as well when it has several. A claim names its *subjects* (the
models whose own quality it is about) apart from its *references* (models it compares them with
or measures them against). Verdicts:

- ``holds`` / ``does not hold``: the 95% interval of the quantity lies above / below 0. A
  subject that did not learn does not change this: its failure is the answer (the note says so,
  and "undertrained" when its validation loss was still falling);
- ``inconclusive``: it straddles 0;
- ``uninformative``: a reference did not learn (the learning test below), or the weakest part
  compares with a cell at or below its trivial baselines (IoU not above both marking everything
  fake and the mask prior at the prior's validation-chosen threshold, as paired intervals); the
  note names the cell and gives the verdict without that part;
- ``no comparison``: every part compares with a baseline whose map is empty at that threshold
  (the mask prior at 0.5 marks nothing); that threshold's verdict is set aside and the other
  decides;
- ``threshold-dependent``: the verdict at the paper's 0.5 (``verdict_05``) and the one at the
  validation-chosen thresholds (``verdict_val``) disagree; both are shown;
- ``cannot be checked``: a cell the claim needs is missing.

The learning test (one, threshold-free, the same for every claim): a model learned when its
per-image pixel AUC on its own test sets (mean over fake images: how well its map ranks the
fake pixels of an image above the real ones, whatever threshold) is above the mask prior's and
above 0.5, as paired 95% intervals. A run whose validation-chosen threshold sits at the search
grid's edge (``metrics.at_grid_edge``) is named in the note: its calibrated IoU is a lower bound.

The rules are tested on hand-built per-image tables (``tests/test_claims.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from .evaluate import seed_t_interval
from .experiments import CELEBA_TEST, FIG6_GENERATORS, TRANSFER_TEST
from .geometry import cell as _gcell
from .geometry import fmt_cell as gfmt
from .geometry import trend
from .metrics import at_grid_edge
from .models import card, methods

# "B close to C": at least this share of C's IoU. Our reading of the paper's "weak labels cost
# little" (it gives no number); the claims that use it say what 0.6 and 0.9 would decide
# (``RATIO_ALTERNATIVES``, in their note).
WEAK_RATIO = 0.75
RATIO_ALTERNATIVES = (0.6, 0.9)
NOTE_SEP = " | "           # between a claim's notes in claims.csv (a note may hold "; ")
# Second-hand context (DeCLIP, Smeu et al., WACV 2025, re-measuring Patch-Forensics on DOLOS)
DECLIP_PATCHES = {"in_domain": 69.0, "out_of_domain": 20.0}

HOLDS, FAILS, OPEN, MISSING = "holds", "does not hold", "inconclusive", "cannot be checked"
UNINFORMATIVE, THRESHOLD = "uninformative", "threshold-dependent"
NO_COMPARISON, NOT_TESTABLE = "no comparison", "not testable here"
# The two thresholds every claim is decided at: the paper's 0.5, and each run's own (the one its
# supervision can choose: without masks for weak runs, with validation masks for full runs and
# for the baselines, which are built from masks; evaluate.supervised_threshold).
METRICS = ("iou", "iou_sup")
WHERE = {"iou": "at 0.5", "iou_sup": "at each run's own threshold"}
FAKE_ALL, PRIOR = "baseline-everything-fake", "baseline-mask-prior"
TEST = CELEBA_TEST[0]


class Evidence:
    """Per-cell means of ``per_image.csv`` with their bootstrap replicates (see module doc)."""

    def __init__(self, per_image: pd.DataFrame, n_boot: int = 1000, seed: int = 0):
        self.n_boot = n_boot
        rng = np.random.default_rng(seed)
        self.cells: dict[tuple[str, str], dict[str, np.ndarray]] = {}
        self.thresholds: dict[str, set[float]] = {}
        self._img_w: dict[str, np.ndarray] = {}
        for ts, g in per_image.groupby("test_set", sort=True):
            images = np.array(sorted(g["image"].unique()))
            n = len(images)
            self._img_w[ts] = np.stack([np.bincount(rng.integers(0, n, n), minlength=n)
                                        for _ in range(n_boot)]).astype(float)
            for exp, ge in g.groupby("experiment", sort=True):
                seeds = sorted(ge["seed"].fillna(-1).unique())
                arrays = {}
                for metric in METRICS + ("auc", "iou_val"):
                    if metric not in ge:
                        continue
                    piv = (ge.assign(seed=ge["seed"].fillna(-1))
                           .pivot_table(index="seed", columns="image", values=metric, dropna=False)
                           .reindex(index=seeds, columns=images))
                    arrays[metric] = piv.to_numpy(dtype=float)
                self.cells[exp, ts] = arrays
                if "threshold" in ge:
                    self.thresholds.setdefault(exp, set()).update(ge["threshold"].dropna().astype(float))
        self._seed_w: dict[str, np.ndarray] = {}
        for exp in sorted({e for e, _ in self.cells}):
            s = next(a["iou"].shape[0] for (e, _), a in self.cells.items() if e == exp)
            self._seed_w[exp] = (np.stack([np.bincount(rng.integers(0, s, s), minlength=s) for _ in range(n_boot)])
                                 .astype(float) if s > 1 else np.ones((n_boot, 1)))

    def seed_mean(self, exp: str, ts: str, metric: str, k: int) -> float:
        """The cell's mean (%) under its ``k``-th seed (a cell without seeds, a baseline: its mean)."""
        if not self.has(exp, ts, metric):
            return np.nan
        v = self.cells[exp, ts][metric]
        row = v[k] if v.shape[0] > 1 else v[0]
        return 100 * float(np.nanmean(row)) if np.isfinite(row).any() else np.nan

    def per_seed(self, q: "Quantity", metric: str) -> np.ndarray:
        """The quantity computed seed by seed (each trained cell at its k-th seed, k = 0 .. the
        fewest seeds of the trained cells it reads - 1); empty when a cell it reads has one seed."""
        used: set = set()
        q(lambda e, t: used.add((e, t)) or 0.0)
        counts = [self.cells[c]["iou"].shape[0] for c in used if c in self.cells and not c[0].startswith("baseline-")]
        n = min(counts) if counts else 0
        if n < 2:
            return np.array([])
        return np.array([float(q(lambda e, t, k=k: self.seed_mean(e, t, metric, k))) for k in range(n)])

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
    """Point value and 95% interval of a quantity of cell means under ``metric``: the bootstrap
    over seeds and images, widened to Student's t interval of the quantity computed seed by seed
    where the cells have several seeds (a bootstrap over 3 seeds cannot leave their range; the t
    interval says what 3 seeds can tell)."""
    point = q(lambda e, t: ev.mean(e, t, metric)[0])
    reps = np.asarray(q(lambda e, t: ev.mean(e, t, metric)[1]), dtype=float)
    if not np.isfinite(point) or not np.isfinite(reps).any():
        return np.nan, np.nan, np.nan
    lo, hi = np.nanquantile(reps, [0.025, 0.975])
    per_seed = ev.per_seed(q, metric)
    if len(per_seed) > 1:
        tlo, thi = seed_t_interval(per_seed)
        lo, hi = min(lo, tlo), max(hi, thi)
    return float(point), float(lo), float(hi)


def sign_verdict(lo: float, hi: float) -> str:
    """Verdict of "the quantity is positive" from its interval."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return MISSING
    return HOLDS if lo > 0 else FAILS if hi < 0 else OPEN


def final_verdict(v05: str, vval: str, uninformative: list[str]) -> str:
    """The row's verdict from the two thresholds' verdicts and the references that did not
    learn: a threshold with no comparison is set aside; a missing cell or an uninformative
    threshold decides; otherwise agreement, or ``threshold-dependent``."""
    if MISSING in (v05, vval):
        return MISSING
    if uninformative:
        return UNINFORMATIVE
    vs = [v for v in (v05, vval) if v != NO_COMPARISON]
    if not vs:
        return NO_COMPARISON
    if UNINFORMATIVE in vs:
        return UNINFORMATIVE
    return vs[0] if len(set(vs)) == 1 else THRESHOLD


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
    """The learning test (module doc): ``exp``'s per-image pixel AUC on its own test sets above
    the mask prior's and above 0.5 (a constant map's), as paired 95% intervals. None if missing."""
    cells = _own_cells(exp)
    if not all(ev.has(exp, t, "auc") for t in cells):
        return None, ""
    mine = _cells_mean(ev, [(exp, t) for t in cells], "auc")
    failed = []
    if all(ev.has(PRIOR, t, "auc") for t in cells):
        d, _, theirs = _paired(ev, [(exp, t) for t in cells], [(PRIOR, t) for t in cells], "auc", "auc")
        if not d[1] > 0:
            failed.append(f"the mask prior's {_fmt(theirs)}")
    if not mine[1] > 50:
        failed.append("a constant map's 50.0")
    if not failed:
        return True, ""
    return False, f"{exp} did not learn: per-image pixel AUC {_fmt(mine)} does not clear {' nor '.join(failed)}"


def _cells_mean(ev: Evidence, cells, metric: str) -> tuple[float, float, float]:
    """The mean over ``cells`` under ``metric``, with its 95% interval."""
    got = [ev.mean(e, t, metric) for e, t in cells]
    reps = np.mean([g[1] for g in got], 0)
    lo, hi = np.nanquantile(reps, [0.025, 0.975]) if np.isfinite(reps).any() else (np.nan, np.nan)
    return float(np.mean([g[0] for g in got])), float(lo), float(hi)


def at_floor(ev: Evidence, cells, metric: str) -> tuple[bool, str]:
    """Whether the mean of ``cells`` (experiment, test set) under ``metric`` is at or below its
    trivial baselines at the same threshold, the same way every claim compares with them:
    not above marking everything fake nor above the mask prior, as paired 95% intervals; a
    baseline whose map is empty at that threshold (the mask prior at 0.5) is no comparison and
    is left out. Baseline cells are never "at floor" (they are the floor). Returns the flag and
    what it rests on."""
    cells = list(cells)
    if any(e.startswith("baseline-") for e, _ in cells) or not all(ev.has(e, t, metric) for e, t in cells):
        return False, ""
    below = []
    for base, label in ((FAKE_ALL, "everything fake"), (PRIOR, "the mask prior")):
        if any(_empty(ev, (base, t), metric) for _, t in cells):
            continue
        if all(ev.has(base, t, metric) for _, t in cells):
            d, _, theirs = _paired(ev, cells, [(base, t) for _, t in cells], metric, metric)
            if not d[1] > 0:
                below.append(f"{label} {_fmt(theirs)}")
    if not below:
        return False, ""
    name = " and ".join(f"{e} on {t.split('/')[1]}" for e, t in cells)
    mine = _cells_mean(ev, cells, metric)
    return True, f"{name} {_fmt(mine)} does not clear {' nor '.join(below)}"


def _empty(ev: Evidence, cell: tuple[str, str], metric: str) -> bool:
    """A baseline cell whose map marks nothing at this threshold (every image's IoU 0): a
    comparison with it is no comparison."""
    e, t = cell
    if not e.startswith("baseline-") or not ev.has(e, t, metric):
        return False
    v = ev.cells[e, t][metric]
    return bool(np.all(v[np.isfinite(v)] == 0))


def _paired(ev: Evidence, cells, base_cells, metric: str, bmetric: str):
    """Intervals of mean(``cells`` at ``metric``) - mean(``base_cells`` at ``bmetric``) (paired on
    the images), of the first and of the second."""
    a = [ev.mean(e, t, metric) for e, t in cells]
    b = [ev.mean(e, t, bmetric) for e, t in base_cells]
    out = []
    for point, reps in ((np.mean([x[0] for x in a]) - np.mean([x[0] for x in b]),
                         np.mean([x[1] for x in a], 0) - np.mean([x[1] for x in b], 0)),
                        (np.mean([x[0] for x in a]), np.mean([x[1] for x in a], 0)),
                        (np.mean([x[0] for x in b]), np.mean([x[1] for x in b], 0))):
        lo, hi = np.nanquantile(reps, [0.025, 0.975])
        out.append((float(point), float(lo), float(hi)))
    return out


@dataclass(frozen=True)
class Part:
    """One cell-level comparison of a claim: ``quantity`` (positive when it holds) and ``refs``,
    groups of cells it compares with (each group's mean): if one is at its trivial baselines
    while this part is the claim's weakest, the claim is uninformative at that threshold."""

    label: str
    quantity: Quantity
    refs: tuple[tuple[tuple[str, str], ...], ...] = ()
    # the contrasts it tests, e.g. "dataset shift"; a data root declares those it cannot test
    # (DOLOS-mini's build record, ``data.mini.NOT_TESTABLE``)
    needs: tuple[str, ...] = ()


def _weakest(parts) -> Quantity:
    return lambda m: np.minimum.reduce([np.asarray(p.quantity(m), dtype=float) for p in parts])


@dataclass(frozen=True)
class Claim:
    """One claim: its ``parts`` (the quantity is the weakest), the cells it shows, its
    ``subjects`` (models whose own quality it is about) and ``references`` (models it compares
    them with: one that did not learn makes it uninformative), the test sets whose baselines
    it shows."""

    id: str
    source: str            # "paper" or "ours"
    claim: str
    parts: tuple[Part, ...]
    shown: tuple[tuple[str, str], ...]
    subjects: tuple[str, ...]
    references: tuple[str, ...] = ()
    test_sets: tuple[str, ...] = (TEST,)
    unit: str = "IoU points"
    needs: tuple[str, ...] = ()          # contrasts every part tests (a part may add its own)
    # (B, C) cells of a claim "B reaches WEAK_RATIO of C": its note says what RATIO_ALTERNATIVES decide
    ratio_of: tuple[tuple[str, str], tuple[str, str]] | None = None

    @property
    def quantity(self) -> Quantity:
        return _weakest(self.parts)

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.subjects + self.references))


def _one(*cells) -> tuple[tuple[tuple[str, str], ...], ...]:
    """``Part.refs`` of single cells."""
    return tuple((c,) for c in cells)


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
                         tuple(Part(f"patches-{s} - {o[0]}", lambda m, p=p, o=o: m(*p) - m(*o), _one(o))
                               for o in others),
                         (p, *others), (p[0],), tuple(o[0] for o in others)))
    b, c = _t2("patches", "B"), _t2("patches", "C")
    out.append(Claim("T2-weak", "paper", f"Weak labels cost Patches little: setup B reaches at least "
                     f"{WEAK_RATIO:g} of setup C's IoU",
                     (Part(f"patches-B - {WEAK_RATIO:g} patches-C", lambda m: m(*b) - WEAK_RATIO * m(*c), _one(c)),),
                     (b, c), (b[0],), (c[0],), ratio_of=(b, c)))
    for s in "ABC":
        home, away = _t2("patches", s), (f"patches-{s}-ffhq", TEST)
        out.append(Claim(f"T3-{s}", "paper", f"Localization drops across datasets: Patches trained on FFHQ "
                         f"is below Patches trained on CelebA-HQ, on CelebA-HQ (setup {s})",
                         (Part(f"patches-{s} - patches-{s}-ffhq", lambda m, h=home, w=away: m(*h) - m(*w),
                               _one(home)),),
                         (home, away), (away[0],), (home[0],), needs=("dataset shift",)))
    diag, off = [_diag(g) for g in FIG6_GENERATORS], _off()
    singles = tuple(f"patches-full-{g}" for g in FIG6_GENERATORS)
    fig6_sets = tuple(f"celebahq/{g}" for g in FIG6_GENERATORS)
    out.append(Claim("F6-generators", "paper", "Localization drops across generators: trained on one generator, "
                     "IoU on each of the other three is below IoU on its own",
                     tuple(Part(f"{g} on {g} - {g} on {h}",
                                lambda m, g=g, h=h: m(*_diag(g)) - m(f"patches-full-{g}", f"celebahq/{h}"),
                                _one(_diag(g)))
                           for g in FIG6_GENERATORS for h in FIG6_GENERATORS if g != h),
                     tuple(diag), singles, singles, fig6_sets, needs=("generator transfer",)))

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
                     (Part("dataset drop - weak drop", lambda m: 100 * (data(m) - weak(m)), _one(c),
                           needs=("dataset shift",)),
                      Part("generator drop - weak drop", lambda m: 100 * (gen(m) - weak(m)), (*_one(c), tuple(diag)),
                           needs=("generator transfer",))),
                     (b, c, ("patches-C-ffhq", TEST)), (b[0], "patches-C-ffhq"), (c[0], *singles),
                     (TEST, *fig6_sets), unit="points of C's IoU (%)"))
    ldm = "ldm"
    others = [g for g in FIG6_GENERATORS if g != ldm]
    out.append(Claim("F6-LDM-hardest", "paper", "LDM is the hardest generator in domain: trained and tested on "
                     "LDM, Patches scores below each other generator's in-domain cell",
                     tuple(Part(f"{g} - {ldm} in domain", lambda m, g=g: m(*_diag(g)) - m(*_diag(ldm)), _one(_diag(g)))
                           for g in others),
                     tuple(diag), (f"patches-full-{ldm}",), tuple(f"patches-full-{g}" for g in others), fig6_sets,
                     needs=("generator transfer",)))
    out.append(Claim("F6-LDM-hardest-held-out", "paper", "LDM is the hardest held-out generator: trained on the "
                     "other three, Patches scores lower on LDM than on any other held-out generator",
                     tuple(Part(f"{g} - {ldm} held out", lambda m, g=g: m(*_held(g)) - m(*_held(ldm)), _one(_held(g)))
                           for g in others),
                     tuple(_held(g) for g in FIG6_GENERATORS), (f"patches-full-allbut-{ldm}",),
                     tuple(f"patches-full-allbut-{g}" for g in others), fig6_sets, needs=("generator transfer",)))
    out.append(Claim("T2-weak-above-baseline", "ours", "Weakly supervised Patches (B) localizes above marking "
                     "everything fake", (Part("patches-B - everything fake", lambda m: m(*b) - m(FAKE_ALL, TEST),
                                              _one((FAKE_ALL, TEST))),),
                     (b, (FAKE_ALL, TEST)), (b[0],)))
    out.append(Claim("T2-weak-above-prior", "ours", "Weakly supervised Patches (B) localizes above where fakes "
                     "usually are (the mask prior)", (Part("patches-B - mask prior", lambda m: m(*b) - m(PRIOR, TEST),
                                                           _one((PRIOR, TEST))),),
                     (b, (PRIOR, TEST)), (b[0],)))
    held = [_held(g) for g in FIG6_GENERATORS]

    def into(g):        # the single-generator models trained on another generator, tested on g
        return [(f"patches-full-{h}", f"celebahq/{g}") for h in FIG6_GENERATORS if h != g]
    out.append(Claim("F6-more-generators", "ours", "Training on three generators helps every held-out one: on each "
                     "generator, the model trained on the other three scores above the mean of the single-generator "
                     "models trained on another generator (the smallest of the four gains)",
                     tuple(Part(f"gain on {g}", lambda m, g=g: m(*_held(g)) - _mean_of(into(g))(m), (tuple(into(g)),))
                           for g in FIG6_GENERATORS),
                     tuple(held), tuple(e for e, _ in held), singles, fig6_sets, needs=("generator transfer",)))
    for m in methods():           # ours: a method that changes only the weak loss of another
        base = card(m).weak_variant_of
        if base is None:
            continue
        mine, full = _t2(m, "B"), _t2(card(m).full_runs_of or base, "C")
        # the same rules as every claim: it must clear both trivial baselines and reach the
        # share of full supervision the paper's T2-weak asks of weak Patches
        out.append(Claim(f"T2-{m}-B", "ours", f"{card(m).label}'s weak loss localizes: its setup B clears both "
                         f"trivial baselines and reaches at least {WEAK_RATIO:g} of {full[0]}'s IoU",
                         (Part(f"{m}-B - everything fake", lambda f, a=mine: f(*a) - f(FAKE_ALL, TEST),
                               _one((FAKE_ALL, TEST))),
                          Part(f"{m}-B - mask prior", lambda f, a=mine: f(*a) - f(PRIOR, TEST), _one((PRIOR, TEST))),
                          Part(f"{m}-B - {WEAK_RATIO:g} {full[0]}", lambda f, a=mine, b=full: f(*a) - WEAK_RATIO * f(*b),
                               _one(full))),
                         (mine, full, _t2(base, "B"), (FAKE_ALL, TEST), (PRIOR, TEST)), (mine[0],), (full[0],),
                         ratio_of=(mine, full)))
        # does less supervision generalize better? the weak variant against full supervision on
        # the generators neither trains on (experiments.TRANSFER_TEST), one part per generator
        full = f"{card(m).full_runs_of or base}-C"
        cells = [((f"{m}-B", g), (full, g)) for g in TRANSFER_TEST]
        out.append(Claim(f"X-{m}-B-other-generators", "ours", f"Weak {card(m).label} localizes other generators at "
                         f"least as well as full supervision: trained on Repaint-P2 both, {m}-B's IoU is not below "
                         f"{full}'s on any of {', '.join(g.split('/')[-1] for g in TRANSFER_TEST)}",
                         tuple(Part(f"{m}-B - {full} on {a[1].split('/')[-1]}", lambda f, a=a, b=b: f(*a) - f(*b),
                                    _one(b)) for a, b in cells),
                         tuple(c for pair in cells for c in pair), (f"{m}-B",), (full,), TRANSFER_TEST,
                         needs=("generator transfer",)))
    return out


def _has_setup(method: str, setup: str) -> bool:
    """Whether ``method`` trains its own setup (a method whose full supervision is another's has
    no setup C of its own)."""
    return not (setup == "C" and card(method).full_runs_of)


def _baselines(ev: Evidence, test_sets) -> str:
    parts = []
    for ts in test_sets:
        fa = _interval(ev, lambda m, t=ts: m(FAKE_ALL, t), "iou")
        pr = _interval(ev, lambda m, t=ts: m(PRIOR, t), "iou_sup")
        parts.append(f"{ts.split('/')[1]}: everything fake {_fmt(fa)}, mask prior at its threshold {_fmt(pr)}")
    return "; ".join(parts)


def _decide(ev: Evidence, c: Claim, metric: str) -> tuple[tuple[float, float, float], str, list[str]]:
    """One threshold's quantity (the weakest of the parts that compare with something), its
    verdict and its notes (module doc)."""
    empty = [p for p in c.parts if any(_empty(ev, cell, metric) for r in p.refs for cell in r)]
    active = [p for p in c.parts if p not in empty]
    notes = [f"{WHERE[metric]}: {', '.join(p.label for p in empty)} set aside (the baseline's map is empty: "
             f"no comparison)"] if empty else []
    if not active:
        return (np.nan, np.nan, np.nan), NO_COMPARISON, notes
    q = _interval(ev, _weakest(active), metric)
    verdict = sign_verdict(*q[1:])
    if verdict == MISSING:
        return q, verdict, notes
    points = [_interval(ev, p.quantity, metric)[0] for p in active]
    weakest = active[int(np.nanargmin(points))] if np.isfinite(points).any() else active[0]
    for group in weakest.refs:
        low, why = at_floor(ev, group, metric)
        if low:
            verdict = UNINFORMATIVE
            text = f"{WHERE[metric]}: the weakest part ({weakest.label}) rests on {why}"
            rest = [p for p in active if p is not weakest]
            if rest:
                r = _interval(ev, _weakest(rest), metric)
                text += f"; without it the quantity is {_fmt(r)} ({sign_verdict(*r[1:])})"
            notes.append(text)
            break
    return q, verdict, notes


def footing(ev: Evidence, c: Claim, undertrained=frozenset()) -> tuple[list[str], list[str]]:
    """What a verdict of ``c`` stands on, the same for every claim, the paper's and ours: every
    model it reads (subjects and references) learned (the learning test) and converged (not
    flagged undertrained). Returns the reasons it fails, one phrase each (empty: it holds), and
    the learning test's notes on the models that did not learn."""
    reasons, notes = [], []
    for exp in c.models:
        if exp.startswith("baseline-"):
            continue
        ok, note = learned(ev, exp)
        if ok is False:
            reasons.append(f"{exp} did not learn")
            notes.append(note)
        elif exp in undertrained:
            reasons.append(f"{exp} undertrained")
    return reasons, notes


def _part_needs(c: Claim, p: Part) -> set[str]:
    return set(c.needs) | set(p.needs)


def assess(ev: Evidence, c: Claim, undertrained: set[str] = frozenset(),
           untestable: dict[str, str] | None = None) -> dict:
    """One claims row (see ``claims_table`` for the columns); ``undertrained``: the experiments
    whose validation loss was still falling when training stopped (``evaluate.convergence``);
    ``untestable``: contrast -> why the data cannot test it (the data's declaration).

    The verdict is "not testable here" when the footing fails (``footing``) or when every part
    needs a contrast the data cannot test; parts that need one are set aside (named in the
    note); otherwise the thresholds' verdicts decide (module doc). Each part's own verdict at
    both thresholds is in ``parts``."""
    untestable = untestable or {}
    set_aside = [p for p in c.parts if _part_needs(c, p) & set(untestable)]
    kept = tuple(p for p in c.parts if p not in set_aside) or c.parts
    used = replace(c, parts=kept)
    (q05, v05, n05), (qsup, vsup, nsup) = (_decide(ev, used, m) for m in METRICS)
    reasons, learning = footing(ev, c, undertrained)
    notes = []
    if set_aside:
        why = sorted({untestable[n] for p in set_aside for n in _part_needs(c, p) if n in untestable})
        notes.append(f"set aside, the data cannot test it: {', '.join(p.label for p in set_aside)} ({'; '.join(why)})")
        if len(set_aside) == len(c.parts):
            reasons = [sorted(n for p in c.parts for n in _part_needs(c, p) if n in untestable)[0]
                       + " not in this data"] + reasons
    notes += learning
    if c.ratio_of is not None:               # what another reading of "close to C" would decide
        (b, bt), (full, ft) = c.ratio_of
        alt = []
        for r in RATIO_ALTERNATIVES:
            q = _interval(ev, lambda m, r=r: m(b, bt) - r * m(full, ft), "iou")
            alt.append(f"at {r:g} x C: {_fmt(q)} at 0.5 ({sign_verdict(*q[1:])})")
        ratio_note = f"with another ratio than {WEAK_RATIO:g}, " + ", ".join(alt)
    edge = sorted(f"{e} ({max(ev.thresholds[e]):g})" for e in c.models
                  if any(at_grid_edge(t) for t in ev.thresholds.get(e, ())))
    if edge:
        notes.append("validation-chosen threshold at the search grid's edge, its calibrated IoU a lower bound: "
                     + ", ".join(edge))
    notes = n05 + nsup + notes + ([ratio_note] if c.ratio_of is not None else [])
    verdict = NOT_TESTABLE if reasons else final_verdict(v05, vsup, [])
    parts = []
    for p in c.parts:
        a, b = (_interval(ev, p.quantity, m) for m in METRICS)
        aside = " (set aside)" if p in set_aside else ""
        parts.append(f"{p.label}{aside}: {_fmt(a)} at 0.5 ({sign_verdict(*a[1:])}), {_fmt(b)} at its own "
                     f"threshold ({sign_verdict(*b[1:])})")
    values = "; ".join(f"{e} on {t.split('/')[1]}: {_fmt(_interval(ev, lambda m, e=e, t=t: m(e, t), 'iou'))} "
                       f"at 0.5, {_fmt(_interval(ev, lambda m, e=e, t=t: m(e, t), 'iou_sup'))} at its own"
                       for e, t in c.shown)
    seeds = sorted({ev.seeds(e) for e in c.models} or {ev.seeds(c.shown[0][0])})
    return {"id": c.id, "source": c.source, "claim": c.claim,
            "quantity_05": q05[0], "quantity_05_low": q05[1], "quantity_05_high": q05[2],
            "quantity_own": qsup[0], "quantity_own_low": qsup[1],
            "quantity_own_high": qsup[2], "unit": c.unit,
            "verdict_05": v05, "verdict_own": vsup, "verdict": verdict, "footing": "; ".join(reasons),
            "parts": " | ".join(parts),
            "values": values, "baselines": _baselines(ev, c.test_sets),
            "seeds": "-".join(str(s) for s in (seeds[0], seeds[-1])) if seeds[0] != seeds[-1] else str(seeds[0]),
            "note": NOTE_SEP.join(notes),
            "undertrained": " ".join(sorted(({e for e, _ in c.shown} | set(c.models)) & set(undertrained)))}


COLUMNS = ["id", "source", "claim", "verdict", "footing", "verdict_05", "verdict_own", "quantity_05",
           "quantity_05_low", "quantity_05_high", "quantity_own", "quantity_own_low",
           "quantity_own_high", "unit", "parts", "values", "baselines", "seeds", "note", "undertrained",
           "geometry"]

# The claims about weak supervision, which the geometry stage measures again at larger inputs.
GEOMETRY_CLAIMS = ("T2-weak", "headline")


def geometry_column(geo: pd.DataFrame) -> dict[str, str]:
    """The second value the geometry stage gives the weak-supervision claims: Patches' B/C at
    the largest input side (at 0.5 and at the validation-chosen threshold, with its seed-and-
    image interval), and which side a reader should weigh: the largest when B/C rises with the
    side (its receptive field covers a share of the image closer to the paper's), else the
    study's own."""

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
           training: pd.DataFrame | None = None, untestable: dict[str, str] | None = None) -> pd.DataFrame:
    """Every claim of ``claim_list`` assessed on one run's per-image table, plus the DeCLIP
    context row (not a claim of the paper). ``training``: ``evaluate.convergence_table``; the
    ``undertrained`` column names the compared runs still improving when they stopped;
    ``untestable``: the contrasts the data declares it cannot test (``data_declares``)."""
    ev = Evidence(per_image, n_boot, seed)
    under = set(training.loc[training["undertrained"].astype(bool), "experiment"]) if training is not None else set()
    rows = [assess(ev, c, under, untestable) for c in claim_list()]
    ind = _interval(ev, _mean_of([_diag(g) for g in FIG6_GENERATORS]), "iou")
    outd = _interval(ev, _mean_of(_off()), "iou")
    rows.append({"id": "context-DeCLIP", "source": "context", "verdict": "context",
                 "claim": "Context, not a claim of the paper: Patch-Forensics re-measured on DOLOS (DeCLIP, "
                          f"WACV 2025) averages ~{DECLIP_PATCHES['in_domain']:.0f} IoU in-domain and "
                          f"~{DECLIP_PATCHES['out_of_domain']:.0f} out-of-domain",
                 "values": f"this run: in-domain {_fmt(ind)}, out-of-domain {_fmt(outd)}"})
    return pd.DataFrame(rows).reindex(columns=COLUMNS)


def data_declares(data_root: str | Path | None) -> dict[str, str]:
    """The contrasts a data root declares it cannot test, with why: DOLOS-mini's build record
    (``data.mini.NOT_TESTABLE``); a real data root declares nothing (it tests everything)."""
    import json

    f = Path(data_root) / "DOLOS-MINI.json" if data_root else None
    if f is None or not f.exists():
        return {}
    try:
        return dict(json.loads(f.read_text()).get("not_testable") or {})
    except (OSError, ValueError):
        return {}


def claims_table(results_dir: str | Path, n_boot: int = 1000, seed: int = 0,
                 data_root: str | Path | None = None) -> pd.DataFrame:
    """The claims of the run whose ``per_image.csv`` is in ``results_dir`` (empty without it),
    on the data at ``data_root`` (what it declares it cannot test, ``data_declares``)."""
    f = Path(results_dir) / "per_image.csv"
    if not f.exists():
        return pd.DataFrame(columns=COLUMNS)
    t = Path(results_dir) / "training.csv"
    out = claims(pd.read_csv(f), n_boot, seed, pd.read_csv(t) if t.exists() else None, data_declares(data_root))
    g = Path(results_dir) / "geometry.csv"
    if g.exists():
        out["geometry"] = out["geometry"].astype(object)
        for cid, text in geometry_column(pd.read_csv(g)).items():
            out.loc[out["id"] == cid, "geometry"] = text
    return out


def _q(r, k: str) -> str:
    v = r.get(f"quantity_{k}")
    if v is None or pd.isna(v):
        return "n/a"
    return f"{v:.1f} [{r[f'quantity_{k}_low']:.1f}, {r[f'quantity_{k}_high']:.1f}]"


def claims_markdown(df: pd.DataFrame, width: int = 120, second: str | None = None) -> str:
    """``claims.md``: one block per claim, lines a person reads (at most ``width`` characters):
    the claim, its verdict and footing, the quantity at both thresholds with its interval, each
    part's verdict, and numbered notes. Every number is in ``claims.csv``. ``second``: what the
    second threshold was (default: each run's own)."""
    second = second or "each run's own threshold"
    import textwrap

    def wrap(text: str, indent: str = "") -> list[str]:
        return textwrap.wrap(str(text), width, initial_indent=indent, subsequent_indent=indent + "  ",
                             break_long_words=True, break_on_hyphens=False) or [indent.rstrip()]

    out = ["# Claims against this run", "",
           *wrap("Each claim under the same rules (dolos_core/claims.py): the footing first (what a verdict needs: "
                 "the models it reads learned and converged, the contrast present in the data), then the quantity, "
                 "positive when it holds, at the paper's 0.5 and at each run's own threshold (weak runs: chosen "
                 "without masks), with its 95% interval (bootstrap over images and seeds, at least as wide as "
                 "Student's t over the seeds). The numbers: claims.csv."), ""]
    for _, r in df.iterrows():
        out.append(f"## {r['id']} ({r['source']})")
        out.append("")
        out += wrap(f"Claim: {r['claim']}")
        if r["source"] == "context":
            out += wrap(f"Values: {r['values']}") + [""]
            continue
        footing = r.get("footing")
        out += wrap(f"Verdict: **{r['verdict']}**" + (f" ({footing})" if isinstance(footing, str) and footing else ""))
        out += wrap(f"Quantity ({r['unit']}): {_q(r, '05')} at 0.5 ({r['verdict_05']}); {_q(r, 'own')} at "
                    f"{second} ({r['verdict_own']})")
        if isinstance(r.get("seeds"), str) and r["seeds"]:
            out += wrap(f"Seeds per run: {r['seeds']}")
        parts = [p for p in str(r.get("parts") or "").split(" | ") if p]
        if len(parts) > 1:
            out.append("Parts:")
            for p in parts:
                out += wrap(f"- {p}", "")
        notes = [n for n in str(r.get("note") or "").split(NOTE_SEP) if n and n != "nan"]
        for extra in ("undertrained", "geometry"):
            if isinstance(r.get(extra), str) and r[extra]:
                notes.append(f"{extra}: {r[extra]}")
        if notes:
            out.append("Notes:")
            for i, n in enumerate(notes, 1):
                out += wrap(f"{i}. {n}")
        out.append("")
    return "\n".join(out) + "\n"


def save_claims(df: pd.DataFrame, results_dir: str | Path) -> list[Path]:
    """``claims.csv`` (every column, empty where not applicable) and ``claims.md``
    (``claims_markdown``), written atomically."""
    from .io import atomic_path

    res = Path(results_dir)
    res.mkdir(parents=True, exist_ok=True)
    with atomic_path(res / "claims.csv") as tmp:
        df.to_csv(tmp, index=False, float_format="%.4f")
    with atomic_path(res / "claims.md") as tmp:
        tmp.write_text(claims_markdown(df))
    return [res / "claims.csv", res / "claims.md"]


def verdict_counts(df: pd.DataFrame) -> str:
    """"the paper's 9: 4 hold, ...; ours 3: ..." - the paper's claims counted apart from ours."""
    parts = []
    for source, label in (("paper", "the paper's"), ("ours", "ours")):
        d = df[df.source == source]
        if len(d):
            counts = d["verdict"].value_counts()
            parts.append(f"{label} {len(d)}: " + ", ".join(f"{n} {v}" for v, n in counts.items()))
    return "; ".join(parts)


__all__ = ["claims", "claims_markdown", "save_claims", "claims_table", "claim_list", "data_declares", "footing",
           "NOT_TESTABLE", "geometry_column", "Evidence", "Claim", "Part", "assess", "learned", "at_floor",
           "sign_verdict", "final_verdict", "verdict_counts", "HOLDS", "FAILS", "OPEN", "MISSING", "UNINFORMATIVE",
           "THRESHOLD", "NO_COMPARISON", "WEAK_RATIO"]
