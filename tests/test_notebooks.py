"""The runner's notebook execution: one warm kernel per process, each notebook from an empty
namespace, counted from 1; a failed notebook's kernel is not reused."""

from __future__ import annotations

import json
from types import SimpleNamespace

import nbformat
import pytest

from dolos_core.runner import notebooks
from dolos_core.runner.notebooks import UserError, ensure_kernel, run_notebook

CELLS = [
    ("x = 0", ["parameters"]),
    ("import os\nleft_over = 'left' in globals()\nprint(os.getpid(), left_over)", []),
    ("left = x\nleft", []),
]


def _notebook(path, cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src, metadata={"tags": tags}) for src, tags in cells]
    nb.metadata["kernelspec"] = {"name": "dolos", "display_name": "Python (dolos)", "language": "python"}
    nbformat.write(nb, str(path))
    return str(path)


def _pid_and_left_over(path):
    nb = json.loads(path.read_text())
    (text,) = [o["text"] for c in nb["cells"] for o in c.get("outputs", []) if o.get("name") == "stdout"]
    pid, left = "".join(text).split()
    counts = [c["execution_count"] for c in nb["cells"] if c["cell_type"] == "code"]
    return int(pid), left == "True", counts


@pytest.fixture
def paths(tmp_path, monkeypatch):
    ensure_kernel()
    monkeypatch.delenv("DOLOS_FRESH_KERNELS", raising=False)
    yield SimpleNamespace(notebooks_out=tmp_path / "out")
    notebooks._stop_warm_kernel()


def test_notebooks_share_a_warm_kernel_from_an_empty_namespace(tmp_path, paths, monkeypatch):
    src = _notebook(tmp_path / "nb.ipynb", CELLS)
    run_notebook(src, "first", {"x": 1}, paths)
    run_notebook(src, "second", {"x": 2}, paths)
    pid1, left1, counts1 = _pid_and_left_over(paths.notebooks_out / "first.ipynb")
    pid2, left2, counts2 = _pid_and_left_over(paths.notebooks_out / "second.ipynb")
    assert pid1 == pid2                              # the same kernel process
    assert not left1 and not left2                   # the first notebook's names are gone
    assert counts1 == counts2 == [1, 2, 3, 4]        # parameters, injected parameters, two cells
    out = json.loads((paths.notebooks_out / "second.ipynb").read_text())["cells"][-1]["outputs"]
    assert out[0]["execution_count"] == 4 and "".join(out[0]["data"]["text/plain"]) == "2"

    bad = _notebook(tmp_path / "bad.ipynb", [("x = 0", ["parameters"]), ("raise ValueError('boom')", [])])
    with pytest.raises(UserError, match="ValueError: boom"):
        run_notebook(bad, "bad", {}, paths)
    run_notebook(src, "third", {"x": 3}, paths)      # a failed notebook's kernel is not reused
    pid3, left3, _ = _pid_and_left_over(paths.notebooks_out / "third.ipynb")
    assert pid3 != pid1 and not left3

    monkeypatch.setenv("DOLOS_FRESH_KERNELS", "1")   # the way papermill runs alone: a kernel each
    run_notebook(src, "fresh", {"x": 4}, paths)
    assert _pid_and_left_over(paths.notebooks_out / "fresh.ipynb")[0] not in (pid1, pid3)
