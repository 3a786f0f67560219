"""One writer at a time: locks on what a run writes, and the checkout a run belongs to.

``hold(path, what)`` takes an operating-system lock on ``path`` (``filelock``: ``fcntl`` on
Unix, ``msvcrt`` on Windows), so a lock dies with the process that held it: a killed run never
leaves a lock that blocks the next one. Beside the lock, ``<path>.json`` names the holder (pid,
host, command, start time) for the message a second writer gets, and is left behind by a killed
run only as a note: the next writer reports it as stale and takes over.

``check_checkout(root)``: the ``dolos_core`` a process imported is the one of the checkout it
writes into; a kernel whose environment points at another clone stops with one line.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path


class Locked(Exception):
    """Another live process holds the lock; the message says who and what to do."""


class WrongCheckout(Exception):
    """This process imported another checkout's ``dolos_core``."""


def _holder_text(info: dict) -> str:
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.get("started", 0)))
    return (f"pid {info.get('pid', '?')} on {info.get('host', '?')}, started {started}: "
            f"{info.get('command', '?')}")


@contextmanager
def hold(path: str | os.PathLike, what: str, log=print, wait: float = 0):
    """Hold the lock at ``path`` while the block runs; raise :class:`Locked` when a live
    process still holds it after ``wait`` seconds (default: at once; a second run should know,
    not hang; a run's own kernels wait a few seconds for an interrupted kernel to exit)."""
    from filelock import FileLock, Timeout

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    info_path = path.with_name(path.name + ".json")
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=wait)
    except Timeout:
        try:
            info = json.loads(info_path.read_text())
        except (OSError, ValueError):
            info = {}
        raise Locked(f"{what} is being written by another run ({_holder_text(info)}). Wait for it "
                     f"to finish (or stop it), then run again; the lock is {path} and is released "
                     "when that process ends, even if it is killed.") from None
    try:
        if info_path.exists():
            try:
                old = json.loads(info_path.read_text())
                log(f"note: a previous run ({_holder_text(old)}) ended without finishing; "
                    "its lock was stale and is taken over (finished work is kept)")
            except (OSError, ValueError):
                pass
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
                "command": " ".join(sys.argv) or sys.executable}
        info_path.write_text(json.dumps(info))
        yield
    finally:
        info_path.unlink(missing_ok=True)
        lock.release()


def code_root() -> Path:
    """The checkout whose ``dolos_core`` this process imported."""
    return Path(__file__).resolve().parent.parent


def check_checkout(root: str | os.PathLike) -> None:
    """Raise :class:`WrongCheckout` unless the imported ``dolos_core`` is ``root``'s own
    (a checkout without a ``dolos_core`` folder, e.g. a test's output root, is not checked)."""
    root = Path(root).resolve()
    if not (root / "dolos_core").is_dir() or code_root() == root:
        return
    raise WrongCheckout(
        f"this run writes into {root} but imported dolos_core from {code_root()} (another "
        f"checkout installed in this environment). Run {root}/run_all.sh, which puts its own "
        f"code first, or in a notebook first `%cd {root}` / set PYTHONPATH={root}; or reinstall: "
        f"pip install -e {root}")


__all__ = ["hold", "Locked", "check_checkout", "code_root", "WrongCheckout"]
