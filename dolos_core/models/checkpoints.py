"""Checkpoint filters: a released checkpoint's tensor names -> this repository's, one filter per
kind of release (a method's card names its filter, as timm's ``checkpoint_filter_fn``).

- ``patch_forensics_filter``: the DOLOS authors' Patches release (Patch-Forensics'
  CustomXceptionNet names);
- ``xception_filter``: an ImageNet Xception (timm's ``legacy_xception`` or Cadene's file, whose
  pointwise weights are 2-D) or the FFD checkpoint, onto a network split into ``body``/``tail``;
- ``ffd_attention_filter``: as ``xception_filter``, and an FFD file must carry its attention map.
"""

from __future__ import annotations

from .backbone import ORDER, InitError

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


def _map_xception_names(model, state: dict) -> dict:
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


def patch_forensics_filter(state: dict, path, model) -> dict:
    """The DOLOS Patches release (or one of our checkpoints) -> ``PatchesNet`` names."""
    if _is_ffd(state):
        state = map_ffd_names(state)
    return map_patch_forensics_names(state)


def xception_filter(state: dict, path, model) -> dict:
    """An ImageNet or FFD Xception (or one of our checkpoints) -> the model's body/tail names."""
    if _is_ffd(state):
        state = map_ffd_names(state)
    if any(k.startswith(("body.", "tail.")) for k in state):
        return state                   # ours already
    state = {k: (v[:, :, None, None] if k.endswith("pointwise.weight") and v.ndim == 2 else v)
             for k, v in state.items()}  # Cadene's ImageNet file stores 1x1 convs as 2-D
    return _map_xception_names(model, state)


def ffd_attention_filter(state: dict, path, model) -> dict:
    """``xception_filter``, refusing an FFD file without its attention map: the Attention method
    starts from FFD's trained map and must not silently start without it."""
    ffd = _is_ffd(state)
    state = xception_filter(state, path, model)
    if ffd and not any(k.startswith("attention.") for k in state):
        raise InitError(f"checkpoint {path} is an FFD Xception without its attention map "
                        "(no map.c.c / map.c.pointwise tensors): the Attention method starts from "
                        "FFD's trained map; use the xcp_reg.tar of the FFD release, or --init random")
    return state
