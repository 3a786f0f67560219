"""./run_all.sh as a user meets it: bad input, the smoke study end to end (every notebook
through papermill), tables checked against an independent implementation, resume."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from .conftest import REPO, make_layout, only_run
from .test_metrics import reference_iou

RUN = str(REPO / "run_all.sh")
# One torch thread per process everywhere (the suite's setting, made explicit); a CPU training
# computes with one thread whatever it is given (numerics.TRAIN_CPU_THREADS), and --jobs (auto:
# one training per core) only says how many run side by side.
ENV = {**os.environ, "DOLOS_PYTHON": sys.executable, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


def pinned_run(root, exp):
    """(run id, kernels) of ``exp``'s one run under ``root``, checked to be the pinned kernels."""
    meta = json.loads((only_run(root / "runs/smoke/checkpoints" / exp) / "run.json").read_text())
    assert meta["numerics"]["kernels"] == "x86-64 AVX2 (pinned)" or not meta["numerics"]["kernels"].startswith("x86")
    return meta["run_id"], meta["numerics"]["kernels"]


def run(*args, timeout=900, **kw):
    return subprocess.run([RUN, *args], capture_output=True, text=True, timeout=timeout, env=ENV, **kw)


def test_unknown_flag_prints_usage_and_exits_2():
    """The command line is checked before any environment is set up (dolos_core/runner/cli.py, the
    one definition of it, read by the script and the pipeline alike)."""
    r = run("--no-such-flag")
    assert r.returncode == 2
    assert "unrecognized arguments: --no-such-flag" in r.stderr and "usage:" in r.stderr
    r = run("--profile")
    assert r.returncode == 2 and "expected one argument" in r.stderr
    r = run("-h")
    assert r.returncode == 0 and "--tag NAME" in r.stdout and "scaling" in r.stdout


def test_list_prints_every_training_of_every_stage_after_the_runs_checks(capsys, monkeypatch):
    """--list: every stage's trainings (opt-in stages marked, the geometry runs with their side
    and seed), their training images and estimated CPU minutes; the checks the run makes first."""
    rc, out = run_here(monkeypatch, capsys, "--list")
    assert rc == 0, out
    rows = [line.split("\t") for line in out.splitlines() if not line.startswith("#")]
    names = [row[1] for row in rows]
    assert len(names) >= 20 and "patches-C" in names and "patches-full-allbut-lama" in names
    assert "patches-B [160 px, seed 1]" in names
    stages = {row[0] for row in rows}
    assert {"train", "extensions", "scaling (opt-in: --only scaling)", "geometry (opt-in: --only geometry)"} <= stages
    first = next(row for row in rows if row[1] == "patches-C")
    assert int(first[3].replace(",", "")) > 0 and float(first[4]) > 0
    big = next(row for row in rows if row[1] == "patches-C [224 px, seed 0]")
    assert float(big[4]) > 4 * float(first[4])          # minutes scale with the pixels of the input side
    footing = {row[1]: row for row in rows if row[0] == "footing (opt-in: --only footing)"}
    assert set(footing) == {"patches-B [299 px from 256 px]", "patches-C [299 px from 256 px]",
                            "patches-mil-B [299 px from 256 px]"}
    assert footing["patches-B [299 px from 256 px]"][5] == "not measured"      # GPU hours: no GPU check here
    assert first[5] == "-"                               # a stage not sized for a GPU has no GPU hours
    from dolos_core.runner.pipeline import main

    for bad, said in ((("--set", "max_iters=abc"), "max_iters must be an integer"),
                      (("--device", "cuda"), "PyTorch sees no CUDA GPU"),
                      (("--executor", "slurm"), "no Slurm here")):
        if bad[1] == "cuda" and __import__("torch").cuda.is_available() or bad[1] == "slurm" and shutil.which("sbatch"):
            continue
        capsys.readouterr()
        assert main(["--list", *bad]) == 1           # the runner itself, in this process (no set-up to repeat)
        out = capsys.readouterr().out
        assert said in out and out.startswith("error: "), (bad, out)


def test_missing_data_root_is_named_without_traceback(tmp_path):
    r = run("--data-root", str(tmp_path / "nonexistent"), "--repo", str(tmp_path))
    assert r.returncode == 1
    out = r.stdout + r.stderr
    assert str(tmp_path / "nonexistent") in out and "does not exist" in out
    assert "Traceback" not in out


def test_unknown_only_name_is_an_error(tmp_path):
    r = run("--only", "trian", "--repo", str(tmp_path))
    assert r.returncode == 1 and "did you mean train" in r.stdout and "Traceback" not in r.stdout


def run_here(monkeypatch, capsys, *args) -> tuple[int, str]:
    """``./run_all.sh ARGS`` as the runner itself in this process (no interpreter to start): its
    exit status and output; the environment and signal handler it sets are put back after."""
    from dolos_core.runner.pipeline import main

    monkeypatch.delenv("DOLOS_REPO", raising=False)      # what an earlier test of this process left
    for key in ("PYTHONPATH", "DOLOS_CPU_NUMERICS"):
        monkeypatch.setenv(key, os.environ.get(key, ""))
    handler = signal.getsignal(signal.SIGTERM)
    capsys.readouterr()
    try:
        rc = main(list(args))
    finally:
        signal.signal(signal.SIGTERM, handler)
    out = capsys.readouterr()
    return rc, out.out + out.err


@pytest.mark.parametrize("case", ["empty", "one-split", "no-images", "no-masks"])
def test_every_bad_root_is_named_in_one_line_before_anything_runs(tmp_path, case, monkeypatch, capsys):
    """An empty root, a root with one split, a split with no images, fakes without masks: one
    message naming the folder and what is missing, exit 1, no traceback, and nothing written
    (no notebook ran: the committed-looking results/smoke/ file stays as it was)."""
    root = tmp_path / "dolos"
    root.mkdir()
    if case == "one-split":
        make_layout(root, size=32, n=2, datasets=("celebahq/real",), splits=("train",))
    elif case == "no-images":
        make_layout(root, size=32, n=2)
        for f in (root / "celebahq/fake/repaint-p2/images/train").iterdir():
            f.unlink()
        for f in (root / "celebahq/real/valid").iterdir():
            f.unlink()
    elif case == "no-masks":
        make_layout(root, size=32, n=2)
        (root / "celebahq/fake/repaint-p2/masks/test/001.png").unlink()
    committed = tmp_path / "repo" / "results" / "smoke" / "data_summary.csv"
    committed.parent.mkdir(parents=True)
    committed.write_text("committed\n")
    rc, out = run_here(monkeypatch, capsys, "--profile", "smoke", "--only", "data,train,patches-C,patches-B",
                       "--data-root", str(root), "--repo", str(tmp_path / "repo"))
    assert rc == 1 and "Traceback" not in out and "error:" in out, out
    said = {"empty": "holds no image in the DOLOS layout", "one-split": "serves none of the chosen experiments",
            "no-images": "serves none of the chosen experiments",
            "no-masks": "001.png: image has no mask"}[case]
    assert said in out and str(root) in out, out
    assert committed.read_text() == "committed\n"
    assert not (tmp_path / "repo" / "runs" / "smoke" / "notebooks").exists()     # no notebook ran


