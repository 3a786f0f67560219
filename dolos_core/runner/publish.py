"""Executed notebooks for readers: ``results/<profile>/notebooks/*.ipynb`` and an offline HTML
rendering (``results/<profile>/html/index.html``), so the study can be read without running it.

The clean notebooks in ``notebooks/`` stay without outputs. Publishing takes the executed copies
of a run (``runs/<profile>/notebooks/``) and makes them fit to commit:

- a header cell says which commit, profile and configuration produced the copy, and where the
  clean notebook is;
- no machine paths: the checkout's absolute path becomes ``.`` (relative to the repository) and
  the home folder ``~``, in sources and outputs alike;
- images re-encoded as JPEG (quality 80), at most 1200 px wide: a figure stays legible at a
  fraction of the size;
- no noise that changes on every run: progress bars (stderr streams) dropped, execution counts
  renumbered, papermill's timing metadata removed. Publishing an unchanged study twice writes the
  same bytes (files are rewritten only when their content changes).
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
from pathlib import Path

import nbformat

from ..io import atomic_path
from ..locks import code_root
from . import stages as stage_table
from .notebooks import git_commit, log

JPEG_QUALITY = 80
MAX_WIDTH = 1200
def reading_order(names: list[str]) -> list[str]:
    """Notebook stems in reading order: chapter by chapter, as the stage table lists them
    (``stages.reading_order``); the training notebook's copies (``02_train-<experiment>...``)
    under it, in the experiment registry's order."""
    from ..experiments import EXPERIMENTS

    order = stage_table.reading_order()
    exp_rank = {n: i for i, n in enumerate(EXPERIMENTS)}

    def key(stem: str):
        chapter = next((i for i, c in enumerate(order) if stem == c or stem.startswith(c + "-")), len(order))
        tail = stem.split("-", 1)[1] if "-" in stem else ""
        return chapter, exp_rank.get(tail, len(exp_rank)), stem

    return sorted(names, key=key)


def _jpeg(data_b64: str) -> str:
    from PIL import Image

    img = Image.open(io.BytesIO(base64.b64decode(data_b64)))
    if img.mode in ("RGBA", "LA", "P"):
        bg = Image.new("RGB", img.size, "white")
        bg.paste(img.convert("RGBA"), mask=img.convert("RGBA").split()[-1])
        img = bg
    img = img.convert("RGB")
    if img.width > MAX_WIDTH:
        img = img.resize((MAX_WIDTH, round(img.height * MAX_WIDTH / img.width)), Image.LANCZOS)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)
    return base64.b64encode(out.getvalue()).decode()


def _scrub(text: str, root: str) -> str:
    text = text.replace(root + os.sep, "").replace(root, ".")
    home = os.path.expanduser("~")
    if home and home != "/":
        text = text.replace(home, "~")
    return text


def clean_notebook(nb, root: Path, header: str):
    """The publishable copy of an executed notebook (see the module doc)."""
    root_s = str(Path(root).resolve())
    nb.metadata.pop("papermill", None)
    stage = nb.metadata.pop("dolos", {}).get("stage")
    if stage:                       # which stage made it: what publishing again reads (stage_of)
        nb.metadata["dolos"] = {"stage": stage}
    nb.metadata.pop("widgets", None)
    cells, count = [], 0
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        cell.source = _scrub(cell.source, root_s)
        if cell.cell_type == "code":
            count += 1
            cell.execution_count = count
            outputs = []
            for out in cell.get("outputs", []):
                if out.output_type == "stream":
                    if out.name == "stderr":
                        continue                       # progress bars and warnings: run noise
                    out.text = _scrub(out.text, root_s)
                elif out.output_type in ("display_data", "execute_result"):
                    if "execution_count" in out:
                        out.execution_count = count
                    data = out.get("data", {})
                    if "application/vnd.jupyter.widget-view+json" in data:
                        continue                       # tqdm widgets: nothing to see offline
                    if "image/png" in data:
                        data["image/jpeg"] = _jpeg(data.pop("image/png"))
                    for mime in ("text/plain", "text/html", "text/markdown"):
                        if mime in data:
                            v = data[mime]
                            data[mime] = _scrub("".join(v) if isinstance(v, list) else v, root_s)
                    out.metadata = {}
                elif out.output_type == "error":
                    out.traceback = [_scrub(t, root_s) for t in out.traceback]
                outputs.append(out)
            cell.outputs = outputs
        cells.append(cell)
    head = nbformat.v4.new_markdown_cell(header)
    head.id = "published-header"
    nb.cells = [head] + cells
    return nb


