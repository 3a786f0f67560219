"""Maps for any image: a trained model's fake-probability map, overlay and score for your own
images, one file or a folder, any size, PNG or JPEG.

``localizer = load_localizer("patches-C", profile, paths)`` takes a run of this checkout (the
experiment's run under the profile's configuration, as every table reads it), or
``load_localizer("patches-C", profile, paths, checkpoint=FILE)`` a checkpoint file of that
experiment's method and supervision (ours, or a released one such as the authors' Patches
weights: ``models.load_pretrained`` renames it). ``localize_images(localizer, images, out_dir)``
then writes, per image, ``maps/<name>.npy`` (float32 fake probabilities at the model's map
resolution), ``maps/<name>.png`` (the map at the image's size, 0-255), ``overlays/<name>.png``
(the map over the image, its 0.5 contour drawn) and one row of ``scores.csv`` (image score,
share of the map above the threshold, sizes, and the error of an image that could not be
read). Each image goes through the experiment's own test transform (resized to the input side
with the method's filter), in batches on the device; an unreadable file is named in its row and
the others are still processed. Every file is written atomically.
"""

from __future__ import annotations

import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from . import resize
from .config import Paths, Profile, resolve_device
from .data.datasets import Transform, read_image, to_tensor
from .experiments import get_experiment
from .io import atomic_path
from .models import DolosModel, build_model
from .numerics import autocast
from .predict import test_transform
from .runs import resolve_run
from .train import load_trained

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


class ImagesError(ValueError):
    """What was given as images or weights cannot be used; the message names the path."""


@dataclass
class Localizer:
    """A model ready to map images: its network, how an image reaches it, where it came from."""

    model: DolosModel
    transform: Transform
    device: torch.device
    precision: str
    source: str          # "patches-C@<run id>" or "checkpoint <file> as patches-C"


def find_images(path: str | Path) -> list[Path]:
    """One image file, or every image under a folder (recursive, sorted; by suffix)."""
    p = Path(path).expanduser()
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise ImagesError(f"{p}: no such file or folder")
    found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise ImagesError(f"{p}: no image files in it (looked for {', '.join(IMAGE_SUFFIXES)})")
    return found


def load_localizer(experiment: str, profile: Profile, paths: Paths, device: str = "auto",
                   checkpoint: str | Path | None = None) -> Localizer:
    """The model of ``experiment``: its trained run under ``profile`` (this checkout's), or the
    weights of ``checkpoint`` loaded into the experiment's method and supervision."""
    exp = get_experiment(experiment)
    dev = resolve_device(device)
    if checkpoint:
        f = Path(checkpoint).expanduser()
        if not f.is_file():
            raise ImagesError(f"{f}: no such checkpoint file")
        try:
            model = build_model(exp.method, exp.supervision, init=f)
        except pickle.UnpicklingError:   # torch.load(weights_only=True) refused it: not plain tensors
            raise ImagesError(f"{f}: not a checkpoint of tensors that torch.load(weights_only=True) reads "
                              "(a state dict saved with torch.save)") from None
        except Exception as exc:         # not a checkpoint of this method: say which file and why
            why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ImagesError(f"{f}: not a {exp.method} {exp.supervision} checkpoint "
                              f"({type(exc).__name__}: {why if len(why) <= 300 else why[:297] + '...'})") from None
        model = model.to(dev).to(memory_format=torch.channels_last).eval()
        source = f"checkpoint {f.name} as {exp.name}"
    else:
        run = resolve_run(exp, profile, paths, dev)
        try:
            model = load_trained(exp, profile, paths, device, run=run)
        except FileNotFoundError as exc:
            raise ImagesError(str(exc)) from None
        source = run.label
    return Localizer(model, test_transform(exp, profile), dev, profile.precision, source)


def _out_name(f: Path, base: Path, suffix: bool = False) -> str:
    """A file name for ``f``'s outputs: its path under ``base`` with '/' as '__' (and its suffix as
    ``_jpg`` when two files differ only in it)."""
    rel = f.relative_to(base) if base in f.parents else Path(f.name)
    parts = "__".join(rel.with_suffix("").parts) + (f"_{f.suffix.lstrip('.').lower()}" if suffix else "")
    return re.sub(r"[^A-Za-z0-9._-]", "_", parts)


