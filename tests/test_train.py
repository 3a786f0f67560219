"""Training loop and prediction on the smoke DOLOS-mini: resume, checkpoints, files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dolos_core.config import get_paths, get_profile
from dolos_core.data.mini import build_mini
from dolos_core.experiments import EXPERIMENTS, get_experiment, plan_for
from dolos_core.experiments import test_set_name as stem_of
from dolos_core.io import load_torch
from dolos_core.predict import predict_experiment
from dolos_core.predictions import load_predictions
from dolos_core.train import load_trained, run_dir, train_experiment


# one worker runs this module (its session fixture builds data once), when the suite runs with pytest-xdist
pytestmark = pytest.mark.xdist_group("train")


@pytest.fixture(scope="session")
def smoke(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    prof = get_profile("smoke", schedules={"gradcam-full": {"epochs": 3, "iters_per_epoch": 2}})
    paths = get_paths("smoke", root=root)
    build_mini(paths.data_root, prof, seed=0, progress=False)
    return prof, paths


def test_registry_has_every_paper_experiment():
    names = set(EXPERIMENTS)
    for m in ("gradcam", "patches", "attention"):
        for s in "ABC":
            assert f"{m}-{s}" in names
    for s in "ABC":
        assert f"patches-{s}-ffhq" in names
    for g in ("repaint-p2-9k", "ldm", "lama", "pluralistic"):
        assert f"patches-full-{g}" in names and f"patches-full-allbut-{g}" in names
    assert len([e for e in EXPERIMENTS.values() if e.group not in ("loss-variants", "scaling")]) == 22
    assert {"patches-mil-A", "patches-mil-B"} <= names and "patches-mil-C" not in names     # its C is Patches C
    allbut = EXPERIMENTS["patches-full-allbut-ldm"]
    assert [t.key for t in allbut.train] == ["celebahq/repaint-p2-9k", "celebahq/lama", "celebahq/pluralistic"]
    paper = get_profile("paper")
    assert plan_for(allbut, paper) == (150, 500)
    assert plan_for(EXPERIMENTS["patches-full-ldm"], paper) == (50, 500)
    assert plan_for(allbut, paper.replace(max_iters=2)) == (1, 2)
    assert plan_for(allbut, paper.replace(max_iters=1200)) == (2, 500)
    with pytest.raises(KeyError, match="did you mean|Did you mean"):
        get_experiment("patches-c")


def test_interrupted_then_resumed_equals_uninterrupted(smoke, tmp_path):
    prof, paths = smoke
    exp = get_experiment("gradcam-C")  # has dropout: checks the per-epoch seeding too
    a = get_paths("smoke", data_root=paths.data_root, root=tmp_path / "a")
    b = get_paths("smoke", data_root=paths.data_root, root=tmp_path / "b")
    full = train_experiment(exp, prof, a, device="cpu", progress=False)
    part = train_experiment(exp, prof, b, device="cpu", progress=False, max_epochs=1)
    assert len(part.history) == 1
    run_b = run_dir(b, exp, prof)
    meta = json.loads((run_b / "train.json").read_text())
    assert meta["done"] is False and (run_b / "last.pt").exists()
    rest = train_experiment(exp, prof, b, device="cpu", progress=False)
    assert rest.resumed_from == 1 and len(rest.history) == 3
    assert all(h["valid_ap"] is None for h in rest.history)  # full supervision: fakes only
    wa = load_torch(run_dir(a, exp, prof) / "best.pt")
    wb = load_torch(run_b / "best.pt")
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=0)
    assert [h["valid_loss"] for h in full.history] == [h["valid_loss"] for h in rest.history]
    again = train_experiment(exp, prof, b, device="cpu", progress=False)
    assert again.skipped


def test_a_stop_between_last_pt_and_train_json_resumes_with_the_whole_curve(smoke, tmp_path):
    """A process stopped after writing an epoch's last.pt but before its train.json (what a kill
    right after last.pt appears does) resumes with every epoch in its curve: the curve is kept
    in last.pt itself."""
    prof, paths = smoke
    exp = get_experiment("gradcam-C")
    b = get_paths("smoke", data_root=paths.data_root, root=tmp_path)
    train_experiment(exp, prof, b, device="cpu", progress=False, max_epochs=2)
    meta_path = run_dir(b, exp, prof) / "train.json"
    meta = json.loads(meta_path.read_text())
    meta["history"] = meta["history"][:1]          # train.json one epoch behind last.pt
    meta_path.write_text(json.dumps(meta))
    rest = train_experiment(exp, prof, b, device="cpu", progress=False)
    assert rest.resumed_from == 2
    assert [h["epoch"] for h in rest.history] == [0, 1, 2]
    assert [h["epoch"] for h in json.loads(meta_path.read_text())["history"]] == [0, 1, 2]


def test_predictions_are_written_once_with_their_metadata(smoke):
    prof, paths = smoke
    exp = get_experiment("patches-B")
    res = train_experiment(exp, prof, paths, device="cpu", progress=False)
    # weak runs watch the validation AP of their image scores (real and fake in the split)
    assert all(0 <= h["valid_ap"] <= 100 for h in res.history)
    assert [h["step"] for h in res.history] == [2, 4]
    files = predict_experiment(exp, prof, paths, device="cpu", progress=False)
    # the test sets, the other generators' (patches-B is compared across generators), then the
    # validation splits the thresholds come from (ours: with masks, and the reals' without)
    assert [f.name for f in files] == [f"{stem_of(k)}.npz" for k in exp.test + exp.transfer_test] + [
        "celebahq_repaint-p2@valid.npz", "celebahq_real@valid.npz"]
    fake = load_predictions(files[0])
    n = prof.build_sizes.test
    assert fake.maps.shape == (n, 8, 8) and fake.scores.shape == (n,)   # 64 px -> 8x8 patches
    assert np.isfinite(fake.maps.astype(np.float32)).all() and fake.maps.min() >= 0 and fake.maps.max() <= 1
    assert list(fake.names) == sorted(fake.names)
    assert fake.meta["masks_dir"].endswith("celebahq/fake/repaint-p2/masks/test")
    assert fake.masks().shape == (n, 64, 64)
    real = load_predictions(files[1])
    assert real.meta["masks_dir"] is None and real.label == 0
    mtime = files[0].stat().st_mtime_ns
    predict_experiment(exp, prof, paths, device="cpu", progress=False)
    assert files[0].stat().st_mtime_ns == mtime  # skipped when present


def test_a_run_is_its_configuration(smoke, tmp_path):
    """Tweak a cell and get the right answer: an identical configuration reuses its run; a
    changed learning rate trains into a new folder and leaves the first untouched; a table row
    says which run it read, and a configuration that was never trained is missing, never
    answered with another configuration's weights."""
    from dolos_core.evaluate import experiment_row
    from dolos_core.runs import resolve_run

    prof, paths = smoke
    paths = get_paths("smoke", data_root=paths.data_root, root=tmp_path)
    exp = get_experiment("patches-C")
    first = train_experiment(exp, prof, paths, device="cpu", progress=False)
    r1 = resolve_run(exp, prof, paths)
    best1 = r1.checkpoint_dir / "best.pt"
    before = (best1.read_bytes(), best1.stat().st_mtime_ns)
    assert train_experiment(exp, prof, paths, device="cpu", progress=False).skipped
    tweaked = prof.replace(schedules={"patches-full": {"lr": 5e-4}})
    r2 = resolve_run(exp, tweaked, paths)
    assert r2.run_id != r1.run_id and r2.checkpoint_dir.parent == r1.checkpoint_dir.parent
    second = train_experiment(exp, tweaked, paths, device="cpu", progress=False)
    assert not second.skipped and second.checkpoint == r2.checkpoint_dir / "best.pt"
    assert (best1.read_bytes(), best1.stat().st_mtime_ns) == before      # the original is untouched
    assert json.loads((r2.checkpoint_dir / "train.json").read_text())["schedule"]["lr"] == 5e-4
    predict_experiment(exp, prof, paths, device="cpu", progress=False)
    predict_experiment(exp, tweaked, paths, device="cpu", progress=False)
    assert experiment_row(exp, paths, prof)["run"] == r1.run_id
    assert experiment_row(exp, paths, tweaked)["run"] == r2.run_id
    untrained = prof.replace(seed=7)
    assert experiment_row(exp, paths, untrained)["status"] == "missing"
    with pytest.raises(FileNotFoundError, match="other configurations"):
        load_trained(exp, untrained, paths)
    # the data is part of the configuration: another root is another run
    other = get_paths("smoke", data_root=tmp_path / "elsewhere", root=tmp_path)
    (tmp_path / "elsewhere").mkdir()
    assert resolve_run(exp, prof, other).run_id != r1.run_id
    assert first.checkpoint == best1


