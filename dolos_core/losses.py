"""Every loss of the study (docs/STUDY.md 'Methods'; the regression variants are the FakeLocator
extension). Maps are fake probabilities; masks and labels use 1 = fake."""

from __future__ import annotations

import torch
import torch.nn.functional as F


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


def regression(prob: torch.Tensor, mask: torch.Tensor, kind: str) -> torch.Tensor:
    """Localization as regression (FakeLocator extension): L1 = mean|p - m|,
    L2 = mean (p - m)^2, over every cell of every map."""
    diff = prob.float() - mask.float()
    if kind == "l1":
        return diff.abs().mean()
    if kind == "l2":
        return diff.pow(2).mean()
    raise ValueError(f"regression loss must be l1 or l2, got {kind!r}")
