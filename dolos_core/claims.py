"""The rules every claim is decided by, the paper's and ours alike, and the records claims are
declared as (the study's own are in ``paper_claims.py``; docs/development.md, "Add a claim").

Inputs, the products of the stages that write them (``reads()``): ``per_image.csv``
(``evaluate.per_image_table``): per fake test image and run, IoU-lg at 0.5 (``iou``), at the
run's own threshold (``iou_sup``: without masks for weak runs, ``evaluate.supervised_threshold``)
and at its validation-mask threshold (``iou_val``), and the per-image pixel AUC (``auc``), for
every experiment of Table 2, Table 3 and Figure 6 and every seed trained, and for the baselines
everything-fake and mask-prior on every fake test set; ``training.csv``
(``evaluate.convergence_table``), which names the runs whose validation loss was still falling
when they stopped; and the products of the columns a stage registers (``register_column``).

A claim is a record (:class:`Claim`): its *parts*, each a quantity of cell means (a cell: one
experiment on one test set) that is positive when the part holds (e.g. Patches B minus 0.75 x
Patches C); the claim's quantity is the weakest part (their minimum), never a mean that one
good cell could carry. It names its *subjects* (the models whose own quality it is about) and
its *references* (models it compares them with), and the contrasts it *needs* in the data.

**Footing first** (:func:`footing`): the verdict is ``not testable here``, with the reason in one
phrase, when a model it reads (subject or reference) did not learn (the learning test below) or
was undertrained (its validation loss still falling when it stopped), or when every part needs a
contrast the data declares it cannot test (``data_declares``; a part that needs one is set
aside and the others decide). Only then is the quantity decided, at the paper's 0.5 and at each
run's own threshold, on a bootstrap: test images resampled once per test set and shared by every
cell on that set (comparisons on the same images are paired), seeds resampled where a run has
several, the interval widened to Student's t interval of the quantity computed seed by seed.
Verdicts at each threshold (``verdict_05``, ``verdict_own``):

- ``holds`` / ``does not hold``: the 95% interval of the quantity lies above / below 0;
- ``inconclusive``: it straddles 0;
- ``uninformative``: the weakest part compares with a cell at or below its trivial baselines at
  that threshold (IoU not above both marking everything fake and the mask prior, as paired
  intervals, a baseline whose map is empty there left out); the note gives the verdict without
  that part;
- ``no comparison``: every part compares with a baseline whose map is empty at that threshold
  (the mask prior at 0.5 marks nothing); that threshold's verdict is set aside and the other
  decides;
- ``cannot be checked``: a cell the claim needs is missing.

The row's ``verdict``: the footing's ``not testable here``, else the two thresholds' verdict when
they agree, ``threshold-dependent`` when they do not.

The learning test (one, threshold-free, the same for every claim): a model learned when its
per-image pixel AUC on its own test sets (the test sets of the generators it trains on, else its
first; mean over fake images: how well its map ranks the fake pixels of an image above the real
ones, whatever threshold) is above the mask prior's and above 0.5, as paired 95% intervals. A run
whose validation-chosen threshold sits at the search grid's edge (``metrics.at_grid_edge``) is
named in the note: its calibrated IoU is a lower bound.

The rules are tested on hand-built per-image tables (``tests/test_claims.py``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Mapping, Union

import numpy as np
import pandas as pd

from .evaluate import seed_t_interval
from .data.layout import DatasetKey
from .experiments import CELEBA_TEST, get_experiment
from .metrics import at_grid_edge

# "B close to C": at least this share of C's IoU. Our reading of the paper's "weak labels cost
# little" (it gives no number); the claims that use it say what 0.6 and 0.9 would decide
# (``RATIO_ALTERNATIVES``, in their note).
WEAK_RATIO = 0.75
RATIO_ALTERNATIVES = (0.6, 0.9)
NOTE_SEP = " | "           # between a claim's notes in claims.csv (a note may hold "; ")

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
    """The test sets on which a model's own learning is judged: those of the generators it trains
    on (Figure 6's models), else its first test set (Table 2's: CelebA-HQ Repaint-P2)."""
    try:
        e = get_experiment(exp)
    except (KeyError, ValueError):
        return [TEST]
    trained = {t.key for t in e.train}
    masked = [k for k in e.test if DatasetKey.parse(k).kind == "partial"]     # fake test sets with masks
    return [k for k in masked if k in trained] or masked[:1]


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


Cell = tuple[str, str]          # (experiment, test set): one model's mean on one test set


def _group_mean(m, cells: tuple[Cell, ...]):
    return sum(m(*c) for c in cells) / len(cells)


@dataclass(frozen=True)
class Part:
    """One comparison of a claim, as data: the mean of the ``plus`` cells minus ``factor`` times
    the mean of the ``minus`` cells (IoU points; positive when the part holds). ``refs``: groups
    of cells it compares with (each group's mean): if one is at its trivial baselines while this
    part is the claim's weakest, the claim is uninformative at that threshold. ``needs``: the
    contrasts it tests (e.g. "dataset shift"); a data root declares those it cannot test
    (DOLOS-mini's build record, ``data.mini.NOT_TESTABLE``)."""

    label: str
    plus: tuple[Cell, ...]
    minus: tuple[Cell, ...] = ()
    factor: float = 1.0
    refs: tuple[tuple[Cell, ...], ...] = ()
    needs: tuple[str, ...] = ()

    def quantity(self, m):
        """The part's value, ``m(experiment, test set)`` giving each cell's mean (a number, or
        bootstrap replicates as an array)."""
        out = _group_mean(m, self.plus)
        return out - self.factor * _group_mean(m, self.minus) if self.minus else out


def _drop(m, hi: tuple[Cell, ...], lo: tuple[Cell, ...]):
    """(mean(hi) - mean(lo)) / mean(hi), NaN where mean(hi) is 0 (nothing to lose)."""
    top, low = (np.asarray(_group_mean(m, g), dtype=float) for g in (hi, lo))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(top > 0, (top - low) / np.where(top > 0, top, 1), np.nan)


@dataclass(frozen=True)
class DropGap:
    """A part comparing two relative drops: 100 x (the drop ``larger`` - the drop ``smaller``),
    each a pair (high cells, low cells) whose drop is (mean(high) - mean(low)) / mean(high);
    positive when ``larger``'s drop is the larger. ``refs``, ``needs``: as :class:`Part`'s."""

    label: str
    larger: tuple[tuple[Cell, ...], tuple[Cell, ...]]
    smaller: tuple[tuple[Cell, ...], tuple[Cell, ...]]
    refs: tuple[tuple[Cell, ...], ...] = ()
    needs: tuple[str, ...] = ()

    def quantity(self, m):
        return 100 * (_drop(m, *self.larger) - _drop(m, *self.smaller))


AnyPart = Union[Part, DropGap]


def _weakest(parts) -> Quantity:
    return lambda m: np.minimum.reduce([np.asarray(p.quantity(m), dtype=float) for p in parts])


@dataclass(frozen=True)
class Claim:
    """One claim, declared: its ``id``, ``source`` ("paper" or "ours"), its wording, its
    ``parts`` (the quantity is the weakest), the cells it ``shown``s, its ``subjects`` (models
    whose own quality it is about) and ``references`` (models it compares them with), the test
    sets whose baselines it shows, and the footing it needs beyond its models having learned and
    converged: the contrasts every part tests (``needs``; a part may add its own)."""

    id: str
    source: str
    claim: str
    parts: tuple[AnyPart, ...]
    shown: tuple[Cell, ...]
    subjects: tuple[str, ...]
    references: tuple[str, ...] = ()
    test_sets: tuple[str, ...] = (TEST,)
    unit: str = "IoU points"
    needs: tuple[str, ...] = ()
    # (B, C) cells of a claim "B reaches WEAK_RATIO of C": its note says what RATIO_ALTERNATIVES decide
    ratio_of: tuple[Cell, Cell] | None = None

    @property
    def quantity(self) -> Quantity:
        return _weakest(self.parts)

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.subjects + self.references))


