"""Profiles (smoke / mini / paper), paths and device choice.

A profile is plain data: everything that differs between a seconds-long test run, the laptop
study on DOLOS-mini and the paper's GPU study lives here, in one place, and nowhere else.
Override any field with ``get_profile("mini", image_size=96)`` or, from a notebook, with the
``overrides`` parameter.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch

from .models import MODELS, card
from .models.card import Schedule
from .cpu_pin import MODES as CPU_NUMERICS
from .numerics import PRECISIONS

PROFILES = ("smoke", "mini", "paper")


class ConfigError(ValueError):
    """A parameter or profile value is invalid; the message says which and why."""


@dataclass(frozen=True)
class BuildSizes:
    """Images per split that the DOLOS-mini builder writes for one dataset."""

    train: int
    valid: int
    test: int


@dataclass(frozen=True)
class Profile:
    """Everything that changes between the smoke, mini and paper studies."""

    name: str
    # Image side of the dataset's PNGs (DOLOS: 256) and the network input side (paper: 299).
    image_size: int
    input_size: int
    # Training schedules that replace the methods' own ("patches-full": Schedule(...)); every
    # other (method, supervision) uses the schedule its card names for this profile
    # (dolos_core/models/<method>.py).
    schedules: Mapping[str, Schedule] = field(default_factory=dict)
    # Epoch multiplier of the "all but X" cross-generator trainings (paper: 150 vs 50 epochs).
    allbut_epoch_factor: float = 3.0
    # At most this many validation images per dataset and epoch (None = the whole split).
    max_valid_images: int | None = None
    # Test images per test set used for prediction (None = all).
    max_test_images: int | None = None
    # DOLOS-mini builder sizes (unused for real data). "repaint-p2" is the large train split
    # (the paper's 30k), "repaint-p2-9k" is its 9k subset (same size as the real train split).
    build_sizes: BuildSizes | None = None
    repaint_full_factor: float = 3.3
    # Data loading.
    num_workers: int = 0
    predict_batch_size: int = 64
    # Evaluation.
    detection_repeats: int = 5
    bootstrap: int = 1000
    # The threshold chosen without masks (weak setups have none; evaluate.label_threshold): "otsu"
    # (Otsu's threshold of the validation fakes' map cells) or "real-quantile" (label_quantile of
    # the real validation images' cells).
    label_rule: str = "otsu"
    label_quantile: float = 0.99
    # Extensions: images per test set for robustness and post-processing sweeps.
    robustness_images: int | None = None
    postprocess_images: int | None = None
    seed: int = 0
    # Starting weights: "paper" (as the paper: ImageNet for Grad-CAM, the FFD checkpoint for
    # Attention; a missing file is an error), "auto" (the paper's when the file is present,
    # random otherwise), "random", or a checkpoint path. See dolos_core/weights.py.
    init: str = "auto"
    # Folder of weight files (None = weights/ in the repository).
    weights_dir: str | None = None
    # Cap on every training's epochs x iterations (None = the schedule as it is). For dry runs:
    # a capped run also validates on at most as many images as it trains on.
    max_iters: int | None = None
    # Stop a training once its validation loss has not improved for this many epochs (the
    # checkpoint kept is still the best one; None = run the schedule's epochs). The paper's
    # footing on a GPU uses it (the opt-in ``footing`` stage, dolos_core/footing.py).
    patience: int | None = None
    # Each method's own options (its card's ``options``), by method: e.g. the random init of weak
    # Patches, {"patches": {"weak_init": "pytorch"}}: "authors" (Patch-Forensics' Xavier gain
    # 0.02, as the paper, the card's default) or "pytorch" (PyTorch's default, as the authors'
    # full Patches). The mini profile uses "pytorch": with the authors' init the network needs far
    # more steps than a laptop budget before it learns anything (docs/STUDY.md, "Initialisation";
    # the scaling stage at 590ef1f). --set method_options.patches.weak_init=authors.
    method_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # Numerics of training, validation and prediction on a GPU: "fp32", the authors' (PyTorch
    # 1.13's defaults: float32 with TF32 convolutions), or "bf16" (bfloat16 autocast: faster,
    # not the authors'). Part of the run id. On a CPU both run in float32.
    precision: str = "fp32"
    # The CPU kernels of training and prediction: "avx2" (pinned to x86-64 AVX2 in PyTorch, oneDNN
    # and MKL: the committed numbers come back to the digit on any x86-64 CPU with AVX2) or
    # "native" (each library's fastest for the CPU it finds; the run id names that CPU). Set for
    # a whole run with --set cpu_numerics=native (dolos_core/cpu_pin.py, docs/running.md).
    cpu_numerics: str = "avx2"
    # GPU runs: deterministic cuDNN and PyTorch algorithms (the same weights again on the same GPU
    # model, driver stack and versions), at a cost benchmarks/gpu_check.py measures. Part of the id.
    gpu_deterministic: bool = False
    # The paper's own Table 2/3 numbers, from a file a user supplies (no source this project can
    # reach has them): a CSV with columns experiment, iou (and optionally iou_sm, ap_mean).
    # REPORT.md shows them beside ours; None: the column reads "not available".
    paper_numbers: str | None = None

    def __post_init__(self) -> None:
        for name, low in _COUNTS.items():        # typed values: --set and overrides arrive as text or literals
            value = getattr(self, name)
            if value is None and name in _OPTIONAL:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{name} must be an integer >= {low}{' or None' if name in _OPTIONAL else ''}, "
                                  f"got {value!r}")
        if isinstance(self.label_quantile, bool) or not isinstance(self.label_quantile, (int, float)) \
                or not 0 < self.label_quantile < 1:
            raise ConfigError(f"label_quantile must be a number between 0 and 1, got {self.label_quantile!r}")
        if self.label_rule not in ("otsu", "real-quantile"):
            raise ConfigError(f"label_rule must be otsu or real-quantile, got {self.label_rule!r}")
        for name in ("allbut_epoch_factor", "repaint_full_factor"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ConfigError(f"{name} must be a positive number, got {value!r}")
        check_method_options(self.method_options)
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.cpu_numerics not in CPU_NUMERICS:
            raise ConfigError(f"cpu_numerics must be one of {', '.join(CPU_NUMERICS)}, got {self.cpu_numerics!r}")
        if not isinstance(self.gpu_deterministic, bool):
            raise ConfigError(f"gpu_deterministic must be True or False, got {self.gpu_deterministic!r}")

    def schedule(self, method: str, supervision: str) -> Schedule:
        """The schedule of one training: the profile's own for ``method-supervision`` if it
        names one (an override), else the one the method's card gives this profile."""
        key = f"{method}-{supervision}"
        if key in self.schedules:
            return self.schedules[key]
        found = card(method).schedule(self.name, supervision) if method in MODELS else None
        if found is None:
            raise ConfigError(f"profile {self.name!r} has no schedule for {key!r}: the {method} "
                              f"method's card names none for {self.name!r}")
        return found

    def options_for(self, method: str, supervision: str, own: Mapping[str, Any] | None = None) -> dict:
        """The constructor options of one training of ``method``: its card's options that change
        that supervision's network, at the experiment's ``own`` value, else this profile's
        (``method_options``), else the card's default."""
        return card(method).options_for(supervision, {**self.method_options.get(method, {}), **(own or {})})

    def replace(self, **overrides: Any) -> "Profile":
        return replace_profile(self, overrides)

    def plan(self, method: str, supervision: str, epoch_factor: float = 1.0) -> tuple[int, int]:
        """(epochs, iterations per epoch) of one training: the method's schedule, times
        ``epoch_factor`` (the "all but X" trainings), capped at ``max_iters`` in total;
        ``max_iters=0``: no training at all (the starting weights are evaluated as loaded)."""
        s = self.schedule(method, supervision)
        if self.max_iters == 0:          # evaluate the starting weights as they are
            return 0, s.iters_per_epoch
        epochs = max(1, int(round(s.epochs * epoch_factor)))
        iters = s.iters_per_epoch
        if self.max_iters is not None and epochs * iters > self.max_iters:
            iters = max(1, min(iters, self.max_iters))
            epochs = max(1, self.max_iters // iters)
        return epochs, iters


def check_method_options(method_options: Mapping[str, Mapping[str, Any]]) -> None:
    """Refuse a method that is not registered, an option its card does not declare, or a value
    the option does not take (``Card.options``), naming what it does take."""
    if not isinstance(method_options, Mapping):
        raise ConfigError(f"method_options must map a method to its options, got {method_options!r}")
    for method, opts in method_options.items():
        if method not in MODELS:
            raise ConfigError(f"method_options: no method {method!r} (registered: {', '.join(MODELS)})")
        declared = card(method).options
        if not isinstance(opts, Mapping):
            raise ConfigError(f"method_options.{method} must map an option to a value, got {opts!r}")
        for name, value in opts.items():
            if name not in declared:
                raise ConfigError(f"method_options.{method}.{name}: {method}'s card declares no option {name!r} "
                                  f"(its options: {', '.join(declared) or 'none'})")
            if value not in declared[name].values:
                raise ConfigError(f"method_options.{method}.{name} must be one of "
                                  f"{', '.join(map(repr, declared[name].values))}, got {value!r}")


# Integer fields and their least value (those in _OPTIONAL may also be None).
_COUNTS = {"image_size": 8, "input_size": 8, "max_valid_images": 1, "max_test_images": 1, "num_workers": 0,
           "predict_batch_size": 1, "detection_repeats": 1, "bootstrap": 1, "robustness_images": 1,
           "postprocess_images": 1, "seed": 0, "max_iters": 0, "patience": 1}
_OPTIONAL = {"max_valid_images", "max_test_images", "robustness_images", "postprocess_images", "max_iters",
             "patience"}

_BUILTIN: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        image_size=64,
        input_size=64,
        allbut_epoch_factor=1.0,
        max_valid_images=8,
        build_sizes=BuildSizes(train=8, valid=4, test=6),
        repaint_full_factor=1.5,
        predict_batch_size=16,
        detection_repeats=5,
        bootstrap=50,
        robustness_images=4,
        postprocess_images=4,
    ),
    "mini": Profile(
        name="mini",
        image_size=96,
        input_size=96,
        allbut_epoch_factor=3.0,
        max_valid_images=96,
        build_sizes=BuildSizes(train=1000, valid=100, test=200),
        repaint_full_factor=2.5,
        predict_batch_size=64,
        bootstrap=1000,
        robustness_images=32,
        postprocess_images=100,
        method_options={"patches": {"weak_init": "pytorch"}, "patches-mil": {"weak_init": "pytorch"}},
    ),
    "paper": Profile(
        name="paper",
        image_size=256,
        input_size=299,
        allbut_epoch_factor=3.0,
        max_valid_images=None,
        build_sizes=None,
        num_workers=8,
        predict_batch_size=128,
        bootstrap=1000,
        robustness_images=1000,
        postprocess_images=1000,
        init="paper",
    ),
}