def test_table3_setup_b_trains_on_the_whole_ffhq_repaint_split(tmp_path):
    """The authors' setup B on FFHQ concatenates the real train split and the *whole* FFHQ
    Repaint-P2 train split (FFHQ has no 9k subset); it is not capped at the number of reals."""
    from dolos_core.train import build_split

    from .conftest import make_layout

    root = make_layout(tmp_path / "dolos", size=16, n=2, datasets=("ffhq/real",), splits=("train",))
    make_layout(root, size=16, n=5, datasets=("ffhq/repaint-p2",), splits=("train",), seed=1)
    ds = build_split(get_experiment("patches-B-ffhq"), root, "train", 16)
    assert len(ds) == 2 + 5 and ds.labels.sum() == 5


def test_a_run_being_trained_by_another_process_is_refused(smoke, monkeypatch):
    """Two processes never write one run: the second meets its lock and is told who holds it."""
    from dolos_core import train
    from dolos_core.runs import resolve_run

    from .test_checkouts import _holder

    prof, paths = smoke
    exp = get_experiment("patches-C")
    holder = _holder(resolve_run(exp, prof, paths).checkpoint_dir / ".lock")
    monkeypatch.setattr(train, "RUN_LOCK_WAIT", 0)
    try:
        with pytest.raises(RuntimeError, match=f"patches-C/.* being written by another run .pid {holder.pid}"):
            train_experiment(exp, prof, paths)
    finally:
        holder.kill()
        holder.wait()


