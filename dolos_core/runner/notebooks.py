"""Executing one chapter notebook with papermill: its parameters checked against the notebook's
``parameters`` cell, the kernel registered, the executed copy stamped with the commit that ran
it. Used by the pipeline and by the trainings' workers (``jobs``)."""

from __future__ import annotations

import difflib
import functools
import json
import os
import subprocess
import sys
import time
from pathlib import Path


# The notebooks ship with the code; outputs go wherever the Paths say.
NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"


class UserError(Exception):
    """An error with a message for the user; no traceback is printed."""


def log(msg: str) -> None:
    print(msg, flush=True)


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
            pm.execute_notebook(str(src), str(out), parameters=params, kernel_name="dolos",
                                progress_bar=False, cwd=str(NOTEBOOK_DIR), iopub_timeout=120)
        except PapermillExecutionError as exc:
            raise UserError(f"{exc.ename}: {exc.evalue}\n  (notebook {name}; executed copy: "
                            f"{out})") from None
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
    nb.metadata["dolos"] = {"commit": git_commit(code_root()), "stage": stage}
    nbformat.write(nb, str(path))
