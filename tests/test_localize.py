"""Maps for your own images (dolos_core/localize.py, ./run_all.sh predict, notebook 12): images the
test writes (three sizes, PNG and JPEG, one corrupt), a trained smoke run and a checkpoint file."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from .conftest import REPO

pytestmark = pytest.mark.xdist_group("localize")
EXP = "patches-C"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A smoke root with ``patches-C`` trained (profile, paths, its best.pt)."""
    from dolos_core.config import get_paths, get_profile
    from dolos_core.data.mini import build_mini
    from dolos_core.experiments import get_experiment
    from dolos_core.train import train_experiment

    root = tmp_path_factory.mktemp("localize")
    prof, paths = get_profile("smoke"), get_paths("smoke", root=root)
    build_mini(paths.data_root, prof, seed=0, progress=False)
    res = train_experiment(get_experiment(EXP), prof, paths, device="cpu", progress=False)
    return prof, paths, res.checkpoint


@pytest.fixture
def images(tmp_path):
    """Three readable images of three sizes (one JPEG, one in a subfolder) and one corrupt PNG."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "mine"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)).save(folder / "small.png")
    Image.fromarray(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)).save(folder / "square.jpg", quality=90)
    Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(folder / "square.png")   # same stem
    Image.fromarray(rng.integers(0, 256, (200, 300, 3), dtype=np.uint8)).save(folder / "sub" / "wide.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really an image")
    (folder / "notes.txt").write_text("not an image: skipped by suffix")
    return folder


def test_maps_for_any_image_from_a_run_and_from_a_checkpoint_file(trained, images, tmp_path):
    from dolos_core.localize import find_images, load_localizer, localize_images

    prof, paths, best = trained
    assert len(find_images(images)) == 5 and find_images(images / "small.png") == [images / "small.png"]
    loc = load_localizer(EXP, prof, paths, "cpu")
    with pytest.raises(ValueError, match="threshold must be between 0 and 1"):
        localize_images(loc, images, tmp_path / "out", threshold=7)
    table = localize_images(loc, images, tmp_path / "out", batch_size=2, progress=False)
    assert list(table["name"]) == ["broken", "small", "square_jpg", "square_png", "sub__wide"]   # none overwritten
    broken = table.iloc[0]
    assert "broken.png" in broken["error"] and "unreadable image" in broken["error"]
    good = table.iloc[1:]
    assert (good["error"] == "").all() and good["score"].between(0, 1).all()
    assert list(good["width"]) == [70, 128, 40, 300] and list(good["height"]) == [50, 128, 40, 200]
    side = loc.model.map_size(prof.input_size)
    for _, row in good.iterrows():
        m = np.load(tmp_path / "out/maps" / f"{row['name']}.npy")
        assert m.shape == (side, side) and m.dtype == np.float32 and 0 <= m.min() and m.max() <= 1
        for kind in ("maps", "overlays"):
            with Image.open(tmp_path / "out" / kind / f"{row['name']}.png") as im:
                assert im.size == (row["width"], row["height"]), (kind, row["name"])
        assert row["fake_share"] == pytest.approx(
            (np.asarray(Image.open(tmp_path / "out/maps" / f"{row['name']}.png")) > 127.5).mean(), abs=0.02)
    assert pd.read_csv(tmp_path / "out/scores.csv").shape[0] == 5
    assert ",70,50," in (tmp_path / "out/scores.csv").read_text()          # sizes as integers beside an empty row
    # the same weights from a checkpoint file give the same maps and scores
    from_file = localize_images(load_localizer(EXP, prof, paths, "cpu", checkpoint=best), images,
                                tmp_path / "file", batch_size=3, progress=False)
    np.testing.assert_allclose(from_file["score"].iloc[1:], good["score"], atol=1e-6)
    np.testing.assert_allclose(np.load(tmp_path / "file/maps/sub__wide.npy"), np.load(tmp_path / "out/maps/sub__wide.npy"),
                               atol=1e-6)
    assert from_file["model"].iloc[0] == f"checkpoint best.pt as {EXP}" and "@" in table["model"].iloc[0]
    # the same weights under the authors' released names (Patch-Forensics' CustomXceptionNet: conv1, bn1, ...)
    import torch

    from dolos_core.io import load_torch
    from dolos_core.models.checkpoints import _PATCH_FORENSICS_NAMES

    state = {}
    for name, value in load_torch(best).items():
        for authors, prefix in _PATCH_FORENSICS_NAMES.items():
            if name.startswith(prefix + "."):
                name = authors + name[len(prefix):]
                break
        state[name] = value
    assert any(k.startswith("conv1.") for k in state), sorted(state)[:5]
    torch.save(state, tmp_path / "authors.pth")
    released = localize_images(load_localizer(EXP, prof, paths, "cpu", checkpoint=tmp_path / "authors.pth"), images,
                               tmp_path / "authors", progress=False)
    np.testing.assert_allclose(released["score"].iloc[1:], good["score"], atol=1e-6)


def test_predict_command_maps_a_folder_and_names_what_it_cannot_use(trained, images, tmp_path, capsys):
    prof, paths, best = trained
    env = {**os.environ, "DOLOS_PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}

    def go(*args):
        return subprocess.run([str(REPO / "run_all.sh"), "predict", "--profile", "smoke", "--repo", str(paths.root),
                               "--device", "cpu", *args], capture_output=True, text=True, env=env, timeout=600)

    r = go("--images", str(images), "--experiment", EXP, "--out", str(tmp_path / "o"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "skipped:" in r.stdout and "broken.png" in r.stdout and "4 mapped" in r.stdout
    assert len(list((tmp_path / "o/overlays").glob("*.png"))) == 4
    from dolos_core.runner.your_images import main      # the command itself, in this process

    for args, words in [(("--images", str(tmp_path / "nowhere"), "--experiment", EXP), "no such file or folder"),
                        (("--images", str(images), "--experiment", "patches-Q"), "unknown experiment"),
                        (("--images", str(images), "--experiment", "gradcam-C"), "has not been trained"),
                        (("--images", str(images), "--experiment", "attention-C", "--checkpoint", str(best)),
                         "not a attention full checkpoint")]:
        capsys.readouterr()
        assert main(["--profile", "smoke", "--repo", str(paths.root), "--device", "cpu", *args]) == 1, args
        err = capsys.readouterr().err
        assert err.startswith("error: ") and words in err and "Traceback" not in err, (args, err)


def test_your_images_notebook_runs_on_the_smoke_profile(trained, images, tmp_path):
    import papermill as pm

    prof, paths, best = trained
    out = tmp_path / "12.ipynb"
    pm.execute_notebook(str(REPO / "notebooks/12_your_images.ipynb"), str(out), kernel_name="python3",
                        parameters={"profile": "smoke", "device": "cpu", "images": str(images), "experiment": EXP,
                                    "checkpoint": str(best), "out": str(tmp_path / "nb")},
                        cwd=str(REPO / "notebooks"), progress_bar=False)
    assert (tmp_path / "nb/scores.csv").exists() and len(list((tmp_path / "nb/overlays").glob("*.png"))) == 4


def test_explain_names_the_run_its_files_and_where_it_is(trained, capsys):
    """``./run_all.sh --explain``: the run id of this configuration (the trained one), the files
    its id hashes and those training imports without hashing, where its checkpoint is."""
    from dolos_core.runner.pipeline import main

    prof, paths, best = trained
    assert main(["--explain", EXP, "--profile", "smoke", "--repo", str(paths.root), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert f"run id {best.parent.name}" in out and f"{best.parent} (trained)" in out
    assert "  models/patches.py  " in out and "  train.py  " in out and "io.py: reading and writing" in out
    assert main(["--explain", "patches-Q", "--profile", "smoke", "--repo", str(paths.root)]) == 1
    assert "unknown experiment 'patches-Q'" in capsys.readouterr().out
    # --set cpu_numerics=native: the run a native-kernel training would make (its own id)
    r = subprocess.run([str(REPO / "run_all.sh"), "--explain", EXP, "--profile", "smoke", "--repo", str(paths.root),
                        "--device", "cpu", "--set", "cpu_numerics=native"], capture_output=True, text=True,
                       env={**os.environ, "DOLOS_PYTHON": sys.executable}, timeout=300)
    assert r.returncode == 0 and "kernels native: " in r.stdout and best.parent.name not in r.stdout.split("\n")[3], \
        r.stdout[:3000] + r.stderr[-2000:]


def test_the_threshold_without_masks_reads_no_mask(trained):
    """The weak setups' thresholds (evaluate.label_threshold: Otsu's on the validation fakes'
    cells, or a quantile of the real validation images' cells) are the same with the validation
    masks deleted as with them present, and Table 2's row reports the profile's beside 0.5; the
    mask-calibrated threshold cannot be chosen without them."""
    import shutil

    from dolos_core import evaluate
    from dolos_core.experiments import CELEBA_TEST, get_experiment
    from dolos_core.predict import predict_experiment
    from dolos_core.runs import resolve_run

    prof, paths, _ = trained
    exp = get_experiment(EXP)
    predict_experiment(exp, prof, paths, device="cpu", progress=False)
    run = resolve_run(exp, prof, paths)
    row = evaluate.experiment_row(exp, paths, prof, extras=True)

    def thresholds():
        fake = evaluate.load_run(run, CELEBA_TEST[0], prof, "valid")
        real = evaluate.load_run(run, CELEBA_TEST[1], prof, "valid")
        return [evaluate.label_threshold(fake, real, rule, prof.label_quantile) for rule in evaluate.LABEL_RULES]
    with_masks = thresholds()
    assert row["label_threshold"] == with_masks[0] and all(0 <= t <= 1 for t in with_masks)
    assert 0 <= row["iou_label_thr_ci_low"] <= row["iou_label_thr"] <= row["iou_label_thr_ci_high"] <= 100
    masks = paths.data_root / "celebahq" / "fake" / "repaint-p2" / "masks" / "valid"
    hidden = masks.with_name("valid-hidden")
    shutil.move(masks, hidden)
    evaluate._MASK_CACHE.clear()
    try:
        assert thresholds() == with_masks
        with pytest.raises(Exception):      # the oracle of weak setups needs the masks
            evaluate.calibrated_iou(evaluate.load_run(run, CELEBA_TEST[0], prof, "valid"),
                                    evaluate.load_run(run, CELEBA_TEST[0], prof), prof)
    finally:
        shutil.move(hidden, masks)
        evaluate._MASK_CACHE.clear()


def test_otsus_threshold_by_hand():
    """Otsu's threshold splits a two-mode histogram between its modes."""
    from dolos_core.evaluate import otsu_threshold

    values = np.r_[np.full(900, 0.1), np.full(100, 0.8)]
    assert 0.1 < otsu_threshold(values) < 0.8
    assert otsu_threshold(np.r_[np.full(500, 0.3), np.full(500, 0.4)]) == pytest.approx(0.3, abs=1 / 256 + 1e-9)
