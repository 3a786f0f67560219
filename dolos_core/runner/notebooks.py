"""Executing one chapter notebook with papermill: its parameters checked against the notebook's
``parameters`` cell, the kernel registered, the executed copy stamped with the commit that ran
it. Used by the pipeline and by the trainings' workers (``jobs``)."""

from __future__ import annotations

import atexit
import difflib
import functools
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path


# The notebooks ship with the code; outputs go wherever the Paths say.
NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"


class UserError(Exception):
    """An error with a message for the user; no traceback is printed."""


class StatusBlock:
    """Lines kept at the bottom of a terminal and redrawn in place (the trainings in flight);
    ``log`` prints above them. Not a terminal: nothing is drawn (the monitor logs lines instead)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.shown = 0
        self.lock = threading.RLock()

    @staticmethod
    def tty() -> bool:
        return sys.stdout.isatty()

    def _clear(self) -> None:
        if self.shown:
            sys.stdout.write(f"\x1b[{self.shown}F\x1b[J")
            self.shown = 0

    def _draw(self) -> None:
        if self.lines:
            width = shutil.get_terminal_size((120, 20)).columns - 1
            sys.stdout.write("".join(line[:width] + "\n" for line in self.lines))
            self.shown = len(self.lines)
        sys.stdout.flush()

    def show(self, lines: list[str]) -> None:
        with self.lock:
            self.lines = list(lines)
            if self.tty():
                self._clear()
                self._draw()

    def print(self, msg: str) -> None:
        with self.lock:
            if self.tty():
                self._clear()
            print(msg, flush=True)
            if self.tty():
                self._draw()


STATUS = StatusBlock()


def log(msg: str) -> None:
    STATUS.print(msg)


def git_commit(root: Path) -> str:
    """The commit ``root`` is at, "(with uncommitted changes)" when its code differs from it
    (what a run writes itself, results/ and figures/, does not count); "unknown" without git."""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)results", ":(exclude)figures"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (rev or "unknown") + (" (with uncommitted changes)" if dirty else "")
    except Exception:
        return "unknown"


def fmt_seconds(sec: float) -> str:
    sec = int(round(sec))
    if sec >= 3600:
        return f"{sec // 3600}h{sec % 3600 // 60:02d}m"
    return f"{sec // 60}m{sec % 60:02d}s" if sec >= 60 else f"{sec}s"


def ensure_kernel() -> None:
    """Register the ``dolos`` Jupyter kernel for this interpreter if it is missing."""
    from jupyter_client.kernelspec import KernelSpecManager

    specs = KernelSpecManager().find_kernel_specs()
    if "dolos" in specs:
        spec = json.loads((Path(specs["dolos"]) / "kernel.json").read_text())
        if spec.get("argv", [None])[0] == sys.executable:
            return
    from ipykernel.kernelspec import install

    install(prefix=sys.prefix, kernel_name="dolos", display_name="Python (dolos)")


def notebook_path(name: str) -> Path:
    """A chapter's clean notebook: ``notebooks/<name>.ipynb``, or ``name`` itself when it is
    a path to an ``.ipynb`` file (a stage declared outside the repository's chapters)."""
    return Path(name) if name.endswith(".ipynb") else NOTEBOOK_DIR / f"{name}.ipynb"


def notebook_stem(name: str) -> str:
    """The name a notebook's executed copy takes (its file name without ``.ipynb``)."""
    return notebook_path(name).stem


@functools.lru_cache(maxsize=None)
def declared_params(name: str) -> dict:
    """The parameters a notebook's ``parameters`` cell declares (papermill's reading, once per
    notebook and process)."""
    import papermill as pm

    return pm.inspect_notebook(str(notebook_path(name)))


def check_notebook_params(src: Path, params: dict) -> None:
    """Every parameter passed to a notebook is one its ``parameters`` cell declares (papermill
    would only log a warning and run with the default): an unknown name is an error naming it."""
    declared = declared_params(str(src))
    unknown = sorted(set(params) - set(declared))
    if unknown:
        close = {u: difflib.get_close_matches(u, list(declared), n=1) for u in unknown}
        hints = "; ".join(f"{u!r}" + (f" (did you mean {c[0]!r}?)" if c else "") for u, c in close.items())
        raise UserError(f"notebook {src.name}: unknown parameter(s) {hints}; it takes "
                        f"{', '.join(declared)}")


# One kernel kept warm for the notebooks a process runs one after another. Every chapter
# imports torch, timm, pandas, scikit-learn and matplotlib: about 4 s of a laptop core per
# kernel, more than a smoke-sized training computes. A notebook after the first starts from an
# empty namespace (``%reset -f``, figures closed, memory collected) in the same process, its
# modules already imported; the executed copy numbers its cells from 1 as a fresh kernel would.
# A kernel serves only notebooks with the same kernel, working directory and environment; one
# whose notebook failed is shut down. DOLOS_FRESH_KERNELS=1: a new kernel per notebook.
_RESET = """%reset -f
import gc as _gc, sys as _sys
if "matplotlib.pyplot" in _sys.modules:
    _sys.modules["matplotlib.pyplot"].close("all")
_gc.collect()
if "torch" in _sys.modules and _sys.modules["torch"].cuda.is_initialized():
    _sys.modules["torch"].cuda.empty_cache()
del _gc, _sys
"""
_warm: dict = {}        # "km": the kernel manager, "key": what it was started for


def _stop_warm_kernel() -> None:
    km = _warm.pop("km", None)
    _warm.clear()
    if km is not None:
        from jupyter_core.utils import run_sync

        try:
            run_sync(km.shutdown_kernel)(now=True)
        except Exception:       # already gone (killed, or the interpreter is exiting)
            pass


atexit.register(_stop_warm_kernel)


def _reset(km) -> bool:
    """Empty a used kernel's namespace; False when it does not answer as it should."""
    kc = km.blocking_client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        reply = kc.execute_interactive(_RESET, timeout=120, output_hook=lambda msg: None)
        return reply["content"]["status"] == "ok"
    except Exception:
        return False
    finally:
        kc.stop_channels()


@functools.lru_cache(maxsize=None)
def _warm_engine() -> str:
    """papermill's engine, but closing its client's channels (and their zmq context) to a kernel
    it did not start: papermill's own leaves them open, a thread and ~15 file descriptors per
    notebook. Registered once per process; returns its name."""
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine, papermill_engines
    from papermill.log import logger

    class Client(PapermillNotebookClient):
        def execute(self, **kwargs):
            try:
                return super().execute(**kwargs)
            finally:
                kc, self.kc = self.kc, None
                if not self.owns_km and kc is not None:
                    kc.stop_channels()
                    if getattr(kc, "_created_context", False):
                        kc.context.destroy(linger=0)

    class Engine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None,
                                     stderr_file=None, start_timeout=60, execution_timeout=None, **kwargs):
            kwargs = {k: v for k, v in kwargs.items() if k not in ("input_path", "timeout", "startup_timeout")}
            return Client(nb_man, timeout=execution_timeout, startup_timeout=start_timeout, kernel_name=kernel_name,
                          log=logger, log_output=log_output, stdout_file=stdout_file, stderr_file=stderr_file,
                          **kwargs).execute()

    papermill_engines.register("dolos-warm", Engine)
    return "dolos-warm"