def test_max_iters_zero_evaluates_the_starting_weights(smoke, tmp_path):
    """``--set max_iters=0 --init FILE``: no training step; the run's best checkpoint is the
    file's weights as loaded (how the authors' released Patches models are evaluated)."""
    from dolos_core.io import save_torch
    from dolos_core.models import build_model

    prof, paths = smoke
    torch.manual_seed(3)
    released = build_model("patches", "full").state_dict()
    f = tmp_path / "released.pt"
    save_torch(f, released)
    res = train_experiment(get_experiment("patches-C"), prof.replace(max_iters=0), paths,
                           device="cpu", init=str(f), progress=False)
    assert res.history == [] and not res.skipped
    best = load_torch(res.checkpoint)
    for k, v in released.items():
        torch.testing.assert_close(best[k], v, rtol=0, atol=0)



# A 2-process DDP loss curve against one process (patches-C, global batch 8 split 4 + 4, on the
# CPU with gloo): the same batches, batch-norm statistics over the global batch, gradients
# averaged. What is left is float rounding (sums in another order), which Adam carries along:
# measured 1e-7 after the first epoch and at most 5e-4 after three. The tolerance is 2e-3,
# against 0.01-0.03 when each rank normalises only its own half of the batch.
DDP_LOSS_TOL = 2e-3