@dataclass(frozen=True)
class Context:
    """A row of context, not a claim: a statement from elsewhere and this run's values beside it
    (each a label and the cells whose mean it is)."""

    id: str
    claim: str
    values: tuple[tuple[str, tuple[Cell, ...]], ...]


# --- the registry: who declares claims --------------------------------------------------------

# The modules that declare the study's own claims (imported when the claims are first listed);
# any other module adds its own by decorating a function with ``register_claims``.
CLAIM_MODULES = ("dolos_core.paper_claims", "dolos_core.geometry")
_SOURCES: dict[str, Callable[[], Iterable[Claim | Context]]] = {}
# A column some stage adds to the claims table: name -> (the product it reads, function from
# that table to {claim id: text}); e.g. the geometry stage's second value of B/C.
_COLUMNS: dict[str, tuple[str, Callable[[pd.DataFrame], dict[str, str]]]] = {}
# What the claims read, by product name (each declared by the stage that writes it).
READS = ("per_image.csv", "training.csv")


def register_claims(fn: Callable[[], Iterable[Claim | Context]]):
    """Decorator: ``fn()`` returns claims (and context rows) to check, listed when the claims
    are (so they follow the methods registered by then)."""
    _SOURCES[f"{fn.__module__}:{fn.__qualname__}"] = fn
    return fn


