"""Shared fixtures: tiny datasets in the real DOLOS layout, written by the tests."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("MPLBACKEND", "Agg")


def write_png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def make_layout(root: Path, size: int = 32, n: int = 3, rgb_masks: bool = False,
                datasets=("celebahq/real", "celebahq/p2", "celebahq/repaint-p2"),
                splits=("train", "valid", "test"), seed: int = 0) -> Path:
    """Write a tiny dataset in the DOLOS layout. Masks: 255 real, 0 fake, a square per image."""
    from dolos_core.data import DatasetKey

    rng = np.random.default_rng(seed)
    for text in datasets:
        key = DatasetKey.parse(text)
        for split in splits:
            for i in range(n):
                name = f"{i:03d}.png"
                write_png(key.images_dir(root, split) / name,
                          rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
                if key.has_masks:
                    m = np.full((size, size), 255, np.uint8)
                    m[4:4 + 4 * (i + 1), 8:20] = 0
                    if rgb_masks:
                        m = np.stack([m, np.full_like(m, 7), np.full_like(m, 255)], -1)
                    write_png(key.masks_dir(root, split) / name, m)
    return root


@pytest.fixture
def tiny_root(tmp_path: Path) -> Path:
    return make_layout(tmp_path / "dolos")


def make_real_layout(root: Path, size: int = 256, n: int = 2) -> Path:
    """Every dataset of the real DOLOS layout at the real image size, ``n`` images per split;
    FFHQ has no test split, as in the released data."""
    from dolos_core.data import all_keys

    keys = [str(k) for k in all_keys()]
    make_layout(root, size=size, n=n, datasets=[k for k in keys if k.startswith("celebahq")])
    make_layout(root, size=size, n=n, datasets=[k for k in keys if k.startswith("ffhq")],
                splits=("train", "valid"), seed=1)
    return root


def only_run(folder):
    """The single run folder (``<run id>/``) of an experiment under ``folder``."""
    runs = [p for p in folder.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]
