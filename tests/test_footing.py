"""The paper-footing stage's plan (dolos_core/footing.py): where it trains, its schedules and its
image budget, from a GPU check's measured rates or the stated fallback. The stage itself runs at
smoke size in tests/test_pipeline.py."""

from __future__ import annotations

import json

import pytest

from dolos_core import footing
from dolos_core.config import ConfigError, get_paths, get_profile


def test_budget_comes_from_the_gpu_check_and_cuts_the_paper_schedules(tmp_path):
    """8 minutes shared by 3 trainings = 160 s each: at 1,000 img/s with 10 s paid once,
    150,000 images; the paper's weak Patches (64 x 500 = 32,000 images per epoch) gets 4
    epochs, full Patches (16 x 500 = 8,000) 18; the paper's lr and batch stay."""
    prof, paths = get_profile("mini"), get_paths("mini", root=tmp_path)
    p = footing.plan(prof, paths)
    assert "no GPU check" in p.budget
    assert p.schedules["patches-weak"].epochs == footing.FALLBACK_IMAGES // 32_000
    (tmp_path / "results" / "paper").mkdir(parents=True)
    rec = {"train": {c: {"fp32_img_s": 1000.0, "fp32_once_s": 10.0}
                     for c in ("patches-weak", "patches-full", "patches-mil-weak")}}
    (tmp_path / "results" / "paper" / "gpu_check.json").write_text(json.dumps(rec))
    p = footing.plan(prof, paths)
    assert "8 GPU minutes" in p.budget
    assert (p.schedules["patches-weak"].epochs, p.schedules["patches-full"].epochs) == (4, 18)
    assert p.schedules["patches-weak"].batch_size == 64 and p.schedules["patches-weak"].lr == 1e-3
    assert p.schedules["patches-mil-weak"].iters_per_epoch == 500
    assert footing.plan(prof, paths, max_images=64_000).schedules["patches-weak"].epochs == 2
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
