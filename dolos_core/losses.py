"""Every loss of the study (docs/STUDY.md 'Methods'; the regression variants are the FakeLocator
extension). Maps are fake probabilities; masks and labels use 1 = fake."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from . import resize


@dataclass(frozen=True)
class LossConfig:
    """Which loss a model trains with (docs/STUDY.md and the FakeLocator extension).

    ``localize``: the map loss of full supervision: ``paper`` (each method's own, as the
    paper: per-cell cross-entropy for Patches and Grad-CAM, BCE for Attention), ``l1`` or
    ``l2`` (regression between fake-probability map and mask). ``rho_class`` and
    ``rho_localize`` weigh L = rho_class * L_class + rho_localize * L_localize under full
    supervision, for every method alike (the paper: rho_class = 0, rho_localize = 1).
    ``lam``: the attention weak loss weight (lambda = 1). Weak supervision has no map loss:
    its loss is each method's image loss, and the rhos do not apply.
    """

    localize: str = "paper"
    rho_class: float = 0.0
    rho_localize: float = 1.0
    lam: float = 1.0

    def __post_init__(self) -> None:
        if self.localize != "paper" and self.localize not in MAP_LOSSES:
            raise ValueError(f"localize loss must be paper or a registered map loss "
                             f"({', '.join(MAP_LOSSES)}), got {self.localize!r}")


def image_ce(logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """L = -1/B sum_i log softmax(z_i)[y_i]; logits (B, 2), label (B,)."""
    return F.cross_entropy(logits, label)


def patch_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy averaged over every map cell: L = -1/(B h w) sum_{i,u,v}
    log softmax(z_i[:, u, v])[t_i(u, v)]; logits (B, 2, h, w), target (B, h, w) in {0, 1}.
    Weak supervision broadcasts the image label to every cell; full uses the resized mask."""
    return F.cross_entropy(logits, target.long())


def map_bce(prob: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy between a probability map and a mask, averaged over cells:
    L = -mean[m log p + (1 - m) log(1 - p)]; prob and mask (B, h, w)."""
    return F.binary_cross_entropy(prob.float().clamp(1e-7, 1 - 1e-7), mask.float())


def attention_weak(logits: torch.Tensor, att: torch.Tensor, label: torch.Tensor,
                   lam: float = 1.0) -> torch.Tensor:
    """FFD with the DOLOS change: L = CE(logits, y) + lambda * BCE(max_{u,v} att(u, v), y)."""
    peak = att.flatten(1).amax(1)
    bce = F.binary_cross_entropy(peak.float().clamp(1e-7, 1 - 1e-7), label.float())
    return image_ce(logits, label) + lam * bce


def score_bce(score: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Image-level BCE on a fake probability: L = -mean[y log s + (1 - y) log(1 - s)]."""
    return F.binary_cross_entropy(score.float().clamp(1e-7, 1 - 1e-7), label.float())


# Map losses of full supervision beside each method's own ("paper"): name -> loss(prob, mask),
# both (B, h, w), prob a fake probability, mask in {0, 1}. Registering one makes it a value of
# ``LossConfig.localize`` and gives every loss-variant method a setup C run trained with it
# (``experiments``: ``{method}-C-{name}``). docs/development.md, "Add a loss".
MAP_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {}


def register_map_loss(name: str):
    """Decorator: register ``fn(prob, mask) -> scalar`` as the map loss ``name``."""
    def add(fn):
        MAP_LOSSES[name] = fn
        return fn
    return add


def unregister_map_loss(name: str) -> None:
    """Remove a map loss (a test's toy loss, when the test ends)."""
    MAP_LOSSES.pop(name, None)


@register_map_loss("l1")
def l1(prob: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Localization as regression (FakeLocator extension): L1 = mean |p - m| over every cell."""
    return (prob.float() - mask.float()).abs().mean()


@register_map_loss("l2")
def l2(prob: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Localization as regression (FakeLocator extension): L2 = mean (p - m)^2 over every cell."""
    return (prob.float() - mask.float()).pow(2).mean()


def registered_map_loss(prob: torch.Tensor, mask: torch.Tensor, kind: str) -> torch.Tensor:
    """The registered map loss ``kind`` (``l1``, ``l2``, ...) of ``prob`` against ``mask``."""
    if kind not in MAP_LOSSES:
        raise ValueError(f"map loss must be one of {', '.join(MAP_LOSSES)}, got {kind!r}")
    return MAP_LOSSES[kind](prob, mask)


def full_supervision(out: dict, batch: dict, cfg: LossConfig,
                     paper_loss: Callable[[dict, torch.Tensor], torch.Tensor],
                     class_loss: Callable[[dict, dict], torch.Tensor]) -> torch.Tensor:
    """The localization loss every method shares under full supervision:
    L = rho_localize * L_localize + rho_class * L_class, with the mask resized (nearest, pixel
    centres) to the map. ``paper_loss(out, mask)``: the method's own map loss (used when
    ``cfg.localize == "paper"``; a registered map loss, ``MAP_LOSSES``, scores ``out["map"]``
    instead);
    ``class_loss(out, batch)``: the method's image loss on the label."""
    mask = resize.nearest(batch["mask"].float(), tuple(out["map"].shape[-2:]))
    loc = paper_loss(out, mask) if cfg.localize == "paper" else registered_map_loss(out["map"], mask, cfg.localize)
    total = cfg.rho_localize * loc
    if cfg.rho_class:
        total = total + cfg.rho_class * class_loss(out, batch)
    return total
