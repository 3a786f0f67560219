"""Profiles, --set overrides, iteration caps and the starting-weights policy."""

from __future__ import annotations

import re

import pytest
import torch

from dolos_core.config import ConfigError, get_profile
from dolos_core.runner.overrides import parse_set
from dolos_core.weights import WeightsMissing, resolve_init


def test_set_parses_literals_strings_and_schedule_fields():
    o = parse_set(["max_iters=2", "max_test_images=12", "init=random", "max_valid_images=None",
                   "schedules.patches-weak.lr=1e-4"])
    assert o == {"max_iters": 2, "max_test_images": 12, "init": "random", "max_valid_images": None,
                 "schedules": {"patches-weak": {"lr": 1e-4}}}
    p = get_profile("paper", **o)
    assert p.schedule("patches", "weak").lr == 1e-4 and p.schedule("patches", "weak").batch_size == 64
    assert p.max_valid_images is None and p.input_size == 299


@pytest.mark.parametrize("item,match", [("max_iter=2", "did you mean max_iters"), ("max_iters", "FIELD=VALUE"),
                                        ("schedules.patches-weak.rate=1", "schedules.<method>"),
                                        ("seed.x=1", "no sub-fields")])
def test_set_rejects_what_it_cannot_apply(item, match):
    with pytest.raises(ConfigError, match=match):
        parse_set([item])


def test_max_iters_caps_every_schedule():
    p = get_profile("paper")
    assert p.plan("patches", "weak") == (100, 500)
    assert p.replace(max_iters=2).plan("gradcam", "weak") == (1, 2)
    assert p.replace(max_iters=2).plan("patches", "full", 3.0) == (1, 2)
    assert p.replace(max_iters=10**9).plan("attention", "full") == (15, 500)


def test_paper_init_names_the_missing_file_and_the_way_out(tmp_path):
    with pytest.raises(WeightsMissing) as err:
        resolve_init("attention", "weak", "paper", tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "xcp_reg.tar") in msg and "--init random" in msg
    assert "JStehouwer/FFD_CVPR2020" in msg and "scripts/fetch_weights.sh" in msg
    with pytest.raises(WeightsMissing, match="legacy_xception.pth"):
        resolve_init("gradcam", "full", "paper", tmp_path)
    assert resolve_init("patches", "weak", "paper", tmp_path).kind == "random"  # from scratch


def test_auto_uses_the_file_when_present_and_says_so_otherwise(tmp_path):
    a = resolve_init("gradcam", "weak", "auto", tmp_path)
    assert a.kind == "random" and "no legacy_xception.pth" in a.label
    torch.save({}, tmp_path / "legacy_xception.pth")
    b = resolve_init("gradcam", "weak", "auto", tmp_path)
    assert b.kind == "file" and b.path == (tmp_path / "legacy_xception.pth").resolve()
    assert resolve_init("gradcam", "weak", "paper", tmp_path).path == b.path
    assert resolve_init("gradcam", "weak", "random", tmp_path).kind == "random"


def test_profiles_start_as_the_paper_only_where_asked():
    assert get_profile("paper").init == "paper"
    assert get_profile("mini").init == "auto" and get_profile("smoke").init == "auto"


def test_weak_patches_init_per_profile_and_checked():
    from dolos_core.config import ConfigError

    from dolos_core.runner.overrides import parse_set

    assert get_profile("paper").options_for("patches", "weak") == {"weak_init": "authors"}
    assert get_profile("smoke").options_for("patches", "weak") == {"weak_init": "authors"}
    assert get_profile("mini").options_for("patches", "weak") == {"weak_init": "pytorch"}
    assert get_profile("mini").options_for("patches", "full") == {}       # the option changes weak networks only
    assert "Patch-Forensics" in resolve_init("patches", "weak", "auto", ".").label
    assert "PyTorch" in resolve_init("patches", "weak", "auto", ".", {"weak_init": "pytorch"}).label
    with pytest.raises(ConfigError, match="must be one of 'authors', 'pytorch', got 'xavier'"):
        get_profile("mini", method_options={"patches": {"weak_init": "xavier"}})
    with pytest.raises(ConfigError, match="declares no option 'stride'"):
        get_profile("mini", method_options={"patches": {"stride": 2}})
    with pytest.raises(ConfigError, match="no method 'patchez'"):
        get_profile("mini", method_options={"patchez": {"weak_init": "authors"}})
    # --set merges one option into the profile's, the other methods' options kept
    mini = get_profile("mini", **parse_set(["method_options.patches.weak_init=authors"]))
    assert mini.options_for("patches", "weak") == {"weak_init": "authors"}
    assert mini.options_for("patches-mil", "weak")["weak_init"] == "pytorch"


def test_a_tag_puts_tables_and_figures_beside_the_untagged_study(tmp_path):
    from dolos_core.config import get_paths

    plain, tagged = get_paths("mini", root=tmp_path), get_paths("mini", root=tmp_path, tag="lr-half")
    assert tagged.results == tmp_path / "results" / "mini-lr-half" != plain.results
    assert tagged.figures == tmp_path / "figures" / "mini-lr-half"
    assert tagged.checkpoints == plain.checkpoints        # runs are kept per configuration
    with pytest.raises(ConfigError, match="tag"):
        get_paths("mini", root=tmp_path, tag="../elsewhere")


