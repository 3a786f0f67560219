"""The registry: every experiment of the paper (and of the extensions) as data.

One name per experiment, used for checkpoints, predictions, tables and figures:

- Table 2 (paper 5.1): ``{method}-{setup}``, e.g. ``patches-C``, trained on CelebA-HQ data, for
  every method in the registry (``dolos_core.models``; the paper's three, and any method
  registered after them).
- Table 3 (5.2): ``patches-{setup}-ffhq``: Patches trained on FFHQ data, tested on CelebA-HQ.
- Figure 6 (5.3): ``patches-full-{generator}`` (trained on one generator) and
  ``patches-full-allbut-{generator}`` (trained on the other three, 3x the epochs).
- Extension (FakeLocator losses): ``{method}-C-{l1,l2,l1-cls}`` for Patches and Attention.
- Budget scaling (opt-in, ``./run_all.sh --only scaling``): ``patches-{B,C}-x{0.25,4}``, the
  Table 2 trainings at a quarter and four times the profile's steps, and ``patches-B-authors-init``
  (``-x4``), setup B from the authors' weak-Patches init instead of the profile's.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from .losses import MAP_LOSSES, LossConfig
from .models import MODELS, card, methods

CELEBA_TEST = ("celebahq/repaint-p2", "celebahq/real")
FIG6_GENERATORS = ("repaint-p2-9k", "ldm", "lama", "pluralistic")
FIG6_TEST = tuple(f"celebahq/{g}" for g in FIG6_GENERATORS)
# The generators setups B and C do not train on: where weak and full supervision are compared
# out of domain (ours), predicted when the data root has them.
TRANSFER_TEST = tuple(f"celebahq/{g}" for g in FIG6_GENERATORS if not g.startswith("repaint-p2"))
# The paper's names of the generators (the layout's folder names are the keys)
GENERATOR_NAMES = {"repaint-p2-9k": "Repaint-P2 (9k)", "repaint-p2": "Repaint-P2", "ldm": "Repaint-LDM",
                   "lama": "LaMa", "pluralistic": "Pluralistic", "p2": "P2"}


@dataclass(frozen=True)
class TrainSet:
    """A training dataset, used whole. (FFHQ has no 9k subset on disk: its setup B trains on
    the whole FFHQ Repaint-P2 train split, as the authors' code does.)"""

    key: str


@dataclass(frozen=True)
class Experiment:
    name: str
    method: str
    supervision: str
    train: tuple[TrainSet, ...]
    test: tuple[str, ...]
    group: str
    description: str
    setup: str | None = None
    # Its budget: the method's schedule times this factor, or ALLBUT: the profile's
    # ``allbut_epoch_factor`` (the "all but X" trainings of Figure 6: 150 epochs, not 50).
    epoch_factor: float | str = 1.0
    loss: LossConfig = field(default_factory=LossConfig)
    # This run's own values of its method's options (``Card.options``), over the profile's
    # ``method_options`` (e.g. the budget-scaling runs from the authors' init of weak Patches).
    options: Mapping[str, object] = field(default_factory=dict, hash=False)
    # Test sets of other generators, predicted when the data root has them (never needed to run).
    transfer_test: tuple[str, ...] = ()

    @property
    def case(self) -> str:
        """``method-supervision``: the key the GPU check measures rates and peak memory under."""
        return f"{self.method}-{self.supervision}"

    @property
    def needs(self) -> list[tuple[str, str]]:
        """Every (dataset, split) this experiment reads."""
        out = [(t.key, s) for t in self.train for s in ("train", "valid")]
        return out + [(k, "test") for k in self.test]


def _setup_train(source: str, setup: str) -> tuple[TrainSet, ...]:
    if setup == "A":
        return (TrainSet(f"{source}/real"), TrainSet(f"{source}/p2"))
    if setup == "B":
        if source == "celebahq":
            return (TrainSet("celebahq/real"), TrainSet("celebahq/repaint-p2-9k"))
        return (TrainSet(f"{source}/real"), TrainSet(f"{source}/repaint-p2"))
    return (TrainSet(f"{source}/repaint-p2"),)


_SETUP_TEXT = {
    "A": "real vs fully generated (P2), image labels",
    "B": "real vs inpainted (Repaint-P2 9k), image labels",
    "C": "inpainted (Repaint-P2) with masks, full supervision",
}


# The "all but X" trainings' budget: the profile's ``allbut_epoch_factor`` times the schedule.
ALLBUT = "allbut"


def loss_variant_methods() -> tuple[str, ...]:
    """The methods whose cards ask for the FakeLocator loss variants (``Card.loss_variants``:
    the paper's two whose full supervision trains a map with a per-cell loss of its own, Patches'
    cross-entropy and Attention's BCE)."""
    return tuple(m for m in methods() if card(m).loss_variants)


def transfer_methods() -> tuple[str, ...]:
    """The methods whose setups B and C are also tested on the generators they do not train on
    (``TRANSFER_TEST``): every weak variant (``Card.weak_variant_of``) and the method it varies."""
    variants = [m for m in methods() if card(m).weak_variant_of]
    return tuple(dict.fromkeys([card(m).weak_variant_of for m in variants] + variants))


def _build() -> dict[str, Experiment]:
    exps: list[Experiment] = []
    across = transfer_methods()
    for method in methods():
        for setup in ("A", "B", "C"):
            if setup == "C" and card(method).full_runs_of:   # its setup C is that method's
                continue
            exps.append(Experiment(
                name=f"{method}-{setup}", method=method,
                supervision="full" if setup == "C" else "weak", setup=setup,
                train=_setup_train("celebahq", setup), test=CELEBA_TEST, group="table2",
                transfer_test=TRANSFER_TEST if method in across and setup in "BC" else (),
                description=f"Table 2: {method}, setup {setup} ({_SETUP_TEXT[setup]})"))
    for setup in ("A", "B", "C"):
        exps.append(Experiment(
            name=f"patches-{setup}-ffhq", method="patches",
            supervision="full" if setup == "C" else "weak", setup=setup,
            train=_setup_train("ffhq", setup), test=CELEBA_TEST, group="table3",
            description=f"Table 3: patches, setup {setup} trained on FFHQ, tested on CelebA-HQ"))
    for gen in FIG6_GENERATORS:
        exps.append(Experiment(
            name=f"patches-full-{gen}", method="patches", supervision="full",
            train=(TrainSet(f"celebahq/{gen}"),), test=FIG6_TEST, group="fig6-single",
            description=f"Figure 6: patches, full supervision, trained on {gen}"))
    for gen in FIG6_GENERATORS:
        others = tuple(TrainSet(f"celebahq/{g}") for g in FIG6_GENERATORS if g != gen)
        exps.append(Experiment(
            name=f"patches-full-allbut-{gen}", method="patches", supervision="full",
            train=others, test=FIG6_TEST, group="fig6-allbut", epoch_factor=ALLBUT,
            description=f"Figure 6: patches, full supervision, trained on all but {gen}"))
    # one variant per registered map loss, and L1 with the class loss (FakeLocator's recipe)
    variants = {name: (LossConfig(localize=name), f"{name} map loss") for name in MAP_LOSSES}
    variants["l1-cls"] = (LossConfig(localize="l1", rho_class=1.0), "L1 map loss + class loss, with reals")
    for method in loss_variant_methods():
        for tag, (cfg, text) in variants.items():
            train = _setup_train("celebahq", "C")
            if cfg.rho_class:  # a class loss needs both classes
                train = (TrainSet("celebahq/real"),) + train
            exps.append(Experiment(
                name=f"{method}-C-{tag}", method=method, supervision="full", setup="C",
                train=train, test=CELEBA_TEST, group="loss-variants", loss=cfg,
                description=f"Extension (FakeLocator losses): {method}, setup C, {text}"))
    for setup in ("B", "C"):
        for factor in (0.25, 4.0):
            exps.append(Experiment(
                name=f"patches-{setup}-x{factor:g}", method="patches",
                supervision="full" if setup == "C" else "weak", setup=setup,
                train=_setup_train("celebahq", setup), test=CELEBA_TEST, group="scaling",
                epoch_factor=factor,
                description=f"Budget scaling: patches-{setup} at {factor:g}x the profile's steps"))
    for factor in (1.0, 4.0):
        suffix = "" if factor == 1.0 else f"-x{factor:g}"
        exps.append(Experiment(
            name=f"patches-B-authors-init{suffix}", method="patches", supervision="weak", setup="B",
            train=_setup_train("celebahq", "B"), test=CELEBA_TEST, group="scaling",
            epoch_factor=factor, options={"weak_init": "authors"},
            description=f"Budget scaling: patches-B from the authors' init at {factor:g}x the steps"))
    return {e.name: e for e in exps}


class _Experiments(Mapping):
    """Every experiment, built from the registry of methods when read: a method registered
    later (a test's toy method, a user's fourth method) has its Table 2 experiments at once.
    Built again only when the registry changed since the last read."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._built: dict[str, Experiment] = {}

    def _all(self) -> dict[str, Experiment]:
        key = (tuple(MODELS.items()), tuple(MAP_LOSSES))
        if key != self._key:
            self._built, self._key = _build(), key
        return self._built

    def __getitem__(self, name: str) -> Experiment:
        return self._all()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


EXPERIMENTS: Mapping[str, Experiment] = _Experiments()
# The runs of the budget-scaling figure: the Table 2 runs (1x) and the "scaling" group.
SCALING_RUNS = ("patches-B", "patches-C", "patches-B-x0.25", "patches-B-x4", "patches-C-x0.25",
                "patches-C-x4", "patches-B-authors-init", "patches-B-authors-init-x4")
PAPER_GROUPS = ("table2", "table3", "fig6-single", "fig6-allbut")


def get_experiment(name: str) -> Experiment:
    if name not in EXPERIMENTS:

        close = difflib.get_close_matches(name, EXPERIMENTS, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise KeyError(f"unknown experiment {name!r}.{hint} "
                       f"'./run_all.sh --list' prints every name.")
    return EXPERIMENTS[name]


def experiments_in(*groups: str) -> list[Experiment]:
    return [e for e in EXPERIMENTS.values() if e.group in groups]


def plan_for(exp: Experiment, profile) -> tuple[int, int]:
    """(epochs, iterations per epoch) of an experiment under ``profile``: the method's schedule,
    times the all-but factor for the 'all but X' trainings (paper: 150 instead of 50 epochs),
    capped by the profile's ``max_iters``."""
    factor = profile.allbut_epoch_factor if exp.epoch_factor == ALLBUT else exp.epoch_factor
    return profile.plan(exp.method, exp.supervision, factor)


def prediction_sets(exp: "Experiment") -> list[tuple[str, str]]:
    """Every (dataset key, split) an experiment predicts: its test sets, plus validation splits
    where the 0.5 threshold's alternatives are chosen (ours; never on a test set): the Repaint-P2
    fakes' (with masks) and the reals' (labels only) for the experiments tested on Table 2's test
    sets, the training generators' own for the Figure 6 trainings. ``transfer_test`` sets are
    predicted where the data root has them (``optional_set``)."""
    out = [(k, "test") for k in exp.test + exp.transfer_test]
    if exp.test[:1] == (CELEBA_TEST[0],):
        out += [(CELEBA_TEST[0], "valid"), (CELEBA_TEST[1], "valid")]    # the real one: the threshold without masks
    elif exp.group in ("fig6-single", "fig6-allbut"):
        out += [(t.key, "valid") for t in exp.train]
    return out


def optional_set(exp: "Experiment", key: str, split: str) -> bool:
    """Whether a prediction set of ``exp`` is predicted only when the data root has it (a
    validation split, another generator's test set), rather than needed."""
    return split != "test" or key in exp.transfer_test


def test_set_name(key: str) -> str:
    """File stem of a test set's predictions: ``celebahq/repaint-p2`` -> ``celebahq_repaint-p2``."""
    return key.replace("/", "_")
