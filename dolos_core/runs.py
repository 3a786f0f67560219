"""A run is its configuration: run identities keyed by everything that changes a result.

A training's folder is ``runs/<profile>/checkpoints/<experiment>/<run id>/`` and its
predictions ``runs/<profile>/predictions/<experiment>/<run id>/``, where the run id is a hash
of :func:`training_config`: the experiment (train sets, loss, budget factor, init override),
the schedule as run (lr, batch, epochs x iterations), the profile fields training reads
(input size, seed, validation cap, precision, weak-Patches init), the starting weights (policy,
file name and size) and the data (a summary of what the experiment reads: not where it lives,
so a fresh clone finds the same ids), the code (:func:`code_hash`: the source of the run's
own method, the shared model code, the data pipeline, the losses and the training loop - not of
other methods, plots, tables or the runner) and the numerics (``numerics.identity``: the device
kind; on a CPU the kernels in effect, pinned AVX2 or native, with the libraries' versions and the
threads; on a GPU its model, CUDA and cuDNN). Change any of them - a learning rate in a notebook
cell, ``--set``, ``--init``, a ``--data-root`` with other files, another kind of CPU under
``cpu_numerics=native``, a GPU - and the run trains into a new folder beside the old one; an
identical configuration finds its finished run and reuses it.

A training and its predictions write a small manifest, ``run.json`` (run id, the configuration's
key without the numerics, the numerics, the checkpoint), in their folders. Evaluation resolves
the configuration's run (:func:`resolve_run`): the one made under this process's numerics if it
exists, else one the manifests record for the same configuration made elsewhere (on the GPU
nodes of a cluster, say), so a table never reads a run of another configuration: what is not
there is reported as missing.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .config import Paths, Profile, resolve_device
from .data.layout import DatasetKey
from .experiments import Experiment, plan_for, test_set_name
from .io import read_json, write_json
from .models import MODELS, method_sources
from .numerics import identity
from .weights import InitChoice, default_weights_dir, resolve_init

# Profile fields a training reads (everything else - bootstrap, test caps, batch size of
# prediction - changes evaluation only, never the trained weights).
TRAINING_FIELDS = ("input_size", "seed", "max_valid_images", "precision")
ID_LENGTH = 10

# The shared source that changes what a training learns (relative to the package): the model
# code every method shares (base class, backbone, card, checkpoint filters, the registry), the
# data pipeline, the losses, the numerics, the training loop, resizing and the starting weights.
# A run's code hash is this plus its own method's files (``models.method_sources``: the file of
# its class and of the classes it builds on), so adding a method or editing another method's file
# retrains nothing of this one. Plots, tables, metrics, the extensions and the runner are not in
# it: editing them never retrains.
TRAINING_SOURCES = ("models/base.py", "models/backbone.py", "models/card.py", "models/checkpoints.py",
                    "models/registry.py", "data/datasets.py", "data/layout.py", "losses.py", "numerics.py",
                    "cpu_pin.py", "train.py", "resize.py", "weights.py", "ddp.py", "ddp_worker.py")
# The library modules a training imports (``train`` and ``ddp_worker``, their whole import closure)
# that are not hashed, each with why: nothing in them decides what a training computes, or what
# does is in the run's configuration. ``tests/test_structure.py`` computes the closure with grimp
# and fails on a module that is in neither list (:func:`unaccounted`): a new import of training
# is hashed, or named here with its reason.
NOT_HASHED = {
    "__init__.py": "the package's own: the CPU pin it applies is recorded in the run's numerics",
    "config.py": "profiles and paths: the fields a training reads are in the configuration (TRAINING_FIELDS, "
                 "the schedule, the init), not the module's source",
    "experiments.py": "the experiment's record (train sets, loss, budget factor) is in the configuration",
    "models/__init__.py": "the list of method imports: adding a method retrains no other",
    "data/__init__.py": "re-exports of the data modules",
    "io.py": "reading and writing files (atomic JSON, torch.save and load): no arithmetic",
    "locks.py": "one writer per run: no arithmetic",
    "progress.py": "progress files and TensorBoard scalars: written, never read by a training",
    "runs.py": "computes the id itself",
}
_PACKAGE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class RunRef:
    """Where one configured run of an experiment lives."""

    experiment: str
    run_id: str
    checkpoint_dir: Path
    predictions_dir: Path
    config: dict

    @property
    def label(self) -> str:
        return f"{self.experiment}@{self.run_id}"

    def predictions_file(self, test_key: str, split: str = "test") -> Path:
        """This run's predictions on one test set (``celebahq/repaint-p2`` -> ``...npz``), or on
        its validation split (``split="valid"``: ``celebahq_repaint-p2@valid.npz``)."""
        suffix = "" if split == "test" else f"@{split}"
        return self.predictions_dir / f"{test_set_name(test_key)}{suffix}.npz"


def _folder_summary(folder: Path | None) -> list:
    """[number of files, total bytes, hash of the sorted names] of a folder (None: absent)."""
    if folder is None or not folder.is_dir():
        return [0, 0, ""]
    names, size = [], 0
    with os.scandir(folder) as it:
        for entry in it:
            if entry.is_file():
                names.append(entry.name)
                size += entry.stat().st_size
    digest = hashlib.sha256("\n".join(sorted(names)).encode()).hexdigest()[:12]
    return [len(names), size, digest]


def data_summary(data_root: Path, needs: list[tuple[str, str]]) -> dict:
    """What the experiment reads, summarised cheaply: per (dataset, split) the number, total size
    and names of its images and masks; for DOLOS-mini also its build record."""
    root = Path(data_root)
    out: dict = {}
    mini = root / "DOLOS-MINI.json"
    if mini.exists():
        meta = json.loads(mini.read_text())
        out["dolos_mini"] = {k: v for k, v in meta.items() if k not in ("build_seconds", "counts", "not_testable")}
    for key_text, split in sorted(set(needs)):
        key = DatasetKey.parse(key_text)
        out[f"{key_text}/{split}"] = [_folder_summary(key.images_dir(root, split)),
                                      _folder_summary(key.masks_dir(root, split))]
    return out


def _source_files(method: str | None, package: Path) -> list[tuple[str, Path]]:
    """(name hashed, file read) of the shared sources and, with ``method``, its own files: a
    file inside the package under its path relative to the package (read from ``package``),
    one outside it (a method defined in a user's script) under its file name."""
    files = [(rel, package / rel) for rel in TRAINING_SOURCES if (package / rel).exists()]
    for f in method_sources(method) if method else []:
        try:
            rel = f.relative_to(_PACKAGE).as_posix()
            files.append((rel, package / rel))
        except ValueError:
            files.append((f.name, f))
    return files


def unaccounted(modules, package: Path = _PACKAGE) -> list[str]:
    """Of ``modules`` (dotted names, ``dolos_core.x.y``), the files neither hashed
    (TRAINING_SOURCES, a registered method's files) nor in NOT_HASHED: what a run id misses."""
    methods = {f.relative_to(package).as_posix() for m in MODELS for f in method_sources(m)
               if package in f.parents}
    out = []
    for name in modules:
        rel = name.split(".", 1)[1].replace(".", "/") if "." in name else "__init__"
        rel = f"{rel}/__init__.py" if (package / rel).is_dir() else f"{rel}.py"
        if rel not in TRAINING_SOURCES and rel not in NOT_HASHED and rel not in methods:
            out.append(rel)
    return sorted(out)


@functools.lru_cache(maxsize=None)
def code_hash(method: str | None = None, package: Path = _PACKAGE) -> str:
    """A short hash of the code a training of ``method`` runs: :data:`TRAINING_SOURCES` under
    ``package`` and the method's own files (``models.method_sources``); ``method=None``: the
    shared part alone. Every file's path (relative, so not where the checkout lives) and
    content (line endings normalised) go in."""
    h = hashlib.sha256()
    for name, f in _source_files(method, Path(package)):
        h.update(name.encode() + b"\0")
        h.update(f.read_bytes().replace(b"\r\n", b"\n") + b"\0")
    return h.hexdigest()[:ID_LENGTH]


def training_config(exp: Experiment, profile: Profile, paths: Paths) -> dict:
    """Everything that changes what ``exp`` learns under ``profile`` on ``paths.data_root``."""
    epochs, iters = plan_for(exp, profile)
    start = experiment_init(exp, profile, paths)
    exp_dict = dataclasses.asdict(exp)
    exp_dict.pop("description")
    exp_dict.pop("test")          # what it is tested on changes predictions, not training
    exp_dict.pop("transfer_test")
    exp_dict.pop("group")
    cfg = {
        "experiment": exp_dict,
        "schedule": dataclasses.asdict(profile.schedule(exp.method, exp.supervision)),
        "epochs": epochs, "iters_per_epoch": iters,
        **{f: getattr(profile, f) for f in TRAINING_FIELDS},
        "max_iters": profile.max_iters,
        "init": {"kind": start.kind, "label": start.label,
                 "file": start.path.name if start.path else None,
                 "bytes": start.path.stat().st_size if start.path else None},
        "data": data_summary(paths.data_root, [n for n in exp.needs if n[1] != "test"]),
        "code": code_hash(exp.method),
    }
    options = options_of(exp, profile)
    if options:
        cfg["options"] = options
    if profile.patience is not None:          # only when set: the ids of runs without it stay
        cfg["patience"] = profile.patience
    return cfg


def experiment_init(exp: Experiment, profile: Profile, paths: Paths,
                    init: str | None = None) -> InitChoice:
    """What ``exp`` starts from: ``init`` (a policy or a path) or the profile's policy, with
    the profile's weights folder (default ``weights/`` in the repository)."""
    weights_dir = profile.weights_dir or default_weights_dir(paths.root)
    return resolve_init(exp.method, exp.supervision, init or profile.init, weights_dir,
                        options_of(exp, profile))


def options_of(exp: Experiment, profile: Profile) -> dict:
    """The method's options of this run (``Card.options``): the experiment's own values, else the
    profile's ``method_options``, else the card's defaults; only those that change its
    supervision's network."""
    return profile.options_for(exp.method, exp.supervision, exp.options)


def config_id(cfg: dict) -> str:
    """A short, stable hash of a configuration (canonical JSON)."""
    text = json.dumps(cfg, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:ID_LENGTH]


MANIFEST = "run.json"


def config_key(cfg: dict) -> str:
    """The key of a configuration without its numerics: the same on every device and CPU."""
    return config_id({k: v for k, v in cfg.items() if k != "numerics"})


def numerics_of(profile: Profile, device: str | torch.device = "auto", processes: int = 1) -> dict:
    """This process's numerics for a run of ``profile`` on ``device`` (``numerics.identity``)."""
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    return identity(dev, profile.precision, processes, profile.cpu_numerics, profile.gpu_deterministic)


def _ref(exp: Experiment, paths: Paths, cfg: dict, numerics: dict) -> RunRef:
    full = {**cfg, "numerics": numerics}
    rid = config_id(full)
    return RunRef(exp.name, rid, paths.checkpoints / exp.name / rid, paths.predictions / exp.name / rid, full)


def run_for_training(exp: Experiment, profile: Profile, paths: Paths, device: str | torch.device = "auto",
                     processes: int = 1) -> RunRef:
    """The run a training of ``exp`` on ``device`` in this process makes: this exact configuration
    under this process's numerics (it may not exist yet)."""
    return _ref(exp, paths, training_config(exp, profile, paths), numerics_of(profile, device, processes))


def write_manifest(folder: Path, run: RunRef) -> None:
    """``run.json`` in a run's checkpoint or predictions folder: what evaluation reads to find it."""
    write_json(folder / MANIFEST, {"experiment": run.experiment, "run_id": run.run_id,
                                   "config_key": config_key(run.config), "numerics": run.config.get("numerics"),
                                   "checkpoint": f"checkpoints/{run.experiment}/{run.run_id}/best.pt"})


def recorded_runs(exp: Experiment, paths: Paths, key: str) -> dict[str, dict]:
    """Run id -> manifest of every run of ``exp`` whose manifest records configuration ``key``."""
    found: dict[str, tuple[float, dict]] = {}
    for base in (paths.checkpoints / exp.name, paths.predictions / exp.name):
        for f in base.glob(f"*/{MANIFEST}") if base.is_dir() else []:
            try:
                meta = read_json(f)
            except (OSError, ValueError):
                continue
            if meta.get("config_key") == key and meta.get("run_id") == f.parent.name:
                found[f.parent.name] = (max(f.stat().st_mtime, found.get(f.parent.name, (0.0,))[0]), meta)
    return {rid: meta for rid, (_, meta) in sorted(found.items(), key=lambda kv: kv[1][0])}


_told: set[tuple] = set()


def _other_cpu_kernels(theirs: dict, mine: dict) -> bool:
    """A CPU run made with other CPU kernels than this process's (native against pinned): the
    same configuration computed otherwise, never read in place of this process's run."""
    return theirs.get("device") == mine.get("device") == "cpu" and theirs.get("kernels") != mine.get("kernels")


def resolve_run(exp: Experiment, profile: Profile, paths: Paths, device: str | torch.device = "auto") -> RunRef:
    """The run of ``exp`` under this configuration: the one made under this process's numerics on
    ``device`` when it exists; else one that the manifests record for the same configuration made
    elsewhere (on a cluster's GPU nodes, read from a CPU-only login node; with several processes
    under DDP; the newest, named once when there are several); else this process's (not trained
    yet). A CPU run made with other CPU kernels (native against pinned) is another run, never
    read in place of this one."""
    cfg = training_config(exp, profile, paths)
    here = _ref(exp, paths, cfg, numerics_of(profile, device))
    if here.checkpoint_dir.exists() or here.predictions_dir.exists():
        return here
    mine = here.config["numerics"]
    found = {rid: meta for rid, meta in recorded_runs(exp, paths, config_key(cfg)).items()
             if not _other_cpu_kernels(meta.get("numerics") or {}, mine)}
    if not found:
        return here
    rid, meta = list(found.items())[-1]
    if len(found) > 1 and (exp.name, rid) not in _told:
        _told.add((exp.name, rid))
        print(f"{exp.name}: {len(found)} runs of this configuration under other numerics "
              f"({', '.join(found)}); reading the newest, {rid} ({meta.get('numerics')})", flush=True)
    return RunRef(exp.name, rid, paths.checkpoints / exp.name / rid, paths.predictions / exp.name / rid,
                  {**cfg, "numerics": meta.get("numerics")})


def other_runs(exp: Experiment, paths: Paths, run: RunRef) -> list[str]:
    """Ids of this experiment's runs under other configurations (for messages)."""
    base = paths.checkpoints / exp.name
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if p.is_dir() and p.name != run.run_id)
