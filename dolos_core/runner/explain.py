"""``./run_all.sh --explain EXPERIMENT``: one experiment from the command line to its table rows.

What it is (method, supervision, training and test sets), the configuration its run id hashes
(this checkout, this machine's numerics, the ``--set`` overrides), the source files the id
covers and the ones training imports that it does not (with why), where its checkpoint and
predictions are and whether they exist, and the committed tables and figures that read it
(found in ``results/<profile>/``, with the run id each row names)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .. import cpu_pin
from ..config import get_paths, get_profile
from ..experiments import get_experiment
from ..runs import NOT_HASHED, _source_files, code_hash, config_key, resolve_run
from .notebooks import UserError, log
from .plan import root_tag


def _short(cfg: dict) -> str:
    """The configuration as indented JSON, the data summary folded to one line per split."""
    shown = dict(cfg)
    data = shown.pop("data", {})
    text = json.dumps(shown, indent=2, sort_keys=True, default=str)
    lines = [f"  {line}" for line in text.splitlines()]
    lines.append("  data (files, bytes, hash of names; images then masks):")
    lines += [f"    {k}: {v}" for k, v in sorted(data.items())]
    return "\n".join(lines)


def feeds(name: str, results: Path, figures: Path) -> list[str]:
    """The committed tables (CSV with an ``experiment`` column) that have rows of ``name``, the
    run ids those rows name, and the figures of the same stems."""
    import pandas as pd

    out = []
    for f in sorted(results.glob("*.csv")):
        try:
            t = pd.read_csv(f, low_memory=False)
        except Exception:
            continue
        if "experiment" not in t.columns:
            continue
        rows = t[t["experiment"].astype(str) == name]
        if rows.empty:
            continue
        ids = sorted({str(r) for r in rows["run"].dropna()}) if "run" in rows.columns else []
        figs = sorted(p.name for p in figures.glob(f"{f.stem}*.png"))
        out.append(f"{f.relative_to(results.parent.parent)}: {len(rows)} row(s)"
                   + (f", run {', '.join(ids[:4])}" if ids else "")
                   + (f"; figures {', '.join(figs)}" if figs else ""))
    return out


def explain(name: str, profile_name: str, overrides: dict, data_root: str | None, root: str | None,
            device: str = "auto", tag: str = "") -> int:
    try:
        exp = get_experiment(name)
    except KeyError as exc:
        raise UserError(str(exc).strip("'\"")) from None
    profile = get_profile(profile_name, **overrides)
    cpu_pin.set_mode(profile.cpu_numerics)      # before torch computes: the kernels a run would use
    if data_root is not None and not tag and profile.build_sizes is not None:
        tag = root_tag(data_root)
    paths = get_paths(profile_name, data_root, root=root, tag=tag)
    run = resolve_run(exp, profile, paths, device)
    cfg = run.config
    log(f"{exp.name}: {exp.description}")
    log(f"  method {exp.method} · supervision {exp.supervision} · trains on "
        f"{', '.join(t.key for t in exp.train)} · tests on {', '.join(exp.test)}")
    log(f"  profile {profile.name}" + (f" · overrides {overrides}" if overrides else "") + f" · data {paths.data_root}"
        + ("" if paths.data_root.is_dir() else " (not there yet: the id changes once it is built or found)"))
    log(f"run id {run.run_id} · configuration key {config_key(cfg)} (the same without the numerics)")
    log("  numerics: " + " · ".join(f"{k} {v}" for k, v in (cfg.get("numerics") or {}).items()))
    log("configuration hashed:")
    log(_short(cfg))
    log(f"source files hashed (code {code_hash(exp.method)}):")
    for rel, f in _source_files(exp.method, Path(__file__).resolve().parent.parent):
        digest = hashlib.sha256(f.read_bytes().replace(b"\r\n", b"\n")).hexdigest()[:8]
        log(f"  {rel}  {digest}")
    log("imported by training, not hashed (runs.NOT_HASHED):")
    for rel, why in NOT_HASHED.items():
        log(f"  {rel}: {why}")
    trained = (run.checkpoint_dir / "train.json").exists()
    preds = sorted(run.predictions_dir.glob("*.npz")) if run.predictions_dir.is_dir() else []
    log(f"checkpoint:  {run.checkpoint_dir} ({'trained' if trained else 'not trained here yet'})")
    log(f"predictions: {run.predictions_dir} ({len(preds)} file(s))")
    rows = feeds(exp.name, paths.results, paths.figures)
    log(f"read by ({paths.results}, as committed):")
    for line in rows or ["  no committed table has it"]:
        log(f"  {line}")
    if rows and not any(run.run_id in line for line in rows):
        log(f"  (the committed rows name other run ids than {run.run_id}: they were made by another "
            "configuration, code or numerics; ./run_all.sh regenerates them)")
    return 0