def replace_profile(profile: Profile, overrides: Mapping[str, Any]) -> Profile:
    """Return ``profile`` with ``overrides`` applied; unknown keys raise a ConfigError."""
    names = {f.name for f in dataclasses.fields(Profile)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ConfigError(
            f"unknown profile field(s) {unknown}; valid fields: {', '.join(sorted(names))}"
        )
    if "name" in overrides and overrides["name"] != profile.name:
        raise ConfigError("the profile's name cannot be overridden: choose the profile itself "
                          "(--profile smoke|mini|paper, or a notebook's profile parameter)")
    overrides = dict(overrides)
    if "schedules" in overrides:
        merged = dict(profile.schedules)
        valid = [f"{m}-{sup}" for m in MODELS for sup in ("weak", "full")]
        for key in overrides["schedules"]:
            if key not in valid:
                close = difflib.get_close_matches(key, valid, n=2)
                raise ConfigError(f"schedules.{key}: no such schedule; a schedule is <method>-<weak|full>"
                                  + (f" (did you mean {', '.join(close)}?)" if close else "")
                                  + f"; valid: {', '.join(valid)}")
        for key, value in overrides["schedules"].items():
            if not isinstance(value, Schedule):
                method, _, supervision = key.rpartition("-")
                try:
                    value = Schedule(**{**dataclasses.asdict(profile.schedule(method, supervision)), **value})
                except (TypeError, ValueError) as exc:
                    raise ConfigError(f"schedules.{key}: {exc}") from None
            merged[key] = value
        overrides["schedules"] = merged
    if isinstance(overrides.get("build_sizes"), Mapping):
        overrides["build_sizes"] = BuildSizes(**overrides["build_sizes"])
    if isinstance(overrides.get("method_options"), Mapping):    # merged per method, option by option
        merged_opts = {m: dict(o) for m, o in profile.method_options.items()}
        for method, opts in overrides["method_options"].items():
            merged_opts.setdefault(method, {}).update(opts if isinstance(opts, Mapping) else {"": opts})
        overrides["method_options"] = merged_opts
    return dataclasses.replace(profile, **overrides)


def get_profile(name: str, /, **overrides: Any) -> Profile:
    """The named profile (``smoke``, ``mini`` or ``paper``) with optional field overrides."""
    if name not in _BUILTIN:
        raise ConfigError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}")
    profile = _BUILTIN[name]
    return replace_profile(profile, overrides) if overrides else profile


