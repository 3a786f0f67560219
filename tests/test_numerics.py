"""CPU numerics pinned and part of a run's identity (dolos_core/cpu_pin.py, numerics.identity).

Each training here runs in a process of its own, started from an environment with none of the
pin's variables, as a user's shell would be: the pin comes from importing dolos_core alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dolos_core import cpu_pin

from .conftest import REPO

pytestmark = pytest.mark.xdist_group("numerics")

EXP = "patches-C"
PINNED = "x86-64 AVX2 (pinned)"
TRAIN = f"""
import hashlib, json, sys
from dolos_core.config import get_paths, get_profile
from dolos_core.data.mini import build_mini
from dolos_core.experiments import get_experiment
from dolos_core.io import load_torch
from dolos_core.train import train_experiment
root, data = sys.argv[1], sys.argv[2]
prof = get_profile("smoke", **json.loads(sys.argv[3]))
paths = get_paths("smoke", data_root=data, root=root)
build_mini(paths.data_root, prof, seed=0, progress=False)
res = train_experiment(get_experiment("{EXP}"), prof, paths, device="cpu", progress=False)
h = hashlib.sha256(b"".join(t.numpy().tobytes() for _, t in sorted(load_torch(res.checkpoint).items())))
print("RESULT", res.checkpoint.parent.name, h.hexdigest()[:16])
"""


def clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in cpu_pin.PIN and k != cpu_pin.ENV}
    return {**env, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **extra}


def train_here(root: Path, data: Path, overrides: dict | None = None, **env) -> tuple[str, str, dict]:
    """(run id, weights hash, the run's recorded numerics) of one smoke training in a new process."""
    r = subprocess.run([sys.executable, "-c", TRAIN, str(root), str(data), json.dumps(overrides or {})],
                       capture_output=True, text=True, env=clean_env(**env), timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    rid, digest = r.stdout.split("RESULT ")[1].split()
    meta = json.loads((root / "runs/smoke/checkpoints" / EXP / rid / "run.json").read_text())
    return rid, digest, meta


def weights_hash(best: Path) -> str:
    import hashlib

    from dolos_core.io import load_torch

    return hashlib.sha256(b"".join(t.numpy().tobytes() for _, t in sorted(load_torch(best).items()))).hexdigest()[:16]


@pytest.mark.skipif(not cpu_pin.x86(), reason="the AVX2 pin is for x86-64 CPUs")
def test_pinned_training_is_the_same_in_a_process_and_a_hand_run_notebook_and_native_is_another_run(
        tmp_path, monkeypatch):
    """The same smoke training (a) in a plain Python process and (b) through notebook 02 run by
    hand with papermill (its own kernel, not the runner's) give the same run id and the same
    weights, both pinned; (c) ``DOLOS_CPU_NUMERICS=native`` (what ``--set cpu_numerics=native``
    exports) is a run of its own, with the CPU it found in its id, and on a CPU with AVX-512
    other weights (the pin changed the kernels)."""
    import papermill as pm

    data = tmp_path / "data"
    rid, digest, meta = train_here(tmp_path / "a", data)
    assert meta["numerics"]["kernels"] == PINNED and meta["numerics"]["threads"] == 1
    (tmp_path / "b").mkdir()
    for key in (*cpu_pin.PIN, cpu_pin.ENV):         # the kernel inherits none of the pin's variables
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("DOLOS_REPO", str(tmp_path / "b"))
    pm.execute_notebook(str(REPO / "notebooks/02_train.ipynb"), str(tmp_path / "b/02.ipynb"),
                        parameters={"profile": "smoke", "data_root": str(data), "device": "cpu",
                                    "experiment": EXP, "n_show": 1},
                        kernel_name="python3", cwd=str(REPO / "notebooks"), progress_bar=False)
    monkeypatch.undo()
    best = tmp_path / "b/runs/smoke/checkpoints" / EXP / rid / "best.pt"
    assert best.exists(), sorted(p.name for p in best.parent.parent.iterdir())
    assert weights_hash(best) == digest
    nid, ndigest, nmeta = train_here(tmp_path / "c", data, DOLOS_CPU_NUMERICS="native")
    assert nmeta["numerics"]["kernels"].startswith("native: ") and nid != rid
    assert nmeta["config_key"] == meta["config_key"]          # one configuration, two numerics
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    if " avx512f" in flags:
        assert ndigest != digest, "native AVX-512 kernels gave the pinned weights: the pin changes nothing here"


def test_the_instruction_set_setting_changes_the_run_id(tmp_path, monkeypatch):
    """Every field of the numerics goes into the id: the kernels (pinned or native), the device,
    the threads; the configuration's key stays (evaluation finds a run made elsewhere by it)."""
    from dolos_core import runs
    from dolos_core.config import get_paths, get_profile
    from dolos_core.experiments import get_experiment

    from .conftest import make_layout

    root = make_layout(tmp_path / "dolos", datasets=("celebahq/real", "celebahq/repaint-p2"))
    prof, paths, exp = get_profile("smoke"), get_paths("smoke", root, root=tmp_path), get_experiment(EXP)
    ids = {}
    for kernels in (PINNED, "native: AVX512 GenuineIntel avx2 avx512f", "native: AVX2 AuthenticAMD avx2"):
        monkeypatch.setattr(runs, "numerics_of", lambda *a, k=kernels, **kw: {"device": "cpu", "kernels": k})
        run = runs.run_for_training(exp, prof, paths, "cpu")
        ids[kernels] = (run.run_id, runs.config_key(run.config))
    assert len({rid for rid, _ in ids.values()}) == 3 and len({key for _, key in ids.values()}) == 1


def test_evaluation_finds_a_run_made_under_other_numerics_by_its_manifest(tmp_path, monkeypatch):
    """A run trained elsewhere (a cluster's GPU nodes) is found by the configuration key its
    manifest records; two such runs: the newest, named once."""
    from dolos_core import runs
    from dolos_core.config import get_paths, get_profile
    from dolos_core.experiments import get_experiment

    from .conftest import make_layout

    root = make_layout(tmp_path / "dolos", datasets=("celebahq/real", "celebahq/repaint-p2"))
    prof, paths, exp = get_profile("smoke"), get_paths("smoke", root, root=tmp_path), get_experiment(EXP)
    here = runs.resolve_run(exp, prof, paths, "cpu")
    assert not here.checkpoint_dir.exists()
    monkeypatch.setattr(runs, "numerics_of", lambda *a, **kw: {"device": "cuda", "gpu": "NVIDIA H100"})
    gpu = runs.run_for_training(exp, prof, paths, "cpu")
    runs.write_manifest(gpu.predictions_dir, gpu)
    monkeypatch.undo()
    found = runs.resolve_run(exp, prof, paths, "cpu")
    assert found.run_id == gpu.run_id and found.config["numerics"]["gpu"] == "NVIDIA H100"
    other = runs.resolve_run(exp, prof.replace(seed=1), paths, "cpu")      # another configuration
    assert other.run_id != gpu.run_id and not other.predictions_dir.exists()
    # a finished run of the same configuration with native CPU kernels is another run on a CPU:
    # never read, nor counted as trained, in place of the pinned one
    from dolos_core.io import write_json
    from dolos_core.train import is_trained

    monkeypatch.setattr(runs, "numerics_of", lambda *a, **kw: {"device": "cpu", "kernels": "native: AVX512"})
    native = runs.run_for_training(exp, prof, paths, "cpu")
    monkeypatch.undo()
    runs.write_manifest(native.checkpoint_dir, native)
    write_json(native.checkpoint_dir / "train.json", {"done": True})
    (native.checkpoint_dir / "best.pt").write_bytes(b"weights")
    assert runs.resolve_run(exp, prof, paths, "cpu").run_id == gpu.run_id        # still the other device's
    assert not is_trained(paths, exp, prof, "cpu")


@pytest.mark.skipif(not cpu_pin.x86(), reason="the AVX2 pin is for x86-64 CPUs")
def test_a_process_where_torch_computed_before_the_pin_says_so_once_and_is_its_own_run():
    """A notebook that used torch before importing dolos_core: PyTorch's kernels were chosen
    then, so the run is recorded with the kernels found (not the pin), and one line says why."""
    code = ("import torch; torch.randn(64).exp()\n"
            "from dolos_core.config import get_profile\n"
            "from dolos_core.runs import numerics_of\n"
            "a = numerics_of(get_profile('smoke'), 'cpu'); b = numerics_of(get_profile('smoke'), 'cpu')\n"
            "print('KERNELS', a['kernels'])\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=clean_env(), timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    if " avx512f" in flags:      # on an AVX2-only CPU the kernels found are the pinned ones anyway
        assert r.stdout.count("torch computed in this process before dolos_core pinned its kernels") == 1, r.stdout
        assert "KERNELS native: AVX512" in r.stdout, r.stdout
    else:
        assert "KERNELS " in r.stdout
