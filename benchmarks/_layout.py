"""A real-layout DOLOS set of 256 px PNGs for the benchmarks (smooth images with noise, so
decoding costs what a photo's does): real faces, a fully generated set (``p2``) and an inpainted
one (``repaint-p2``) with masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def write_layout(root: Path, n: int, splits=("train",), generators=("repaint-p2",), size: int = 256) -> Path:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size]
    mask = np.full((size, size), 255, np.uint8)
    mask[size // 4: size // 2 + size // 16, size // 3: size * 3 // 4] = 0
    for split in splits:
        for kind in ("real", *generators):
            if kind == "real":
                folder = root / "celebahq" / "real" / split
            elif kind == "p2":
                folder = root / "celebahq" / "fake" / kind / split
            else:
                folder = root / "celebahq" / "fake" / kind / "images" / split
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                base = np.stack([(xx + 3 * i) % 256, (yy + 5 * i) % 256, (xx + yy) // 2], -1)
                img = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(folder / f"{i:05d}.png")
                if kind not in ("real", "p2"):
                    mdir = root / "celebahq" / "fake" / kind / "masks" / split
                    mdir.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(mask).save(mdir / f"{i:05d}.png")
    return root


def write_real_layout(root: Path, n: int = 2, size: int = 256) -> Path:
    """Every dataset of the real DOLOS layout (``dolos_core.data.all_keys``) at DOLOS's 256 px,
    ``n`` noisy images per split, a fake rectangle in every mask; FFHQ without a test split, as
    released. What a paper-profile run needs to go through every default stage."""
    from dolos_core.data import DatasetKey, all_keys

    rng = np.random.default_rng(0)
    mask = np.full((size, size), 255, np.uint8)
    mask[size // 4: size // 2, size // 3: size * 2 // 3] = 0
    for key in (DatasetKey.parse(str(k)) for k in all_keys()):
        for split in (("train", "valid", "test") if key.source == "celebahq" else ("train", "valid")):
            for i in range(n):
                for folder, arr in ((key.images_dir(root, split), rng.integers(0, 256, (size, size, 3), dtype=np.uint8)),
                                    *(((key.masks_dir(root, split), mask),) if key.has_masks else ())):
                    folder.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(arr).save(folder / f"{i:03d}.png")
    return root