def out_names(files: list[Path], base: Path | None) -> list[str]:
    """One distinct output name per file (``face.jpg`` and ``face.png`` -> ``face_jpg``, ``face_png``)."""
    plain = [_out_name(f, base or f.parent) for f in files]
    twice = {n for n in plain if plain.count(n) > 1}
    return [_out_name(f, base or f.parent, suffix=n in twice) for f, n in zip(files, plain)]


def _overlay(img: np.ndarray, prob: np.ndarray, threshold: float) -> np.ndarray:
    """The map (H, W in [0, 1]) over the image in the 'inferno' colours, the threshold's
    contour in white: (H, W, 3) uint8."""
    from matplotlib import colormaps

    heat = colormaps["inferno"](prob)[..., :3]
    out = 0.45 * img.astype(np.float32) / 255 + 0.55 * heat
    fake = prob > threshold
    edge = fake & ~(np.roll(fake, 1, 0) & np.roll(fake, -1, 0) & np.roll(fake, 1, 1) & np.roll(fake, -1, 1))
    out[edge] = 1.0
    return (np.clip(out, 0, 1) * 255).astype(np.uint8)


def _save_png(path: Path, arr: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(arr).save(tmp, format="PNG")


def localize_images(localizer: Localizer, images: list[Path] | str | Path, out_dir: str | Path,
                    batch_size: int = 16, threshold: float = 0.5, progress: bool = True) -> pd.DataFrame:
    """Maps, overlays and scores of ``images`` (a list, a file or a folder) into ``out_dir``;
    the table, also written as ``out_dir/scores.csv``. One row per image; ``error`` names what
    was wrong with an image that could not be read (its other columns are empty)."""
    if not 0 < threshold < 1:
        raise ImagesError(f"threshold must be between 0 and 1, got {threshold!r}")
    files = images if isinstance(images, list) else find_images(images)
    base = Path(images).expanduser() if not isinstance(images, list) and Path(images).is_dir() else None
    names = dict(zip(files, out_names(files, base)))
    out = Path(out_dir)
    rows: list[dict] = []
    batches = [files[i:i + batch_size] for i in range(0, len(files), batch_size)]
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc=f"maps of {localizer.source}", unit="batch")
    model = localizer.model.eval()
    for chunk in batches:
        good, xs = [], []
        for f in chunk:
            name = names[f]
            try:
                img = np.asarray(read_image(f))
            except Exception as exc:
                rows.append({"file": str(f), "name": name, "error": str(exc)})
                continue
            good.append((f, name, img))
            xs.append(to_tensor(localizer.transform.image(img)))
        if not good:
            continue
        x = torch.stack(xs).to(localizer.device).contiguous(memory_format=torch.channels_last)
        with autocast(localizer.device, localizer.precision):
            maps, scores = model.predict(x)
        maps = maps.detach().float().cpu().numpy()
        scores = scores.detach().float().cpu().numpy()
        for (f, name, img), m, s in zip(good, maps, scores):
            h, w = img.shape[:2]
            full = resize.bicubic(m, (h, w)).clamp(0, 1).numpy()
            with atomic_path(out / "maps" / f"{name}.npy") as tmp:
                with open(tmp, "wb") as fh:
                    np.save(fh, m.astype(np.float32))
            _save_png(out / "maps" / f"{name}.png", (full * 255).round().astype(np.uint8))
            _save_png(out / "overlays" / f"{name}.png", _overlay(img, full, threshold))
            rows.append({"file": str(f), "name": name, "width": w, "height": h, "score": float(s),
                         "fake_share": float((full > threshold).mean()), "map_h": m.shape[0], "map_w": m.shape[1],
                         "error": ""})
    table = pd.DataFrame(rows, columns=["file", "name", "width", "height", "score", "fake_share", "map_h",
                                        "map_w", "error"])
    for col in ("width", "height", "map_h", "map_w"):      # integers, empty where a file was unreadable
        table[col] = table[col].astype("Int64")
    order = {str(f): i for i, f in enumerate(files)}
    table = table.sort_values("file", key=lambda c: c.map(order)).reset_index(drop=True)
    table.insert(0, "model", localizer.source)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "scores.csv") as tmp:
        table.to_csv(tmp, index=False)
    return table


__all__ = ["IMAGE_SUFFIXES", "ImagesError", "Localizer", "find_images", "load_localizer", "localize_images"]
