"""``./run_all.sh``: the study as stages of papermill notebooks, resumable, with a summary.

The stages are a table (``dolos_core.runner.stages``): each trains its experiments (notebook 02 once
per experiment) and then runs its notebooks; the command line is ``dolos_core.runner.cli``. A finished
experiment (checkpoint and predictions on disk) is skipped unless ``--force``; an interrupted
training resumes from its last epoch. Errors the user can fix (a missing data root, a broken
file, an unknown name) end with one message and exit status 1 (2 for bad arguments), never a
Python traceback.
"""

from __future__ import annotations

import difflib
import importlib
import json
import logging
import os
import re
import shlex
import shutil
import signal
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path

from .. import cpu_pin
from ..config import ConfigError, get_paths, get_profile, repo_root, resolve_device
from ..data.layout import DatasetKey
from ..locks import Locked, WrongCheckout, check_checkout, code_root, hold
from ..predictions import missing_predictions
from ..train import is_trained
from . import stages as stage_table
from .cli import parse_args
from .jobs import SlurmOptions, TrainJob, auto_jobs, completed, failure_lines, make_executor
from ..progress import active as active_trainings
from ..progress import line as progress_line
from .notebooks import (STATUS, UserError, declared_params, ensure_kernel, fmt_seconds, git_commit, log,
                        notebook_stem, run_notebook)
from .overrides import parse_set

# Without a GPU a paper-profile run that trains more images than this stops unless --device cpu.
_CPU_IMAGES_LIMIT = 200_000


