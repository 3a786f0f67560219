"""Build a notebook from a percent-format script: ``# %% [markdown]`` / ``# %%`` cells;
a cell starting with ``# parameters`` is tagged ``parameters`` for papermill.

Usage: python scripts/nbbuild.py SRC.py OUT.ipynb  (a maintainer's tool; notebooks are the
committed source of truth once written, and are edited in JupyterLab from then on)."""

import sys

import nbformat


def build(src: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "dolos", "display_name": "Python (dolos)", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    chunks = src.split("# %%")
    for chunk in chunks[1:]:
        if chunk.startswith(" [markdown]"):
            body = chunk[len(" [markdown]"):].strip("\n")
            text = "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#") for line in body.splitlines())
            nb.cells.append(nbformat.v4.new_markdown_cell(text.strip()))
        else:
            body = chunk.strip("\n")
            cell = nbformat.v4.new_code_cell(body)
            if body.startswith("# parameters"):
                cell.metadata["tags"] = ["parameters"]
            nb.cells.append(cell)
    for i, c in enumerate(nb.cells):
        c["id"] = f"cell-{i:02d}"
    return nb


if __name__ == "__main__":
    nbformat.write(build(open(sys.argv[1]).read()), sys.argv[2])