def register_column(name: str, reads: str):
    """Decorator: a column ``name`` of the claims table, filled from the product ``reads`` (a
    file some stage declares) by the decorated function, table -> {claim id: text}."""
    def wrap(fn):
        _COLUMNS[name] = (reads, fn)
        return fn
    return wrap


def _load() -> None:
    for module in CLAIM_MODULES:
        importlib.import_module(module)


def declared() -> list[Claim | Context]:
    """Every registered claim and context row (ids unique): the study's own modules'
    (``CLAIM_MODULES``, in that order), then the others', each in registration order."""
    _load()
    def rank(key: str) -> int:
        module = key.partition(":")[0]
        return CLAIM_MODULES.index(module) if module in CLAIM_MODULES else len(CLAIM_MODULES)
    out = [c for key in sorted(_SOURCES, key=rank) for c in _SOURCES[key]()]
    ids = [c.id for c in out]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ValueError(f"claims declared twice: {', '.join(dup)}")
    return out


def claim_list() -> list[Claim]:
    """The claims checked, the paper's first (docs/STUDY.md, "Findings")."""
    return [c for c in declared() if isinstance(c, Claim)]


def reads() -> tuple[str, ...]:
    """The products the claims table reads: its own inputs and the registered columns'."""
    _load()
    return READS + tuple(dict.fromkeys(r for r, _ in _COLUMNS.values()))


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
        b, full = c.ratio_of
        alt = []
        for r in RATIO_ALTERNATIVES:
            q = _interval(ev, Part("", plus=(b,), minus=(full,), factor=r).quantity, "iou")
            alt.append(f"at {r:g} x C: {_fmt(q)} at 0.5 ({sign_verdict(*q[1:])})")
        ratio_note = f"with another ratio than {WEAK_RATIO:g}, " + ", ".join(alt)
    edge = sorted(f"{e} ({', '.join(f'{t:g}' for t in sorted(ev.thresholds[e]) if at_grid_edge(t))})"
                  for e in c.models if any(at_grid_edge(t) for t in ev.thresholds.get(e, ())))
    if edge:
        notes.append("validation-chosen threshold at the search grid's edge, its calibrated IoU a lower bound: "
                     + ", ".join(edge))
    notes = n05 + nsup + notes + ([ratio_note] if c.ratio_of is not None else [])
    verdict = NOT_TESTABLE if reasons else final_verdict(v05, vsup, [])
    parts = []
    for p in c.parts:
        a, b = (_interval(ev, p.quantity, m) for m in METRICS)
        if p in set_aside:                   # the data cannot test it: its numbers, no verdict
            parts.append(f"{p.label} (set aside): {_fmt(a)} at 0.5, {_fmt(b)} at its own threshold")
            continue
        words = [NO_COMPARISON if any(_empty(ev, cell, m) for r in p.refs for cell in r) else sign_verdict(*q[1:])
                 for m, q in zip(METRICS, (a, b))]
        parts.append(f"{p.label}: {_fmt(a)} at 0.5 ({words[0]}), {_fmt(b)} at its own threshold ({words[1]})")
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
            "undertrained": " ".join(sorted(set(c.models) & set(undertrained)))}