def warm_kernel(kernel_name: str, log_key: str):
    """The kernel manager the next notebook runs in (started here, or the previous notebook's,
    emptied); None with DOLOS_FRESH_KERNELS=1 (papermill then starts and stops its own)."""
    if os.environ.get("DOLOS_FRESH_KERNELS") == "1":
        return None
    from jupyter_core.utils import run_sync

    key = (kernel_name, str(NOTEBOOK_DIR), log_key, tuple(sorted(os.environ.items())))
    km = _warm.get("km")
    if km is not None and (_warm["key"] != key or not run_sync(km.is_alive)() or not _reset(km)):
        _stop_warm_kernel()
        km = None
    if km is None:
        from jupyter_client.manager import AsyncKernelManager    # nbclient's own default

        km = AsyncKernelManager(kernel_name=kernel_name)
        run_sync(km.start_kernel)(cwd=str(NOTEBOOK_DIR))
        _warm.update(km=km, key=key)
    return km


def run_notebook(name: str, out_name: str, params: dict, paths, stage: str = "") -> float:
    """Execute ``notebooks/<name>.ipynb`` (``notebook_path``) with papermill; the executed copy
    goes to ``runs/<profile>/notebooks/<out_name>.ipynb`` and records the commit and ``stage``
    that ran it (what the publication reads). Returns seconds."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    src = notebook_path(name)
    check_notebook_params(src, params)
    out = paths.notebooks_out / f"{out_name}.ipynb"
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    # The kernel's own chatter (ipykernel's transport warning, papermill's parameter notes)
    # goes to a log file instead of the terminal; the executed notebook keeps every output.
    log_path = paths.notebooks_out / "kernels.log"
    sys.stderr.flush()
    saved = os.dup(2)
    with open(log_path, "a") as fh:
        os.dup2(fh.fileno(), 2)
        try:
            # iopub_timeout: nbclient's default (4 s) for a finished cell's last outputs to
            # arrive fails a notebook on a loaded machine (seen with two trainings beside it).
            km = warm_kernel("dolos", str(log_path))
            pm.execute_notebook(str(src), str(out), parameters=params, kernel_name="dolos",
                                progress_bar=False, cwd=str(NOTEBOOK_DIR), iopub_timeout=120, km=km,
                                engine_name=_warm_engine() if km is not None else None)
        except PapermillExecutionError as exc:
            _stop_warm_kernel()
            raise UserError(f"{exc.ename}: {exc.evalue}\n  (notebook {name}; executed copy: "
                            f"{out})") from None
        except BaseException:   # the kernel died, a timeout, an interrupt: never reuse it
            _stop_warm_kernel()
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
    _stamp(out, stage)
    return time.time() - t0


def _stamp(path: Path, stage: str = "") -> None:
    """Record in an executed notebook which commit of which checkout ran it (read when the
    notebook is published)."""
    import nbformat

    from ..locks import code_root
    nb = nbformat.read(str(path), as_version=4)
    renumber(nb)
    nb.metadata["dolos"] = {"commit": git_commit(code_root()), "stage": stage}
    nbformat.write(nb, str(path))


def renumber(nb) -> None:
    """Number an executed notebook's code cells 1, 2, ... in order (their results too), as a
    fresh kernel would have: a warm kernel's counts go on from the notebooks before."""
    count = 0
    for cell in nb.cells:
        if cell.cell_type != "code" or cell.get("execution_count") is None:
            continue
        count += 1
        cell.execution_count = count
        for output in cell.get("outputs", []):
            if "execution_count" in output:
                output["execution_count"] = count