def test_the_docs_quote_the_numbers_the_tools_print(capsys):
    """The counts and times the README and docs quote are what --list prints and what the
    committed study benchmark measured: a change of either fails here until the docs follow."""
    from dolos_core.runner.pipeline import main

    assert main(["--list", "--profile", "paper"]) == 0
    out = capsys.readouterr().out
    n, images = re.search(r"the default stages train (\d+) experiments on ([\d.]+) M images", out).groups()
    total = pd.read_csv(REPO / "results/mini/study_time-one-seed.csv").set_index("stage")["seconds"]
    minutes = f"{total['total (wall clock)'] / 60:.1f}"
    for doc in ("README.md", "docs/running.md", "docs/scaling.md", "docs/mini.md", "docs/real-data.md"):
        text = (REPO / doc).read_text()
        for found in re.findall(r"(\d+) experiments(?: on|,) ([\d.]+) M", text.replace("\n", " ")):
            assert found == (n, images), (doc, found, (n, images))
        for found in re.findall(r"([\d.]+) M training images", text):
            assert found == images, (doc, found, images)
    readme = (REPO / "README.md").read_text()
    quoted = re.findall(r"<!-- gen:study-time-one-seed -->([\d.]+)<!-- /gen -->", readme)
    assert quoted and all(q == minutes for q in quoted), (quoted, minutes)
    # the CPU pin's cost, as results/mini/cpu_numerics.* has it
    cost = pd.read_csv(REPO / "results/mini/cpu_numerics.csv").set_index("method")["pin_cost"] * 100
    total = re.search(r"pinned against native: \+?(-?[\d.]+)%", (REPO / "results/mini/cpu_numerics.md").read_text())[1]
    patches = f"{cost[['patches', 'patches-mil']].min():.1f}-{cost[['patches', 'patches-mil']].max():.1f}%"
    others = f"{cost[['gradcam', 'attention']].min():.1f}-{cost[['gradcam', 'attention']].max():.1f}%"
    running = " ".join((REPO / "docs/running.md").read_text().split())
    assert f"took {total}% longer pinned; native was {patches} faster per step for Patches and Patches-MIL and " \
           f"{others} for Grad-CAM and Attention" in running, (total, patches, others)


def test_corrupt_image_in_a_real_root_is_named_and_committed_results_stay(tmp_path):
    """A data root of your own under the smoke or mini profile, no ``--tag``: its tables go to
    ``results/<profile>-root-<folder>/`` (git-ignored), never over the profile's committed ones;
    its data stage fails on a corrupt image, named with its path, and leaves ``git status`` clean."""
    root = make_layout(tmp_path / "my data", size=64, n=2)
    bad = root / "celebahq" / "fake" / "repaint-p2" / "images" / "valid" / "001.png"
    bad.write_bytes(b"broken")
    repo = tmp_path / "repo"
    committed = repo / "results" / "smoke" / "data_summary.csv"
    committed.parent.mkdir(parents=True)
    committed.write_text("committed\n")
    (repo / ".gitignore").write_text((REPO / ".gitignore").read_text().replace("results/smoke/\n", ""))
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(git[:3] + ["init", "-q"], check=True)
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-qm", "committed results"], check=True)
    r = run("--profile", "smoke", "--only", "data", "--data-root", str(root), "--repo", str(repo))
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert f"{bad}: unreadable image" in out and "Traceback" not in out
    assert "results/smoke-root-my-data/" in out and committed.read_text() == "committed\n"
    assert (repo / "runs" / "smoke" / "notebooks" / "01_data.ipynb").exists()        # the data stage ran
    status = subprocess.run(git + ["status", "--porcelain"], capture_output=True, text=True).stdout
    assert status == "", status


def test_partial_real_root_runs_what_it_can(tmp_path):
    """Only CelebA-HQ real + Repaint-P2 on disk, and the 9k split's training images broken;
    two trainings at once (``--jobs 2``). patches-A is skipped (its data is missing),
    patches-B fails on the broken images and is reported with the file, its log and its
    executed notebook, patches-C finishes and is kept; the run exits 1 listing the failure."""
    root = make_layout(tmp_path / "dolos", size=64, n=3,
                       datasets=("celebahq/real", "celebahq/repaint-p2", "celebahq/repaint-p2-9k"))
    for f in (root / "celebahq" / "fake" / "repaint-p2-9k" / "images" / "train").glob("*.png"):
        f.write_bytes(b"broken")                 # only patches-B trains on these
    r = run("--profile", "smoke", "--only", "train,patches-B,patches-C,patches-A", "--jobs", "2",
            "--data-root", str(root), "--repo", str(tmp_path))
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "skip patches-A: data missing" in out and "celebahq/fake/p2/train" in out
    assert "patches-B: FAILED" in out and "unreadable image" in out and "Traceback" not in out
    log = tmp_path / "runs" / "smoke" / "logs" / "02_train-patches-B.log"
    assert f"log: {log}" in out and "unreadable image" in log.read_text()
    assert "patches-C: finished in" in out and "1 training(s) failed" in out
    assert list((tmp_path / "runs" / "smoke" / "predictions" / "patches-C").glob("*/celebahq_repaint-p2.npz"))
    rec = json.loads((tmp_path / "runs" / "smoke" / "jobs" / "02_train-patches-C.json").read_text())
    assert rec["status"] == "done" and rec["executor"] == "pool" and rec["where"] == "CPU, 1 thread"


@pytest.fixture(scope="session")
def smoke_study(tmp_path_factory):
    root = tmp_path_factory.mktemp("smoke_study")
    t0 = time.time()
    # one training at a time: the suite's two workers already fill the two cores (--jobs 2 has its own tests)
    r = run("--profile", "smoke", "--repo", str(root), "--jobs", "1", timeout=1500)
    first = time.time() - t0
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return root, r.stdout, first


@pytest.mark.xdist_group("smoke-study")
def test_smoke_study_writes_every_table_figure_and_report(smoke_study):
    root, out, _ = smoke_study
    res, figs = root / "results" / "smoke", root / "figures" / "smoke"
    t2 = pd.read_csv(res / "table2.csv")
    baselines = ["baseline-everything-fake", "baseline-everything-real", "baseline-mask-prior", "baseline-pixel-lr"]
    assert len(t2) == 9 + 2 + 4 and list(t2.experiment[-4:]) == baselines     # the paper's 9, Patches-MIL A and B
    for col in ["experiment", "method", "setup", "ap_mean", "ap_2std", "iou", "iou_sm", "acc", "acc_sm"]:
        assert col in t2
    assert t2["iou"].notna().all() and t2.loc[t2.setup != "C", "ap_mean"].notna().all()
    runs = t2.set_index("experiment")["run"]
    assert runs.drop(baselines).str.fullmatch("[0-9a-f]{10}").all()
    learnt = t2.set_index("experiment").drop(baselines)      # threshold chosen on the valid split
    assert learnt["iou_val_thr"].notna().all() and learnt["val_threshold"].between(0.001, 0.999).all()
    assert len(pd.read_csv(res / "table3.csv")) == 3
    cg = pd.read_csv(res / "cross_generator.csv")
    assert len(cg) == 32 and {"train", "test", "iou"} <= set(cg.columns) and cg["iou"].notna().all()
    for stem in ("table2", "table3", "cross_generator"):
        assert (res / f"{stem}.md").exists() and (res / f"{stem}.tex").exists()
    for stem in ("data_samples", "table2_iou", "table3_iou", "cross_generator", "qualitative_raw", "qualitative_binary",
                 "training_curves"):
        assert (figs / f"{stem}.png").exists() and (figs / f"{stem}.pdf").exists(), stem
    report = (res / "REPORT.md").read_text()
    assert "Table 2" in report and "torch" in report and "git commit" in report
    assert "== summary" in out and "headline" in out
    nbs = {p.name for p in (root / "runs" / "smoke" / "notebooks").glob("*.ipynb")}
    for nb in ("01_data", "03_main_table", "04_cross_dataset", "05_cross_generator", "06_qualitative"):
        assert f"{nb}.ipynb" in nbs
    assert "02_train-patches-C.ipynb" in nbs
    claims = pd.read_csv(res / "claims.csv").set_index("id")     # ours: Patches-MIL against weak Patches
    assert claims.loc["T2-patches-mil-B", "source"] == "ours"
    # weak against full supervision on the generators they do not train on: every cell present,
    # the held-out mean the mean of the three, and its claim
    tr = pd.read_csv(res / "transfer.csv")
    assert set(tr.experiment) == {"patches-B", "patches-C", "patches-mil-B"}
    assert len(tr) == 3 * 5 and tr["iou"].between(0, 100).all() and (tr["seeds"] == 1).all()
    mil = tr[tr.experiment == "patches-mil-B"].set_index("test_set")["iou"]
    assert mil["held-out mean"] == pytest.approx(mil[["celebahq/ldm", "celebahq/lama", "celebahq/pluralistic"]].mean())
    assert (figs / "transfer.png").exists()
    assert claims.loc["X-patches-mil-B-other-generators", "source"] == "ours"