def resolve_only(only: str | None):
    """Split ``--only`` into stages and experiment names (unknown names are an error)."""
    from ..experiments import EXPERIMENTS

    names = stage_table.names()
    if not only:
        return list(stage_table.default_stages()), None
    stages, exps = [], []
    for tok in [t.strip() for t in only.split(",") if t.strip()]:
        if tok in names:
            stages.append(tok)
        elif tok in EXPERIMENTS:
            exps.append(tok)
        else:
            close = difflib.get_close_matches(tok, list(names) + list(EXPERIMENTS), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise UserError(f"--only: {tok!r} is neither a stage ({', '.join(names)}) nor an "
                            f"experiment{hint}; ./run_all.sh --list prints the experiments")
    if exps and not stages:
        stages = [_home_stage()]
    return [s for s in names if s in stages], exps or None


def _home_stage() -> str:
    """Where an experiment named in ``--only`` trains when its own stage is not chosen: the
    first stage of the table that trains."""
    return next(s.name for s in stage_table.STAGE_TABLE if s.trains)


def _library_function(ref: str):
    """``"module:function"`` of a stage record -> the function (imported when first needed)."""

    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


def stage_options(stage, sets: dict) -> dict:
    """A stage's own options from ``--set STAGE.NAME=VALUE`` (``Stage.options`` names them)."""
    out = {}
    for key, value in sets.items():
        name, _, opt = key.partition(".")
        if name == stage.name:
            if opt not in stage.options:
                raise UserError(f"--set {key}: stage {stage.name} has no option {opt!r}; its options: "
                                f"{', '.join(stage.options) or 'none'}")
            out[opt] = value
    return out


def stage_trainings(stages: list[str], only_exps: list[str] | None, profile, paths, seeds: int = 1,
                    sets: dict | None = None) -> dict[str, list]:
    """The trainings (``trainings.Training``) each chosen stage runs (``Stage.trains``), filtered
    by the experiment names of ``--only``: a stage keeps the named experiments it trains (an
    opt-in stage named in ``--only`` keeps all when none is named); a named experiment whose own
    stage is not chosen trains in the first stage that trains."""
    out, table = {}, stage_table.by_name()
    for s in stage_table.names():
        st = table[s]
        if not st.trains or (s not in stages and not only_exps):
            out[s] = []
            continue
        try:
            out[s] = _user_errors(_library_function(st.trains), profile, paths, seeds if st.seeded else 1,
                                  **stage_options(st, sets or {}))
        except UserError:
            if s in stages:
                raise
            out[s] = []              # a stage not chosen that this profile cannot run

    if only_exps:
        for s in out:
            picked = [t for t in out[s] if t.experiment.name in only_exps]
            out[s] = picked or (out[s] if table[s].opt_in and s in stages else [])
        home = _home_stage()
        have = {t.experiment.name for t in out[home]}
        # a named experiment of a stage not chosen, in its plain configuration (not another
        # stage's variant of it: a geometry side, a seed), trains in the home stage
        moved = [t for s in out if s not in stages and s != home for t in out[s]
                 if not t.overrides and t.experiment.name not in have]
        out[home] = out[home] + list({t.experiment.name: t for t in moved}.values())
        for s in out:
            if s not in stages and s != home:
                out[s] = []
    return out


def slurm_options(args):
    """``--slurm-*`` flags as ``jobs.SlurmOptions``."""

    extra = {}
    for item in args.slurm_opts:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--slurm-opt {item!r}: expected KEY=VALUE, e.g. --slurm-opt account=mylab")
        extra[key.strip().lstrip("-").replace("-", "_")] = value
    return SlurmOptions(partition=args.slurm_partition, gpus_per_job=args.slurm_gpus_per_job,
                        time_min=args.slurm_time, cpus_per_job=args.slurm_cpus_per_job, extra=extra)


def cli_overrides(args) -> tuple[dict, dict]:
    """(profile overrides, stage options) from ``--set``, ``--init`` and ``--weights`` (the two
    flags are shorthands for ``--set init=...`` and ``--set weights_dir=...``); a stage's own
    option is ``--set STAGE.OPTION=VALUE``."""
    try:
        out = parse_set(args.sets, stage_table.names())
    except ConfigError as exc:
        raise UserError(str(exc))
    sets = {k: out.pop(k) for k in list(out) if "." in k}
    if args.init is not None:
        from ..weights import INIT_POLICIES

        if args.init not in INIT_POLICIES and not Path(args.init).is_file():
            raise UserError(f"--init {args.init!r}: choose {', '.join(INIT_POLICIES)} or a checkpoint file")
        out["init"] = args.init
    if args.weights is not None:
        out["weights_dir"] = str(Path(args.weights).expanduser().resolve())
    return out, sets


def check_weights(exps, profile, paths) -> None:
    """Before any training: every weight file the chosen experiments start from is there
    (``init=paper``), else one line naming the first missing file."""
    from ..runs import experiment_init
    from ..weights import WeightsMissing

    for e in exps:
        try:
            experiment_init(e, profile, paths)
        except WeightsMissing as exc:
            raise UserError(str(exc))


def check_data(paths, exps):
    """Before any training: which experiments the data root can serve; the rest are skipped."""
    from ..data.layout import DatasetKey, split_exists

    if not paths.data_root.is_dir():
        raise UserError(f"data root {paths.data_root} does not exist (--data-root); "
                        "point it at a DOLOS dataset in the real layout, or leave it out to use "
                        "DOLOS-mini")
    ok, skipped = [], {}
    for e in exps:
        missing = [f"{paths.data_root}/{DatasetKey.parse(k).images_dir(Path(''), s)}"
                   for k, s in e.needs if not split_exists(paths.data_root, DatasetKey.parse(k), s)]
        if missing:
            skipped[e.name] = missing
        else:
            ok.append(e)
    return ok, skipped


def root_tag(data_root: str) -> str:
    """The tag a run on a data root of its own gets by default: ``root-<folder name>``."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(data_root).expanduser().resolve().name).strip("-.") or "data"
    return f"root-{name}"


def preflight_root(paths, exps) -> None:
    """Before any notebook: a data root with no image of the layout, one that serves none of the
    chosen experiments, or a split the experiments read whose images lack masks (or masks lack
    images) ends the run with one line per problem, naming the folder and what is missing."""
    from ..data.layout import all_keys, list_images

    root = paths.data_root
    present = [(k, s) for k in all_keys() for s in ("train", "valid", "test") if list_images(k.images_dir(root, s))]
    if not present:
        example = all_keys()[0].images_dir(root, "train")
        raise UserError(f"data root {root} holds no image in the DOLOS layout (none in any "
                        f"<source>/<real|fake>/<generator>/images/<split>/ folder, e.g. {example}); "
                        "the layout: docs/STUDY.md#the-data-dolos")
    if exps:
        runnable, skipped = check_data(paths, list(dict.fromkeys(exps)))
        if not runnable:
            first = next(iter(skipped.values()))
            have = ", ".join(f"{k}/{s}" for k, s in present[:4]) + (" ..." if len(present) > 4 else "")
            raise UserError(f"data root {root} serves none of the chosen experiments: it has {have}; "
                            f"for example {first[0]} is missing")
        needed = {(k, s) for e in runnable for k, s in e.needs}
        problems = []
        for key_text, split in sorted(needed):
            key = DatasetKey.parse(key_text)
            mdir = key.masks_dir(root, split)
            if mdir is None:
                continue
            images, masks = set(list_images(key.images_dir(root, split))), set(list_images(mdir))
            if not masks:
                problems.append(f"{mdir}: no masks for the {len(images)} images of {key_text}/{split}")
                continue
            problems += [f"{key.images_dir(root, split) / n}: image has no mask (expected {mdir / n})"
                         for n in sorted(images - masks)]
        if problems:
            more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
            raise UserError(f"data root {root} has {len(problems)} problem(s):\n  " + "\n  ".join(problems[:10]) + more)


def gpu_check_record(root: Path) -> dict | None:
    """``results/paper/gpu_check.json`` (written by ``benchmarks/gpu_check.py``), or None when no
    check has been run there."""
    f = root / "results" / "paper" / "gpu_check.json"
    return json.loads(f.read_text()) if f.exists() else None


def gpu_throughput(root: Path, precision: str = "fp32", key: str = "img_s") -> dict | None:
    """Measured steady training images per second per ``method-supervision`` on a GPU at
    ``precision`` (``key="once_s"``: the seconds a training pays once), from the GPU check's
    record (``gpu_check_record``), or None when there is none."""
    data = gpu_check_record(root) or {}
    out = {m: float(v[f"{precision}_{key}"]) for m, v in data.get("train", {}).items()
           if f"{precision}_{key}" in v}
    return out or None


# The share of a GPU's memory that concurrent trainings may fill by their measured peaks (the
# rest: the CUDA context of each process, the allocator's fragmentation).
GPU_MEMORY_SHARE = 0.8


def auto_trainings_per_gpu(record: dict | None, cases, gpu_gb: float | None) -> tuple[int, float, str]:
    """``--trainings-per-gpu auto``: (K trainings sharing one GPU, their measured aggregate speed-up
    over one training, why). K is the concurrency the GPU check measured fastest (aggregate
    training images/s of 1, 2 and 4 trainings at once, ``record["concurrency"]``), lowered until
    K times the largest measured peak memory of ``cases`` (``method-supervision`` keys) fits in
    ``GPU_MEMORY_SHARE`` of ``gpu_gb``. 1 when nothing was measured: nothing is guessed."""
    conc = (record or {}).get("concurrency") or {}
    rates = {int(k): float(v) for k, v in conc.get("img_s", {}).items()}
    if 1 not in rates:
        return 1, 1.0, "one training per GPU (no concurrency measured: run benchmarks/gpu_check.py on the GPU)"
    train = (record or {}).get("train", {})
    peaks = [float(v) for c in cases if (v := train.get(c, {}).get("peak_gb")) is not None]
    peak = max((x for x in peaks if x == x), default=float("nan"))     # NaN: not measured (a CPU check)
    best = max(rates, key=lambda k: (rates[k], -k))
    fits = best
    if gpu_gb and peak == peak and peak > 0:
        fits = max(1, min(best, int(GPU_MEMORY_SHARE * gpu_gb // peak)))
    k = max((c for c in rates if c <= fits), default=1)
    measured = ", ".join(f"{n} at once {rates[n]:.0f} img/s" for n in sorted(rates))
    why = f"{k} trainings per GPU: the GPU check measured {measured} ({conc.get('case', 'one case')})"
    if fits < best:
        why += f"; {best} would need {best} x {peak:.1f} GB of peak memory, over {GPU_MEMORY_SHARE:.0%} of {gpu_gb:.0f} GB"
    return k, rates[k] / rates[1], why


def training_images(exps, profile) -> dict[str, int]:
    """Images each experiment's training processes: epochs x iterations x batch."""
    from ..experiments import plan_for

    out = {}
    for e in exps:
        epochs, iters = plan_for(e, profile)
        out[e.name] = epochs * iters * profile.schedule(e.method, e.supervision).batch_size
    return out


def estimate_hours(exps, profile, throughput: dict | None, once: dict | None = None) -> dict[str, float] | None:
    """GPU hours of training per experiment: its images (``training_images``) over the
    measured steady throughput of its method (``throughput`` keyed ``method-supervision``),
    plus what a training pays once (``once``, seconds, the same keys; gpu_check measures both
    apart). None when any of them has no measurement: nothing here is guessed."""
    images = training_images(exps, profile)
    exps = list(exps)
    if not throughput or any(e.case not in throughput for e in exps):
        return None
    once = once or {}
    return {e.name: (images[e.name] / throughput[e.case] + once.get(e.case, 0.0)) / 3600 for e in exps}


def estimate_wallclock(hours: dict[str, float], slots: int, gpus_per_experiment: int = 1,
                       per_gpu: int = 1, speedup: float = 1.0) -> float:
    """Hours until the last of ``hours``' trainings ends when ``slots`` run at once, each
    started as soon as a slot is free, longest first (the greedy LPT schedule a job pool or a
    Slurm array gives); ``gpus_per_experiment`` > 1 divides each training's hours by that
    many GPUs (ideal DDP scaling: a lower bound on the time). ``per_gpu`` trainings sharing a
    GPU with a measured aggregate ``speedup`` over one each run ``per_gpu / speedup`` times
    longer than alone."""
    slow = per_gpu / speedup if per_gpu > 1 else 1.0
    load = [0.0] * max(1, slots)
    for h in sorted(hours.values(), reverse=True):
        load[load.index(min(load))] += h * slow / gpus_per_experiment
    return max(load)


def _interrupted(signum, frame):
    raise KeyboardInterrupt


def _stop_on_sigterm() -> None:
    """``kill PID`` (SIGTERM, what schedulers and ``timeout`` send) stops a run as Ctrl-C does:
    its training workers are stopped, finished work is kept, the same command resumes."""
    try:
        signal.signal(signal.SIGTERM, _interrupted)
    except ValueError:          # not the main thread (the runner called from another one)
        pass


def cpu_rates(root: Path) -> dict[str, tuple[float, int]]:
    """One-thread training (images/s, at input side) per ``method-supervision`` with the pinned
    kernels, from the committed ``results/mini/cpu_numerics.csv`` (``benchmarks/bench_cpu_numerics.py``);
    {} without it."""
    f = root / "results" / "mini" / "cpu_numerics.csv"
    if not f.exists():
        return {}
    import pandas as pd

    t = pd.read_csv(f)
    return {f"{r.method}-{r.supervision}": (float(r.img_per_s_pinned), int(getattr(r, "input_size", 96)))
            for r in t.itertuples()}


def list_plan(args) -> int:
    """``--list``: the checks the run itself makes (``--set``, the device, the executor, the data
    root), then every training of every stage under this profile, opt-in stages marked: its
    training images and its time where one is known (GPU hours measured by gpu_check on the
    paper profile; CPU minutes of computation from the committed one-thread rates otherwise)."""
    from ..experiments import EXPERIMENTS

    overrides, sets = cli_overrides(args)
    profile = _user_errors(get_profile, args.profile, **overrides)
    _user_errors(resolve_device, args.device)
    if args.executor == "slurm" and not shutil.which("sbatch"):
        raise UserError("--executor slurm: no Slurm here (sbatch is not on PATH); run on a cluster's "
                        "login node, or use --jobs N on one machine")
    if args.data_root is not None and not Path(args.data_root).expanduser().is_dir():
        raise UserError(f"data root {args.data_root} does not exist (--data-root)")
    paths = _user_errors(get_paths, args.profile, args.data_root, root=args.repo or repo_root(), tag=args.tag)
    rates = cpu_rates(repo_root()) if profile.build_sizes is not None else {}
    gpu = profile.build_sizes is None          # the paper profile: GPU hours from the GPU check, when run
    thr = gpu_throughput(repo_root(), profile.precision) if gpu else None
    once = gpu_throughput(repo_root(), profile.precision, "once_s") if gpu else None
    table = stage_table.by_name()
    log(f"# profile {profile.name}: every training of every stage (opt-in stages run only when named in "
        "--only); images = epochs x iterations x batch" + ("; minutes = those images at the one-thread "
                                                           "pinned CPU rate of results/mini/cpu_numerics.csv, "
                                                           "scaled by pixels to the input side (training steps "
                                                           "only: no validation, prediction or start-up)" if rates else ""))
    log("# stage\texperiment\tdescription\ttraining images" + ("\tCPU minutes (estimated)" if rates else "")
        + (("\tGPU hours (measured: results/paper/gpu_check.json)" if thr else
            "\tGPU hours (not measured: run benchmarks/gpu_check.py on the GPU)") if gpu else ""))
    for s in stage_table.names():
        st = table[s]
        if not st.trains:
            continue
        try:
            trains = _library_function(st.trains)(profile, paths, args.seeds if st.seeded else 1,
                                                  **stage_options(st, sets))
        except (ConfigError, UserError, ValueError) as exc:
            log(f"{s}\t-\tnot under this profile: {str(exc).splitlines()[0]}")
            continue
        mark = f" (opt-in: --only {s})" if st.opt_in else ""
        total_img = total_min = 0.0
        for t in trains:
            e = t.experiment
            img = training_images([e], t.profile)[e.name]
            label = e.name + (f" [{t.label}]" if t.label else "")
            minutes = None
            if e.case in rates:      # the measured rate, scaled by pixels to this training's input side
                rate, side = rates[e.case]
                minutes = img / (rate * (side / t.profile.input_size) ** 2) / 60
            total_img += img
            total_min += minutes or 0.0
            cells = f"\t{minutes:.1f}" if rates else ""
            if gpu:
                h = estimate_hours([e], t.profile, thr, once)
                cells += f"\t{h[e.name]:.2f}" if h else "\tnot measured"
            log(f"{s}{mark}\t{label}\t{e.description}\t{img:,}{cells}")
        log(f"# {s}{mark}: {len(trains)} trainings, {total_img / 1e6:.2f} M images"
            + (f", {total_min:.0f} CPU minutes of training steps" if rates else ""))
    if profile.name == "paper":
        paper = profile
        images = training_images(EXPERIMENTS.values(), paper)
        hours = estimate_hours(EXPERIMENTS.values(), paper, gpu_throughput(repo_root(), paper.precision),
                               gpu_throughput(repo_root(), paper.precision, "once_s")) or {}
        if images:
            trains = stage_trainings(list(stage_table.default_stages()), None, paper, paths)
            default = list(dict.fromkeys(t.experiment.name for ts in trains.values() for t in ts))
            line = (f"# the default stages train {len(default)} experiments on "
                    f"{sum(images[n] for n in default) / 1e6:.1f} M images")
            if hours:
                k = args.gpus_per_experiment
                flag = f" --gpus-per-experiment {k}" if k > 1 else ""
                dh = {n: hours[n] for n in default}
                counts = sorted({1, 2, 4, 8} | ({args.jobs} - {"auto"}))
                walls = "; ".join(f"{n * k} GPU{'s' if n * k > 1 else ''} (--jobs {n}{flag}) "
                                  f"{estimate_wallclock(dh, n, k):.1f} h" for n in counts)
                line += (f", {sum(dh.values()):.1f} GPU hours; wall-clock: {walls} (the longest training, "
                         f"{max(dh.values()):.1f} h, is the floor"
                         + (" for one GPU each" if k == 1 else ", divided by K under ideal DDP scaling") + ")")
                record = gpu_check_record(repo_root()) or {}
                per, speedup, why = auto_trainings_per_gpu(
                    record, {EXPERIMENTS[n].case for n in default},
                    record.get("gpu_total_gb"))
                if per > 1 and k == 1:
                    line += (f"; one GPU shared by {per} trainings (--trainings-per-gpu auto: {why}): "
                             f"{estimate_wallclock(dh, per, 1, per, speedup):.1f} h")
            else:
                line += "; hours not measured (benchmarks/gpu_check.py on the GPU gives them)"
            log(line)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    args.command = " ".join(["./run_all.sh", *(shlex.quote(a) for a in argv)])     # as the report names it
    if args.explain:
        from .explain import explain

        try:
            return explain(args.explain, args.profile, cli_overrides(args)[0], args.data_root, args.repo,
                           args.device, args.tag)
        except (UserError, ConfigError) as exc:
            log(f"error: {exc}")
            return 1
    if args.list:
        try:
            return list_plan(args)
        except UserError as exc:
            log(f"error: {exc}")
            return 1
        except BrokenPipeError:          # `--list | head`: the reader has what it wanted
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0

    _stop_on_sigterm()
    started: list = []
    try:
        with ExitStack() as held:
            return _run(args, held, started)
    except UserError as exc:
        log(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        # a notebook's kernel stopped mid-cell leaves asyncio tasks whose errors nobody reads:
        # they are not the user's to see
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
        log("\n" + interrupted_lines(started[0] if started else None, args.command))
        return 130


def interrupted_lines(study, command: str) -> str:
    """What an interrupted run kept and how to resume it."""
    lines = ["interrupted: finished work is kept"]
    if study is not None:
        done = [r["experiment"] for r in study.records if r.get("status") == "done"]
        stages = [s for s in study.stages if s in study.timings]
        if stages:
            lines.append(f"  stages finished: {', '.join(stages)}")
        if done:
            lines.append(f"  {len(done)} training(s) finished in this run and kept: {', '.join(done[:8])}"
                         + (" ..." if len(done) > 8 else ""))
        lines.append(f"  checkpoints and predictions: {study.paths.runs}; a training stopped mid-way resumes "
                     "from its last finished epoch")
    lines.append(f"  to resume: {command}")
    return "\n".join(lines)


def _run(args, held, started: list) -> int:
    """The study: every chosen stage in order, then what is still training, then the summary."""
    study = _StudyRun(args, held)
    started.append(study)
    for stage in study.stages:
        study.run_stage(stage)
    study.drain()
    return study.summary()


def _user_errors(fn, *args, **kw):
    """``fn(...)``, with a ConfigError turned into a one-line UserError."""

    try:
        return fn(*args, **kw)
    except ConfigError as exc:
        raise UserError(str(exc)) from None


class Monitor(threading.Thread):
    """The trainings in flight, from their progress files (``dolos_core.progress``): on a terminal
    one line each, redrawn in place every 2 s below the log, with the study's finished count; in a
    log file one ``progress:`` line every ``DOLOS_PROGRESS_EVERY`` seconds (default 60)."""

    def __init__(self, folder: Path, t_start: float):
        super().__init__(daemon=True, name="dolos-progress")
        self.folder, self.t_start = folder, t_start
        self.done = 0
        self.total = 0
        self.images: dict[str, int] = {}     # job name -> its training images
        self.images_done = 0
        self.t_first = None                  # when the first training was submitted
        self.halt = threading.Event()
        self.every = 2.0 if STATUS.tty() else float(os.environ.get("DOLOS_PROGRESS_EVERY", "60"))

    def submitted(self, names: list[str]) -> None:
        self.total += len(names)
        self.t_first = self.t_first or time.time()

    def finished(self, name: str) -> None:
        self.done += 1
        self.images_done += self.images.get(name, 0)

    def eta(self, live: list[dict]) -> str:
        """The study's trainings' ETA: the training images still to go at the pace so far."""
        total = sum(self.images.values())
        done = self.images_done + sum(p.get("images_done", 0) for p in live)
        if not total or not done or self.t_first is None:
            return ""
        spent = time.time() - self.t_first
        return f" · trainings ETA {fmt_seconds(spent * (total - done) / done)} ({100 * done / total:.0f}% of their images)"

    def lines(self) -> list[str]:
        live = active_trainings(self.folder)
        if not live:
            return []
        head = (f"-- {len(live)} training(s) in flight · {self.done}/{self.total} of this run's trainings "
                f"finished · {fmt_seconds(time.time() - self.t_start)} elapsed{self.eta(live)}")
        return [head] + [f"   {progress_line(p)}" for p in live]

    def run(self) -> None:
        while not self.halt.wait(self.every):
            try:
                lines = self.lines()
            except Exception:            # a progress file half-read: the next tick reads it whole
                continue
            if STATUS.tty():
                STATUS.show(lines)
            elif lines:
                log(f"progress: {self.done}/{self.total} finished{self.eta([])} · "
                    + " | ".join(t.strip() for t in lines[1:]))

    def stop(self) -> None:
        self.halt.set()
        STATUS.show([])


class _StudyRun:
    """One ``./run_all.sh``: its profile, paths, executor, the trainings in flight and timings."""

    def __init__(self, args, held) -> None:
        self.args, self.t_start = args, time.time()
        self.monitor: Monitor | None = None
        self.overrides, self.stage_sets = cli_overrides(args)
        self.profile = _user_errors(get_profile, args.profile, **self.overrides)
        # Every process this run starts (kernels, pool workers, Slurm jobs, torchrun ranks) computes
        # with these CPU kernels: pinned AVX2 (default) or native (--set cpu_numerics=native).
        cpu_pin.set_mode(self.profile.cpu_numerics)
        if args.data_root is not None and not args.tag and self.profile.build_sizes is not None:
            # a root of your own under smoke or mini: its tables never go where DOLOS-mini's committed ones are
            args.tag = root_tag(args.data_root)
            log(f"--data-root without --tag: tables and figures go to results/{args.profile}-{args.tag}/ "
                f"(results/{args.profile}/ holds DOLOS-mini's); --tag NAME chooses another name")
        self.paths = _user_errors(get_paths, args.profile, args.data_root, root=args.repo, tag=args.tag)
        self._claim(held)
        self.stages, only_exps = resolve_only(args.only)
        self.default_root = args.data_root is None
        if self.default_root and self.profile.build_sizes is None:
            raise UserError("the paper profile needs the real DOLOS data: add --data-root DIR")
        if not self.default_root and not self.paths.data_root.is_dir():
            raise UserError(f"data root {self.paths.data_root} does not exist (--data-root)")
        self.trains = stage_trainings(self.stages, only_exps, self.profile, self.paths, args.seeds,
                                      self.stage_sets)
        if not self.default_root:         # every bad root named before any notebook runs
            preflight_root(self.paths, [t.experiment for ts in self.trains.values() for t in ts])
        self._resolve_slots()
        log(f"DOLOS study · profile {self.profile.name} · data {self.paths.data_root} · device "
            f"{self.device} · stages {', '.join(self.stages)}")
        self._check_plan()
        ensure_kernel()
        self.common = {"profile": self.profile.name, "data_root": str(self.paths.data_root),
                       "device": args.device, "overrides": self.overrides, "tag": self.paths.tag}
        self.timings: dict[str, float] = {}
        self.skipped: dict[str, list[str]] = {}
        self.pending: dict[str, list] = {}   # stage -> handles of its trainings not yet waited for
        self.records: list[dict] = []
        # With parallel trainings, the time a stage spends waiting for another stage's
        # trainings is that other stage's time (the summary reads "train 18m", not "evaluate").
        self.waited: dict[str, float] = {}
        self.executor = self._executor(held)
        if any(self.trains.values()):
            self.monitor = Monitor(self.paths.runs / "progress", self.t_start)
            self.monitor.start()
            held.callback(self.monitor.stop)

    def _claim(self, held) -> None:
        """Every notebook kernel writes into this root and runs this checkout's code, whatever
        checkout the environment's dolos_core was installed from (both passed explicitly); one
        writer per profile, tag and checkout, released when this process ends."""

        paths = self.paths
        try:
            check_checkout(paths.root)
        except WrongCheckout as exc:
            raise UserError(str(exc))
        os.environ["DOLOS_REPO"] = str(paths.root)
        os.environ["PYTHONPATH"] = os.pathsep.join([str(code_root())] + [
            p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
        try:
            held.enter_context(hold(paths.runs / f"run_all-{paths.output_name}.lock",
                                    f"{paths.output_name} of {paths.root}", log=log))
        except Locked as exc:
            raise UserError(str(exc))
        self.device = _user_errors(resolve_device, self.args.device)

    def _resolve_slots(self) -> None:
        """``--trainings-per-gpu auto`` (on CUDA with the job pool: ``auto_trainings_per_gpu`` over
        the trainings chosen; else 1), then ``--jobs auto`` (``jobs.auto_jobs``)."""
        args = self.args
        self.speedup = 1.0
        if args.trainings_per_gpu == "auto":
            args.trainings_per_gpu = 1
            if self.device.type == "cuda" and args.executor == "pool" and args.gpus_per_experiment == 1:
                import torch

                cases = {t.experiment.case for s in self.stages for t in self.trains[s]}
                gb = torch.cuda.get_device_properties(self.device).total_memory / 2**30
                k, self.speedup, why = auto_trainings_per_gpu(gpu_check_record(self.paths.root), cases, gb)
                args.trainings_per_gpu = k
                log(f"--trainings-per-gpu auto: {why}")
        if args.jobs == "auto":
            args.jobs = auto_jobs(args.executor, self.device.type, args.gpus_per_experiment, args.trainings_per_gpu)

    def _check_plan(self) -> None:
        """Starting weights present; for the paper profile, the plan and its hours (and a stop
        when it would train millions of images on a CPU by accident)."""
        args, profile, paths, stages = self.args, self.profile, self.paths, self.stages
        chosen = [t for s in stages for t in self.trains[s]]
        check_weights(list({t.experiment.name: t.experiment for t in chosen}.values()), profile, paths)
        # the plan reads each experiment once (its first seed): what the default stages train
        exps = list({t.experiment.name: t.experiment for t in chosen if t.profile.seed == profile.seed}.values())
        if profile.name != "paper" or not exps:
            return
        on_gpu = self.device.type == "cuda" or args.executor == "slurm"    # Slurm: the jobs' GPUs
        images = training_images(exps, profile)
        per_exp = estimate_hours(exps, profile, gpu_throughput(paths.root, profile.precision),
                                 gpu_throughput(paths.root, profile.precision, "once_s"))
        capped = f", capped at {profile.max_iters} iterations each" if profile.max_iters else ""
        when = "time not measured (benchmarks/gpu_check.py on the GPU measures it)"
        if per_exp:
            when = f"{sum(per_exp.values()):.1f} GPU hours at the measured rate (results/paper/gpu_check.json)"
            if args.jobs > 1 or args.gpus_per_experiment > 1:
                k = args.trainings_per_gpu
                wall = estimate_wallclock(per_exp, args.jobs, args.gpus_per_experiment, k, self.speedup)
                when += (f"; {wall:.1f} h of wall-clock with --jobs {args.jobs} --gpus-per-experiment "
                         f"{args.gpus_per_experiment}" + (f" --trainings-per-gpu {k} (measured aggregate "
                                                          f"{self.speedup:.2f}x of one)" if k > 1 else ""))
        n_images = sum(images.values())
        log(f"plan: {len(exps)} experiments at the paper's schedules{capped}, "
            f"{n_images / 1e6:.2f} M training images at {profile.precision}; {when}")
        if not on_gpu and args.device != "cpu" and not args.yes and n_images > _CPU_IMAGES_LIMIT:
            raise UserError(f"no GPU: the paper profile trains {n_images / 1e6:.1f} M images at "
                            f"{profile.input_size} px. Add --device cpu to go on anyway, or run on a CUDA machine.")

    def _executor(self, held):
        args = self.args
        try:
            executor = make_executor(args.executor, args.jobs, args.gpus_per_experiment, self.device.type,
                                     self.paths, slurm_options(args), args.trainings_per_gpu)
        except (ValueError, ImportError, RuntimeError) as exc:
            raise UserError(str(exc))
        held.callback(executor.close)   # interrupted or stopped: running trainings stop (they resume)
        if executor.name != "serial":
            log(f"trainings: {executor.describe}")
        return executor

    # -- trainings ---------------------------------------------------------------------------

    def training_jobs(self, stage: str, trainings) -> list:
        """The unfinished ``trainings`` of ``stage`` (notebook 02 each, with the training's own
        overrides over the study's: a seed, an input side); finished ones are skipped unless
        ``--force``. Trainings are counted per label (``seed 1``, ``160 px, seed 0``)."""
        args, out = self.args, []
        groups: dict[str, list] = {}
        for t in trainings:
            groups.setdefault(t.label, []).append(t)
        for label, group in groups.items():
            name = stage + (f", {label}" if label else "")
            runnable = self._runnable(group[0].paths, [t.experiment for t in group])
            todo = [t for t in group if t.experiment in runnable]
            for i, t in enumerate(todo, 1):
                e, prof, run_paths = t.experiment, t.profile, t.paths
                finished = is_trained(run_paths, e, prof) and not missing_predictions(run_paths, e, prof)
                if finished and not args.force and not args.rerun_notebooks:
                    log(f"  [{name} {i}/{len(todo)}] {e.name}: done, skipped")
                    continue
                params = {**self.common, "overrides": {**self.overrides, **t.overrides},
                          "data_root": str(run_paths.data_root)}
                if self.monitor is not None:   # what the study's ETA weighs each training by
                    self.monitor.images[f"{stage_table.TRAIN_NOTEBOOK}-{e.name}{t.suffix}"] = \
                        training_images([e], prof)[e.name]
                out.append(TrainJob(f"{stage_table.TRAIN_NOTEBOOK}-{e.name}{t.suffix}", e.name, f"{name} {i}/{len(todo)}",
                                    {**params, "experiment": e.name, "force": bool(args.force),
                                     "gpus": args.gpus_per_experiment},
                                    str(self.paths.root), str(code_root()), self.profile.name, self.paths.tag,
                                    str(run_paths.data_root), stage_name=stage))
        return out

    def _runnable(self, run_paths, exps) -> list:
        """``exps`` whose data is there; the others are logged and listed as skipped."""
        runnable, skip = check_data(run_paths, exps)
        self.skipped.update(skip)
        for name, missing in skip.items():
            log(f"  skip {name}: data missing: {missing[0]}" + (f" (+{len(missing) - 1} more)" if len(missing) > 1 else ""))
        if exps and not runnable:
            first = next(iter(skip.values()))
            raise UserError(f"data root {run_paths.data_root} serves none of the chosen experiments; "
                            f"for example {first[0]} is missing")
        return runnable

    def stage_jobs(self, stage: str) -> list:
        st = stage_table.by_name()[stage]
        if st.prepare:
            _user_errors(_library_function(st.prepare), self.profile, self.paths,
                         **stage_options(st, self.stage_sets))
        return self.training_jobs(stage, self.trains[stage])

    def submit(self, stage: str) -> None:
        jobs = self.stage_jobs(stage)
        executor = self.executor
        if executor.eager and jobs:
            log(f"  submitted {len(jobs)} training(s) of stage {stage}: {', '.join(j.experiment for j in jobs)}")
        if self.monitor is not None:
            self.monitor.submitted([j.name for j in jobs])
        handles = executor.submit(jobs)
        if executor.eager:
            self.pending[stage] = handles
            return
        self.pending[stage] = []          # one at a time: each trains now, in this process
        for h in handles:
            log(f"  [{h.job.stage}] {h.job.experiment}: training")
            self.collect([h])

    def collect(self, handles) -> None:
        for h in completed(handles):
            rec = h.result()
            self.records.append(rec)
            if self.monitor is not None:
                self.monitor.finished(h.job.name)
            if rec["status"] == "done":
                where = "" if self.executor.name == "serial" else f" on {rec['host']} ({rec['where']})"
                log(f"  [{h.job.stage}] {h.job.experiment}: finished in {fmt_seconds(rec['seconds'])}{where}")
            else:
                log(f"  [{h.job.stage}] {h.job.experiment}: FAILED after {fmt_seconds(rec['seconds'])}: "
                    + failure_lines(rec))

    def wait_for(self, stage: str) -> None:
        """Wait for the trainings of ``stage`` and of every stage it reads (``Stage.after``)."""
        todo, seen = [stage], set()
        while todo:
            s = todo.pop()
            if s in seen:
                continue
            seen.add(s)
            todo += list(stage_table.by_name()[s].after)
            if self.pending.get(s):
                handles, self.pending[s] = self.pending[s], []
                t = time.time()
                self.collect(handles)
                self.waited[s] = self.waited.get(s, 0.0) + time.time() - t

    def credit(self, stage: str, t0: float, before: dict) -> None:
        moved = {s: self.waited[s] - before.get(s, 0.0) for s in self.waited if s != stage}
        self.timings[stage] = self.timings.get(stage, 0.0) + time.time() - t0 - sum(moved.values())
        for s, dt in moved.items():
            self.timings[s] = self.timings.get(s, 0.0) + dt
        _save_timings(self.paths, self.timings)

    # -- stages ------------------------------------------------------------------------------

    def run_stage(self, stage: str) -> None:
        """Submit the stage's trainings (a parallel executor: every chosen stage's at once),
        wait for what its notebooks read, run them, then the report or publication."""
        t0, before = time.time(), dict(self.waited)
        log(f"== stage {stage}")
        table = stage_table.by_name()
        st = table[stage]
        if st.trains is not None and stage not in self.pending:
            if not self.paths.data_root.is_dir():
                raise UserError(f"data root {self.paths.data_root} does not exist: run the data stage "
                                "first (./run_all.sh --only data)")
            for s in ([x for x in self.stages if table[x].trains is not None and x not in self.pending]
                      if self.executor.eager else [stage]):
                self.submit(s)
        if st.notebooks or st.writes:
            self.wait_for(stage)
        values = {"build": self.default_root, "force": bool(self.args.force), "seeds": self.args.seeds,
                  **stage_options(st, self.stage_sets)}
        for nb in st.notebooks:
            declared = declared_params(nb)
            extra = {k: values[k] for k in (*st.params, *st.options) if k in values and k in declared}
            sec = run_notebook(nb, notebook_stem(nb), {**self.common, **extra}, self.paths, stage=stage)
            log(f"  {notebook_stem(nb)} finished in {fmt_seconds(sec)}")
        if st.writes == "report":
            self._report()
        if st.writes == "publish":
            self._publish()
        self.credit(stage, t0, before)

    def _report(self) -> None:
        from .report import write_report

        timings_now = {**_load_timings(self.paths), **self.timings}
        path = write_report(self.paths, self.profile, timings_now, self.skipped,
                            getattr(self.args, "command", None))
        log(f"  wrote {path}")

    def _publish(self) -> None:
        from .publish import publish

        done = publish(self.paths, self.profile.name, git_commit(code_root()), self.overrides, self.stages)
        log(f"  published {len(done)} notebooks to {self.paths.results / 'notebooks'}; "
            f"open {self.paths.results / 'html' / 'index.html'}")

    def drain(self) -> None:
        """Wait for trainings no chosen notebook reads (e.g. ``--only train``)."""
        for s in list(self.pending):
            if self.pending[s]:
                t0, before = time.time(), dict(self.waited)
                self.wait_for(s)
                self.credit(s, t0, before)

    def summary(self) -> int:
        """Time per stage, trainings, where the outputs are, the headline; 1 if any failed."""

        total, paths = time.time() - self.t_start, self.paths
        log("\n== summary")
        for stage, sec in self.timings.items():
            log(f"  {stage:<11} {fmt_seconds(sec)}")
        log(f"  {'total':<11} {fmt_seconds(total)}")
        if self.skipped:
            log(f"  skipped experiments (data missing): {', '.join(self.skipped)}")
        records = self.records
        if records and self.executor.name != "serial":
            log(f"  trainings ({self.executor.name}): {sum(r['seconds'] for r in records) / 3600:.2f} h of "
                f"training in {fmt_seconds(total)} of wall-clock")
            for r in sorted(records, key=lambda r: r["name"]):
                log(f"    {r['experiment']:<34} {r['status']:<6} {fmt_seconds(r['seconds']):>7}  {r['host']} ({r['where']})"
                    + (f"  log {r['log']}" if r["status"] != "done" else ""))
        failed = [r for r in records if r["status"] != "done"]
        log(f"  tables:   {paths.results}")
        log(f"  figures:  {paths.figures}")
        report = paths.results / "REPORT.md"
        if report.exists():
            log(f"  report:   {report}")
        for line in _headline(paths):
            log(f"  {line}")
        if failed:
            log(f"\n{len(failed)} training(s) failed; the others finished and are kept:")
            for r in failed:
                log(f"  {r['experiment']}: {failure_lines(r)}")
            log("fix the cause and run the same command again: only what is unfinished runs")
            return 1
        return 0


def _timings_path(paths) -> Path:
    return paths.runs / "timings.json"


def _load_timings(paths) -> dict:
    p = _timings_path(paths)
    return json.loads(p.read_text()) if p.exists() else {}


def _save_timings(paths, timings: dict) -> None:
    from ..io import write_json

    write_json(_timings_path(paths), {**_load_timings(paths), **{k: round(v, 1) for k, v in timings.items()}})


def _headline(paths) -> list[str]:
    import pandas as pd

    f = paths.results / "table2.csv"
    if not f.exists():
        return []
    df = pd.read_csv(f).set_index("experiment")
    from ..models import methods

    out = ["headline (Table 2, IoU-lg %):"]
    for m in methods():
        cells = []
        for s in "ABC":
            v = df["iou"].get(f"{m}-{s}", float("nan"))
            cells.append(f"{s} {v:5.1f}" if v == v else f"{s} missing")
        out.append(f"  {m:<9} " + "  ".join(cells))
    return out


if __name__ == "__main__":
    sys.exit(main())