def test_ddp_on_two_gloo_processes_matches_one_process_and_resumes(smoke, tmp_path):
    """``gpus=2`` on the CPU: two ``gloo`` processes under torchrun, the same global batch and
    learning rate. The loss curve matches one process within ``DDP_LOSS_TOL``; a DDP run
    stopped after one epoch resumes to exactly the uninterrupted DDP run; rank 0 alone wrote
    the run, and its checkpoint has the one-process model's tensors (names and shapes)."""
    prof, paths = smoke
    prof = prof.replace(schedules={"patches-full": {"batch_size": 8, "epochs": 3, "iters_per_epoch": 4}})
    exp = get_experiment("patches-C")
    roots = {k: get_paths("smoke", data_root=paths.data_root, root=tmp_path / k) for k in ("one", "ddp", "cut")}
    one = train_experiment(exp, prof, roots["one"], device="cpu", progress=False)
    ddp = train_experiment(exp, prof, roots["ddp"], device="cpu", progress=False, gpus=2)
    assert len(one.history) == len(ddp.history) == 3
    for a, b in zip(one.history, ddp.history):
        for key in ("train_loss", "valid_loss"):
            assert abs(a[key] - b[key]) <= DDP_LOSS_TOL, (key, a, b)
    assert abs(one.history[0]["train_loss"] - ddp.history[0]["train_loss"]) < 1e-5
    meta = json.loads((run_dir(roots["ddp"], exp, prof) / "train.json").read_text())
    assert meta["processes"] == 2 and meta["done"]
    # one configuration (its key), two numerics (2 processes sum in another order): two run ids
    ddp_id, one_id = (json.loads((roots[k].checkpoints / exp.name).glob("*/run.json").__next__().read_text())
                      for k in ("ddp", "one"))
    assert ddp_id["config_key"] == one_id["config_key"] and ddp_id["run_id"] != one_id["run_id"]
    assert (ddp_id["numerics"]["processes"], one_id["numerics"]["processes"]) == (2, 1)
    cut = train_experiment(exp, prof, roots["cut"], device="cpu", progress=False, gpus=2, max_epochs=1)
    assert len(cut.history) == 1 and (run_dir(roots["cut"], exp, prof) / "last.pt").exists()
    resumed = train_experiment(exp, prof, roots["cut"], device="cpu", progress=False, gpus=2)
    assert resumed.resumed_from == 1 and not (run_dir(roots["cut"], exp, prof) / "last.pt").exists()
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in ddp.history]
    wa, wb, w1 = (load_torch(run_dir(roots[k], exp, prof) / "best.pt") for k in ("ddp", "cut", "one"))
    assert {k: v.shape for k, v in wa.items()} == {k: v.shape for k, v in w1.items()}
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=0, msg=k)


def _weights_under_threads(exp, prof, paths, root, threads: int, fixed: bool = True, monkeypatch=None):
    """Train ``exp`` in a fresh root with the process at ``threads`` torch threads (what
    ``--jobs 1`` and ``--jobs 2`` give a training on 2 cores); ``fixed=False`` bypasses the
    training's own thread count (the negative control)."""
    import contextlib

    import dolos_core.train as train_mod

    if not fixed:
        monkeypatch.setattr(train_mod, "training_threads", lambda dev: contextlib.nullcontext())
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        p = get_paths("smoke", data_root=paths.data_root, root=root)
        train_experiment(exp, prof, p, device="cpu", progress=False)
        assert torch.get_num_threads() == threads       # the caller's count is put back
        return load_torch(run_dir(p, exp, prof) / "best.pt")
    finally:
        torch.set_num_threads(before)
        monkeypatch and monkeypatch.undo()


def test_cpu_threads_do_not_change_weights(smoke, tmp_path, monkeypatch):
    """One run id, one result: a CPU training learns the same weights whether the process runs
    at 1 or 2 threads (``--jobs 2`` or ``--jobs 1`` on 2 cores), because it trains on a fixed
    count. The control shows the check can fail: without the fixed count the weights differ."""
    prof, paths = smoke
    exp = get_experiment("gradcam-C")
    one = _weights_under_threads(exp, prof, paths, tmp_path / "one", 1)
    two = _weights_under_threads(exp, prof, paths, tmp_path / "two", 2)
    assert one.keys() == two.keys()
    for k in one:
        torch.testing.assert_close(one[k], two[k], rtol=0, atol=0)
    free = _weights_under_threads(exp, prof, paths, tmp_path / "free", 2, fixed=False, monkeypatch=monkeypatch)
    assert any(not torch.equal(one[k], free[k]) for k in one if one[k].is_floating_point())


def test_patience_stops_a_training_where_its_validation_loss_stopped_improving():
    """Early stopping (``Profile.patience``) read from the curve: best at epoch 1 of 4 epochs
    run is 2 epochs without improvement, so a patience of 2 stops and one of 3 does not; no
    patience never stops; a run that has not validated yet never stops."""
    from dolos_core.config import get_profile
    from dolos_core.train import _patience_spent, _State

    state = _State(history=[{}] * 4, best_epoch=1)
    assert _patience_spent(state, get_profile("smoke", patience=2))
    assert not _patience_spent(state, get_profile("smoke", patience=3))
    assert not _patience_spent(state, get_profile("smoke"))
    assert not _patience_spent(_State(history=[]), get_profile("smoke", patience=1))
