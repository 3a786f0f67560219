"""Torch datasets over the DOLOS layout.

Each item is a dict: ``image`` (3, S, S) float in [-1, 1] (mean = std = 0.5, as Xception),
``label`` (0 real, 1 fake), ``mask`` (S, S) float with 1 = fake (zeros for real images, ones for
fully generated ones), ``has_mask`` (True only for inpainted images) and ``name`` (file name).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from .. import resize
from ..io import save_npz
from ..models import card
from .layout import DatasetError, DatasetKey, list_images

# A perturbation takes an HxWx3 uint8 image and a seed, returns an HxWx3 uint8 image.
Perturbation = Callable[[np.ndarray, int], np.ndarray]

_PIL_FILTERS = {"lanczos": Image.LANCZOS, "bilinear": Image.BILINEAR}


@dataclass(frozen=True)
class Transform:
    """How an image and its mask reach the network, as the authors' code does it per method
    and supervision (docs/STUDY.md, "Transforms"); see :func:`transform_for`.

    ``resize``: the image filter to ``input_size`` x ``input_size`` (``lanczos`` or
    ``bilinear``, Pillow's, which is what torchvision's ``Resize`` applies to a PIL image).
    ``flip``: random horizontal flips in training (the sampler draws them). ``mask_size``: the
    side the mask is resized to (None = the input size); ``mask_resize``: ``nearest``, or
    ``bilinear`` followed by the authors' binarisation (fake where the resized mask < 0.5).
    """

    input_size: int
    resize: str = "lanczos"
    flip: bool = False
    mask_size: int | None = None
    mask_resize: str = "nearest"

    def __post_init__(self) -> None:
        if self.resize not in _PIL_FILTERS:
            raise ValueError(f"image resize must be one of {sorted(_PIL_FILTERS)}, got {self.resize!r}")
        if self.mask_resize not in ("nearest", "bilinear"):
            raise ValueError(f"mask resize must be nearest or bilinear, got {self.mask_resize!r}")

    def image(self, img: np.ndarray) -> np.ndarray:
        s = self.input_size
        if img.shape[0] == s and img.shape[1] == s:
            return img
        return np.asarray(Image.fromarray(img).resize((s, s), _PIL_FILTERS[self.resize]))

    def mask(self, mask: np.ndarray) -> np.ndarray:
        """(H, W) uint8 1 = fake -> (m, m) uint8 1 = fake."""
        m = self.mask_size or self.input_size
        if mask.shape == (m, m):
            return mask
        if self.mask_resize == "nearest":
            return resize.nearest(mask, (m, m))
        # The authors' file convention (255 = real), bilinear, then "< 0.5" of [0, 1] = fake.
        real = Image.fromarray(((1 - mask) * 255).astype(np.uint8)).resize((m, m), Image.BILINEAR)
        return (np.asarray(real, dtype=np.float32) / 255 < 0.5).astype(np.uint8)


def transform_for(method: str, supervision: str, input_size: int, map_size: int | None = None,
                  train: bool = True) -> Transform:
    """The authors' transform of one method and supervision, as the method's card gives it
    (``Card.authors_transform``, ``Card.mask_resize``; docs/STUDY.md, "Transforms"). The paper's:

    - Patches weak and Grad-CAM weak: Lanczos resize (and centre crop, a no-op on square
      images), random horizontal flip in training only;
    - Attention (weak and full) and every full-supervision training: bilinear resize, no flip;
    - masks (full supervision): nearest to the map for Patches and Grad-CAM, bilinear then
      binarised at 0.5 for Attention.
    """
    c = card(method)
    authors = supervision in c.authors_transform
    return Transform(
        input_size=input_size,
        resize="lanczos" if authors else "bilinear",
        flip=authors and train,
        mask_size=map_size if supervision == "full" else None,
        mask_resize=c.mask_resize,
    )


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


class DolosDataset(Dataset):
    """One split of one DOLOS dataset, e.g. ``celebahq/repaint-p2``, ``test``.

    ``input_size``: images are resized to it with Lanczos and masks with nearest neighbour,
    unless ``transform`` (a method's own, :func:`transform_for`) says otherwise. An index may be
    an int or ``(int, flip)``: the training sampler decides flips itself so that a resumed run
    sees the same augmentations.
    """

    def __init__(self, root: str | Path, key: DatasetKey | str, split: str, input_size: int,
                 limit: int | None = None, perturbation: Perturbation | None = None,
                 perturbation_seed: int = 0, names: Sequence[str] | None = None,
                 transform: Transform | None = None):
        self.root = Path(root)
        self.key = DatasetKey.parse(key) if isinstance(key, str) else key
        self.split = split
        self.input_size = int(input_size)
        self.transform = transform or Transform(self.input_size)
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
        t = self.transform
        img = t.image(img)
        if mask is not None:
            mask_t = torch.from_numpy(t.mask(mask).astype(np.float32))
        else:
            m = t.mask_size or t.input_size
            mask_t = torch.full((m, m), float(self.key.label))
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


class DecodedSplit:
    """A split decoded and resized once (a ``DolosDataset`` or ``ConcatDolos``), so training
    and validation read uint8 arrays instead of decoding PNGs every epoch.

    ``images`` (N, S, S, 3) uint8 after the transform's resize, ``masks`` (N, m, m) uint8
    (1 = fake) only when ``with_masks`` (full supervision: weak runs never read a mask),
    ``labels`` and ``has_mask`` per item. With ``cache_dir`` the arrays live in a file named by
    the split's files and the transform (``cache_key``), written once, atomically, and shared
    by every run that reads the same files the same way; without it they stay in memory.

    ``batch(items)`` gathers a batch of ``(index, flip)`` pairs as uint8 tensors, and
    ``on_device(batch, device)`` normalises ((x / 127.5) - 1, as ``to_tensor``) and flips on the
    device: bit for bit what ``collate`` of the dataset's items gives (tested).
    """

    def __init__(self, dataset, with_masks: bool, cache_dir: Path | None = None,
                 num_workers: int = 0, progress: bool = False):
        parts = dataset.parts if isinstance(dataset, ConcatDolos) else [dataset]
        self.parts = parts
        self.with_masks = with_masks
        self.names = [n for d in parts for n in d.names]
        self.labels = np.array([d.key.label for d in parts for _ in d.names], dtype=np.int64)
        self.has_mask = np.array([d.masks_dir is not None for d in parts for _ in d.names], dtype=bool)
        t = parts[0].transform
        self.mask_side = t.mask_size or t.input_size
        arrays = None
        if cache_dir is not None:
            self.file = Path(cache_dir) / f"{cache_key(parts, with_masks)}.npz"
            if self.file.exists():
                arrays = _read_cache(self.file)
        if arrays is None:
            arrays = self._decode(dataset, num_workers, progress)
            if cache_dir is not None:

                self.file.parent.mkdir(parents=True, exist_ok=True)
                save_npz(self.file, **arrays)
        self.images = arrays["images"]
        self.masks = arrays.get("masks")

    def _decode(self, dataset, num_workers: int, progress: bool) -> dict:
        from torch.utils.data import DataLoader

        loader = DataLoader(_Raw(dataset, self.with_masks, self.mask_side), batch_size=64,
                            num_workers=num_workers, collate_fn=_as_list)
        if progress:
            from tqdm.auto import tqdm

            loader = tqdm(loader, desc="decoding once", unit="batch", leave=False)
        imgs, masks = [], []
        for chunk in loader:
            imgs += [c[0] for c in chunk]
            masks += [c[1] for c in chunk]
        out = {"images": np.stack(imgs)}
        if self.with_masks:
            out["masks"] = np.stack(masks)
        return out

    def __len__(self) -> int:
        return len(self.names)

    def batch(self, items) -> dict:
        """A batch of ``(index, flip)`` pairs (``EpochSampler``'s) or plain indices."""
        items = [(i, False) if not isinstance(i, tuple) else i for i in items]
        idx = np.array([i for i, _ in items], dtype=np.int64)
        out = {"image": torch.from_numpy(np.ascontiguousarray(self.images[idx])),
               "label": torch.from_numpy(self.labels[idx]),
               "has_mask": torch.from_numpy(self.has_mask[idx]),
               "flip": torch.tensor([bool(f) for _, f in items]),
               "name": [self.names[i] for i in idx]}
        if self.with_masks:
            out["mask"] = torch.from_numpy(np.ascontiguousarray(self.masks[idx]))
        return out

    @staticmethod
    def on_device(batch: dict, device: torch.device, channels_last: bool = True) -> dict:
        """The uint8 batch as the network's input on ``device``: (B, 3, S, S) float in
        [-1, 1] (channels-last strides), flipped where ``flip``; masks float."""
        out = dict(batch)
        flip = torch.nonzero(batch["flip"]).flatten().tolist()   # on the host: no device sync
        x = batch["image"].to(device, non_blocking=True).permute(0, 3, 1, 2)  # channels-last strides
        x = x.float().div_(127.5).sub_(1.0)
        if flip:
            x[flip] = x[flip].flip(-1)
        out["image"] = x.contiguous(memory_format=torch.channels_last) if channels_last else x.contiguous()
        out["label"] = batch["label"].to(device, non_blocking=True)
        out["has_mask"] = batch["has_mask"].to(device, non_blocking=True)
        if "mask" in batch:
            m = batch["mask"].to(device, non_blocking=True).float()
            if flip:
                m[flip] = m[flip].flip(-1)
            out["mask"] = m
        return out


def _as_list(batch: list) -> list:
    """A loader's batch as it is (a module-level function: workers started by spawn, as on
    macOS, must pickle it)."""
    return batch


class _Raw(Dataset):
    """Items of a dataset after the transform's resize, before normalisation: (image
    (S, S, 3) uint8, mask (m, m) uint8 or None): what ``DecodedSplit`` stores."""

    def __init__(self, dataset, with_masks: bool, mask_side: int):
        self.parts = dataset.parts if isinstance(dataset, ConcatDolos) else [dataset]
        self.index = [(p, j) for p, d in enumerate(self.parts) for j in range(len(d))]
        self.with_masks, self.mask_side = with_masks, mask_side

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i):
        p, j = self.index[i]
        d = self.parts[p]
        img, mask = d.load_raw(j)
        if d.perturbation is not None:
            img = d.perturbation(img, d.perturbation_seed * 1_000_003 + j)
        img = np.ascontiguousarray(d.transform.image(img), dtype=np.uint8)
        if not self.with_masks:
            return img, None
        if mask is None:
            m = np.full((self.mask_side, self.mask_side), d.key.label, np.uint8)
        else:
            m = d.transform.mask(mask).astype(np.uint8)
        return img, m


def cache_key(parts, with_masks: bool) -> str:
    """A name for a decoded split: a hash of each part's files (names, sizes, modification
    times, of the masks too when kept) and transform, and whether masks are kept."""

    desc = []
    for d in parts:
        files = []
        for n in d.names:
            st = (d.images_dir / n).stat()
            files.append([n, st.st_size, st.st_mtime_ns])
            if with_masks and d.masks_dir is not None:
                ms = (d.masks_dir / n).stat()
                files[-1] += [ms.st_size, ms.st_mtime_ns]
        desc.append({"key": str(d.key), "split": d.split, "files": files,
                     "transform": dataclasses.asdict(d.transform),
                     "perturbation": d.perturbation is not None})
    text = json.dumps({"parts": desc, "masks": with_masks}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _read_cache(path: Path) -> dict | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception:       # a broken cache is rebuilt, never trusted
        return None

