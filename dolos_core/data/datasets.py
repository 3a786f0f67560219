"""Torch datasets over the DOLOS layout.

Each item is a dict: ``image`` (3, S, S) float in [-1, 1] (mean = std = 0.5, as Xception),
``label`` (0 real, 1 fake), ``mask`` (S, S) float with 1 = fake (zeros for real images, ones for
fully generated ones), ``has_mask`` (True only for inpainted images) and ``name`` (file name).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from .layout import DatasetError, DatasetKey, list_images

# A perturbation takes an HxWx3 uint8 image and a seed, returns an HxWx3 uint8 image.
Perturbation = Callable[[np.ndarray, int], np.ndarray]


def read_image(path: Path) -> Image.Image:
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except Exception as exc:
        raise DatasetError(f"{path}: unreadable image ({type(exc).__name__}: {exc})") from None


def mask_to_fake(arr: np.ndarray) -> np.ndarray:
    """DOLOS mask convention -> model convention: 255 (real) -> 0, anything else (fake) -> 1.

    Reads channel 0 of an (H, W, C) mask, or the single channel of an (H, W) one.
    """
    arr = np.asarray(arr)
    if arr.ndim == 3:
        arr = arr[..., 0]
    if arr.dtype == bool:  # 1-bit PNGs: True is white
        return (~arr).astype(np.uint8)
    return (arr != 255).astype(np.uint8)


def read_mask(path: Path) -> np.ndarray:
    """An (H, W) uint8 array, 1 = fake, from a DOLOS mask file."""
    try:
        with Image.open(path) as im:
            if im.mode == "P":
                im = im.convert("RGB")
            arr = np.asarray(im)
    except Exception as exc:
        raise DatasetError(f"{path}: unreadable mask ({type(exc).__name__}: {exc})") from None
    return mask_to_fake(arr)


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 -> (3, H, W) float normalised with mean = std = 0.5."""
    x = torch.from_numpy(np.array(img, copy=True)).permute(2, 0, 1).float()
    return x.div_(127.5).sub_(1.0)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """Inverse of :func:`to_tensor` for display: (3, H, W) -> HxWx3 uint8."""
    return ((x.detach().cpu().float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()


class DolosDataset(Dataset):
    """One split of one DOLOS dataset, e.g. ``celebahq/repaint-p2``, ``test``.

    ``input_size``: images are resized with Lanczos (the paper's 256 -> 299), masks with
    nearest neighbour so they stay binary. An index may be an int or ``(int, flip)``: the
    training sampler decides flips itself so that a resumed run sees the same augmentations.
    """

    def __init__(self, root: str | Path, key: DatasetKey | str, split: str, input_size: int,
                 limit: int | None = None, perturbation: Perturbation | None = None,
                 perturbation_seed: int = 0, names: Sequence[str] | None = None):
        self.root = Path(root)
        self.key = DatasetKey.parse(key) if isinstance(key, str) else key
        self.split = split
        self.input_size = int(input_size)
        self.images_dir = self.key.images_dir(self.root, split)
        self.masks_dir = self.key.masks_dir(self.root, split)
        if not self.images_dir.is_dir():
            raise DatasetError(f"{self.images_dir}: split {split!r} of {self.key} is missing")
        self.names = list(names) if names is not None else list_images(self.images_dir)
        if limit is not None:
            self.names = self.names[: int(limit)]
        if not self.names:
            raise DatasetError(f"{self.images_dir}: no images in split {split!r} of {self.key}")
        self.perturbation = perturbation
        self.perturbation_seed = perturbation_seed

    def __len__(self) -> int:
        return len(self.names)

    def __repr__(self) -> str:
        return f"DolosDataset({self.key}, {self.split}, n={len(self)}, size={self.input_size})"

    def load_raw(self, i: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Image (H, W, 3) uint8 and mask (H, W) uint8 1 = fake at the stored resolution."""
        name = self.names[i]
        img = np.asarray(read_image(self.images_dir / name))
        mask = None
        if self.masks_dir is not None:
            mpath = self.masks_dir / name
            if not mpath.exists():
                raise DatasetError(f"{self.images_dir / name}: image has no mask (expected {mpath})")
            mask = read_mask(mpath)
            if mask.shape != img.shape[:2]:
                raise DatasetError(f"{mpath}: mask is {mask.shape[1]}x{mask.shape[0]} but its "
                                   f"image is {img.shape[1]}x{img.shape[0]}")
        return img, mask

    def __getitem__(self, item) -> dict:
        i, flip = (item if isinstance(item, tuple) else (item, False))
        img, mask = self.load_raw(i)
        if self.perturbation is not None:
            img = self.perturbation(img, self.perturbation_seed * 1_000_003 + i)
        s = self.input_size
        if img.shape[0] != s or img.shape[1] != s:
            img = np.asarray(Image.fromarray(img).resize((s, s), Image.LANCZOS))
        if mask is not None:
            if mask.shape != (s, s):
                mask = np.asarray(Image.fromarray(mask).resize((s, s), Image.NEAREST))
            mask_t = torch.from_numpy(mask.astype(np.float32))
        else:
            mask_t = torch.full((s, s), float(self.key.label))
        x = to_tensor(img)
        if flip:
            x = x.flip(-1)
            mask_t = mask_t.flip(-1)
        return {"image": x, "label": self.key.label, "mask": mask_t,
                "has_mask": mask is not None, "name": self.names[i]}


class ConcatDolos(Dataset):
    """Several DOLOS datasets as one (e.g. setup B: real + repaint-p2-9k)."""

    def __init__(self, parts: Sequence[DolosDataset]):
        if not parts:
            raise DatasetError("no datasets to concatenate")
        self.parts = list(parts)
        self.index = [(p, j) for p, d in enumerate(self.parts) for j in range(len(d))]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item) -> dict:
        i, flip = (item if isinstance(item, tuple) else (item, False))
        p, j = self.index[i]
        return self.parts[p][(j, flip)]

    @property
    def labels(self) -> np.ndarray:
        return np.array([self.parts[p].key.label for p, _ in self.index])


@dataclass(frozen=True)
class EpochSampler:
    """Deterministic batches for one epoch: ``iters`` batches of ``batch_size`` indices drawn
    from consecutive random permutations, each with a random horizontal flip when ``flip``.
    Seeded by (seed, epoch), so a run resumed at an epoch boundary repeats the same batches."""

    n: int
    batch_size: int
    iters: int
    seed: int
    epoch: int
    flip: bool

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        need = self.batch_size * self.iters
        order = np.concatenate([rng.permutation(self.n) for _ in range(-(-need // self.n))])[:need]
        flips = rng.random(need) < 0.5 if self.flip else np.zeros(need, dtype=bool)
        for b in range(self.iters):
            sl = slice(b * self.batch_size, (b + 1) * self.batch_size)
            yield [(int(i), bool(f)) for i, f in zip(order[sl], flips[sl])]

    def __len__(self) -> int:
        return self.iters


def collate(batch: list[dict]) -> dict:
    return {
        "image": torch.stack([b["image"] for b in batch]),
        "label": torch.tensor([b["label"] for b in batch], dtype=torch.long),
        "mask": torch.stack([b["mask"] for b in batch]),
        "has_mask": torch.tensor([b["has_mask"] for b in batch], dtype=torch.bool),
        "name": [b["name"] for b in batch],
    }