def test_precision_is_a_field_recorded_in_the_run_id_and_fp32_is_the_default(tiny_root):
    import shutil

    from dolos_core.config import get_paths
    from dolos_core.experiments import get_experiment
    from dolos_core.runs import resolve_run

    assert all(get_profile(p).precision == "fp32" for p in ("smoke", "mini", "paper"))
    with pytest.raises(ConfigError, match="precision must be one of fp32, bf16"):
        get_profile("paper", precision="fp16")
    exp = get_experiment("patches-C")
    prof = get_profile("smoke")
    paths = get_paths("smoke", tiny_root, root=tiny_root.parent)
    fp32 = resolve_run(exp, prof, paths)
    bf16 = resolve_run(exp, get_profile("smoke", **parse_set(["precision=bf16"])), paths)
    assert fp32.config["precision"] == "fp32" and bf16.config["precision"] == "bf16"
    assert fp32.run_id != bf16.run_id
    # the id does not depend on where the data lives: a copy elsewhere finds the same run ...
    copy = shutil.copytree(tiny_root, tiny_root.parent / "elsewhere" / "dolos")
    assert resolve_run(exp, prof, get_paths("smoke", copy, root=tiny_root.parent)).run_id == fp32.run_id
    # ... and other files make another run
    (copy / "celebahq" / "fake" / "repaint-p2" / "images" / "train" / "000.png").unlink()
    assert resolve_run(exp, prof, get_paths("smoke", copy, root=tiny_root.parent)).run_id != fp32.run_id


def test_code_hash_follows_each_methods_own_code_not_plots_nor_where_the_checkout_lives(tmp_path):
    """The run id's code part, per method: a copy of the package elsewhere hashes the same; an
    edited plot or report changes no method's; a new method file, or an edit of Grad-CAM's
    file, leaves Patches' unchanged; an edit of patches.py changes Patches' and the methods built
    on it (Patches-MIL), not Grad-CAM's or Attention's; an edit of the training loop or the
    losses changes every method's."""
    import shutil

    from dolos_core.runs import _PACKAGE, code_hash

    copy = shutil.copytree(_PACKAGE, tmp_path / "elsewhere" / "dolos_core",
                           ignore=shutil.ignore_patterns("__pycache__"))
    methods = ("gradcam", "patches", "attention", "patches-mil")

    def hashes():
        return {m: code_hash.__wrapped__(m, copy) for m in methods}

    def edit(rel, text="\n# changed\n"):
        (copy / rel).write_text((copy / rel).read_text() + text)

    base = hashes()
    assert base == {m: code_hash(m) for m in methods} and len(set(base.values())) == 4
    for untouched in ("plots.py", "metrics.py", "runner/report.py", "models/__init__.py"):
        edit(untouched, "\n# an edit that changes no training\n")
    (copy / "models" / "mine.py").write_text("# a fifth method's file\n")
    assert hashes() == base
    edit("models/gradcam.py")
    now = hashes()
    assert now["gradcam"] != base["gradcam"] and all(now[m] == base[m] for m in methods if m != "gradcam")
    base = now
    edit("models/patches.py")
    now = hashes()
    assert [m for m in methods if now[m] != base[m]] == ["patches", "patches-mil"]
    for shared in ("losses.py", "train.py", "data/datasets.py", "models/base.py"):
        base = now
        edit(shared)
        now = hashes()
        assert all(now[m] != base[m] for m in methods), shared


@pytest.mark.parametrize("item, said", [
    ("max_iters=abc", "max_iters must be an integer >= 0 or None, got 'abc'"),
    ("max_iters=-5", "max_iters must be an integer >= 0 or None, got -5"),
    ("input_size=2.5", "input_size must be an integer >= 8"),
    ("schedules.patches-weak.lr=abc", "schedules.patches-weak: a schedule's lr must be a positive number"),
    ("schedules.patches-full.batch_size=0", "a schedule's batch_size must be an integer >= 1"),
    ("gpu_deterministic=yes", "gpu_deterministic must be True or False"),
    ("cpu_numerics=fast", "cpu_numerics must be one of avx2, native"),
    ("name=paper", "the profile's name cannot be overridden"),
    ("lr=1e-3", "lr is a schedule's: schedules.<method>-<supervision>.lr"),
    ("schedules.patches-C.lr=5e-4", "schedules.patches-C: no such schedule; a schedule is <method>-<weak|full>"),
])
def test_set_values_are_typed_and_checked(item, said):
    """--set parses a value and the profile checks it against its field's type and range; the
    profile's name is not settable; a schedule's field given bare names where it lives."""
    from dolos_core.config import ConfigError, get_profile
    from dolos_core.runner.overrides import parse_set

    with pytest.raises(ConfigError, match=re.escape(said)):
        get_profile("mini", **parse_set([item]))
    assert get_profile("mini", **parse_set(["max_iters=None", "seed=2", "schedules.patches-full.lr=3e-4"])).seed == 2