@pytest.mark.xdist_group("smoke-study")
def test_published_notebooks_are_readable_offline_and_stable(smoke_study):
    """The publish stage: every executed notebook, with its outputs, without the machine's
    paths, in reading order in the HTML index; publishing again changes no byte."""
    from dolos_core.config import get_paths
    from dolos_core.runner.publish import publish, published_outputs, reading_order

    root, _, _ = smoke_study
    res = root / "results" / "smoke"
    executed = sorted(p.stem for p in (root / "runs" / "smoke" / "notebooks").glob("*.ipynb"))
    published = sorted(p.stem for p in (res / "notebooks").glob("*.ipynb"))
    assert published == executed and len(published) >= 30
    for stem in published:
        text = (res / "notebooks" / f"{stem}.ipynb").read_text()
        assert published_outputs(res / "notebooks" / f"{stem}.ipynb") > 0, stem
        assert str(root) not in text and "Executed copy, for reading" in text, stem
        assert str(root) not in (res / "html" / f"{stem}.html").read_text(), stem
    index = (res / "html" / "index.html").read_text()
    links = re.findall(r'<li><a href="([^"]+)\.html"', index)
    assert links == reading_order(published) and links[0] == "01_data"
    assert "The paper's claims against this run" in index
    # the HTML folder stands alone: every local link of the index resolves inside it
    local = [h for h in re.findall(r'(?:href|src)="([^"#:]+)"', index)]
    assert any(h.startswith("figures/") for h in local) and any(h.startswith("tables/") for h in local)
    assert all((res / "html" / h).is_file() for h in local), [h for h in local if not (res / "html" / h).is_file()]

    def files():
        return {p: p.read_bytes() for d in ("notebooks", "html") for p in (res / d).rglob("*") if p.is_file()}

    before = files()
    publish(get_paths("smoke", root=root), "smoke", "test")
    after = files()
    changed = [p.name for p in before if before[p] != after.get(p)]
    assert changed == ["index.html"] and set(after) == set(before)    # only the commit line of the index
    # a copy with no executed notebook: kept when its (opt-in) stage did not run, removed when it did
    from dolos_core.runner.publish import stage_of

    # the stage that made each copy, as the pipeline recorded it in the copy
    assert stage_of(res / "notebooks" / "03_main_table.ipynb") == "evaluate"
    assert stage_of(res / "notebooks" / "02_train-patches-C.ipynb") == "train"
    assert stage_of(res / "notebooks" / "02_train-patches-C-l1.ipynb") == "extensions"
    orphan = res / "notebooks" / "10_budget_scaling.ipynb"
    orphan.write_text((res / "notebooks" / "03_main_table.ipynb").read_text())
    publish(get_paths("smoke", root=root), "smoke", "test", stages=["data", "train", "evaluate", "report", "publish"])
    assert orphan.exists() and "10_budget_scaling.html" in (res / "html" / "index.html").read_text()
    publish(get_paths("smoke", root=root), "smoke", "test", stages=["scaling", "publish"])
    assert not orphan.exists()


@pytest.mark.xdist_group("smoke-study")
def test_table2_iou_equals_an_independent_implementation(smoke_study):
    root, _, _ = smoke_study
    t2 = pd.read_csv(root / "results" / "smoke" / "table2.csv").set_index("experiment")
    pred_dir = root / "runs" / "smoke" / "predictions"
    masks_dir = root / "data" / "dolos-mini-smoke" / "celebahq" / "fake" / "repaint-p2" / "masks" / "test"
    from PIL import Image
    for exp in [e for e in t2.index if not e.startswith("baseline-")]:
        with np.load(only_run(pred_dir / exp) / "celebahq_repaint-p2.npz") as z:
            maps, names = z["maps"].astype(np.float32), z["names"]
        masks = np.stack([(np.array(Image.open(masks_dir / n))[..., ] != 255).astype(np.uint8) for n in names])
        ref = reference_iou(maps, masks)
        assert t2.loc[exp, "iou"] == pytest.approx(ref["iou"], abs=1e-2), exp
        assert t2.loc[exp, "acc"] == pytest.approx(ref["acc"], abs=1e-2), exp


@pytest.mark.xdist_group("smoke-study")
def test_second_run_trains_only_what_is_missing_and_changes_nothing(smoke_study):
    """The study again, after two experiments' runs were deleted, with submitit's local
    executor: those two train as two submitit jobs (records, logs), every other one is
    skipped, the evaluation runs after them, the tables are byte for byte those of the
    one-at-a-time run, and the whole second run takes under half the first one's time."""
    root, _, first = smoke_study
    res, runs = root / "results" / "smoke", root / "runs" / "smoke"
    stems = ("table2", "table3", "cross_generator", "cross_generator_domains")
    before = {stem: (res / f"{stem}.csv").read_text() for stem in stems}
    redo = ["gradcam-A", "patches-C"]
    for e in redo:
        shutil.rmtree(runs / "checkpoints" / e)
        shutil.rmtree(runs / "predictions" / e)
    t0 = time.time()
    r = run("--profile", "smoke", "--only", "data,train,evaluate", "--executor", "local", "--repo", str(root))
    second = time.time() - t0
    out = r.stdout
    assert r.returncode == 0, out[-3000:] + r.stderr[-2000:]
    assert "submitit's local executor" in out and "patches-B: done, skipped" in out
    assert sorted(re.findall(r"\] (\S+): finished in", out)) == redo
    last_training = max(out.index(f"{e}: finished in") for e in redo)
    assert out.index("03_main_table finished") > last_training          # the evaluation waited
    assert len(list((runs / "submitit").glob("*_log.out"))) == 2
    for e in redo:
        rec = json.loads((runs / "jobs" / f"02_train-{e}.json").read_text())
        assert rec["executor"] == "local" and rec["status"] == "done" and rec["seconds"] > 0
    assert second < 0.5 * first, (first, second)
    for stem in stems:
        assert (res / f"{stem}.csv").read_text() == before[stem], stem


@pytest.mark.xdist_group("smoke-study")
def test_scaling_stage_is_opt_in_and_tables_steps_per_budget(smoke_study):
    """The default run leaves the budget-scaling stage out; ``--only scaling`` reuses Table 2's
    patches-B and patches-C as the 1x points (two more runs are trained here, to keep the test
    short) and tables every run's budget in steps, untrained runs as missing."""
    root, out, _ = smoke_study
    assert "stage scaling" not in out
    r = run("--profile", "smoke", "--only", "scaling,patches-B,patches-C,patches-B-x4,patches-B-authors-init",
            "--repo", str(root))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "patches-B: done, skipped" in r.stdout and "patches-C: done, skipped" in r.stdout
    sc = pd.read_csv(root / "results" / "smoke" / "scaling.csv").set_index("experiment")
    assert len(sc) == 8
    trained = ["patches-B", "patches-C", "patches-B-x4", "patches-B-authors-init"]
    assert sc.loc[trained, "iou"].notna().all() and (sc.drop(trained)["status"] == "missing").all()
    for setup in ("B", "C"):
        steps = [sc.loc[f"patches-{setup}{s}", "steps"] for s in ("-x0.25", "", "-x4")]
        assert steps[0] < steps[1] < steps[2], (setup, steps)
    assert sc.loc["patches-B-authors-init", "init"] == "authors" and sc.loc["patches-B", "init"] == "authors"
    assert (root / "figures" / "smoke" / "budget_scaling.png").exists()


