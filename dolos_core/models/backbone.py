"""Xception backbone (timm's ``legacy_xception``, the original network) cut at named blocks.

At 299 px the cut points give: ``block2`` (B, 256, 37, 37), ``block7`` and ``block11``
(B, 728, 19, 19), ``act4`` (B, 2048, 10, 10).
"""

from __future__ import annotations

from pathlib import Path

import timm
import torch
from torch import nn

STEM = ("conv1", "bn1", "act1", "conv2", "bn2", "act2")
BLOCKS = tuple(f"block{i}" for i in range(1, 13))
EXIT = ("conv3", "bn3", "act3", "conv4", "bn4", "act4")
ORDER = STEM + BLOCKS + EXIT


class InitError(RuntimeError):
    """Initial weights could not be had; the message says why and what to do."""


def create_xception(num_classes: int = 2) -> nn.Module:
    """timm's ``legacy_xception`` with a ``num_classes`` head and random weights. Pretrained
    weights are loaded from a local file by the caller (``models.load_pretrained``); nothing
    here reaches the network."""
    return timm.create_model("legacy_xception", pretrained=False, num_classes=num_classes)


def stage(model: nn.Module, start: str | None, end: str) -> nn.Sequential:
    """The modules of ``model`` from ``start`` (exclusive; None = the input) to ``end``
    (inclusive), in forward order, as one Sequential that shares their parameters."""
    i0 = 0 if start is None else ORDER.index(start) + 1
    i1 = ORDER.index(end) + 1
    return nn.Sequential(*[getattr(model, n) for n in ORDER[i0:i1]])


def load_state(path: str | Path) -> dict:
    """A state dict from a checkpoint file, safely (``weights_only=True``); accepts files that
    wrap it under ``state_dict``, ``model`` or ``net``."""
    path = Path(path)
    if not path.is_file():
        raise InitError(f"checkpoint {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InitError(f"checkpoint {path} could not be read ({type(exc).__name__}: {exc})") from None
    for key in ("state_dict", "model", "net"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise InitError(f"checkpoint {path} holds no state dict")
    return {k.removeprefix("module."): v for k, v in obj.items()}
