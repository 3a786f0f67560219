"""Patches: local patch scores (Patch-Forensics, Chai et al., ECCV 2020), docs/STUDY.md 'Methods'.

Xception truncated after ``block2`` and a 1x1 convolution to two classes: every cell of the
(B, 2, 37, 37) output at 299 px classifies one receptive-field patch. No pretraining. Image
score = mean of the patch fake-probabilities.

Initialisation, as the authors' code (docs/STUDY.md, "Initialisation"): weak supervision uses
Patch-Forensics' ``init_weights(type="xavier")``, full supervision PyTorch's default layer init.
``weak_init="pytorch"`` gives weak supervision PyTorch's default init too (the mini profile's
choice: with the authors' init the separable-convolution paths of ``block1`` and ``block2`` start
below BatchNorm's epsilon and stay silent for hundreds of steps; docs/STUDY.md, "Initialisation").
"""

from __future__ import annotations

import torch
from torch import nn

from .. import losses
from .backbone import create_xception, stage
from ..losses import LossConfig
from .base import DolosModel
from .card import Card, Option, Schedule
from .registry import register_model
from .checkpoints import patch_forensics_filter

WEAK_INITS = ("authors", "pytorch")


def patch_forensics_init(net: nn.Module, gain: float = 0.02) -> None:
    """Patch-Forensics' ``init_weights(net, "xavier", gain=0.02)``: every convolution and linear
    weight Xavier-normal with gain 0.02 and bias 0; every BatchNorm weight ~ N(1, 0.02), bias 0.
    At step 0 every cell's two logits are then nearly equal: the loss starts at ln 2."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_normal_(m.weight, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)


def pytorch_default_init(net: nn.Module) -> None:
    """PyTorch's own initialisation of every layer (timm's Xception constructor applies its
    own Kaiming init; the authors' full-supervision network keeps torch's defaults)."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear, nn.BatchNorm2d)):
            m.reset_parameters()


def _random_label(supervision: str, options) -> str:
    if supervision == "weak" and options.get("weak_init") == "authors":
        return "random (Patch-Forensics Xavier init)"
    return "random (PyTorch default init)"


@register_model
class PatchesNet(DolosModel):
    method = "patches"
    card = Card(
        label="Patches", colour="tab:orange",
        # mini: weak Patches gets ~5 passes over its 2,000 training images: with image labels
        # only ~1 cell in 9 of a fake carries the trace, and the network needs ~200-300 steps
        # before it finds it (docs/mini.md)
        schedules={"paper": {"weak": Schedule(1e-3, 64, 100, 500), "full": Schedule(1e-3, 16, 50, 500)},
                   "mini": {"weak": Schedule(1e-3, 32, 9, 30), "full": Schedule(1e-3, 16, 5, 40)}},
        authors_transform=("weak",),
        checkpoint_filter=patch_forensics_filter,
        loss_variants=True,
        options={"weak_init": Option(WEAK_INITS, ("weak",),
                                     "random init of weak Patches: authors (Patch-Forensics' Xavier gain "
                                     "0.02, as the paper) or pytorch (PyTorch's default, as full Patches)")},
        random_label=_random_label,
    )

    def __init__(self, supervision: str = "weak", loss_cfg: LossConfig | None = None,
                 weak_init: str = "authors"):
        super().__init__(supervision, loss_cfg)
        if weak_init not in WEAK_INITS:
            raise ValueError(f"weak_init must be one of {WEAK_INITS}, got {weak_init!r}")
        self.features = stage(create_xception(), None, "block2")  # -> (B, 256, h, w)
        self.convout = nn.Conv2d(256, 2, kernel_size=1)
        if supervision == "weak" and weak_init == "authors":
            patch_forensics_init(self)
        else:
            pytorch_default_init(self)

    def forward(self, x: torch.Tensor) -> dict:
        logits = self.convout(self.features(x))          # (B, 2, 37, 37) at 299 px
        prob = logits.float().softmax(1)[:, 1]           # (B, 37, 37)
        return {"map_logits": logits, "map": prob, "score": prob.mean((1, 2))}

    def cell_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)                          # (B, 256, 37, 37) at 299 px

    def weak_loss(self, out: dict, batch: dict) -> torch.Tensor:
        """Every cell takes the image label (per-cell cross-entropy)."""
        logits = out["map_logits"].float()
        target = batch["label"].view(-1, 1, 1).expand(-1, *logits.shape[-2:])
        return losses.patch_ce(logits, target)

    def paper_map_loss(self, out: dict, mask: torch.Tensor) -> torch.Tensor:
        return losses.patch_ce(out["map_logits"].float(), mask.long())

    def class_loss(self, out: dict, batch: dict) -> torch.Tensor:
        return losses.score_bce(out["score"], batch["label"])