@pytest.mark.xdist_group("smoke-study")
def test_rerun_notebooks_executes_a_finished_training_without_training(smoke_study):
    """``--rerun-notebooks``: the finished patches-C's notebook runs again (at this commit), its
    checkpoint and predictions are left byte for byte as they were."""
    root, _, _ = smoke_study
    run_dir = only_run(root / "runs" / "smoke" / "checkpoints" / "patches-C")
    pred = only_run(root / "runs" / "smoke" / "predictions" / "patches-C") / "celebahq_repaint-p2.npz"
    before = {f: f.read_bytes() for f in (run_dir / "best.pt", run_dir / "train.json", pred)}
    nb = root / "runs" / "smoke" / "notebooks" / "02_train-patches-C.ipynb"
    mtime = nb.stat().st_mtime
    r = run("--profile", "smoke", "--only", "train,patches-C", "--rerun-notebooks", "--repo", str(root))
    assert r.returncode == 0, r.stdout[-2000:]
    assert "patches-C: done, skipped" not in r.stdout and "patches-C: finished in" in r.stdout
    assert nb.stat().st_mtime > mtime and "already trained" in nb.read_text()
    assert all(f.read_bytes() == b for f, b in before.items())


@pytest.mark.xdist_group("smoke-study")
def test_geometry_stage_is_opt_in_and_tables_every_side(smoke_study):
    """``--only geometry`` on the smoke profile (sides 48 and 64, one seed): the 64 px points are
    Table 2's patches-B and patches-C (reused), the 48 px ones train on DOLOS-mini built at 48 px
    with only the sets B and C read; the table has B, C, B/C and the dilated mask per side, the
    calibration table every kind of cell, and both figures are written."""
    root, out, _ = smoke_study
    assert "stage geometry" not in out
    r = run("--profile", "smoke", "--only", "geometry", "--repo", str(root), "--jobs", "1")   # the serial log lines
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "[geometry, 64 px, seed 0 #1 of 3] patches-B: done, skipped" in r.stdout
    assert "[geometry, 48 px, seed 0 #1 of 3] patches-B: training" in r.stdout
    assert "[geometry, 48 px, seed 0 #3 of 3] patches-mil-B: training" in r.stdout
    built = root / "data" / "dolos-mini-smoke-48px"
    assert json.loads((built / "DOLOS-MINI.json").read_text())["only"] == ["real", "repaint-p2"]
    assert not (built / "celebahq" / "fake" / "lama").exists()
    res = root / "results" / "smoke"
    geo = pd.read_csv(res / "geometry.csv")
    assert sorted(geo["size"].unique()) == [48, 64] and (geo["rf_px"] == 43).all()
    for size in (48, 64):
        g = geo[geo["size"] == size]
        assert {"B", "C", "B/C", "dilated mask", "patches-mil-B", "patches-mil-B/C"} <= set(g["row"])
        assert g[g.row.isin(["B", "C"])]["value"].notna().all() and (g[g.row == "B"]["seeds"] == 1).all()
        assert (g[g.row == "dilated mask"]["value"] > 0).all()
    cal = pd.read_csv(res / "calibration.csv")
    assert len(cal) == 2 * 4 and cal["cells"].sum() > 0 and cal["settle"].between(0, 1).all()
    for stem in ("geometry", "calibration"):
        assert (root / "figures" / "smoke" / f"{stem}.png").exists(), stem
    training = pd.read_csv(res / "training.csv")          # the 48 px runs joined the convergence table
    assert {"patches-B (48 px)", "patches-C (48 px)", "patches-mil-B (48 px)"} <= set(training["experiment"])
    assert "patches-B" in set(training["experiment"]) and not training["experiment"].str.contains("64 px").any()


@pytest.mark.xdist_group("smoke-study")
def test_footing_stage_trains_at_the_paper_footing_and_prints_b_over_c(smoke_study):
    """``--only footing`` at smoke size (72 px input from the study's 64 px images): Patches B, C
    and Patches-MIL B train once each with a patience, their B/C is printed and tabled, and the
    stage is opt-in (the default run did not train it)."""
    root, out, _ = smoke_study
    assert "stage footing" not in out
    r = run("--profile", "smoke", "--only", "footing", "--repo", str(root), "--jobs", "1")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    for k, name in enumerate(("patches-B", "patches-C", "patches-mil-B"), 1):
        assert f"[footing, 72 px from 64 px #{k} of 3] {name}: training" in r.stdout, r.stdout[-2000:]
    assert "footing (72 px input, 64 px images" in r.stdout
    assert re.search(r"B/C at its own threshold \(B: without masks\): (\d\.\d\d \[|n/a)", r.stdout)
    assert re.search(r"B: 2 of 2 epochs, every planned epoch run, (converged|undertrained)", r.stdout)
    t = pd.read_csv(root / "results" / "smoke" / "footing.csv")
    assert {"B", "C", "B/C", "patches-mil-B", "patches-mil-B/C", "dilated mask"} <= set(t["row"])
    assert (t["size"] == 72).all() and (t["image_size"] == 64).all()
    runs = sorted((root / "runs" / "smoke" / "checkpoints" / "patches-C").glob("*/train.json"))
    cfgs = [json.loads(f.read_text()) for f in runs]
    footing = [c for c in cfgs if c.get("input_size") == 72]
    assert len(footing) == 1 and footing[0]["run_config"]["patience"] == 1 and footing[0]["done"]
    assert all("patience" not in c["run_config"] for c in cfgs if c.get("input_size") != 72)   # Table 2's ids unchanged


def test_killed_run_resumes_to_the_same_predictions(tmp_path):
    """Kill a smoke run with two trainings at a time (``--jobs 2``) during training (SIGKILL
    to the whole process group: pipeline, workers, kernels; no clean-up), start it again:
    only the unfinished experiments train, and every prediction (maps, scores, names) equals
    an uninterrupted one-at-a-time run's bit for bit, so every table computed from them is the
    same (which also shows that the same seed and profile give the same results, however many
    run at once). A subset of the experiments keeps the test short; it runs on its own roots
    (not the smoke study's), so it can run beside the smoke study on another worker."""
    subset = ["gradcam-A", "patches-B", "patches-C"]
    only = ",".join(["data", "train"] + subset)
    whole = tmp_path / "whole"
    r = subprocess.run([RUN, "--profile", "smoke", "--only", only, "--repo", str(whole), "--jobs", "1"],
                       capture_output=True, text=True, timeout=900, env={**ENV, "DOLOS_PROGRESS_EVERY": "0.3"})
    assert r.returncode == 0, r.stdout[-2000:]
    # progress you can follow: the log has the trainings in flight; each wrote its progress file and
    # TensorBoard scalars (tensorboard is in the dev extra)
    assert re.search(r"progress: \d+/3 finished · (gradcam-A|patches-B|patches-C) \(seed 0, 64 px\) · epoch", r.stdout), \
        r.stdout[-2000:]
    states = [json.loads(f.read_text()) for f in (whole / "runs/smoke/progress").glob("*.json")]
    assert len(states) == 3 and all(p["status"] == "done" and p["step"] == p["steps"] for p in states), states
    if importlib.util.find_spec("tensorboard") is not None:
        assert len(list((whole / "runs/smoke/tensorboard").glob("*/events.out.tfevents.*"))) == 3
    root = tmp_path / "killed"
    args = [RUN, "--profile", "smoke", "--only", only, "--repo", str(root), "--jobs", "2"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=ENV, start_new_session=True)
    pred = root / "runs" / "smoke" / "predictions"
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if pred.exists() and len(list(pred.glob("*/*/*.npz"))) >= 2:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    r = subprocess.run(args, capture_output=True, text=True, env=ENV, timeout=900)
    assert r.returncode == 0, r.stdout[-2000:]
    skipped = re.findall(r"\] (\S+): done, skipped", r.stdout)
    retrained = re.findall(r"\] (\S+): finished in", r.stdout)
    assert skipped and retrained and sorted(skipped + retrained) == sorted(subset), r.stdout
    assert sorted(p.name for p in pred.iterdir()) == sorted(subset)
    for exp in subset:     # the same run id: pool workers and the one-at-a-time kernel both pinned
        assert pinned_run(whole, exp) == pinned_run(root, exp), exp
        files = sorted(only_run(whole / "runs" / "smoke" / "predictions" / exp).glob("*.npz"))
        assert files, exp
        for f in files:
            with np.load(f) as za, np.load(only_run(pred / exp) / f.name) as zb:
                for k in ("maps", "scores", "names"):
                    np.testing.assert_array_equal(za[k], zb[k], err_msg=f"{exp} {f.name} {k}")


