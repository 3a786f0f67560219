"""Patches: local patch scores (Patch-Forensics, Chai et al., ECCV 2020), PAPER.md 'Methods'.

Xception truncated after ``block2`` and a 1x1 convolution to two classes: every cell of the
(B, 2, 37, 37) output at 299 px classifies one receptive-field patch. Xavier initialisation, no
pretraining. Image score = mean of the patch fake-probabilities.
"""

from __future__ import annotations

import torch
from torch import nn

from .. import losses
from .backbone import create_xception, stage
from .base import DolosModel, LossConfig, resize_mask


class PatchesNet(DolosModel):
    method = "patches"

    def __init__(self, supervision: str = "weak", loss_cfg: LossConfig | None = None):
        super().__init__(loss_cfg)
        self.supervision = supervision
        self.features = stage(create_xception("random"), None, "block2")  # -> (B, 256, h, w)
        self.convout = nn.Conv2d(256, 2, kernel_size=1)
        for m in self.modules():  # Patch-Forensics' init: Xavier for every convolution
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> dict:
        logits = self.convout(self.features(x))          # (B, 2, 37, 37) at 299 px
        prob = logits.float().softmax(1)[:, 1]           # (B, 37, 37)
        return {"map_logits": logits, "map": prob, "score": prob.mean((1, 2))}

    def loss(self, out: dict, batch: dict) -> torch.Tensor:
        logits = out["map_logits"].float()
        h, w = logits.shape[-2:]
        cfg = self.loss_cfg
        if self.supervision == "weak":
            target = batch["label"].view(-1, 1, 1).expand(-1, h, w)
            return losses.patch_ce(logits, target)
        mask = resize_mask(batch["mask"], (h, w))
        loc = (losses.patch_ce(logits, mask.long()) if cfg.localize == "paper"
               else losses.regression(out["map"], mask, cfg.localize))
        total = cfg.rho_localize * loc
        if cfg.rho_class:
            total = total + cfg.rho_class * losses.score_bce(out["score"], batch["label"])
        return total
