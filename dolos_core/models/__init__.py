"""Models of the study, in a registry as timm's: ``build_model("patches", "full")``,
``list_models()``, ``@register_model`` on a ``DolosModel`` subclass.

Every model is built the same way, ``Class(supervision, loss_cfg=None, **options)``, and
``model.predict(x)`` returns a fake-probability map and an image score (``base.DolosModel``).
"""

from __future__ import annotations

from pathlib import Path

import torch

import inspect

from ..losses import LossConfig
from .attention import AttentionNet
from .backbone import ORDER, InitError, load_state
from .base import SUPERVISIONS, DolosModel
from .gradcam import GradCAMNet
from .patches import PatchesNet

MODELS: dict[str, type[DolosModel]] = {}


def register_model(cls: type[DolosModel]) -> type[DolosModel]:
    """Add a ``DolosModel`` subclass to the registry under its ``method`` name."""
    if not (isinstance(cls, type) and issubclass(cls, DolosModel) and cls.method):
        raise TypeError(f"{cls!r} is not a DolosModel subclass with a method name")
    MODELS[cls.method] = cls
    return cls


for _cls in (GradCAMNet, PatchesNet, AttentionNet):   # the paper's order
    register_model(_cls)


def list_models() -> list[tuple[str, str]]:
    """Every (method, supervision) the registry can build."""
    return [(m, s) for m in MODELS for s in SUPERVISIONS]


def model_options(method: str) -> list[str]:
    """The keyword options of a method's constructor beyond supervision and loss_cfg."""
    params = inspect.signature(MODELS[method].__init__).parameters
    return [p for p in params if p not in ("self", "supervision", "loss_cfg")]

# The authors' released Patches weights follow Patch-Forensics' CustomXceptionNet names.
_PATCH_FORENSICS_NAMES = {
    "conv1": "features.0", "bn1": "features.1", "conv2": "features.3", "bn2": "features.4",
    "block1": "features.6", "block2": "features.7", "convout": "convout",
}


# FFD (Dang et al.) Xception names -> timm's legacy_xception names (substring rewrites, in order).
_FFD_NAMES = (
    ("map.c.c.", "attention.0."), ("map.c.pointwise.", "attention.1."),
    (".skip_bn.", ".skipbn."), ("last_linear.", "fc."),
)


def build_model(method: str, supervision: str, init: str | Path = "random",
                loss_cfg: LossConfig | None = None, **options) -> DolosModel:
    """A model by method name (``list_models()``) and supervision (``weak``, ``full``).
    ``init``: ``random`` (each method's own random init) or a checkpoint path (ours, the
    authors' Patches release, the FFD checkpoint, timm's or Cadene's ImageNet Xception);
    ``dolos_core.weights.resolve_init`` picks the paper's file. ``options``: the method's own
    constructor options (``model_options``), e.g. Patches' ``weak_init`` (``authors``:
    Patch-Forensics' Xavier 0.02; ``pytorch``: PyTorch's default, as full Patches)."""
    if method not in MODELS:
        raise KeyError(f"unknown method {method!r}; choose one of {', '.join(MODELS)}")
    if supervision not in SUPERVISIONS:
        raise KeyError(f"unknown supervision {supervision!r}; choose weak or full")
    unknown = sorted(set(options) - set(model_options(method)))
    if unknown:
        raise TypeError(f"{method} takes no option(s) {', '.join(unknown)}; its options: "
                        f"{', '.join(model_options(method)) or 'none'}")
    model = MODELS[method](supervision, loss_cfg=loss_cfg, **options)
    if str(init) != "random":
        load_pretrained(model, init)
    return model


def map_ffd_names(state: dict) -> dict:
    """Rename an FFD checkpoint (``xcp_reg.tar``: separable convs ``c`` + ``pointwise``,
    ``skip_bn``, ``last_linear``, the map as ``map.c.c`` / ``map.c.pointwise``) to timm's
    legacy_xception names plus our ``attention.0`` / ``attention.1``."""
    out = {}
    for name, value in state.items():
        for old, new in _FFD_NAMES:
            name = name.replace(old, new)
        parts = name.split(".")
        # the depthwise conv of a separable conv: FFD calls it "c", timm "conv1"
        parts = ["conv1" if p == "c" and i > 0 else p for i, p in enumerate(parts)]
        out[".".join(parts)] = value
    return out


def _is_ffd(state: dict) -> bool:
    return any(k.startswith(("map.c.", "last_linear.")) or ".skip_bn." in k for k in state)


def map_patch_forensics_names(state: dict) -> dict:
    """Rename a Patch-Forensics / DOLOS-release state dict (conv1, bn1, relu1, conv2, bn2,
    relu2, block1, block2, convout) to this repository's ``PatchesNet`` names. Names that are
    already ours pass through unchanged."""
    out = {}
    for name, value in state.items():
        head, _, rest = name.partition(".")
        if head in _PATCH_FORENSICS_NAMES:
            name = f"{_PATCH_FORENSICS_NAMES[head]}.{rest}"
        out[name] = value
    return out


_HEADS = ("fc.", "convout.", "seg_head.", "attention.")


def load_pretrained(model: DolosModel, path: str | Path) -> None:
    """Load a checkpoint into ``model``: our own format, the authors' Patches release, the FFD
    checkpoint, or an ImageNet Xception (timm's ``legacy_xception`` or Cadene's file, whose
    pointwise weights are 2-D). Missing or ill-shaped backbone tensors are an error; a missing
    head, or a head of another shape (ImageNet's 1000 classes), is left as initialised, except
    an FFD file's attention map, which Attention must not silently start without."""
    state = load_state(path)
    if _is_ffd(state):
        state = map_ffd_names(state)
        if model.method == "attention" and not any(k.startswith("attention.") for k in state):
            raise InitError(f"checkpoint {path} is an FFD Xception without its attention map "
                            "(no map.c.c / map.c.pointwise tensors): the Attention method starts from "
                            "FFD's trained map; use the xcp_reg.tar of the FFD release, or --init random")
    if model.method == "patches":
        state = map_patch_forensics_names(state)
    elif not any(k.startswith(("body.", "tail.")) for k in state):
        state = {k: (v[:, :, None, None] if k.endswith("pointwise.weight") and v.ndim == 2 else v)
                 for k, v in state.items()}  # Cadene's ImageNet file stores 1x1 convs as 2-D
        state = _map_xception_names(model, state)
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


def _map_xception_names(model: DolosModel, state: dict) -> dict:
    """Plain Xception names (conv1, block3, ..., fc) -> our body/tail split by position."""
    own = set(model.state_dict())
    n_body = len(model.body) if hasattr(model, "body") else 0
    out = {}
    for name, value in state.items():
        head, _, rest = name.partition(".")
        if head in ORDER:
            i = ORDER.index(head)
            cand = f"body.{i}.{rest}" if i < n_body else f"tail.{i - n_body}.{rest}"
            out[cand if cand in own else name] = value
        else:
            out[name] = value
    return out


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["build_model", "register_model", "list_models", "model_options", "DolosModel",
           "LossConfig", "InitError", "MODELS", "SUPERVISIONS",
           "map_patch_forensics_names", "map_ffd_names", "load_pretrained", "count_parameters"]