@pytest.mark.parametrize("when", ["data", "train"])
def test_sigterm_stops_the_run_and_its_training_workers(tmp_path, when):
    """``kill PID`` on the runner alone (what a scheduler or ``timeout`` sends), while the data
    notebook runs in the runner's own kernel or during two trainings at a time: it stops as
    Ctrl-C does, its pool workers with it (nothing of its process group is left), says what was
    kept and the command that resumes, and prints no traceback (the stopped kernel's asyncio
    tasks included)."""
    args = [RUN, "--profile", "smoke", "--only", "data,train,patches-B,patches-C", "--repo", str(tmp_path),
            "--jobs", "2"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV,
                            start_new_session=True)
    mark = tmp_path / "runs" / "smoke" / ("notebooks" if when == "data" else "logs")
    pattern = "*.ipynb" if when == "data" else "02_train-*.log"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not list(mark.glob(pattern)):
        time.sleep(0.1)
    if when == "data":
        time.sleep(0.6)             # the data notebook is executing its cells
    assert proc.poll() is None, "the run ended before it could be stopped"
    proc.terminate()                # run_all.sh execs the runner: this is the runner's pid
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "interrupted: finished work is kept" in out, out[-2000:]
    assert "to resume: ./run_all.sh --profile smoke --only data,train,patches-B,patches-C" in out, out[-2000:]
    assert "Traceback" not in out and "Task exception" not in out, out[-3000:]
    assert "stages finished: data, train" not in out, out[-2000:]      # its trainings were not done
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)