def _write_if_changed(path: Path, text: str) -> bool:
    if path.exists() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return True


def _header(stem: str, commit: str, profile: str, overrides: dict) -> str:
    clean = stem.split("-", 1)[0] if stem.startswith(stage_table.TRAIN_NOTEBOOK) else stem
    conf = ", ".join(f"`{k}={v}`" for k, v in sorted(overrides.items())) or "the profile's defaults"
    return (f"> **Executed copy, for reading.** Produced by `./run_all.sh --profile {profile}`, "
            f"executed at commit `{commit}`, configuration: {conf}. Outputs are as that run left them (images "
            f"compressed, machine paths made relative). The clean notebook to run and edit is "
            f"[`notebooks/{clean}.ipynb`](../../../notebooks/{clean}.ipynb).")


_SEED = re.compile(r"-seed(\d+)$")


def first_seeds(stems: list[str]) -> list[str]:
    """The copies a reader gets: one training notebook per experiment and configuration, its
    first seed's (a copy without a seed suffix is the profile's own seed; else the lowest
    ``-seed<k>``); the other seeds' numbers are in the seed-spread and training tables.
    Chapters are all kept."""
    base = {}
    for stem in stems:
        m = _SEED.search(stem)
        prefix, seed = (stem[:m.start()], int(m.group(1))) if m else (stem, -1)
        if prefix not in base or seed < base[prefix][0]:
            base[prefix] = (seed, stem)
    keep = {stem for _, stem in base.values()}
    return [s for s in stems if s in keep]


def stage_of(path: Path) -> str:
    """The stage that executes a notebook copy: a chapter's, from the stage table; a training's
    copy, as the pipeline recorded it in the copy (``metadata.dolos.stage``)."""
    chapter = next((s.name for s in stage_table.STAGE_TABLE if path.stem in s.notebooks), "")
    if chapter:
        return chapter
    try:
        return nbformat.read(str(path), as_version=4).metadata.get("dolos", {}).get("stage", "")
    except (OSError, ValueError):
        return ""


def run_stage(study) -> None:
    """The publish stage (``Stage.run``): the executed notebooks and their HTML."""
    done = publish(study.paths, study.profile.name, git_commit(code_root()), study.overrides, study.stages)
    log(f"  published {len(done)} notebooks to {study.paths.results / 'notebooks'}; "
        f"open {study.paths.results / 'html' / 'index.html'}")


def publish(paths, profile_name: str, commit: str, overrides: dict | None = None,
            stages: tuple[str, ...] | list[str] | None = None) -> list[Path]:
    """Publish every executed notebook of ``paths.notebooks_out`` into
    ``paths.results/notebooks/`` and its HTML into ``paths.results/html/`` (with ``index.html``
    in reading order, and the report at ``commit``). Each header names the commit that executed
    that notebook, as the pipeline recorded it. Only a training's first seed is published
    (``first_seeds``). A published chapter with no executed notebook is removed only when its
    stage is among ``stages`` (the stages this run chose; None: any), so a default run keeps
    the published pages of the opt-in stages it did not run. Returns the notebooks published
    now, in reading order."""
    src = paths.notebooks_out
    stems = reading_order(first_seeds([p.stem for p in src.glob("*.ipynb")]))
    out_dir, html_dir = paths.results / "notebooks", paths.results / "html"
    published = []
    for stem in stems:
        nb = nbformat.read(src / f"{stem}.ipynb", as_version=4)
        ran_at = nb.metadata.get("dolos", {}).get("commit", "not recorded (an earlier run)")
        nb = clean_notebook(nb, paths.root, _header(stem, ran_at, profile_name, overrides or {}))
        text = nbformat.writes(nb) + "\n"
        _write_if_changed(out_dir / f"{stem}.ipynb", text)
        _write_if_changed(html_dir / f"{stem}.html", _html(nb, stem))
        published.append(out_dir / f"{stem}.ipynb")
    kept = set(first_seeds([p.stem for p in out_dir.glob("*.ipynb")]))
    for stale in set(out_dir.glob("*.ipynb")) - set(published):
        # a training's later seed is not published (the first seed's copy stands for it); a
        # chapter of a stage that ran and did not make it is gone; another training's copy stays
        # (a run of fewer experiments never deletes the pages of the runs it did not make)
        if stale.stem in kept and stale.stem.startswith(stage_table.TRAIN_NOTEBOOK + "-"):
            continue
        if stale.stem not in kept or stages is None or stage_of(stale) in stages:
            stale.unlink()
            (html_dir / f"{stale.stem}.html").unlink(missing_ok=True)
    listed = reading_order([p.stem for p in out_dir.glob("*.ipynb")])
    _write_if_changed(html_dir / "index.html", _index(listed, paths, profile_name, commit))
    return published


