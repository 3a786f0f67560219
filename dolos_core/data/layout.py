"""The DOLOS dataset layout (docs/STUDY.md, 'The data') as data, and its validator.

::

    <root>/<source>/real/<split>/*.png                              real images
    <root>/<source>/fake/p2/<split>/*.png                           fully generated
    <root>/<source>/fake/<generator>/{images,masks}/<split>/*.png   partially inpainted

Masks share their image's file name; in a mask 255 (white) is real and anything else fake
(channel 0 when the file has several channels). Models use 1 = fake.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image

SOURCES = ("celebahq", "ffhq")
SPLITS = ("train", "valid", "test")
FULL_GENERATORS = ("p2",)
PARTIAL_GENERATORS = ("repaint-p2", "repaint-p2-9k", "ldm", "lama", "pluralistic")
GENERATORS = FULL_GENERATORS + PARTIAL_GENERATORS
# Which generators exist for which source in the released dataset.
SOURCE_GENERATORS = {
    "celebahq": GENERATORS,
    "ffhq": ("p2", "repaint-p2"),
}
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


class DatasetError(RuntimeError):
    """The data on disk is missing or broken; the message names the path and the problem."""


@dataclass(frozen=True)
class DatasetKey:
    """One dataset of the layout: ``celebahq/real``, ``celebahq/p2``, ``ffhq/repaint-p2``..."""

    source: str
    generator: str  # "real" or a generator name

    @classmethod
    def parse(cls, text: str) -> "DatasetKey":
        try:
            source, generator = text.split("/")
        except ValueError:
            raise DatasetError(f"dataset name {text!r} is not of the form <source>/<generator>")
        key = cls(source, generator)
        if key not in all_keys():
            known = ", ".join(str(k) for k in all_keys())
            raise DatasetError(f"unknown dataset {text!r}; known: {known}")
        return key

    def __str__(self) -> str:
        return f"{self.source}/{self.generator}"

    @property
    def kind(self) -> str:
        """``real``, ``full`` (fully generated) or ``partial`` (inpainted, with masks)."""
        if self.generator == "real":
            return "real"
        return "full" if self.generator in FULL_GENERATORS else "partial"

    @property
    def label(self) -> int:
        return 0 if self.kind == "real" else 1

    @property
    def has_masks(self) -> bool:
        return self.kind == "partial"

    def images_dir(self, root: Path, split: str) -> Path:
        root = Path(root)
        if self.kind == "real":
            return root / self.source / "real" / split
        if self.kind == "full":
            return root / self.source / "fake" / self.generator / split
        return root / self.source / "fake" / self.generator / "images" / split

    def masks_dir(self, root: Path, split: str) -> Path | None:
        if not self.has_masks:
            return None
        return Path(root) / self.source / "fake" / self.generator / "masks" / split


def all_keys() -> tuple[DatasetKey, ...]:
    keys = []
    for source in SOURCES:
        keys.append(DatasetKey(source, "real"))
        keys.extend(DatasetKey(source, g) for g in SOURCE_GENERATORS[source])
    return tuple(keys)


def list_images(folder: Path) -> list[str]:
    """Sorted image file names in ``folder`` (empty when it does not exist)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir()
                  if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."))


def split_exists(root: Path, key: DatasetKey, split: str) -> bool:
    return key.images_dir(root, split).is_dir() and bool(list_images(key.images_dir(root, split)))


@dataclass
class SplitReport:
    """What the validator found for one dataset split."""

    key: DatasetKey
    split: str
    n_images: int = 0
    n_masks: int | None = None
    sizes: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    @property
    def present(self) -> bool:
        return self.n_images > 0


@dataclass
class ValidationReport:
    """The validator's findings for a data root; ``table()`` is the per-split overview."""

    root: Path
    splits: list[SplitReport]

    @property
    def problems(self) -> list[str]:
        return [p for s in self.splits for p in s.problems]

    def missing(self) -> list[str]:
        return [f"{s.key}/{s.split}" for s in self.splits if not s.present]

    def counts(self) -> dict[str, int]:
        return {f"{s.key}/{s.split}": s.n_images for s in self.splits}

    def table(self):
        import pandas as pd

        rows = []
        for s in self.splits:
            rows.append({
                "source": s.key.source, "generator": s.key.generator, "split": s.split,
                "images": s.n_images, "masks": s.n_masks if s.n_masks is not None else "",
                "size": ", ".join(f"{w}x{h}" for (w, h) in sorted(s.sizes)) or "",
                "status": "missing" if not s.present else ("ok" if not s.problems
                                                           else f"{len(s.problems)} problem(s)"),
            })
        return pd.DataFrame(rows)

    def raise_for_problems(self, limit: int = 20) -> None:
        problems = self.problems
        if problems:
            shown = "\n  ".join(problems[:limit])
            more = f"\n  ... and {len(problems) - limit} more" if len(problems) > limit else ""
            raise DatasetError(f"data root {self.root} has {len(problems)} problem(s):\n  "
                               f"{shown}{more}")


