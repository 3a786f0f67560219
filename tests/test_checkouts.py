"""Outputs land in the checkout that runs, from that checkout's code, one writer at a time."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dolos_core.config import ConfigError
from dolos_core.study import open_study
from dolos_core.locks import Locked, hold

from .conftest import REPO

HOLD = """
import sys, time
from dolos_core.locks import hold
with hold(sys.argv[1], "the test's runs"):
    print("held", flush=True)
    time.sleep(120)
"""


def _holder(lock: Path) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(lock)], stdout=subprocess.PIPE, text=True,
                         cwd=REPO)
    assert p.stdout.readline().strip() == "held"
    return p


def test_a_second_writer_is_refused_and_named(tmp_path):
    lock = tmp_path / "runs" / "x.lock"
    p = _holder(lock)
    try:
        with pytest.raises(Locked, match=f"pid {p.pid} .*Wait for it"):
            with hold(lock, "the test's runs"):
                pass
    finally:
        p.kill()
        p.wait()


def test_a_killed_runs_lock_is_stale_and_taken_over(tmp_path):
    lock = tmp_path / "x.lock"
    p = _holder(lock)
    p.send_signal(signal.SIGKILL)
    p.wait()
    notes = []
    with hold(lock, "the test's runs", log=notes.append):
        assert (tmp_path / "x.lock.json").exists()
    assert len(notes) == 1 and f"pid {p.pid}" in notes[0] and "stale" in notes[0]
    assert not (tmp_path / "x.lock.json").exists()


def test_a_second_run_all_is_refused_cleanly(tmp_path):
    from .test_pipeline import run

    with hold(tmp_path / "runs" / "smoke" / "run_all-smoke.lock", "smoke"):
        r = run("--profile", "smoke", "--only", "report", "--repo", str(tmp_path))
    assert r.returncode == 1 and "being written by another run" in r.stdout
    assert f"pid {os.getpid()}" in r.stdout and "Traceback" not in r.stdout + r.stderr


def _clone(dest: Path) -> Path:
    """A second checkout of this working tree (tracked and untracked, not ignored files)."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, check=True,
                           capture_output=True, text=True).stdout.split("\n")
    for f in filter(None, files):
        if (REPO / f).is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, dest / f)
    return dest


def test_a_kernel_with_another_checkouts_code_stops(tmp_path, monkeypatch):
    other = _clone(tmp_path / "other")
    monkeypatch.setenv("DOLOS_REPO", str(other))
    with pytest.raises(ConfigError, match=f"writes into {other} but imported dolos_core from {REPO}"):
        open_study("smoke")


def test_two_clones_sharing_one_environment_keep_their_own_outputs_and_code(tmp_path):
    """The environment's dolos_core is this checkout's (installed editable); the second clone's
    run must still execute the second clone's code in every kernel and write only there."""
    other = _clone(tmp_path / "other")
    marker = tmp_path / "imported_from.txt"
    with open(other / "dolos_core" / "__init__.py", "a") as fh:
        fh.write("\nimport os as _os\nif _os.environ.get('DOLOS_MARK'):\n"
                 "    open(_os.environ['DOLOS_MARK'], 'a').write(f'{__file__} {_os.getpid()}\\n')\n")
    ours = REPO / "results" / "smoke" / "data_summary.csv"
    before = ours.stat().st_mtime if ours.exists() else None
    env = {**os.environ, "DOLOS_PYTHON": sys.executable, "DOLOS_MARK": str(marker)}
    env.pop("DOLOS_REPO", None)
    t0 = time.time()
    r = subprocess.run([str(other / "run_all.sh"), "--profile", "smoke", "--only", "data,report"],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert (other / "results" / "smoke" / "data_summary.csv").exists()
    assert (other / "data" / "dolos-mini-smoke").is_dir()
    assert (ours.stat().st_mtime if ours.exists() else None) == before
    lines = [line.split() for line in marker.read_text().splitlines()]
    assert {path for path, _ in lines} == {str(other / "dolos_core" / "__init__.py")}, lines
    assert len({pid for _, pid in lines}) >= 3, lines    # the argument check, the pipeline, the kernel
    report = (other / "results" / "smoke" / "REPORT.md").read_text()
    assert "code: this checkout" in report and str(REPO) not in report
    assert time.time() - t0 < 600
