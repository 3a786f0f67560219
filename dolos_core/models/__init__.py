"""Models of the study, built by name: ``build_model("patches", "full")``.

Every model returns a fake-probability map and an image score (see ``base.DolosModel``).
"""

from __future__ import annotations

from pathlib import Path

import torch

from .attention import AttentionNet
from .backbone import ORDER, InitError, load_state
from .base import DolosModel, LossConfig
from .gradcam import GradCAMNet
from .patches import PatchesNet

MODELS = {"patches": PatchesNet, "gradcam": GradCAMNet, "attention": AttentionNet}
SUPERVISIONS = ("weak", "full")

# The authors' released Patches weights follow Patch-Forensics' CustomXceptionNet names.
_PATCH_FORENSICS_NAMES = {
    "conv1": "features.0", "bn1": "features.1", "conv2": "features.3", "bn2": "features.4",
    "block1": "features.6", "block2": "features.7", "convout": "convout",
}


def build_model(method: str, supervision: str, init: str = "random",
                loss_cfg: LossConfig | None = None) -> DolosModel:
    """A model by method name (``gradcam``, ``patches``, ``attention``) and supervision
    (``weak``, ``full``). ``init``: ``random``, ``imagenet`` or a checkpoint path."""
    if method not in MODELS:
        raise KeyError(f"unknown method {method!r}; choose one of {', '.join(MODELS)}")
    if supervision not in SUPERVISIONS:
        raise KeyError(f"unknown supervision {supervision!r}; choose weak or full")
    cls = MODELS[method]
    if method == "patches":
        if init == "imagenet":
            raise InitError("Patches is trained from scratch (Xavier init) in the paper; "
                            "use init='random' or a checkpoint path")
        model = cls(supervision, loss_cfg=loss_cfg)
    else:
        model = cls(supervision, init=init, loss_cfg=loss_cfg)
    if init not in ("random", "imagenet"):
        load_pretrained(model, init)
    return model


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


def load_pretrained(model: DolosModel, path: str | Path) -> None:
    """Load a checkpoint into ``model``: our own format, the authors' Patches release, or the
    FFD attention checkpoint (timm-style Xception names plus the attention layer). Missing or
    unexpected tensors of the backbone are an error; a missing head is allowed (fine-tuning)."""
    state = load_state(path)
    if model.method == "patches":
        state = map_patch_forensics_names(state)
    elif not any(k.startswith(("body.", "tail.")) for k in state):
        state = _map_xception_names(model, state)
    own = model.state_dict()
    shape_bad = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    if shape_bad:
        raise InitError(f"checkpoint {path}: tensors of the wrong shape: {shape_bad[:5]}")
    result = model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    missing = [k for k in result.missing_keys
               if not k.startswith(("fc.", "convout.", "seg_head.", "attention."))]
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


__all__ = ["build_model", "DolosModel", "LossConfig", "InitError", "MODELS",
           "map_patch_forensics_names", "load_pretrained", "count_parameters"]
