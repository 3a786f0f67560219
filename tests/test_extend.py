"""The three recipes of docs/development.md, as a user would follow them: a method is one file in
the package and one import line, a stage one record, a map loss one registered function."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import nbformat
import pandas as pd
import pytest
import torch

from dolos_core import losses
from dolos_core.experiments import EXPERIMENTS, get_experiment
from dolos_core.trainings import Training

from .test_checkouts import _clone

METHOD_FILE = '''"""Stripes: one 8x8-strided convolution to two classes (a test's method)."""

import torch
from torch import nn

from .. import losses
from .base import DolosModel
from .card import Card, Option, Schedule
from .registry import register_model


@register_model
class StripesNet(DolosModel):
    method = "stripes"
    card = Card(label="Stripes", colour="tab:pink", loss_variants=True,
                options={"stride": Option((8, 4), help="the convolution's stride")},
                schedules={"smoke": {"weak": Schedule(1e-2, 4, 2, 2), "full": Schedule(1e-2, 4, 2, 2)}})

    def __init__(self, supervision="weak", loss_cfg=None, stride=8):
        super().__init__(supervision, loss_cfg)
        self.conv = nn.Conv2d(3, 2, kernel_size=8, stride=stride)

    def forward(self, x):
        logits = self.conv(x)
        prob = logits.float().softmax(1)[:, 1]
        return {"map_logits": logits, "map": prob, "score": prob.mean((1, 2))}

    def cell_features(self, x):
        return self.conv(x)

    def weak_loss(self, out, batch):
        return losses.score_bce(out["score"], batch["label"])

    def paper_map_loss(self, out, mask):
        return losses.patch_ce(out["map_logits"].float(), mask.long())

    def class_loss(self, out, batch):
        return losses.score_bce(out["score"], batch["label"])
'''
LOSS_FILE = '''"""A test's map loss: Huber, registered in a file of the package."""

import torch.nn.functional as F

from .losses import register_map_loss


@register_map_loss("huber")
def huber(prob, mask):
    return F.smooth_l1_loss(prob.float(), mask.float(), beta=0.5)
'''


def test_a_method_file_in_the_package_reaches_table2_through_run_all(tmp_path):
    """Add a method: its file in dolos_core/models/ and one import line in models/__init__.py
    (nothing else names it); ./run_all.sh's notebook kernels train it and Table 2 and its figure
    have it. Its card declares an option (set with --set, carried into its runs' configuration),
    its colour and its loss variants; a map loss registered in another file of the package gives
    it (and every loss-variant method) a setup C run that the kernels train and the loss-variant
    table finds. The other methods' run ids do not move (run identity per method)."""
    clone = _clone(tmp_path / "clone")
    from dolos_core.runs import code_hash

    (clone / "dolos_core" / "models" / "stripes.py").write_text(METHOD_FILE)
    init = clone / "dolos_core" / "models" / "__init__.py"
    init.write_text(init.read_text() + "from . import stripes  # noqa: F401  (a test's method)\n")
    (clone / "dolos_core" / "huber.py").write_text(LOSS_FILE)
    init.write_text(init.read_text() + "from .. import huber  # noqa: F401  (a test's loss)\n")
    env = {**os.environ, "DOLOS_PYTHON": sys.executable, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    env.pop("DOLOS_REPO", None)
    r = subprocess.run([str(clone / "run_all.sh"), "--profile", "smoke", "--only",
                        "data,train,evaluate,extensions,stripes-A,stripes-B,stripes-C,stripes-C-huber", "--jobs", "1",
                        "--set", "method_options.stripes.stride=4"], capture_output=True, text=True,
                       env=env, cwd=tmp_path, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    res = clone / "results" / "smoke"
    t2 = pd.read_csv(res / "table2.csv").set_index("experiment")
    for s in "ABC":
        assert 0 <= t2.loc[f"stripes-{s}", "iou"] <= 100
    assert (t2.loc["patches-C", "status"] == "missing")
    assert (clone / "figures" / "smoke" / "table2_iou.png").exists()
    lv = pd.read_csv(res / "loss_variants.csv").set_index("experiment")
    assert 0 <= lv.loc["stripes-C-huber", "iou"] <= 100 and lv.loc["stripes-C-huber", "loss"] == "huber"
    assert lv.loc["patches-C-huber", "status"] == "missing"      # registered for every loss-variant method
    assert (clone / "figures" / "smoke" / "loss_variants.png").exists()
    manifests = list((clone / "runs" / "smoke" / "checkpoints" / "stripes-B").glob("*/train.json"))
    assert [json.loads(m.read_text())["run_config"]["options"] for m in manifests] == [{"stride": 4}]
    check = subprocess.run([sys.executable, "-c", "from dolos_core.runs import code_hash; "
                            "print(code_hash('patches'), code_hash('stripes'))"],
                           capture_output=True, text=True, cwd=clone, env={**env, "PYTHONPATH": str(clone)})
    patches, stripes = check.stdout.split()
    assert patches == code_hash("patches") and stripes != patches


TOY_NOTEBOOK_CELLS = [
    ("markdown", "# A toy stage's chapter"),
    ("code", 'profile = "smoke"\ndata_root = ""\ndevice = "auto"\noverrides = {}\ntag = ""\nsteps = 1'),
    ("code", "from dolos_core.study import open_study\nimport pandas as pd\n"
             "study = open_study(profile, data_root, device, overrides, tag)\n"
             "pd.DataFrame({'steps': [steps], 'value': [1.5]}).to_csv(study.paths.results / 'toy_table.csv', "
             "index=False)\n"
             "pd.DataFrame({'value': [0.25, 0.5]}).to_csv(study.paths.results / 'toy_scores.csv', index=False)"),
]


def toy_trainings(profile, paths, seeds=1, steps=None):
    """The toy stage's trainings: Patches C once."""
    return [Training(get_experiment("patches-C"), profile, paths)]


def toy_paragraph(res):
    """The toy stage's paragraph of REPORT.md, from the product it declares."""
    f = res / "toy_scores.csv"
    return [f"The toy stage measured {pd.read_csv(f)['value'].sum():.2f} (toy_scores.csv)."] if f.exists() else []


def test_a_stage_declared_in_a_test_runs_publishes_and_reports(tmp_path, monkeypatch):
    """Add a stage: one record (its notebook, its trainings, its option, its table, a product
    and the paragraph it writes from it) and nothing else; the pipeline trains and runs it, the
    report shows its table and its paragraph, the publication lists its chapter and knows which
    stage made it."""
    from dolos_core.runner import pipeline, stages
    from dolos_core.runner.publish import stage_of

    nb = nbformat.v4.new_notebook()
    for kind, src in TOY_NOTEBOOK_CELLS:
        cell = nbformat.v4.new_code_cell(src) if kind == "code" else nbformat.v4.new_markdown_cell(src)
        nb.cells.append(cell)
    nb.cells[1].metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {"name": "dolos", "display_name": "Python (dolos)", "language": "python"}
    path = tmp_path / "12_toy.ipynb"
    nbformat.write(nb, str(path))
    stages.declare(stages.Stage("toy", "a test's stage", (str(path),), trains=f"{__name__}:toy_trainings",
                                opt_in=True, after=("data",), options=("steps",),
                                tables=(("toy_table", "Toy stage · its table"),), products=("toy_scores.csv",),
                                paragraph=f"{__name__}:toy_paragraph"))
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        root = tmp_path / "study"
        root.mkdir()
        code = pipeline.main(["--profile", "smoke", "--only", "data,toy,report,publish", "--repo", str(root),
                              "--set", "toy.steps=3"])
        assert code == 0
        res = root / "results" / "smoke"
        assert pd.read_csv(res / "toy_table.csv")["steps"].tolist() == [3]
        report = (res / "REPORT.md").read_text()
        assert "Toy stage · its table" in report
        assert "The toy stage measured 0.75 (toy_scores.csv)." in report
        assert stages.product(res, "toy_scores.csv") == res / "toy_scores.csv"
        assert stage_of(res / "notebooks" / "12_toy.ipynb") == "toy"
        assert stage_of(res / "notebooks" / "02_train-patches-C.ipynb") == "toy"
        assert "12_toy.html" in (res / "html" / "index.html").read_text()
    finally:
        stages.remove("toy")
    assert "toy" not in stages.names() and "toy" not in stages.by_name()["report"].after
    with pytest.raises(KeyError, match="no stage declares 'toy_scores.csv'"):
        stages.product(root / "results" / "smoke", "toy_scores.csv")


def test_a_loss_registered_once_is_a_loss_config_and_a_loss_variant():
    """Add a loss: one function and one registration; LossConfig accepts it, full supervision
    trains with it, and every loss-variant method has a setup C run with it."""
    @losses.register_map_loss("huber")
    def huber(prob, mask):
        return torch.nn.functional.smooth_l1_loss(prob.float(), mask.float(), beta=0.5)

    try:
        assert {"patches-C-huber", "attention-C-huber"} <= set(EXPERIMENTS)
        cfg = losses.LossConfig(localize="huber")
        prob, mask = torch.full((1, 2, 2), 0.75), torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])
        out = {"map": prob}
        got = losses.full_supervision(out, {"mask": mask}, cfg, None, None)
        # smooth L1 with beta 0.5: |d| = 0.25 -> 0.5 d^2 / 0.5 = 0.0625; |d| = 0.75 -> 0.75 - 0.25 = 0.5
        assert got.item() == pytest.approx((0.0625 + 3 * 0.5) / 4)
    finally:
        losses.unregister_map_loss("huber")
    assert "patches-C-huber" not in EXPERIMENTS
    with pytest.raises(ValueError, match="registered map loss"):
        losses.LossConfig(localize="huber")
