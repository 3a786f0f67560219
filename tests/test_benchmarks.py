"""The benchmarks that other machines run: the GPU acceptance script keeps working (checked on
the CPU, tiny)."""

from __future__ import annotations

import json
import subprocess
import sys

from .conftest import REPO


def test_gpu_acceptance_runs_tiny_on_the_cpu(tmp_path):
    """``benchmarks/gpu_acceptance.py --device cpu --tiny``: it writes a real-layout set, runs the
    paper profile's ./run_all.sh on it (one training, capped) with this Python, not the
    project's environment by name, and leaves its record, log and the run's predictions in its
    one output folder."""
    out = tmp_path / "acc"
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_acceptance.py"), "--device", "cpu", "--tiny",
                        "--n", "2", "--out", str(out)], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:] + (out / "run_all.log").read_text()[-3000:]
    rec = json.loads((out / "acceptance.json").read_text())
    assert rec["device"] == "cpu" and rec["steps"]["run_all"]["returncode"] == 0 and "gpu_check" not in rec["steps"]
    assert {"data", "train"} <= set(rec["stage_seconds"])
    preds = list((out / "study" / "runs" / "paper" / "predictions" / "patches-C").rglob("*.npz"))
    assert preds, "patches-C predicted nothing"
    assert (out / "data" / "ffhq" / "real" / "valid").is_dir() and not (out / "data" / "ffhq" / "real" / "test").exists()
