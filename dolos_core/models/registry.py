"""The registry of methods, as timm's ``_registry``: a model file decorates its ``DolosModel``
subclass with ``@register_model`` and the class is in the study.

``build_model("patches", "full")`` builds one, ``methods()`` lists them in registration order
(the order ``models/__init__.py`` imports the files: the paper's three first), ``card(method)``
gives what the study needs to know about one (``models.card.Card``), and ``method_sources``
the files whose code a method's training runs (its run identity, ``runs.code_hash``).
Every loop over methods (Table 2's experiments, the figures, the claims, the report) reads
this registry. Adding a method: docs/development.md, "Add a method".
"""

from __future__ import annotations

import inspect
from pathlib import Path

import torch

from ..losses import LossConfig
from .backbone import InitError, load_state
from .base import SUPERVISIONS, DolosModel
from .card import Card

MODELS: dict[str, type[DolosModel]] = {}


def register_model(cls: type[DolosModel]) -> type[DolosModel]:
    """Class decorator: add a ``DolosModel`` subclass to the registry under its ``method``
    name. The class must carry its ``card`` (``models.card.Card``). Registering a name again
    replaces it (a notebook re-running a cell)."""
    if not (isinstance(cls, type) and issubclass(cls, DolosModel) and cls.method):
        raise TypeError(f"{cls!r} is not a DolosModel subclass with a method name")
    if not isinstance(cls.__dict__.get("card"), Card):
        raise TypeError(f"{cls.__name__} has no card: give it `card = Card(...)` "
                        "(dolos_core/models/card.py says what a card holds)")
    MODELS[cls.method] = cls
    return cls


def unregister_model(method: str) -> None:
    """Remove a method from the registry (a test's toy method, when the test ends)."""
    MODELS.pop(method, None)


def _known(method: str) -> type[DolosModel]:
    if method not in MODELS:
        raise KeyError(f"unknown method {method!r}; choose one of {', '.join(MODELS)}")
    return MODELS[method]


def methods() -> list[str]:
    """Every registered method, in registration order (the paper's three first)."""
    return list(MODELS)


def card(method: str) -> Card:
    """The card of a registered method."""
    return _known(method).card


def list_models() -> list[tuple[str, str]]:
    """Every (method, supervision) the registry can build and train: a method whose card
    hands full supervision to another method (``Card.full_runs_of``) builds weak models only."""
    return [(m, s) for m in MODELS for s in SUPERVISIONS
            if not (s == "full" and MODELS[m].card.full_runs_of)]


def model_options(method: str) -> list[str]:
    """The keyword options of a method's constructor beyond supervision and loss_cfg."""
    params = inspect.signature(_known(method).__init__).parameters
    return [p for p in params if p not in ("self", "supervision", "loss_cfg")]


def method_sources(method: str) -> list[Path]:
    """The files that define a method's network and losses: the file of its class and of every
    class it inherits from, up to ``DolosModel`` (a method built on Patches runs Patches' code
    too). The shared model code (base, backbone, card, checkpoints, this registry) is hashed
    with the training loop, not here (``runs.TRAINING_SOURCES``)."""
    files = []
    for c in _known(method).__mro__:
        if c is DolosModel or not (isinstance(c, type) and issubclass(c, DolosModel)):
            continue
        f = Path(inspect.getsourcefile(c)).resolve()
        if f not in files:
            files.append(f)
    return files


def build_model(method: str, supervision: str, init: str | Path = "random",
                loss_cfg: LossConfig | None = None, **options) -> DolosModel:
    """A model by method name (``list_models()``) and supervision (``weak``, ``full``).
    ``init``: ``random`` (each method's own random init) or a checkpoint path (ours, the
    authors' Patches release, the FFD checkpoint, timm's or Cadene's ImageNet Xception);
    ``dolos_core.weights.resolve_init`` picks the paper's file. ``options``: the method's own
    constructor options (``model_options``), e.g. Patches' ``weak_init`` (``authors``:
    Patch-Forensics' Xavier 0.02; ``pytorch``: PyTorch's default, as full Patches)."""
    cls = _known(method)
    if supervision not in SUPERVISIONS:
        raise KeyError(f"unknown supervision {supervision!r}; choose weak or full")
    unknown = sorted(set(options) - set(model_options(method)))
    if unknown:
        raise TypeError(f"{method} takes no option(s) {', '.join(unknown)}; its options: "
                        f"{', '.join(model_options(method)) or 'none'}")
    model = cls(supervision, loss_cfg=loss_cfg, **options)
    if str(init) != "random":
        load_pretrained(model, init)
    return model


_HEADS = ("fc.", "convout.", "seg_head.", "attention.")


def load_pretrained(model: DolosModel, path: str | Path) -> None:
    """Load a checkpoint into ``model``: our own format, the authors' Patches release, the FFD
    checkpoint, or an ImageNet Xception (timm's ``legacy_xception`` or Cadene's file, whose
    pointwise weights are 2-D). Missing or ill-shaped backbone tensors are an error; a missing
    head, or a head of another shape (ImageNet's 1000 classes), is left as initialised, except
    an FFD file's attention map, which Attention must not silently start without."""
    state = load_state(path)
    keep = type(model).card.checkpoint_filter
    if keep is not None:
        state = keep(state, path, model)
    own = model.state_dict()
    state = {k: v for k, v in state.items()
             if not (k.startswith(_HEADS) and k in own and own[k].shape != v.shape)}
    shape_bad = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    if shape_bad:
        raise InitError(f"checkpoint {path}: tensors of the wrong shape: {shape_bad[:5]}")
    result = model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith(_HEADS)]
    if missing or not any(k in own for k in state):
        raise InitError(f"checkpoint {path} does not fit the {model.method} network: "
                        f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}")


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