def _children(pid: int, marker: str) -> list[int]:
    """Processes whose parent is ``pid`` and whose command line contains ``marker`` (Linux)."""
    found = []
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid \
                    and marker in (d / "cmdline").read_bytes().replace(b"\0", b" ").decode():
                found.append(int(d.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_a_pool_worker_that_dies_fails_only_its_training(tmp_path):
    """A slot's worker process killed during a training (out of memory, say): that training is
    reported failed with the worker's exit status, the others finish, the run exits 1."""
    args = [RUN, "--profile", "smoke", "--only", "data,train,gradcam-A,patches-B,patches-C", "--repo", str(tmp_path),
            "--jobs", "2"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV,
                            start_new_session=True)
    logs = tmp_path / "runs" / "smoke" / "logs"
    deadline, workers = time.time() + 300, []
    while time.time() < deadline and proc.poll() is None and not (workers and list(logs.glob("02_train-*.log"))):
        workers = _children(proc.pid, "dolos_core.runner.jobs --serve")
        time.sleep(0.1)
    assert proc.poll() is None and workers, "no worker to kill"
    os.kill(workers[0], signal.SIGKILL)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 1, out[-3000:]
    assert len(re.findall(r": FAILED after .*exited with status -9", out)) == 1, out[-3000:]
    assert len(re.findall(r"\] \S+: finished in", out)) == 2 and "1 training(s) failed" in out


def test_root_that_serves_no_experiment_is_one_message(tmp_path):
    root = make_layout(tmp_path / "dolos", size=64, n=2, datasets=("celebahq/real",))
    r = run("--profile", "smoke", "--only", "train", "--data-root", str(root), "--repo", str(tmp_path))
    out = r.stdout + r.stderr
    assert r.returncode == 1 and "serves none of the chosen experiments" in out
    assert str(root) in out and "Traceback" not in out
    assert not (tmp_path / "runs" / "smoke" / "checkpoints").exists()  # nothing started


# Weak Grad-CAM (299 px maps), full Patches (37x37), full Attention (19x19, bilinear masks) and
# weak Patches through Table 3's B (the whole FFHQ split): the paper's code paths without
# training all 26 (the README's full dry run does; tests/test_models.py covers every model's
# shapes at 299 px).
DRY_SUBSET = ["gradcam-A", "patches-C", "attention-C", "patches-B-ffhq"]


@pytest.fixture(scope="session")
def paper_dry_run(tmp_path_factory):
    from .conftest import make_real_layout

    tmp = tmp_path_factory.mktemp("paper_dry")
    root = make_real_layout(tmp / "dolos", size=256, n=2)
    r = run("--profile", "paper", "--data-root", str(root), "--device", "cpu", "--init", "random",
            "--set", "max_iters=2", "--set", "max_test_images=12", "--repo", str(tmp),
            # smaller batches than the paper's (64 / 32 weak, 16 full) keep the test short; shapes unchanged
            *[a for m in ("patches-weak", "gradcam-weak", "patches-full", "attention-full")
              for a in ("--set", f"schedules.{m}.batch_size=4")],
            "--only", ",".join(["data", "train", "evaluate"] + DRY_SUBSET), "--jobs", "1", timeout=1500)
    return tmp, root, r


@pytest.mark.xdist_group("paper-dry-run")
def test_paper_dry_run_has_the_papers_shapes(paper_dry_run):
    """A paper-shaped dry run on data in the real layout at 256 px: 299 px inputs, maps of
    37x37 (Patches), 19x19 (Grad-CAM full, Attention) and 299x299 (weak Grad-CAM), every
    evaluation notebook, with --init random and two iterations per training."""
    import json

    tmp, root, r = paper_dry_run
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "capped at 2 iterations each" in r.stdout
    pred = tmp / "runs" / "paper" / "predictions"
    sides = {"gradcam-A": 299, "patches-C": 37, "attention-C": 19, "patches-B-ffhq": 37}
    for exp, side in sides.items():
        with np.load(only_run(pred / exp) / "celebahq_repaint-p2.npz") as z:
            assert z["maps"].shape == (2, side, side), exp
        meta = json.loads((only_run(tmp / "runs" / "paper" / "checkpoints" / exp) / "train.json").read_text())
        assert meta["input_size"] == 299 and meta["epochs"] * meta["iters_per_epoch"] == 2
        assert meta["init"].startswith("random") and meta["done"]
    cfg = json.loads((only_run(tmp / "runs" / "paper" / "checkpoints" / "patches-B-ffhq") / "train.json").read_text())
    assert cfg["n_train"] == 4 and cfg["transform"]["resize"] == "lanczos" and cfg["transform"]["flip"]
    assert cfg["schedule"]["batch_size"] == 4 and cfg["schedule"]["lr"] == 1e-3
    att = json.loads((only_run(tmp / "runs" / "paper" / "checkpoints" / "attention-C") / "train.json").read_text())
    assert att["transform"] == {"input_size": 299, "resize": "bilinear", "flip": False, "mask_size": 19,
                                "mask_resize": "bilinear"}
    t2 = pd.read_csv(tmp / "results" / "paper" / "table2.csv").set_index("experiment")
    assert t2.loc[["gradcam-A", "patches-C", "attention-C"], "status"].eq("ok").all()


def test_paper_profile_without_weights_stops_with_one_line(tmp_path):
    from .conftest import make_real_layout

    root = make_real_layout(tmp_path / "dolos", size=32, n=1)
    r = run("--profile", "paper", "--data-root", str(root), "--device", "cpu", "--only", "train,attention-B",
            "--repo", str(tmp_path), "--weights", str(tmp_path / "w"))
    out = r.stdout + r.stderr
    assert r.returncode == 1 and "Traceback" not in out
    line = [x for x in out.splitlines() if x.startswith("error:")]
    assert len(line) == 1 and str(tmp_path / "w" / "xcp_reg.tar") in line[0] and "--init random" in line[0]
    assert not (tmp_path / "runs" / "paper" / "checkpoints").exists()


def test_set_with_an_unknown_field_is_one_message(tmp_path):
    r = run("--profile", "smoke", "--set", "max_iter=2", "--repo", str(tmp_path))
    out = r.stdout + r.stderr
    assert r.returncode == 1 and "did you mean max_iters" in out and "Traceback" not in out


def test_notebook_parameters_are_checked_before_running(tmp_path):
    """A misspelt parameter stops before any kernel starts, naming it and the right one."""
    from dolos_core.config import get_paths
    from dolos_core.runner.notebooks import UserError, run_notebook

    with pytest.raises(UserError, match="'profle' \\(did you mean 'profile'\\?\\)"):
        run_notebook("03_main_table", "x", {"profle": "smoke"}, get_paths("smoke", root=tmp_path))
    assert not (tmp_path / "runs" / "smoke" / "notebooks" / "x.ipynb").exists()


def test_every_notebook_takes_the_common_parameters():
    """The pipeline passes profile, data_root, device and overrides to every notebook."""
    import papermill as pm

    from dolos_core.runner.notebooks import NOTEBOOK_DIR

    notebooks = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
    assert len(notebooks) == 12
    for nb in notebooks:
        declared = pm.inspect_notebook(str(nb))
        assert {"profile", "data_root", "device", "overrides", "tag"} <= set(declared), nb.name
        # papermill skips a line with a second "=" (e.g. in its comment): none may be lost
        cell = next(c for c in json.loads(nb.read_text())["cells"]
                    if "parameters" in c["metadata"].get("tags", []))
        assigned = re.findall(r"^(\w+)\s*=", "".join(cell["source"]), flags=re.M)
        assert assigned == list(declared), (nb.name, assigned, list(declared))


def test_seeds_train_table2_again_as_their_own_runs(tmp_path):
    """``--seeds 2``: each experiment a claim reads (here one of Table 2 and one of Table 3) also
    trains with the next seed, into its own run; ``evaluate.seed_table`` then reports Table 2's
    seeds and their spread."""
    from dolos_core.config import get_paths, get_profile
    from dolos_core.evaluate import SEED_COLUMNS, seed_table, table2, table3

    r = run("--profile", "smoke", "--only", "data,train,patches-C,patches-C-ffhq", "--seeds", "2", "--jobs", "1",
            "--repo", str(tmp_path))
    assert r.returncode == 0, r.stdout[-2000:]
    assert "[train, seed 1 #1 of 2] patches-C: training" in r.stdout
    for name in ("patches-C", "patches-C-ffhq"):
        assert r.stdout.count(f"] {name}: finished in") == 2        # each training reported once
        runs = [p for p in (tmp_path / "runs" / "smoke" / "checkpoints" / name).iterdir() if p.is_dir()]
        assert len(runs) == 2, name
    per_seed, spread = seed_table(get_paths("smoke", root=tmp_path), get_profile("smoke"), 2)
    assert sorted(per_seed[per_seed.experiment == "patches-C"].seed) == [0, 1] and per_seed.run.nunique() == 4
    assert set(per_seed.test_set) == {"celebahq/repaint-p2"}       # Table 2 and 3 read CelebA-HQ Repaint-P2
    row = spread.set_index("experiment").loc["patches-C"]
    assert row.seeds == 2 and row.iou_min <= row.iou_mean <= row.iou_max
    assert row.iou_ci_low <= row.iou_mean <= row.iou_ci_high      # seeds and images resampled
    assert row.iou_t_low <= row.iou_min and row.iou_t_high >= row.iou_max     # t over 2 seeds: wider
    assert row.iou_values == ", ".join(f"{v:.1f}" for v in per_seed[per_seed.experiment == "patches-C"].iou)
    # Tables 2 and 3 carry each experiment's mean over seeds beside its seed-0 columns
    paths, prof = get_paths("smoke", root=tmp_path), get_profile("smoke")
    t2 = table2(paths, prof, seeds=2).set_index("experiment")
    assert t2.loc["patches-C", "seeds"] == 2
    assert t2.loc["patches-C", "iou_seeds"] == pytest.approx(row.iou_mean)
    assert t2.loc["patches-C", "iou_seeds_ci_low"] == pytest.approx(row.iou_ci_low)
    assert t2.loc["patches-C", "iou_seed_std"] == pytest.approx(row.iou_std)
    assert t2.loc["patches-C", "iou_seed_values"] == row.iou_values
    assert np.isnan(t2.loc["gradcam-C", "iou_seeds"])               # not trained: missing, not zero
    t3 = table3(paths, prof, seeds=2).set_index("experiment")
    assert t3.loc["patches-C-ffhq", "seeds"] == 2
    assert not set(SEED_COLUMNS) & set(table2(paths, prof))          # one seed: nothing added
    assert run("--seeds", "0").returncode == 2


def test_slurm_options_reach_sbatch(tmp_path, monkeypatch):
    """``--executor slurm``: every --slurm-* flag ends up in the sbatch script submitit writes
    (read here with fake ``sbatch``/``srun`` on PATH: no cluster needed); with no Slurm at all
    the run stops with one line."""
    from dolos_core.runner.cli import parse_args
    from dolos_core.config import get_paths
    from dolos_core.runner.jobs import make_executor
    from dolos_core.runner.plan import slurm_options

    args = parse_args(["--executor", "slurm", "--jobs", "3", "--gpus-per-experiment", "2",
                       "--slurm-partition", "gpu", "--slurm-time", "1-12:00", "--slurm-cpus-per-job", "16",
                       "--slurm-opt", "account=lab", "--slurm-opt=--qos=high"])
    paths = get_paths("paper", tmp_path / "data", root=tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "nobin"))
    with pytest.raises(RuntimeError, match="no Slurm here"):
        make_executor("slurm", 3, 2, "cuda", paths, slurm_options(args))
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    for tool in ("sbatch", "srun"):
        (bin_ / tool).write_text("#!/bin/sh\nexit 0\n")
        (bin_ / tool).chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_))
    ex = make_executor("slurm", 3, 2, "cuda", paths, slurm_options(args))
    from submitit.slurm.slurm import _make_sbatch_string

    text = _make_sbatch_string(command="python -m x", folder=str(paths.runs / "submitit"), map_count=5,
                               **ex.ex._executor.parameters)
    for line in ("--partition=gpu", "--gpus-per-node=2", "--time=2160", "--cpus-per-task=16",
                 "--account=lab", "--qos=high", "--array=0-4%3", "--nodes=1", "--ntasks-per-node=1"):
        assert f"#SBATCH {line}" in text, (line, text)


def test_wallclock_estimate_packs_the_longest_trainings_first():
    """Hand-worked: 3, 2, 2, 1 hours on two slots -> 3+1 and 2+2 -> 4 h; one slot: the sum;
    two GPUs per experiment halve each training (ideal scaling)."""
    from dolos_core.runner.plan import estimate_wallclock

    hours = {"a": 3.0, "b": 2.0, "c": 2.0, "d": 1.0}
    assert estimate_wallclock(hours, 2) == 4.0
    assert estimate_wallclock(hours, 1) == 8.0
    assert estimate_wallclock(hours, 8) == 3.0
    assert estimate_wallclock(hours, 2, gpus_per_experiment=2) == 2.0