def _inspect(path: Path, deep: bool) -> tuple[tuple[int, int] | None, str | None]:
    """(size, None) for a readable image, (None, reason) otherwise."""
    try:
        with Image.open(path) as im:
            size = im.size
            if deep:
                im.load()
        return size, None
    except Exception as exc:  # PIL raises many types for broken files
        return None, f"{path}: unreadable image ({type(exc).__name__}: {exc})"


def _inspect_mask(path: Path, deep: bool) -> tuple[tuple[int, int] | None, str | None]:
    """As ``_inspect``; with ``deep`` also the share of pixels of the channel the masks are read
    from (``datasets.mask_to_fake``) that are neither 0 nor 255: such a mask is named, since the
    authors threshold masks after a grayscale resize and this repository before resizing, which
    agree only on pure black-and-white masks."""
    if not deep:
        return _inspect(path, deep)
    try:
        with Image.open(path) as im:
            size = im.size
            arr = np.asarray(im.convert("RGB") if im.mode == "P" else im)
    except Exception as exc:  # PIL raises many types for broken files
        return None, f"{path}: unreadable image ({type(exc).__name__}: {exc})"
    if arr.ndim == 3:
        arr = arr[..., 0]
    if arr.dtype == bool:
        return size, None
    gray = float(np.mean((arr != 0) & (arr != 255)))
    if gray > 0:
        return size, (f"{path}: mask holds values other than 0 and 255 in {100 * gray:.2f}% of its pixels "
                      "(masks must be pure black (fake) and white (real): the authors threshold after "
                      "resizing, this repository before, and the two agree only on pure masks)")
    return size, None


def validate_split(root: Path, key: DatasetKey, split: str, deep: bool = True,
                   pool: ThreadPoolExecutor | None = None) -> SplitReport:
    """Count and check one split: unreadable files, images without masks and the reverse,
    masks whose size differs from their image's, and (``deep``) masks with gray values."""
    report = SplitReport(key, split)
    img_dir = key.images_dir(root, split)
    images = list_images(img_dir)
    report.n_images = len(images)
    if not images:
        return report
    mapper = pool.map if pool is not None else map
    img_info = list(mapper(lambda n: _inspect(img_dir / n, deep), images))
    for (size, err) in img_info:
        if err:
            report.problems.append(err)
        else:
            report.sizes[size] += 1
    mask_dir = key.masks_dir(root, split)
    if mask_dir is not None:
        masks = list_images(mask_dir)
        report.n_masks = len(masks)
        img_set, mask_set = set(images), set(masks)
        for name in sorted(img_set - mask_set):
            report.problems.append(f"{img_dir / name}: image has no mask (expected {mask_dir / name})")
        for name in sorted(mask_set - img_set):
            report.problems.append(f"{mask_dir / name}: mask has no image (expected {img_dir / name})")
        common = [n for n in images if n in mask_set]
        mask_info = list(mapper(lambda n: _inspect_mask(mask_dir / n, deep), common))
        sizes = dict(zip(images, (s for s, _ in img_info)))
        for name, (msize, err) in zip(common, mask_info):
            if err:
                report.problems.append(err)
            if msize is not None and sizes.get(name) is not None and msize != sizes[name]:
                w, h = sizes[name]
                report.problems.append(
                    f"{mask_dir / name}: mask is {msize[0]}x{msize[1]} but its image is {w}x{h}")
    return report


def validate_root(root: str | Path, keys: Iterable[DatasetKey] | None = None,
                  splits: Iterable[str] = SPLITS, deep: bool = True,
                  progress: bool = False) -> ValidationReport:
    """Report which datasets and splits exist under ``root``, with counts, image sizes and
    every broken file. Missing splits are reported (``report.missing()``), not fatal."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"data root {root} does not exist or is not a folder")
    keys = tuple(keys) if keys is not None else all_keys()
    todo = [(k, s) for k in keys for s in splits]
    if progress:
        from tqdm.auto import tqdm

        todo = tqdm(todo, desc="validating", unit="split")
    with ThreadPoolExecutor(max_workers=8) as pool:
        reports = [validate_split(root, k, s, deep=deep, pool=pool) for k, s in todo]
    return ValidationReport(root=root, splits=reports)
