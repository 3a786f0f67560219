"""The interface every method shares: a fake-probability map and an image score."""

from __future__ import annotations

import torch
from torch import nn

from .. import losses
from ..losses import LossConfig

SUPERVISIONS = ("weak", "full")


class DolosModel(nn.Module):
    """Base class. ``forward(x)`` returns a dict with at least ``score`` (B,), the image score
    the authors rank images by (higher = more likely fake: a fake logit for weak Grad-CAM and
    weak Attention, a mean fake probability otherwise), and, except for weak Grad-CAM, ``map``
    (B, h, w): fake probabilities in [0, 1]. ``predict(x)`` returns
    (map, score) for evaluation; ``loss(out, batch)`` the training loss."""

    method: str = ""

    def __init__(self, supervision: str = "weak", loss_cfg: LossConfig | None = None):
        super().__init__()
        if supervision not in SUPERVISIONS:
            raise ValueError(f"unknown supervision {supervision!r}; choose weak or full")
        self.supervision = supervision
        self.loss_cfg = loss_cfg or LossConfig()

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.forward(x)
        return out["map"], out["score"]

    def loss(self, out: dict, batch: dict) -> torch.Tensor:
        """The training loss: the method's image loss under weak supervision; under full
        supervision the shared ``losses.full_supervision`` (rho_class and rho_localize
        honoured by every method) over the method's own map and class losses."""
        if self.supervision == "weak":
            return self.weak_loss(out, batch)
        return losses.full_supervision(out, batch, self.loss_cfg, self.paper_map_loss, self.class_loss)

    # What each method defines (see the subclasses' docstrings).
    def weak_loss(self, out: dict, batch: dict) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def paper_map_loss(self, out: dict, mask: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def class_loss(self, out: dict, batch: dict) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def cell_features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """(B, C, h, w): the features at the layer of the map's cells (what FOCAL-style
        clustering groups; ``postprocess.hdbscan_features``)."""
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
