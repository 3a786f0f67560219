"""The paper-footing stage's plan (dolos_core/footing.py): where it trains, its schedules and its
image budget, from a GPU check's measured rates or the stated fallback. The stage itself runs at
smoke size in tests/test_pipeline.py."""

from __future__ import annotations

import json

import pytest

from dolos_core import footing
from dolos_core.config import ConfigError, get_paths, get_profile


def test_budget_comes_from_the_gpu_check_and_cuts_the_paper_schedules(tmp_path):
    """The budget is shared so each training gets the same share f of its paper schedule (weak
    Patches 64 x 500 x 100 = 3.2 M images, full 16 x 500 x 50 = 0.4 M; with Patches-MIL B 6.8 M in
    all). No GPU check: 3 x 200,000 images, f = 0.6 / 6.8 = 8.8%: B 282,352 images = 8 epochs of
    32,000, C 35,294 = 4 epochs of 8,000. 8 GPU minutes at 1,000 img/s with 10 s paid once per
    training: (480 - 30) s / 6,800 s = 6.6%: B 6 epochs, C 3. 680,000 images given: 10% each."""
    prof, paths = get_profile("mini"), get_paths("mini", root=tmp_path)
    p = footing.plan(prof, paths)
    assert "no GPU check" in p.budget and "8.8% of each paper schedule" in p.budget
    assert (p.schedules["patches-weak"].epochs, p.schedules["patches-full"].epochs) == (8, 4)
    (tmp_path / "results" / "paper").mkdir(parents=True)
    rec = {"train": {c: {"fp32_img_s": 1000.0, "fp32_once_s": 10.0}
                     for c in ("patches-weak", "patches-full", "patches-mil-weak")}}
    (tmp_path / "results" / "paper" / "gpu_check.json").write_text(json.dumps(rec))
    p = footing.plan(prof, paths)
    assert "8 GPU minutes" in p.budget and "6.6% of each paper schedule" in p.budget
    assert (p.schedules["patches-weak"].epochs, p.schedules["patches-full"].epochs) == (6, 3)
    assert p.schedules["patches-weak"].batch_size == 64 and p.schedules["patches-weak"].lr == 1e-3
    assert p.schedules["patches-mil-weak"].iters_per_epoch == 500
    given = footing.plan(prof, paths, max_images=680_000).schedules
    assert (given["patches-weak"].epochs, given["patches-full"].epochs) == (10, 5)
    with pytest.raises(ConfigError, match="minutes"):
        footing.plan(prof, paths, minutes=0)


def test_it_builds_its_own_data_unless_given_a_root(tmp_path):
    """The mini profile's own DOLOS-mini is rebuilt at 256 px beside it; a root given by the
    user is used as it is (image side 256, input 299 either way)."""
    prof = get_profile("mini")
    own = footing.plan(prof, get_paths("mini", root=tmp_path))
    assert own.paths.data_root == tmp_path / "data" / "dolos-mini-mini-256px"
    assert (own.image_size, own.input_size) == (256, 299)
    given = footing.plan(prof, get_paths("mini", tmp_path / "real", root=tmp_path))
    assert given.paths.data_root == tmp_path / "real"
    ts = footing.trainings(prof, get_paths("mini", root=tmp_path))
    assert [t.experiment.name for t in ts] == ["patches-B", "patches-C", "patches-mil-B"]
    assert all(t.profile.input_size == 299 and t.profile.patience == footing.PATIENCE["mini"] for t in ts)
