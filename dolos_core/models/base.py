"""The interface every method shares: a fake-probability map and an image score."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class LossConfig:
    """Which loss a model trains with (docs/STUDY.md and the FakeLocator extension).

    ``localize``: the map loss of full supervision: ``paper`` (cross-entropy / BCE as the paper),
    ``l1`` or ``l2`` (regression between fake-probability map and mask). ``rho_class`` and
    ``rho_localize`` weigh L = rho_class * L_class + rho_localize * L_localize under full
    supervision (the paper: rho_class = 0, rho_localize = 1). ``lam``: the attention weak
    loss weight (lambda = 1).
    """

    localize: str = "paper"
    rho_class: float = 0.0
    rho_localize: float = 1.0
    lam: float = 1.0

    def __post_init__(self) -> None:
        if self.localize not in ("paper", "l1", "l2"):
            raise ValueError(f"localize loss must be paper, l1 or l2, got {self.localize!r}")


def resize_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, H, W) binary mask -> (B, h, w) with nearest neighbour, pixel-centre aligned as PIL's
    and OpenCV's nearest (``nearest-exact``), so it stays binary."""
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask.float()
    return F.interpolate(mask[:, None].float(), size=size, mode="nearest-exact")[:, 0]


class DolosModel(nn.Module):
    """Base class. ``forward(x)`` returns a dict with at least ``score`` (B,), the image score
    the authors rank images by (higher = more likely fake: a fake logit for weak Grad-CAM and
    weak Attention, a mean fake probability otherwise), and, except for weak Grad-CAM, ``map``
    (B, h, w): fake probabilities in [0, 1]. ``predict(x)`` returns
    (map, score) for evaluation; ``loss(out, batch)`` the training loss."""

    method: str = ""
    supervision: str = ""

    def __init__(self, loss_cfg: LossConfig | None = None):
        super().__init__()
        self.loss_cfg = loss_cfg or LossConfig()

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.forward(x)
        return out["map"], out["score"]

    def loss(self, out: dict, batch: dict) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def map_size(self, input_size: int) -> int:
        """Side of the map at ``input_size`` (computed by a forward pass of a dummy image)."""
        was = self.training
        self.eval()
        with torch.no_grad():
            p = next(self.parameters())
            m, _ = self.predict(torch.zeros(1, 3, input_size, input_size, device=p.device))
        self.train(was)
        return int(m.shape[-1])