def _is_checkout(d: Path) -> bool:
    return (d / "pyproject.toml").exists() and (d / "dolos_core").is_dir()


def repo_root() -> Path:
    """The checkout a run reads and writes, passed explicitly, never taken from where an
    installed package lives: ``DOLOS_REPO`` (set by ``./run_all.sh`` for every notebook
    kernel), else the checkout around the working directory (a notebook opened from a
    checkout's ``notebooks/``), else the one holding this package."""
    env = os.environ.get("DOLOS_REPO")
    if env:
        return Path(env).resolve()
    cwd = Path.cwd().resolve()
    for candidate in (cwd, *cwd.parents):
        if _is_checkout(candidate):
            return candidate
    here = Path(__file__).resolve().parent
    for candidate in (here.parent, *here.parents):
        if _is_checkout(candidate):
            return candidate
    return cwd


@dataclass(frozen=True)
class Paths:
    """Where a study of one profile reads and writes (all derived from the repo root)."""

    root: Path
    profile: str
    data_root: Path = field(default=None)  # type: ignore[assignment]
    # A variant's name: its tables and figures go to results/<profile>-<tag>/ and
    # figures/<profile>-<tag>/, beside the untagged study's (runs are keyed by configuration).
    tag: str = ""

    def __post_init__(self) -> None:
        if self.tag and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", self.tag):
            raise ConfigError(f"tag {self.tag!r}: use letters, digits, '.', '_' or '-'")
        if self.data_root is None:
            object.__setattr__(self, "data_root", self.root / "data" / f"dolos-mini-{self.profile}")

    @property
    def runs(self) -> Path:
        return self.root / "runs" / self.profile

    @property
    def checkpoints(self) -> Path:
        return self.runs / "checkpoints"

    @property
    def predictions(self) -> Path:
        return self.runs / "predictions"

    @property
    def notebooks_out(self) -> Path:
        return self.runs / "notebooks"

    @property
    def results(self) -> Path:
        return self.root / "results" / self.output_name

    @property
    def figures(self) -> Path:
        return self.root / "figures" / self.output_name

    @property
    def output_name(self) -> str:
        """``<profile>`` or ``<profile>-<tag>``: the folder name of tables and figures."""
        return f"{self.profile}-{self.tag}" if self.tag else self.profile


def get_paths(profile: str, data_root: str | os.PathLike | None = None,
              root: str | os.PathLike | None = None, tag: str = "") -> Paths:
    base = Path(root).resolve() if root else repo_root()
    dr = Path(data_root).expanduser().resolve() if data_root else None
    return Paths(root=base, profile=profile, data_root=dr, tag=tag or "")  # type: ignore[arg-type]


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then the CPU; an explicit name is checked."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but PyTorch sees no CUDA GPU")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("device 'mps' was asked for but Apple MPS is not available")
    if name not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"unknown device {name!r}; choose auto, cpu, cuda or mps")
    return torch.device(name)


def check_params(profile: str, device: str = "auto", **extra: Any) -> Profile:
    """Validate the common notebook parameters; return the resolved profile."""
    if profile not in PROFILES:
        raise ConfigError(f"profile must be one of {PROFILES}, got {profile!r}")
    resolve_device(device)
    return get_profile(profile, **extra)
