"""Grad-CAM (Selvaraju et al., ICCV 2017) on an Xception classifier, docs/STUDY.md 'Methods'.

- weak: Xception with a 2-class head trained with cross-entropy on the image label; the map is
  the Grad-CAM of class "fake" at the output of ``block11`` (B, 728, 19, 19 at 299 px).
- full: an FCN-style head on ``block11`` features (3x3 conv 728->182, BN, ReLU, dropout 0.1,
  1x1 conv -> 2) trained with per-cell cross-entropy against the mask.

Grad-CAM is computed batched, without hooks: the network is split at ``block11``, the
activations are made a leaf and ``torch.autograd.grad`` gives every image's gradients at once.
It reproduces pytorch-grad-cam's pipeline step by step (the authors' tool), which works image
by image in NumPy/OpenCV: cam = ReLU(sum_k mean(dy_fake/dA_k) A_k); min-max normalise; bilinear
upsampling to the input size (cv2.resize = half-pixel bilinear, here ``align_corners=False``);
ReLU; min-max normalise again. The target is the fake *logit*, as ClassifierOutputTarget.
The weak model's image score is that raw fake logit too (the authors rank images by it; a
softmax saturates to exactly 1.0 in float32 and creates ties); the full model's is the mean of
its fake-probability map.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import losses
from .backbone import create_xception, stage
from ..losses import LossConfig
from .base import DolosModel
from .card import Card, Schedule
from .registry import register_model
from .checkpoints import xception_filter

_EPS = 1e-7  # pytorch-grad-cam's scale_cam_image


def minmax(cam: torch.Tensor) -> torch.Tensor:
    """Per-image min-max normalisation of (B, h, w), as pytorch-grad-cam's scale_cam_image."""
    cam = cam - cam.amin((1, 2), keepdim=True)
    return cam / (_EPS + cam.amax((1, 2), keepdim=True))


@register_model
class GradCAMNet(DolosModel):
    method = "gradcam"
    card = Card(
        label="Grad-CAM", colour="tab:blue",
        # paper: lr, batch, epochs x 500 iterations; mini: DOLOS-mini at 96 px on 2 CPU cores
        schedules={"paper": {"weak": Schedule(1e-3, 32, 100, 500), "full": Schedule(1e-3, 16, 50, 500)},
                   "mini": {"weak": Schedule(1e-3, 16, 4, 25), "full": Schedule(1e-3, 16, 4, 25)}},
        start={"weak": "imagenet", "full": "imagenet"},
        authors_transform=("weak",),
        checkpoint_filter=xception_filter,
    )

    def __init__(self, supervision: str = "weak", loss_cfg: LossConfig | None = None):
        super().__init__(supervision, loss_cfg)
        net = create_xception()
        self.body = stage(net, None, "block11")          # -> (B, 728, 19, 19)
        if supervision == "weak":
            self.tail = stage(net, "block11", "act4")    # -> (B, 2048, 10, 10)
            self.global_pool = net.global_pool
            self.fc = net.fc                             # -> (B, 2)
        else:
            self.seg_head = nn.Sequential(
                nn.Conv2d(728, 182, 3, padding=1, bias=False), nn.BatchNorm2d(182),
                nn.ReLU(inplace=True), nn.Dropout(0.1), nn.Conv2d(182, 2, 1))

    def classify(self, feats: torch.Tensor) -> torch.Tensor:
        return self.fc(self.global_pool(self.tail(feats)))

    def forward(self, x: torch.Tensor) -> dict:
        feats = self.body(x)
        if self.supervision == "weak":
            logits = self.classify(feats)                # (B, 2)
            return {"logits": logits, "score": logits.float()[:, 1]}
        seg = self.seg_head(feats)                       # (B, 2, 19, 19)
        prob = seg.float().softmax(1)[:, 1]
        return {"map_logits": seg, "map": prob, "score": prob.mean((1, 2))}

    def gradcam(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(map (B, H, W) at the input size, in [0, 1]; score (B,)) for the weak model."""
        with torch.enable_grad():
            with torch.no_grad():
                feats = self.body(x)
            feats = feats.detach().float().requires_grad_(True)
            logits = self.classify(feats)
            (grads,) = torch.autograd.grad(logits[:, 1].sum(), feats)
        weights = grads.mean((2, 3), keepdim=True)                   # (B, 728, 1, 1)
        cam = F.relu((weights * feats.detach()).sum(1))              # (B, 19, 19)
        cam = minmax(cam)
        cam = F.interpolate(cam[:, None], size=x.shape[-2:], mode="bilinear",
                            align_corners=False)[:, 0]               # (B, H, W)
        cam = minmax(F.relu(cam))
        return cam, logits.detach().float()[:, 1]

    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.supervision == "weak":
            return self.gradcam(x)
        with torch.no_grad():
            out = self.forward(x)
        return out["map"], out["score"]

    def cell_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)                              # block11: (B, 728, 19, 19) at 299 px

    def weak_loss(self, out: dict, batch: dict) -> torch.Tensor:
        return losses.image_ce(out["logits"].float(), batch["label"])

    def paper_map_loss(self, out: dict, mask: torch.Tensor) -> torch.Tensor:
        return losses.patch_ce(out["map_logits"].float(), mask.long())

    def class_loss(self, out: dict, batch: dict) -> torch.Tensor:
        return losses.score_bce(out["score"], batch["label"])