def test_hours_read_the_steady_rate_plus_what_a_training_pays_once(tmp_path):
    """Hand-worked: patches-C at the paper's schedule trains 50 x 500 x 32 = 800,000 images; at
    a steady 2,000 img/s that is 400 s, plus 80 s paid once: 480 s = 0.1333 h. The plan reads
    both from gpu_check.json's ``fp32_img_s`` and ``fp32_once_s``."""
    import json as _json

    from dolos_core.config import get_profile
    from dolos_core.experiments import get_experiment
    from dolos_core.runner.plan import estimate_hours, gpu_throughput, training_images

    paper, exp = get_profile("paper"), get_experiment("patches-C")
    n = training_images([exp], paper)["patches-C"]
    assert n == 50 * 500 * paper.schedule("patches", "full").batch_size
    rate, once = {"patches-full": 2000.0}, {"patches-full": 80.0}
    assert estimate_hours([exp], paper, rate, once)["patches-C"] == pytest.approx((n / 2000 + 80) / 3600)
    assert estimate_hours([exp], paper, rate)["patches-C"] == pytest.approx(n / 2000 / 3600)
    (tmp_path / "results" / "paper").mkdir(parents=True)
    (tmp_path / "results" / "paper" / "gpu_check.json").write_text(_json.dumps(
        {"train": {"patches-full": {"fp32_img_s": 2000.0, "fp32_once_s": 80.0}}}))
    assert gpu_throughput(tmp_path) == rate and gpu_throughput(tmp_path, key="once_s") == once


def test_job_slots_pin_gpus_and_share_the_cores(monkeypatch):
    """``--jobs N`` on CUDA: each training its own group of the visible GPUs (by their ids
    in CUDA_VISIBLE_DEVICES) and its share of the cores; asking for more GPUs than there are
    is one message naming both; on a CPU, the cores are shared."""
    import torch

    from dolos_core.runner.jobs import _slots

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3,5,7")
    monkeypatch.setenv("OMP_NUM_THREADS", "16")
    assert _slots(2, 2, "cuda") == [{"CUDA_VISIBLE_DEVICES": "2,3", "OMP_NUM_THREADS": "8"},
                                    {"CUDA_VISIBLE_DEVICES": "5,7", "OMP_NUM_THREADS": "8"}]
    assert [s["CUDA_VISIBLE_DEVICES"] for s in _slots(4, 1, "cuda")] == ["2", "3", "5", "7"]
    with pytest.raises(ValueError, match="needs 6 GPUs; this machine shows 4"):
        _slots(3, 2, "cuda")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert [s["CUDA_VISIBLE_DEVICES"] for s in _slots(2, 1, "cuda")] == ["0", "1"]
    assert _slots(3, 1, "cpu") == [{"OMP_NUM_THREADS": "5", "MKL_NUM_THREADS": "5"}] * 3
    # --trainings-per-gpu 2: two slots on each GPU, filled GPU by GPU
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3,5,7")
    assert [s["CUDA_VISIBLE_DEVICES"] for s in _slots(5, 1, "cuda", per_gpu=2)] == ["2", "2", "3", "3", "5"]
    with pytest.raises(ValueError, match="needs 5 GPUs"):
        _slots(9, 1, "cuda", per_gpu=2)
    with pytest.raises(ValueError, match="cannot be combined"):
        _slots(2, 2, "cuda", per_gpu=2)
    from dolos_core.runner.jobs import auto_jobs

    assert auto_jobs("pool", "cuda", 1, per_gpu=2) == 8 and auto_jobs("pool", "cuda", 2) == 2
    assert auto_jobs("slurm", "cuda") == 1 and auto_jobs("pool", "mps") == 1


def test_a_real_slurm_runs_the_trainings_as_one_array_and_resumes_a_cancelled_job(tmp_path):
    """``--executor slurm`` against a real single-node Slurm started here (tests/slurm_cluster.py;
    skipped with the reason where it cannot start): two smoke trainings go in as one job array
    and predict bit for bit what one-at-a-time trainings do (so every table is the same); a
    longer training cancelled with ``scancel`` mid-run is reported as failed, and the same
    command again resumes it from its last finished epoch."""
    from .slurm_cluster import Cluster, Unavailable

    cluster = Cluster(tmp_path / "slurm")
    try:
        cluster.start()
    except Unavailable as exc:
        cluster.stop()
        pytest.skip(f"no Slurm here: {exc}")
    env = {**ENV, **{k: v for k, v in cluster.env.items() if k == "SLURM_CONF"}}

    def go(root, *extra, **kw):
        return subprocess.run([RUN, "--profile", "smoke", "--repo", str(root), *extra], capture_output=True,
                              text=True, env=env, timeout=900, **kw)

    try:
        subset = ["patches-B", "patches-C"]
        only = ",".join(["data", "train"] + subset)
        serial, slurm = tmp_path / "serial", tmp_path / "on-slurm"
        r = go(serial, "--only", only, "--jobs", "1")
        assert r.returncode == 0, r.stdout[-2000:]
        flags = ["--executor", "slurm", "--jobs", "2", "--slurm-gpus-per-job", "0"]
        r = go(slurm, "--only", only, *flags)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
        assert "one Slurm job per training" in r.stdout
        ids = [json.loads((slurm / "runs/smoke/jobs" / f"02_train-{e}.json").read_text())["extra"]["slurm_array"]
               for e in subset]
        assert len({i.split("_")[0] for i in ids}) == 1 and all("_" in i for i in ids), ids   # one array
        for e in subset:   # the same run id: the Slurm job and the one-at-a-time kernel both pinned
            assert pinned_run(serial, e) == pinned_run(slurm, e), e
            files = sorted(only_run(serial / "runs/smoke/predictions" / e).glob("*.npz"))
            assert files, e
            for f in files:
                with np.load(f) as za, np.load(only_run(slurm / "runs/smoke/predictions" / e) / f.name) as zb:
                    for k in ("maps", "scores", "names"):
                        np.testing.assert_array_equal(za[k], zb[k], err_msg=f"{e} {f.name} {k}")
        # a longer training, cancelled with scancel once it has finished an epoch, then resumed
        longer = ["--only", "train,patches-C", "--tag", "long", "--set", "schedules.patches-full.epochs=80", *flags]
        proc = subprocess.Popen([RUN, "--profile", "smoke", "--repo", str(slurm), *longer], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
        ckpt = slurm / "runs/smoke/checkpoints/patches-C"
        old_run = only_run(ckpt).name
        deadline = time.time() + 300
        while time.time() < deadline and not [p for p in ckpt.glob("*/last.pt") if p.parent.name != old_run]:
            assert proc.poll() is None, proc.stdout.read()[-3000:]
            time.sleep(0.2)
        jobs = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, env=env).stdout.split()
        assert len(jobs) == 1, jobs
        subprocess.run(["scancel", jobs[0]], check=True, env=env)
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 1 and re.search(r"patches-C: FAILED", out), out[-3000:]
        r = go(slurm, *longer)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
        (new_run,) = [p.parent for p in ckpt.glob("*/train.json") if p.parent.name != old_run]
        meta = json.loads((new_run / "train.json").read_text())
        assert meta["done"] and meta["resumed_from"] > 0, (meta["resumed_from"], meta["done"])
        assert [h["epoch"] for h in meta["history"]] == list(range(80))
    finally:
        cluster.stop()


