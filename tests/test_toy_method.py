"""A fourth method, defined in this file only, goes through the smoke study's Table 2.

The registry of methods is the one list every loop reads: registering a ``DolosModel`` subclass
with its card gives it Table 2's experiments, schedules, transforms, a row in the table, a bar in
the figure and a place in the claims, without touching any other file (docs/development.md,
"Add a method").
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dolos_core import losses
from dolos_core.config import get_paths, get_profile
from dolos_core.data.datasets import transform_for
from dolos_core.data.mini import build_mini
from dolos_core.evaluate import table2
from dolos_core.experiments import get_experiment
from dolos_core.models import Card, DolosModel, Schedule, register_model, unregister_model
from dolos_core.plots import table2_figure
from dolos_core.predict import predict_experiment
from dolos_core.claims import claim_list
from dolos_core.train import train_experiment


class ToyNet(DolosModel):
    """One 8x8-strided convolution to two classes: a cell per 8x8 patch."""

    method = "toy"
    card = Card(label="Toy", colour="tab:purple",
                schedules={"smoke": {"weak": Schedule(1e-2, 4, 2, 3), "full": Schedule(1e-2, 4, 2, 3)}},
                authors_transform=("weak",))

    def __init__(self, supervision: str = "weak", loss_cfg=None):
        super().__init__(supervision, loss_cfg)
        self.conv = nn.Conv2d(3, 2, kernel_size=8, stride=8)

    def forward(self, x: torch.Tensor) -> dict:
        logits = self.conv(x)
        prob = logits.float().softmax(1)[:, 1]
        return {"map_logits": logits, "map": prob, "score": prob.mean((1, 2))}

    def cell_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)

    def weak_loss(self, out: dict, batch: dict) -> torch.Tensor:
        return losses.score_bce(out["score"], batch["label"])

    def paper_map_loss(self, out: dict, mask: torch.Tensor) -> torch.Tensor:
        return losses.patch_ce(out["map_logits"].float(), mask.long())

    def class_loss(self, out: dict, batch: dict) -> torch.Tensor:
        return losses.score_bce(out["score"], batch["label"])


@pytest.fixture
def toy():
    register_model(ToyNet)
    yield ToyNet
    unregister_model("toy")


def test_a_method_without_a_card_is_refused():
    class NoCard(DolosModel):
        method = "nocard"

    with pytest.raises(TypeError, match="has no card"):
        register_model(NoCard)


def test_a_fourth_method_reaches_table2_its_figure_and_the_claims(toy, tmp_path):
    prof = get_profile("smoke")
    paths = get_paths("smoke", root=tmp_path)
    build_mini(paths.data_root, prof, seed=0, progress=False)
    # its card gives the schedule and the transforms
    assert prof.schedule("toy", "full") == Schedule(1e-2, 4, 2, 3)
    assert transform_for("toy", "weak", 64).resize == "lanczos"
    assert transform_for("toy", "full", 64, map_size=8).resize == "bilinear"
    for s in "ABC":
        exp = get_experiment(f"toy-{s}")
        assert exp.method == "toy" and exp.setup == s
        result = train_experiment(exp, prof, paths, device="cpu", progress=False)
        assert len(result.history) == 2
        predict_experiment(exp, prof, paths, device="cpu", progress=False)

    t2 = table2(paths, prof).set_index("experiment")
    for s in "ABC":
        assert np.isfinite(t2.loc[f"toy-{s}", "iou"]) and 0 <= t2.loc[f"toy-{s}", "iou"] <= 100
    assert np.isnan(t2.loc["patches-C", "iou"])          # the others were not trained here

    fig = table2_figure(t2.reset_index())
    handles, labels = fig.axes[0].get_legend_handles_labels()
    assert "Toy" in labels
    toy_bars = [h for h, lab in zip(handles, labels) if lab == "Toy"][0]
    assert toy_bars.patches[0].get_facecolor()[:3] == pytest.approx((0.58, 0.404, 0.741), abs=0.01)

    best = [c for c in claim_list() if c.id == "T2-best-C"][0]
    assert "four methods" in best.claim and "toy-C" in best.models


def test_the_toy_leaves_the_registry_when_its_test_ends():
    from dolos_core.experiments import EXPERIMENTS

    assert "toy-C" not in EXPERIMENTS
