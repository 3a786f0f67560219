"""Batched prediction, once per (experiment, test set), saved for every metric and figure
(the file format: ``dolos_core.predictions``). Skipped when the file is there and current.

A test set is decoded and resized once (``DecodedSplit``: uint8 arrays in the cache the
trainings share, ``runs/<profile>/cache/``), and every experiment that reads it with the same
transform reads the arrays; batches are normalised on the device. The maps are bit for bit those
of the per-item loader (``tests/test_predict.py``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from .config import Paths, Profile, resolve_device
from .data.datasets import DecodedSplit, DolosDataset, Perturbation, collate, transform_for
from .data.layout import DatasetKey, split_exists
from .experiments import Experiment, optional_set, prediction_sets
from .models import DolosModel
from .numerics import autocast
from .predictions import Predictions, predictions_current, save_predictions
from .runs import resolve_run, write_manifest
from .train import load_trained


def test_transform(exp: Experiment, profile: Profile):
    """The image transform of ``exp``'s method at test time (its validation transform)."""
    return transform_for(exp.method, exp.supervision, profile.input_size, train=False)


def _batches(dataset, device: torch.device, batch_size: int, progress: bool, desc: str,
             num_workers: int = 0):
    """(inputs on ``device``, names) of ``dataset`` in order, batched: a ``DecodedSplit``'s
    uint8 arrays normalised on the device, or a dataset's items decoded by ``num_workers``
    loader processes."""
    if isinstance(dataset, DecodedSplit):
        n = len(dataset)
        loader = [range(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]

        def inputs(items):
            b = DecodedSplit.on_device(dataset.batch(list(items)), device)
            return b["image"], b["name"]
    else:
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate,
                            num_workers=num_workers, pin_memory=device.type == "cuda")

        def inputs(b):
            return b["image"].to(device).contiguous(memory_format=torch.channels_last), b["name"]
    it = loader
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(loader, desc=desc, unit="batch", leave=False)
    for batch in it:
        yield inputs(batch)

def decoded(dataset: DolosDataset, paths: Paths, profile: Profile, progress: bool = False) -> DecodedSplit:
    """``dataset`` decoded and resized once, in the cache the trainings share (a perturbed set,
    made per seed, stays in memory): what prediction reads."""
    cache = None if dataset.perturbation is not None else paths.runs / "cache"
    return DecodedSplit(dataset, with_masks=False, cache_dir=cache, num_workers=profile.num_workers,
                        progress=progress)


def predict_dataset(model: DolosModel, dataset, device: torch.device, batch_size: int = 64,
                    progress: bool = False, desc: str = "predict", precision: str = "fp32",
                    num_workers: int = 0) -> tuple[np.ndarray, np.ndarray, list]:
    """Run ``model.predict`` over ``dataset`` (a ``DecodedSplit``, or a dataset of items) in
    batches (``numerics.autocast``'s ``precision``): (maps float16, scores, names)."""
    maps, scores, names = [], [], []
    model.eval()
    for x, batch_names in _batches(dataset, device, batch_size, progress, desc, num_workers):
        with autocast(device, precision):
            m, s = model.predict(x)
        maps.append(m.float().cpu().numpy().astype(np.float16))
        scores.append(s.float().cpu().numpy())
        names += batch_names
    return np.concatenate(maps), np.concatenate(scores).astype(np.float32), names


def cell_features(exp: Experiment, profile: Profile, paths: Paths, key_text: str,
                  limit: int | None = None, device: str = "auto", model: DolosModel | None = None,
                  progress: bool = False) -> tuple[np.ndarray, list]:
    """The per-cell features (``DolosModel.cell_features``) of ``exp``'s trained model on the
    first ``limit`` test images of ``key_text``, in the predictions' order: (features
    (N, C, h, w) float16, names). What FOCAL-style post-processing clusters."""
    dev = resolve_device(device)
    model = model or load_trained(exp, profile, paths, device)
    ds = decoded(DolosDataset(paths.data_root, DatasetKey.parse(key_text), "test", profile.input_size,
                              limit=limit, transform=test_transform(exp, profile)), paths, profile)
    feats, names = [], []
    model.eval()
    for x, batch_names in _batches(ds, dev, profile.predict_batch_size, progress, f"{exp.name} features",
                                   profile.num_workers):
        with torch.no_grad(), autocast(dev, profile.precision):
            feats.append(model.cell_features(x).float().cpu().numpy().astype(np.float16))
        names += batch_names
    return np.concatenate(feats), names


def predict_experiment(exp: Experiment, profile: Profile, paths: Paths, device: str = "auto",
                       force: bool = False, progress: bool = True) -> list[Path]:
    """Predict every test set of ``exp`` (and the validation split that calibrates its
    threshold, ``experiments.prediction_sets``) with its best checkpoint; return the .npz
    paths, test sets first."""

    dev = resolve_device(device)
    model = None
    written = []
    run = resolve_run(exp, profile, paths, device)      # one data scan for every test set
    for key_text, split in prediction_sets(exp):
        key = DatasetKey.parse(key_text)
        if optional_set(exp, key_text, split) and not split_exists(paths.data_root, key, split):
            continue                            # a root without that split: nothing to predict on
        out = run.predictions_file(key_text, split)
        if predictions_current(out, profile) and not force:
            written.append(out)
            continue
        if model is None:
            model = load_trained(exp, profile, paths, device, run=run)
        ds = decoded(DolosDataset(paths.data_root, key, split, profile.input_size,
                                  limit=profile.max_test_images, transform=test_transform(exp, profile)),
                     paths, profile, progress)
        maps, scores, names = predict_dataset(model, ds, dev, profile.predict_batch_size,
                                              progress, desc=f"{exp.name} on {key_text} {split}",
                                              precision=profile.precision, num_workers=profile.num_workers)
        masks_dir = key.masks_dir(paths.data_root, split)
        meta = {
            "experiment": exp.name, "test_set": key_text, "split": split, "label": key.label,
            "images_dir": str(key.images_dir(paths.data_root, split)),
            "masks_dir": str(masks_dir) if masks_dir is not None else None,
            "input_size": profile.input_size, "map_size": list(maps.shape[1:]),
            "n": len(names), "profile": profile.name, "run_id": out.parent.name,
            "max_test_images": profile.max_test_images, "precision": profile.precision,
        }
        save_predictions(out, maps, scores, names, meta)
        written.append(out)
    if written:
        write_manifest(run.predictions_dir, run)
    return written


def predict_perturbed(exp: Experiment, profile: Profile, paths: Paths, key_text: str,
                      perturbation: Perturbation, seed: int, device: str = "auto",
                      limit: int | None = None, model: DolosModel | None = None) -> Predictions:
    """Predictions of ``exp`` on a perturbed test set (robustness extension); not saved."""
    dev = resolve_device(device)
    model = model or load_trained(exp, profile, paths, device)
    key = DatasetKey.parse(key_text)
    ds = decoded(DolosDataset(paths.data_root, key, "test", profile.input_size, limit=limit,
                              perturbation=perturbation, perturbation_seed=seed,
                              transform=test_transform(exp, profile)), paths, profile)
    maps, scores, names = predict_dataset(model, ds, dev, profile.predict_batch_size,
                                          precision=profile.precision)
    masks_dir = key.masks_dir(paths.data_root, "test")
    meta = {"experiment": exp.name, "test_set": key_text, "label": key.label,
            "masks_dir": str(masks_dir) if masks_dir is not None else None}
    return Predictions(maps, scores, np.array(names), meta)
