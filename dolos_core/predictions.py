"""Saved predictions: what every table, figure and sweep reads (no model code here).

``runs/<profile>/predictions/<experiment>/<run id>/<test-set>.npz`` (the run id of the
configuration that trained it, ``runs.resolve_run``) holds ``maps`` (N, h, w) float16
fake probabilities at the model's own map resolution (Grad-CAM weak: the input resolution, as
the Grad-CAM library returns it), ``scores`` (N,) float32, ``names`` (N,) the layout's file
names; ``<test-set>.json`` beside it says where the images and masks are. Written atomically,
the json first and the npz last, so the npz's presence marks a finished prediction. float16
keeps 3 significant digits, far below what a 0.5 threshold or a ranking metric can see, and
halves the paper profile's Grad-CAM files (3 GB -> 1.5 GB).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import Paths, Profile
from .data.datasets import read_mask
from .data.layout import DatasetKey, split_exists
from .experiments import Experiment, optional_set, prediction_sets
from .io import read_json, save_npz, write_json
from .runs import resolve_run


@dataclass
class Predictions:
    """Saved predictions of one experiment on one test set."""

    maps: np.ndarray        # (N, h, w) float
    scores: np.ndarray      # (N,)
    names: np.ndarray       # (N,)
    meta: dict

    @property
    def label(self) -> int:
        return int(self.meta["label"])

    def masks(self) -> np.ndarray | None:
        """(N, H, W) uint8 ground-truth masks (1 = fake) read from the layout, or None."""

        if not self.meta.get("masks_dir"):
            return None
        mdir = Path(self.meta["masks_dir"])
        return np.stack([read_mask(mdir / n) for n in self.names])


def predictions_current(path: Path, profile: Profile) -> bool:
    """Whether a predictions file exists and was made with this profile's test settings."""
    if not (path.exists() and path.with_suffix(".json").exists()):
        return False
    meta = read_json(path.with_suffix(".json"))
    return meta.get("max_test_images", profile.max_test_images) == profile.max_test_images


def load_predictions(path: str | Path) -> Predictions:
    path = Path(path)
    with np.load(path, allow_pickle=False) as z:
        maps, scores, names = z["maps"], z["scores"], z["names"]
    return Predictions(maps, scores, names, read_json(path.with_suffix(".json")))


def save_predictions(path: Path, maps: np.ndarray, scores: np.ndarray, names, meta: dict) -> None:
    """Write one predictions file atomically: the json first, the npz (the mark of a finished
    prediction) last."""
    write_json(path.with_suffix(".json"), meta)
    save_npz(path, maps=maps, scores=scores, names=np.array(names))


def missing_predictions(paths: Paths, exp: Experiment, profile: Profile, device: str = "auto") -> list[Path]:
    """The prediction files ``exp`` should have under this configuration and does not (a
    validation split the data root lacks is not expected)."""

    run = resolve_run(exp, profile, paths, device)
    out = []
    for key, split in prediction_sets(exp):
        if optional_set(exp, key, split) and not split_exists(paths.data_root, DatasetKey.parse(key), split):
            continue
        f = run.predictions_file(key, split)
        if not predictions_current(f, profile):
            out.append(f)
    return out
