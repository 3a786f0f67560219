"""The shape of the code: the research library never imports the runner (the import-linter
contract in pyproject.toml), and no module imports itself through a cycle."""

from __future__ import annotations

import os

import pytest

from .conftest import REPO

grimp = pytest.importorskip("grimp", reason="import-linter (a dev dependency) is not installed")


def test_import_contract_holds():
    from importlinter.cli import lint_imports

    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        assert lint_imports(config_filename=str(REPO / "pyproject.toml"), no_cache=True) == 0
    finally:
        os.chdir(cwd)


def _cycles(graph, modules) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.find_modules_directly_imported_by(v):
            if w not in modules:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for m in sorted(modules):
        if m not in index:
            visit(m)
    return out


def test_no_import_cycles():
    """Imports inside functions count too: a cycle is a cycle whenever it is taken."""
    graph = grimp.build_graph("dolos_core")
    modules = {m for m in graph.modules if not m.endswith("__init__")} - {"dolos_core"}
    assert _cycles(graph, modules) == []


def test_the_cycle_finder_finds_one():
    class G:
        edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}

        def find_modules_directly_imported_by(self, m):
            return self.edges.get(m, set())

    assert _cycles(G(), {"a", "b", "c", "d"}) == [["a", "b", "c"]]


def test_every_module_training_imports_is_hashed_or_says_why_not():
    """A run's code hash covers the training loop's sources (``runs.TRAINING_SOURCES``) and its
    method's files; every other library module in the import closure of the training entry points
    (``train``, ``ddp_worker``, imports inside functions included) is named in ``runs.NOT_HASHED``
    with its reason. A new training import outside both fails here."""
    from dolos_core import runs

    graph = grimp.build_graph("dolos_core")
    closure = set()
    for entry in ("dolos_core.train", "dolos_core.ddp_worker"):
        closure |= {entry} | set(graph.find_upstream_modules(entry))
    assert runs.unaccounted(closure) == []
    assert runs.unaccounted(closure | {"dolos_core.plots", "dolos_core.data.mini"}) == ["data/mini.py", "plots.py"]
    assert all((runs._PACKAGE / f).exists() for f in (*runs.TRAINING_SOURCES, *runs.NOT_HASHED))