def test_a_change_of_training_code_trains_beside_the_old_run_and_a_plot_edit_does_not(tmp_path):
    """A run is its configuration and its code: in a copy of the checkout, a line appended to
    the loss module makes the next ``--only train,patches-C`` train a new run beside the old
    one (both kept); an edited plotting module finds that run done and skips it."""
    copy = tmp_path / "checkout"
    outputs = {".git", ".venv", "runs", "results", "figures", "data", "weights"}
    shutil.copytree(REPO, copy, ignore=lambda d, names: [
        n for n in names if n == "__pycache__" or n.endswith(".egg-info")
        or (Path(d) == REPO and n in outputs)])

    def train():
        r = subprocess.run([str(copy / "run_all.sh"), "--profile", "smoke", "--only", "data,train,patches-C", "--jobs", "1"],
                           capture_output=True, text=True, timeout=600, env=ENV)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
        runs = sorted(p.name for p in (copy / "runs" / "smoke" / "checkpoints" / "patches-C").iterdir()
                      if (p / "train.json").exists())
        return r.stdout, runs

    out, first = train()
    assert "patches-C: finished in" in out and len(first) == 1
    with open(copy / "dolos_core" / "losses.py", "a") as f:
        f.write("\n# a change to the losses\n")
    out, second = train()
    assert "patches-C: finished in" in out and len(second) == 2 and first[0] in second
    with open(copy / "dolos_core" / "plots.py", "a") as f:
        f.write("\n# a change to a figure\n")
    out, third = train()
    assert "patches-C: done, skipped" in out and third == second


@pytest.mark.xdist_group("smoke-study")
def test_a_tagged_tweak_in_one_notebook_reaches_the_next(smoke_study, monkeypatch):
    """Through papermill: 02 with ``tag="lr"`` and another learning rate trains a new run; 03
    with the same tag and no overrides reads it (its Table 2 row names the new run, the untagged
    Table 2 still the old one), and its study record says what the tag changed."""
    from dolos_core.config import get_paths
    from dolos_core.runner.notebooks import ensure_kernel, run_notebook

    root, _, _ = smoke_study
    monkeypatch.setenv("DOLOS_REPO", str(root))
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    ensure_kernel()
    paths = get_paths("smoke", root=root, tag="lr")
    lr = {"schedules": {"patches-full": {"lr": 3e-3}}}
    folder = root / "runs" / "smoke" / "checkpoints" / "patches-C"

    def runs():         # the other tests of the group may have trained patches-C runs of their own
        return {p.name for p in folder.iterdir() if (p / "train.json").exists()}

    before = runs()
    run_notebook("02_train", "lr-02", {"profile": "smoke", "experiment": "patches-C", "tag": "lr",
                                       "overrides": lr}, paths)
    new = runs() - before
    run_notebook("03_main_table", "lr-03", {"profile": "smoke", "tag": "lr"}, paths)
    tagged = pd.read_csv(root / "results" / "smoke-lr" / "table2.csv").set_index("experiment")["run"]
    default = pd.read_csv(root / "results" / "smoke" / "table2.csv").set_index("experiment")["run"]
    assert len(new) == 1 and tagged["patches-C"] == new.pop() != default["patches-C"]
    assert tagged["patches-B"] == default["patches-B"]          # untouched schedule, same run
    record = json.loads((root / "results" / "smoke-lr" / "study.json").read_text())
    assert record["overrides"] == lr


def test_trainings_per_gpu_auto_takes_the_fastest_measured_concurrency_that_fits_in_memory():
    """Hand-worked: the check measured 1, 2, 4 trainings at once at 1000, 1800, 2400 img/s: 4 is
    fastest (2.4x). With peaks of 20 GB (patches-weak) and 30 GB (gradcam-full) on a 141 GB
    GPU, 4 x 30 = 120 GB exceeds 80% of 141 (112.8), so a study that trains gradcam-full gets 2
    (1.8x; 3 was not measured); one that trains only patches-weak gets 4. Nothing measured: 1.
    The plan's wall-clock: 4 trainings of 2 h alone, 2 at a time at 1.8x aggregate, take
    2 x 2 h x 2 / 1.8 = 4.44 h on one GPU."""
    from dolos_core.runner.plan import auto_trainings_per_gpu, estimate_wallclock

    record = {"train": {"patches-weak": {"peak_gb": 20.0}, "gradcam-full": {"peak_gb": 30.0}},
              "concurrency": {"case": "patches-weak", "img_s": {"1": 1000.0, "2": 1800.0, "4": 2400.0}}}
    k, speedup, why = auto_trainings_per_gpu(record, {"patches-weak", "gradcam-full"}, 141.0)
    assert (k, speedup) == (2, 1.8) and "4 would need 4 x 30.0 GB" in why
    assert auto_trainings_per_gpu(record, {"patches-weak"}, 141.0)[:2] == (4, 2.4)
    assert auto_trainings_per_gpu(None, {"patches-weak"}, 141.0)[0] == 1
    assert auto_trainings_per_gpu({"train": {}}, {"patches-weak"}, None)[0] == 1
    hours = {"a": 2.0, "b": 2.0, "c": 2.0, "d": 2.0}
    assert estimate_wallclock(hours, 2, 1, per_gpu=2, speedup=1.8) == pytest.approx(2 * 2 * 2 / 1.8)
    assert estimate_wallclock(hours, 1) == 8.0


def test_the_gpu_check_measures_trainings_sharing_a_device():
    """``gpu_check.concurrency`` runs 1 and 2 trainings at once as separate processes (here on the
    CPU, tiny) and returns their aggregate images/s."""
    import importlib

    import torch

    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        gpu_check = importlib.import_module("gpu_check")
        rates = gpu_check.concurrency("patches", "weak", 2, 32, torch.device("cpu"), (1, 2), steps=2, warmup=1)
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    assert set(rates) == {1, 2} and all(r > 0 for r in rates.values())


@pytest.mark.xdist_group("smoke-study")
def test_mil_goal_reads_table2s_numbers_seed_by_seed(smoke_study):
    """``benchmarks/mil_goal.py`` on the smoke study: its seed-0 row carries Table 2's IoU at 0.5
    and at the validation-chosen threshold for Patches-MIL B and Patches C, and their ratio."""
    import importlib

    root, _, _ = smoke_study
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        df = importlib.import_module("mil_goal").seed_rows("smoke", 1, root)
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    t2 = pd.read_csv(root / "results" / "smoke" / "table2.csv").set_index("experiment")
    row = df.iloc[0]
    assert row["seed"] == 0 and row["mil_B_run"] == t2.loc["patches-mil-B", "run"]
    assert row["mil_B_iou_05"] == pytest.approx(t2.loc["patches-mil-B", "iou"], abs=1e-3)
    assert row["mil_B_iou_val_thr"] == pytest.approx(t2.loc["patches-mil-B", "iou_val_thr"], abs=1e-3)
    if t2.loc["patches-C", "iou"] > 0.1:
        assert row["mil_B_over_C_05"] == pytest.approx(t2.loc["patches-mil-B", "iou"] / t2.loc["patches-C", "iou"],
                                                       rel=1e-2)
    assert row["prior_iou_val_thr"] == pytest.approx(t2.loc["baseline-mask-prior", "iou_val_thr"], abs=1e-3)


def test_every_figure_of_the_report_has_a_caption():
    """Each stage figure has its stage's caption; a benchmark's figure (``study_time-*``) names the
    benchmark and links its table; a figure nothing claims has none."""
    from dolos_core.runner import stages
    from dolos_core.runner.report import figure_caption

    for st in stages.STAGE_TABLE:
        for stem, caption in st.captions.items():
            assert figure_caption(stem) == caption and caption
    cap = figure_caption("study_time-three-seeds")
    assert "bench_study.py" in cap and "[study_time-three-seeds.md](study_time-three-seeds.md)" in cap
    assert figure_caption("unknown") == ""


def test_report_tables_print_empty_cells_as_words():
    """A float NaN in a table REPORT.md shows reads a word (tabulate alone prints "nan"): "n/a"
    (no AP in setup C), "missing" only in the row of a run that should exist and does not;
    numbers keep their format."""
    from dolos_core.runner.report import markdown

    df = pd.DataFrame({"experiment": ["patches-A", "patches-C"], "ap_mean": [99.61, float("nan")]})
    text = markdown(df, floatfmt=".1f")
    assert "99.6" in text and "n/a" in text and "nan" not in text and "missing" not in text
    gone = markdown(df.assign(status=["ok", "missing"]))
    assert "missing" in gone and "n/a" not in gone and "nan" not in gone