_CSS = ("body{max-width:1100px;margin:2em auto;font-family:sans-serif}img{max-width:100%}"
        "table{border-collapse:collapse;font-size:0.8em}td,th{border:1px solid #ccc;padding:2px 4px}"
        "pre{background:#f6f6f6;padding:6px;overflow-x:auto}.jp-InputArea,.input{margin-top:1em}")


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{title}</title>"
            f"<style>{_CSS}</style></head><body>\n{body}\n</body></html>\n")


def _html(nb, stem: str) -> str:
    """One notebook as a light, self-contained page (nbconvert's ``basic`` template: no
    stylesheet per page; images inline)."""
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter(template_name="basic").from_notebook_node(nb)
    return _page(_title(stem), f'<p><a href="index.html">&larr; index</a></p>\n{body}')


def _copy_if_changed(src: Path, dst: Path) -> None:
    data = src.read_bytes()
    if dst.exists() and dst.read_bytes() == data:
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dst) as tmp:
        tmp.write_bytes(data)


def _bundle(text: str, paths, html_dir: Path) -> str:
    """REPORT.md's links made local to the HTML folder, so that it can be copied alone: each
    figure it shows into ``html/figures/``, each table it links into ``html/tables/``; a link to
    a file that is not there is left as it was."""
    def local(folder: Path, sub: str):
        def swap(m):
            src = folder / m.group(1)
            if not src.is_file():
                return m.group(0)
            _copy_if_changed(src, html_dir / sub / src.name)
            return f"]({sub}/{src.name})"
        return swap

    text = re.sub(r"\]\(\.\./\.\./figures/[\w.-]+/([\w.-]+)\)", local(paths.figures, "figures"), text)
    return re.sub(r"\]\((\w[\w.-]*\.(?:csv|md|tex))\)", local(paths.results, "tables"), text)


def _title(stem: str) -> str:
    return stem.replace("_", " ").replace("-", " · ", 1)


def _index(stems: list[str], paths, profile_name: str, commit: str) -> str:
    """``index.html``: the report, then every notebook in reading order, openable offline."""
    from nbconvert.filters.markdown import markdown2html

    report = paths.results / "REPORT.md"
    body = ""
    if report.exists():
        body = markdown2html(_bundle(report.read_text(), paths, paths.results / "html"))
    items = "\n".join(f'<li><a href="{s}.html">{_title(s)}</a></li>' for s in stems)
    return _page(f"DOLOS reproduction · {profile_name}",
                 f"<h1>DOLOS reproduction · {profile_name} profile</h1>\n<p>Commit <code>{commit}</code>. "
                 f"The notebooks, executed, in reading order:</p>\n<ol>\n{items}\n</ol>\n<hr>\n{body}")


def published_outputs(path: Path) -> int:
    """Number of outputs in a published notebook (tests)."""
    nb = json.loads(Path(path).read_text())
    return sum(len(c.get("outputs", [])) for c in nb["cells"] if c["cell_type"] == "code")


__all__ = ["publish", "clean_notebook", "reading_order", "published_outputs"]