COLUMNS = ["id", "source", "claim", "verdict", "footing", "verdict_05", "verdict_own", "quantity_05",
           "quantity_05_low", "quantity_05_high", "quantity_own", "quantity_own_low",
           "quantity_own_high", "unit", "parts", "values", "baselines", "seeds", "note", "undertrained"]


def columns() -> list[str]:
    """The claims table's columns: ``COLUMNS`` and the registered ones (``register_column``)."""
    _load()
    return COLUMNS + [c for c in _COLUMNS if c not in COLUMNS]


def claims(per_image: pd.DataFrame, n_boot: int = 1000, seed: int = 0,
           training: pd.DataFrame | None = None, untestable: dict[str, str] | None = None) -> pd.DataFrame:
    """Every declared claim (``declared``) assessed on one run's per-image table, and the
    context rows beside them. ``training``: ``evaluate.convergence_table``; the ``undertrained``
    column names the compared runs still improving when they stopped; ``untestable``: the
    contrasts the data declares it cannot test (``data_declares``)."""
    ev = Evidence(per_image, n_boot, seed)
    under = set(training.loc[training["undertrained"].astype(bool), "experiment"]) if training is not None else set()
    rows = []
    for c in declared():
        if isinstance(c, Claim):
            rows.append(assess(ev, c, under, untestable))
            continue
        values = ", ".join(f"{label} {_fmt(_interval(ev, Part(label, plus=cells).quantity, 'iou'))}"
                           for label, cells in c.values)
        rows.append({"id": c.id, "source": "context", "verdict": "context", "claim": c.claim,
                     "values": f"this run: {values}"})
    return pd.DataFrame(rows).reindex(columns=columns())


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


def claims_table(products: Mapping[str, str | Path], n_boot: int = 1000, seed: int = 0,
                 data_root: str | Path | None = None) -> pd.DataFrame:
    """The claims of one run, from the products they read (``reads()``: name -> path, as the
    stages that write them declare; ``runner.stages.product``), empty without ``per_image.csv``;
    on the data at ``data_root`` (what it declares it cannot test, ``data_declares``). A
    registered column (``register_column``) is filled where its product exists."""
    def table(name: str) -> pd.DataFrame | None:
        f = products.get(name)
        return pd.read_csv(f) if f is not None and Path(f).exists() else None

    per_image = table("per_image.csv")
    if per_image is None:
        return pd.DataFrame(columns=columns())
    out = claims(per_image, n_boot, seed, table("training.csv"), data_declares(data_root))
    for name, (source, fn) in _COLUMNS.items():
        t = table(source)
        if t is None:
            continue
        out[name] = out[name].astype(object)          # a registered column is one of columns()
        for cid, text in fn(t).items():
            out.loc[out["id"] == cid, name] = text
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
        if r["verdict"] == NOT_TESTABLE:     # the interval's sign, said as no verdict
            out += wrap(f"Quantity ({r['unit']}), not a verdict (its footing fails): {_q(r, '05')} at 0.5 (the "
                        f"interval alone would read: {r['verdict_05']}); {_q(r, 'own')} at {second} "
                        f"({r['verdict_own']})")
        else:
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
        for extra in ("undertrained", *_COLUMNS):
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
           "NOT_TESTABLE", "Evidence", "Claim", "Part", "DropGap", "Context", "Cell", "register_claims",
           "register_column", "reads", "declared", "assess", "learned", "at_floor",
           "sign_verdict", "final_verdict", "verdict_counts", "HOLDS", "FAILS", "OPEN", "MISSING", "UNINFORMATIVE",
           "THRESHOLD", "NO_COMPARISON", "WEAK_RATIO"]
