"""One study for the notebooks: the one line each notebook opens with.

``study = open_study(profile, data_root, device, overrides, tag)`` checks the common parameters,
resolves the profile with its overrides and the paths, and carries a tweak from one notebook to
the next: a notebook given a ``tag`` and ``overrides`` records them in
``results/<profile>-<tag>/study.json``; a later notebook of the same ``tag`` given no overrides
uses the recorded ones, so it reads the runs the tweak trained (Table 2 of ``tag="lr"`` shows the
``lr`` run, not the default one). Without a tag nothing is recorded: the default study stays the
profile as defined. It also stops a kernel that imported another checkout's ``dolos_core`` than
the one it writes into (``locks.check_checkout``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import ConfigError, Paths, Profile, check_params, get_paths
from .evaluate import experiment_row
from .experiments import Experiment
from .io import write_json
from .locks import WrongCheckout, check_checkout
from .predict import predict_experiment
from .train import TrainResult, train_experiment

RECORD = "study.json"


@dataclass(frozen=True)
class Study:
    """A profile with its overrides, where it reads and writes, and the device asked for."""

    profile: Profile
    paths: Paths
    device: str = "auto"
    overrides: dict = field(default_factory=dict)
    tag: str = ""

    def require(self, what: str, only: str) -> None:
        """Stop with one line when this study's ``what`` (``predictions`` or ``checkpoints``)
        are not there yet, naming the ``./run_all.sh --only <only>`` that makes them."""
        folder = getattr(self.paths, what)
        if not folder.exists():
            tag = f" --tag {self.tag}" if self.tag else ""
            raise FileNotFoundError(f"no {what} under {folder}: run ./run_all.sh --profile "
                                    f"{self.paths.profile}{tag} --only {only} first")


def _record_path(paths: Paths) -> Path:
    return paths.results / RECORD


def recorded_overrides(paths: Paths) -> dict | None:
    """The overrides recorded for this tag (None: nothing recorded, or no tag)."""
    f = _record_path(paths)
    if not paths.tag or not f.exists():
        return None
    try:
        return dict(json.loads(f.read_text())["overrides"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{f}: not a study record ({exc}); delete it or give overrides") from None


def _record(paths: Paths, overrides: dict) -> None:
    try:
        write_json(_record_path(paths), {"profile": paths.profile, "tag": paths.tag, "overrides": overrides})
    except TypeError as exc:
        raise ConfigError(f"overrides must be plain values (numbers, strings, lists, dicts) to "
                          f"be recorded for tag {paths.tag!r}: {exc}") from None


def open_study(profile: str = "mini", data_root: str = "", device: str = "auto",
               overrides: dict | None = None, tag: str = "", **extra: Any) -> Study:
    """The study a notebook works on (see the module doc). ``extra`` are profile fields a notebook
    sets for itself (e.g. ``init``); they are applied but not recorded."""
    if not isinstance(overrides, dict | None):
        raise ConfigError(f"overrides must be a dict of profile fields, got {overrides!r}")
    paths = get_paths(profile, data_root or None, tag=tag)
    try:     # the kernel runs the code of the checkout it writes into
        check_checkout(paths.root)
    except WrongCheckout as exc:
        raise ConfigError(str(exc)) from None
    given = dict(overrides or {})
    overrides = given or recorded_overrides(paths) or {}
    prof = check_params(profile, device, **overrides, **extra)      # a bad field is never recorded
    if paths.tag and given:
        _record(paths, given)
    return Study(prof, paths, device, overrides, paths.tag)


@dataclass
class ExperimentOutcome:
    """What one experiment left: its training (``skipped`` when it was finished already), its
    prediction files and its row of its table (scored on its first test set)."""

    training: TrainResult
    predictions: list[Path]
    row: dict


def run_experiment(exp: Experiment, profile: Profile, paths: Paths, device: str = "auto",
                   force: bool = False, gpus: int = 1) -> ExperimentOutcome:
    """One experiment end to end, the path every training of ``./run_all.sh`` takes (its
    notebook, ``02_train``, calls this and nothing else of consequence):

    1. ``train.train_experiment``: train it, or reuse its finished run (the run id hashes its
       configuration, its code and this process's numerics: ``runs.run_for_training``);
    2. ``predict.predict_experiment``: its maps and scores on its test sets and the validation
       split its thresholds come from (``experiments.prediction_sets``);
    3. ``evaluate.experiment_row``: its row of its table, from those predictions, scored as
       Table 2 scores (IoU-lg at 0.5, pixel AUC and AP; detection AP of weak runs).

    ``./run_all.sh --explain <experiment>`` prints where each of these is on disk."""
    training = train_experiment(exp, profile, paths, device=device, force=force, gpus=gpus)
    files = predict_experiment(exp, profile, paths, device=device, force=force)
    row = experiment_row(exp, paths, profile, extras=False, fake_key=exp.test[0])
    return ExperimentOutcome(training, files, row)


__all__ = ["ExperimentOutcome", "Study", "open_study", "recorded_overrides", "run_experiment"]
