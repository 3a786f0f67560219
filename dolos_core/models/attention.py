"""Attention: Xception with a regression attention map (Dang et al., CVPR 2020, "FFD").

After ``block7`` a 3x3 separable convolution (depthwise 728 + pointwise 728->1) and a sigmoid give
a (B, 1, 19, 19) map at 299 px that multiplies the features; the rest of Xception and a 2-class
head follow. Losses (docs/STUDY.md): weak = CE(label) + lambda * BCE(max(map), label) (the DOLOS
paper's change of FFD's L1 to BCE), lambda = 1; full = BCE(map, mask resized to the map).
The map is the fake probability. Image score, as the authors rank images: weak = the raw fake
logit of the classifier; full = the mean of the map. The layer names of the map mirror FFD's
(``map.c.c`` depthwise, ``map.c.pointwise`` without bias) so their checkpoint loads.
"""

from __future__ import annotations

import torch
from torch import nn

from .. import losses
from .backbone import create_xception, stage
from ..losses import LossConfig
from .base import DolosModel
from .card import Card, Schedule
from .registry import register_model
from .checkpoints import ffd_attention_filter


@register_model
class AttentionNet(DolosModel):
    method = "attention"
    card = Card(
        label="Attention", colour="tab:green",
        schedules={"paper": {"weak": Schedule(1e-4, 16, 15, 500), "full": Schedule(3e-4, 16, 15, 500)},
                   "mini": {"weak": Schedule(3e-4, 16, 4, 25), "full": Schedule(1e-3, 16, 4, 25)}},
        start={"weak": "ffd", "full": "ffd"},
        mask_resize="bilinear",
        map_loss="bce",
        loss_variants=True,
        checkpoint_filter=ffd_attention_filter,
    )

    def __init__(self, supervision: str = "weak", loss_cfg: LossConfig | None = None):
        super().__init__(supervision, loss_cfg)
        net = create_xception()
        self.body = stage(net, None, "block7")                       # -> (B, 728, 19, 19)
        self.attention = nn.Sequential(
            nn.Conv2d(728, 728, 3, padding=1, groups=728, bias=False),  # depthwise
            nn.Conv2d(728, 1, 1, bias=False),                           # pointwise -> 1
        )
        self.tail = stage(net, "block7", "act4")                     # -> (B, 2048, 10, 10)
        self.global_pool = net.global_pool
        self.fc = net.fc                                             # -> (B, 2)

    def forward(self, x: torch.Tensor) -> dict:
        feats = self.body(x)
        att = torch.sigmoid(self.attention(feats).float())           # (B, 1, 19, 19)
        logits = self.fc(self.global_pool(self.tail(feats * att.to(feats.dtype))))
        amap = att[:, 0]                                             # (B, 19, 19)
        score = logits.float()[:, 1] if self.supervision == "weak" else amap.mean((1, 2))
        return {"logits": logits, "map": amap, "score": score}

    def cell_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)                              # block7, the map's input: (B, 728, 19, 19)

    def weak_loss(self, out: dict, batch: dict) -> torch.Tensor:
        return losses.attention_weak(out["logits"].float(), out["map"], batch["label"], self.loss_cfg.lam)

    def paper_map_loss(self, out: dict, mask: torch.Tensor) -> torch.Tensor:
        return losses.map_bce(out["map"], mask)

    def class_loss(self, out: dict, batch: dict) -> torch.Tensor:
        return losses.image_ce(out["logits"].float(), batch["label"])
