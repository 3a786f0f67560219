"""Patches-MIL (ours, beyond the paper): weak Patches that knows most patches of a fake are real.

The paper's weak Patches gives every patch its image's label, so the real patches of an
inpainted image are all told "fake". Multiple-instance learning reads the label as what it is, a
statement about the bag: an image is fake if *some* of its patches are. The network is Patches'
own (Xception to ``block2`` and a 1x1 convolution: same receptive field, same map, same
per-patch fake probability); only the weak loss changes: the per-cell fake-minus-real logits
``d = z_fake - z_real`` (B, h, w) are pooled into one image logit and trained with binary
cross-entropy on the image label:

    L = BCE(sigma(pool(d)), y)

with ``pool`` one of ``POOLINGS`` (``max``; ``topk``: the mean of the top fraction ``k`` of
cells; ``lse``: log-mean-exp with sharpness ``r``; ``noisy-or``: P(fake) = 1 - prod(1 - p_i)).
A real image then pushes its most fake-looking cells down, a fake image its most fake-looking
cells up, and cells of a fake that look real are left alone. The pooling was chosen on
DOLOS-mini's validation split (``benchmarks/mil_sweep.py``, docs/extensions.md). The image
score is the pooled logit ``pool(d)`` (images are ranked by it; a probability would saturate to
ties). Under full supervision the method is Patches C (``full_runs_of``): the network and the loss
are the same, so no duplicate is trained.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F

from ..losses import LossConfig
from .patches import PatchesNet
from .card import Option
from .registry import register_model

POOLINGS = ("max", "topk", "lse", "noisy-or", "softk")


def pool_logits(d: torch.Tensor, pooling: str, k: float = 0.1, r: float = 5.0) -> torch.Tensor:
    """(B, h, w) per-cell logits -> (B,) image logits.

    - ``max``: max_i d_i;
    - ``topk``: the mean of the ceil(k * h * w) largest d_i;
    - ``lse``: (1 / r) log( (1 / n) sum_i exp(r d_i) ), between the mean (r -> 0) and the max;
    - ``noisy-or``: the logit of 1 - prod_i (1 - sigma(d_i)), computed in log space:
      with S = sum_i softplus(d_i) = -log prod_i (1 - p_i), logit = log(1 - e^-S) + S;
    - ``softk``: a soft top-k (the OpenSDID preprint's): sum_i w_i d_i with
      w = softmax(r z), z_i = (d_i - mean d) / (std d + 1e-6) the per-image standardized logits
      (r = 0: the mean; large r: the max; standardizing makes the sharpness the same whatever
      the logits' scale).
    """
    flat = d.float().flatten(1)
    n = flat.shape[1]
    if pooling == "max":
        return flat.amax(1)
    if pooling == "topk":
        return top_cells(flat, k).mean(1)
    if pooling == "lse":
        return (torch.logsumexp(r * flat, 1) - math.log(n)) / r
    if pooling == "noisy-or":
        s = F.softplus(flat).sum(1).clamp_min(1e-6)
        return torch.log(-torch.expm1(-s)) + s
    if pooling == "softk":
        z = (flat - flat.mean(1, keepdim=True)) / (flat.std(1, keepdim=True, unbiased=False) + 1e-6)
        return (torch.softmax(r * z, 1) * flat).sum(1)
    raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")


def top_cells(flat: torch.Tensor, k: float) -> torch.Tensor:
    """(B, n) cell logits -> (B, ceil(k n)) the largest of each image."""
    return flat.topk(max(1, math.ceil(k * flat.shape[1])), dim=1).values


# The terms a Patches-MIL weak loss may add to the pooled BCE, each ``(d, score, label, k) ->
# scalar`` with ``d`` the (B, h, w) cell logits, ``score`` the (B,) pooled image logits and
# ``label`` (B,) in {0, 1}; each is weighed by the card option of its name (0: off). Adding one
# is a function here and its weight's option on the card.
def rank_term(d: torch.Tensor, score: torch.Tensor, label: torch.Tensor, k: float, margin: float = 1.0):
    """Fake above real: the mean over every (fake i, real j) pair of the batch of
    max(0, margin - (s_i - s_j)); 0 when the batch lacks either class."""
    fake, real = score[label == 1], score[label == 0]
    if not len(fake) or not len(real):
        return score.sum() * 0
    return F.relu(margin - (fake[:, None] - real[None, :])).mean()


def suppress_term(d: torch.Tensor, score: torch.Tensor, label: torch.Tensor, k: float):
    """A real image has no fake cell, its most fake-looking ones included: the mean over real
    images of the mean of -log(1 - sigma(d)) = softplus(d) over its top ceil(k n) cells; 0 with
    no real image in the batch."""
    real = d.float().flatten(1)[label == 0]
    if not len(real):
        return score.sum() * 0
    return F.softplus(top_cells(real, k)).mean()


def sparsity_term(d: torch.Tensor, score: torch.Tensor, label: torch.Tensor, k: float):
    """A fake region is small: the mean fake probability sigma(d) over the cells of fake
    images; 0 with no fake image in the batch."""
    fake = d.float().flatten(1)[label == 1]
    if not len(fake):
        return score.sum() * 0
    return torch.sigmoid(fake).mean()


MIL_TERMS = {"rank": rank_term, "suppress": suppress_term, "sparsity": sparsity_term}


@register_model
class PatchesMILNet(PatchesNet):
    method = "patches-mil"
    card = dataclasses.replace(
        PatchesNet.card, label="Patches-MIL", colour="tab:brown", full_runs_of="patches",
        weak_variant_of="patches", loss_variants=False, beyond_paper=True,
        # The pooling and its terms (weak supervision only). The defaults are the ones chosen on
        # DOLOS-mini's validation split with image labels only (benchmarks/mil_sweep.py,
        # docs/extensions.md); every other value is a run of its own (--set
        # method_options.patches-mil.pooling=lse).
        options={**PatchesNet.card.options,
                 "pooling": Option(("topk", "max", "lse", "noisy-or", "softk"), ("weak",),
                                   "how cell logits become the image logit (pool_logits)"),
                 "k": Option((0.05, 0.02, 0.1, 0.25), ("weak",), "topk's share of cells, and the top cells "
                             "the suppression term reads"),
                 "r": Option((5.0, 1.0, 2.0, 10.0), ("weak",), "sharpness of lse and softk"),
                 "rank": Option((0.0, 1.0), ("weak",), "weight of the fake-above-real ranking margin"),
                 "suppress": Option((0.0, 1.0), ("weak",), "weight of the suppression of real images' top cells"),
                 "sparsity": Option((0.0, 0.1, 1.0), ("weak",), "weight of the sparsity of fake images' maps")})

    def __init__(self, supervision: str = "weak", loss_cfg: LossConfig | None = None,
                 weak_init: str = "authors", pooling: str = "topk", k: float = 0.05, r: float = 5.0,
                 rank: float = 0.0, suppress: float = 0.0, sparsity: float = 0.0):
        super().__init__(supervision, loss_cfg, weak_init=weak_init)
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
        self.pooling, self.k, self.r = pooling, float(k), float(r)
        self.weights = {"rank": float(rank), "suppress": float(suppress), "sparsity": float(sparsity)}

    def cell_logits(self, out: dict) -> torch.Tensor:
        logits = out["map_logits"].float()
        return logits[:, 1] - logits[:, 0]

    def image_logit(self, out: dict) -> torch.Tensor:
        return pool_logits(self.cell_logits(out), self.pooling, self.k, self.r)

    def forward(self, x: torch.Tensor) -> dict:
        out = super().forward(x)
        if self.supervision == "weak":
            out["score"] = self.image_logit(out)
        return out

    def weak_loss(self, out: dict, batch: dict) -> torch.Tensor:
        """Binary cross-entropy of the pooled image logit (``forward``'s weak ``score``) against
        the image label, plus each of ``MIL_TERMS`` at its weight."""
        label = batch["label"].float()
        loss = F.binary_cross_entropy_with_logits(out["score"].float(), label)
        d = None
        for name, w in self.weights.items():
            if w:
                d = self.cell_logits(out) if d is None else d
                loss = loss + w * MIL_TERMS[name](d, out["score"].float(), label, self.k)
        return loss
