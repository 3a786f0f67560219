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
import json
import os
import shlex
import sys
import time
from pathlib import Path

from .cli import parse_args
from .notebooks import NOTEBOOK_DIR, UserError, _fmt, check_notebook_params, ensure_kernel, log, run_notebook  # noqa: F401
from .stages import BY_NAME, DEFAULT_STAGES, STAGES

# Without a GPU a paper-profile run that trains more images than this stops unless --device cpu.
_CPU_IMAGES_LIMIT = 200_000


def resolve_only(only: str | None):
    """Split ``--only`` into stages and experiment names (unknown names are an error)."""
    from ..experiments import EXPERIMENTS

    if not only:
        return list(DEFAULT_STAGES), None
    stages, exps = [], []
    for tok in [t.strip() for t in only.split(",") if t.strip()]:
        if tok in STAGES:
            stages.append(tok)
        elif tok in EXPERIMENTS:
            exps.append(tok)
        else:
            close = difflib.get_close_matches(tok, list(STAGES) + list(EXPERIMENTS), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise UserError(f"--only: {tok!r} is neither a stage ({', '.join(STAGES)}) nor an "
                            f"experiment{hint}; ./run_all.sh --list prints the experiments")
    if exps and not stages:
        stages = ["train"]
    return [s for s in STAGES if s in stages], exps or None


def stage_experiments(stages: list[str], only_exps: list[str] | None) -> dict[str, list]:
    """The experiments each stage trains (``Stage.trains``), filtered by the experiment names
    of ``--only``. A named experiment whose own stage is not chosen trains in ``train``."""
    from ..experiments import EXPERIMENTS, PAPER_GROUPS, SCALING_RUNS
    from ..geometry import EXPERIMENTS as GEOMETRY_RUNS

    pools = {"paper": [e for e in EXPERIMENTS.values() if e.group in PAPER_GROUPS],
             "loss-variants": [e for e in EXPERIMENTS.values() if e.group == "loss-variants"],
             "scaling": [EXPERIMENTS[n] for n in SCALING_RUNS],
             "geometry": [EXPERIMENTS[n] for n in GEOMETRY_RUNS]}
    out = {s: list(pools[BY_NAME[s].trains]) if BY_NAME[s].trains else [] for s in STAGES}
    if only_exps:
        for s in out:
            picked = [e for e in out[s] if e.name in only_exps]
            out[s] = picked or (out[s] if s in ("scaling", "geometry") else [])
        moved = [e for s in ("extensions", "scaling") if s not in stages for e in out[s]
                 if e.name in only_exps and e.group != "table2"]
        out["train"] = out["train"] + [e for e in moved if e not in out["train"]]
    return out


def slurm_options(args):
    """``--slurm-*`` flags as ``jobs.SlurmOptions``."""
    from .jobs import SlurmOptions

    extra = {}
    for item in args.slurm_opts:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--slurm-opt {item!r}: expected KEY=VALUE, e.g. --slurm-opt account=mylab")
        extra[key.strip().lstrip("-").replace("-", "_")] = value
    return SlurmOptions(partition=args.slurm_partition, gpus_per_job=args.slurm_gpus_per_job,
                        time_min=args.slurm_time, cpus_per_job=args.slurm_cpus_per_job, extra=extra)


def cli_overrides(args) -> dict:
    """Profile overrides from ``--set``, ``--init`` and ``--weights`` (the two flags are
    shorthands for ``--set init=...`` and ``--set weights_dir=...``)."""
    from ..config import ConfigError, parse_set

    try:
        out = parse_set(args.sets)
    except ConfigError as exc:
        raise UserError(str(exc))
    if args.init is not None:
        from ..weights import INIT_POLICIES

        if args.init not in INIT_POLICIES and not Path(args.init).is_file():
            raise UserError(f"--init {args.init!r}: choose {', '.join(INIT_POLICIES)} or a checkpoint file")
        out["init"] = args.init
    if args.weights is not None:
        out["weights_dir"] = str(Path(args.weights).expanduser().resolve())
    return out


def check_weights(exps, profile, paths) -> None:
    """Before any training: every weight file the chosen experiments start from is there
    (``init=paper``), else one line naming the first missing file."""
    from ..train import experiment_init
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


def gpu_throughput(root: Path, precision: str = "fp32") -> dict | None:
    """Measured training images per second per ``method-supervision`` on a GPU at
    ``precision``, from ``results/paper/gpu_check.json`` (written by
    ``benchmarks/gpu_check.py``), or None when no check has been run there."""
    f = root / "results" / "paper" / "gpu_check.json"
    if not f.exists():
        return None
    data = json.loads(f.read_text())
    out = {m: float(v[f"{precision}_img_s"]) for m, v in data.get("train", {}).items()
           if f"{precision}_img_s" in v}
    return out or None


def training_images(exps, profile) -> dict[str, int]:
    """Images each experiment's training processes: epochs x iterations x batch."""
    from ..experiments import plan_for

    out = {}
    for e in exps:
        epochs, iters = plan_for(e, profile)
        out[e.name] = epochs * iters * profile.schedule(e.method, e.supervision).batch_size
    return out


def estimate_hours(exps, profile, throughput: dict | None) -> dict[str, float] | None:
    """GPU hours of training per experiment: its images (``training_images``) over the
    measured throughput of its method (``throughput`` keyed ``method-supervision``). None
    when any of them has no measurement: nothing here is guessed."""
    images = training_images(exps, profile)
    exps = list(exps)
    if not throughput or any(f"{e.method}-{e.supervision}" not in throughput for e in exps):
        return None
    return {e.name: images[e.name] / throughput[f"{e.method}-{e.supervision}"] / 3600 for e in exps}


def estimate_wallclock(hours: dict[str, float], slots: int, gpus_per_experiment: int = 1) -> float:
    """Hours until the last of ``hours``' trainings ends when ``slots`` run at once, each
    started as soon as a slot is free, longest first (the greedy LPT schedule a job pool or a
    Slurm array gives); ``gpus_per_experiment`` > 1 divides each training's hours by that
    many GPUs (ideal DDP scaling: a lower bound on the time)."""
    load = [0.0] * max(1, slots)
    for h in sorted(hours.values(), reverse=True):
        load[load.index(min(load))] += h / gpus_per_experiment
    return max(load)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    args.command = " ".join(["./run_all.sh", *(shlex.quote(a) for a in argv)])     # as the report names it
    from ..experiments import EXPERIMENTS

    if args.list:
        hours = images = {}
        if args.profile == "paper":       # the images (and, when measured, GPU hours) of each experiment
            from ..config import get_profile, repo_root

            paper = get_profile("paper")
            images = training_images(EXPERIMENTS.values(), paper)
            hours = estimate_hours(EXPERIMENTS.values(), paper, gpu_throughput(repo_root(), paper.precision)) or {}
            log("# experiment\tdescription\ttraining images\tGPU hours ("
                + ("measured: results/paper/gpu_check.json" if hours else
                   "not measured: run benchmarks/gpu_check.py on the GPU") + ")")
        for e in EXPERIMENTS.values():
            log(f"{e.name}\t{e.description}" + (f"\t{images[e.name]:,}\t" if images else "")
                + ((f"{hours[e.name]:.1f}" if hours else "not measured") if images else ""))
        if images:
            trains = stage_experiments(list(DEFAULT_STAGES), None)
            default = [e.name for s in ("train", "extensions") for e in trains[s]]
            line = (f"# the default stages train {len(default)} experiments on "
                    f"{sum(images[n] for n in default) / 1e6:.1f} M images")
            if hours:
                k = args.gpus_per_experiment
                flag = f" --gpus-per-experiment {k}" if k > 1 else ""
                dh = {n: hours[n] for n in default}
                walls = "; ".join(f"{n * k} GPU{'s' if n * k > 1 else ''} (--jobs {n}{flag}) "
                                  f"{estimate_wallclock(dh, n, k):.1f} h" for n in sorted({1, 2, 4, 8, args.jobs}))
                line += (f", {sum(dh.values()):.1f} GPU hours; wall-clock: {walls} (the longest training, "
                         f"{max(dh.values()):.1f} h, is the floor"
                         + (" for one GPU each" if k == 1 else ", divided by K under ideal DDP scaling") + ")")
            else:
                line += "; hours not measured (benchmarks/gpu_check.py on the GPU gives them)"
            log(line)
        return 0
    from contextlib import ExitStack

    try:
        with ExitStack() as held:
            return _run(args, held)
    except UserError as exc:
        log(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        log("\ninterrupted: finished work is kept; run the same command again to resume")
        return 130


def _run(args, held) -> int:
    """The study: every chosen stage in order, then what is still training, then the summary."""
    study = _StudyRun(args, held)
    for stage in study.stages:
        study.run_stage(stage)
    study.drain()
    return study.summary()


def _user_errors(fn, *args, **kw):
    """``fn(...)``, with a ConfigError turned into a one-line UserError."""
    from ..config import ConfigError

    try:
        return fn(*args, **kw)
    except ConfigError as exc:
        raise UserError(str(exc)) from None


class _StudyRun:
    """One ``./run_all.sh``: its profile, paths, executor, the trainings in flight and timings."""

    def __init__(self, args, held) -> None:
        from ..config import get_paths, get_profile

        self.args, self.t_start = args, time.time()
        self.overrides = cli_overrides(args)
        self.profile = _user_errors(get_profile, args.profile, **self.overrides)
        self.paths = _user_errors(get_paths, args.profile, args.data_root, root=args.repo, tag=args.tag)
        self._claim(held)
        self.stages, only_exps = resolve_only(args.only)
        self.default_root = args.data_root is None
        if self.default_root and self.profile.build_sizes is None:
            raise UserError("the paper profile needs the real DOLOS data: add --data-root DIR")
        if not self.default_root and not self.paths.data_root.is_dir():
            raise UserError(f"data root {self.paths.data_root} does not exist (--data-root)")
        self.trains = stage_experiments(self.stages, only_exps)
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

    def _claim(self, held) -> None:
        """Every notebook kernel writes into this root and runs this checkout's code, whatever
        checkout the environment's dolos_core was installed from (both passed explicitly); one
        writer per profile, tag and checkout, released when this process ends."""
        from ..config import resolve_device
        from ..locks import Locked, WrongCheckout, check_checkout, code_root, hold

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

    def _check_plan(self) -> None:
        """Starting weights present; for the paper profile, the plan and its hours (and a stop
        when it would train millions of images on a CPU by accident)."""
        args, profile, paths, stages = self.args, self.profile, self.paths, self.stages
        paper_exps, ext_exps = self.trains["train"], self.trains["extensions"]
        if {"train", "extensions", "scaling"} & set(stages):
            check_weights(paper_exps + ext_exps + (self.trains["scaling"] if "scaling" in stages else []),
                          profile, paths)
        if profile.name != "paper" or not {"train", "extensions"} & set(stages):
            return
        on_gpu = self.device.type == "cuda" or args.executor == "slurm"    # Slurm: the jobs' GPUs
        images = training_images(paper_exps + ext_exps, profile)
        per_exp = estimate_hours(paper_exps + ext_exps, profile, gpu_throughput(paths.root, profile.precision))
        capped = f", capped at {profile.max_iters} iterations each" if profile.max_iters else ""
        when = "time not measured (benchmarks/gpu_check.py on the GPU measures it)"
        if per_exp:
            when = f"{sum(per_exp.values()):.1f} GPU hours at the measured rate (results/paper/gpu_check.json)"
            if args.jobs > 1 or args.gpus_per_experiment > 1:
                when += (f"; {estimate_wallclock(per_exp, args.jobs, args.gpus_per_experiment):.1f} h of "
                         f"wall-clock with --jobs {args.jobs} --gpus-per-experiment {args.gpus_per_experiment}")
        n_images = sum(images.values())
        log(f"plan: {len(paper_exps) + len(ext_exps)} experiments at the paper's schedules{capped}, "
            f"{n_images / 1e6:.2f} M training images at {profile.precision}; {when}")
        if not on_gpu and args.device != "cpu" and not args.yes and n_images > _CPU_IMAGES_LIMIT:
            raise UserError(f"no GPU: the paper profile trains {n_images / 1e6:.1f} M images at "
                            f"{profile.input_size} px. Add --device cpu to go on anyway, or run on a CUDA machine.")

    def _executor(self, held):
        from .jobs import make_executor

        args = self.args
        try:
            executor = make_executor(args.executor, args.jobs, args.gpus_per_experiment, self.device.type,
                                     self.paths, slurm_options(args))
        except (ValueError, ImportError, RuntimeError) as exc:
            raise UserError(str(exc))
        held.callback(executor.close)   # interrupted or stopped: running trainings stop (they resume)
        if executor.name != "serial":
            log(f"trainings: {executor.describe}")
        return executor

    # -- trainings ---------------------------------------------------------------------------

    def training_jobs(self, stage: str, exps, seed_offset: int = 0, point=None) -> list:
        """The unfinished trainings of ``exps`` (notebook 02 each) under the profile, its seed
        moved by ``seed_offset`` (``--seeds``: each seed is its own configuration, so its own
        run), or under a geometry ``point`` (its side, seed and data root); finished ones are
        skipped unless ``--force``."""
        from ..locks import code_root
        from ..predictions import missing_predictions
        from ..train import is_trained
        from .jobs import TrainJob

        args, prof, run_paths, extra, suffix = self.args, self.profile, self.paths, {}, ""
        if seed_offset:
            prof = self.profile.replace(seed=self.profile.seed + seed_offset)
            extra, suffix = {"seed": prof.seed}, f"-seed{prof.seed}"
        if point is not None:
            prof, run_paths = point.profile, point.paths
            extra = {"image_size": point.size, "input_size": point.size, "seed": point.seed}
            suffix = f"-{point.size}px-seed{point.seed}"
        params = {**self.common, "overrides": {**self.overrides, **extra}, "data_root": str(run_paths.data_root)}
        label = stage if stage in ("scaling", "geometry") else "train"
        label += f", {point.size} px" if point is not None else ""
        label += f", seed {prof.seed}" if extra else ""
        runnable = self._runnable(run_paths, exps)
        out = []
        for i, e in enumerate(runnable, 1):
            finished = is_trained(run_paths, e, prof) and not missing_predictions(run_paths, e, prof)
            if finished and not args.force and not args.rerun_notebooks:
                log(f"  [{label} {i}/{len(runnable)}] {e.name}: done, skipped")
                continue
            out.append(TrainJob(f"02_train-{e.name}{suffix}", e.name, f"{label} {i}/{len(runnable)}",
                                {**params, "experiment": e.name, "force": bool(args.force),
                                 "gpus": args.gpus_per_experiment},
                                str(self.paths.root), str(code_root()), self.profile.name, self.paths.tag,
                                str(run_paths.data_root)))
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
        if stage == "geometry":
            from .. import geometry

            pts = _user_errors(geometry.points, self.profile, self.paths)
            geometry.build_data(self.profile, self.paths)
            return [j for pt in pts for j in self.training_jobs(stage, self.trains[stage], point=pt)]
        jobs = self.training_jobs(stage, self.trains[stage])
        if stage == "train":      # every experiment a claim reads (Table 2, Table 3, Figure 6)
            for k in range(1, self.args.seeds):
                jobs += self.training_jobs(stage, self.trains[stage], k)
        return jobs

    def submit(self, stage: str) -> None:
        jobs = self.stage_jobs(stage)
        executor = self.executor
        if executor.eager and jobs:
            log(f"  submitted {len(jobs)} training(s) of stage {stage}: {', '.join(j.experiment for j in jobs)}")
        handles = executor.submit(jobs)
        if executor.eager:
            self.pending[stage] = handles
            return
        self.pending[stage] = []          # one at a time: each trains now, in this process
        for h in handles:
            log(f"  [{h.job.stage}] {h.job.experiment}: training")
            self.collect([h])

    def collect(self, handles) -> None:
        from .jobs import completed, failure_lines

        for h in completed(handles):
            rec = h.result()
            self.records.append(rec)
            if rec["status"] == "done":
                where = "" if self.executor.name == "serial" else f" on {rec['host']} ({rec['where']})"
                log(f"  [{h.job.stage}] {h.job.experiment}: finished in {_fmt(rec['seconds'])}{where}")
            else:
                log(f"  [{h.job.stage}] {h.job.experiment}: FAILED after {_fmt(rec['seconds'])}: "
                    + failure_lines(rec))

    def wait_for(self, stage: str) -> None:
        """Wait for the trainings of ``stage`` and of every stage it reads (``Stage.after``)."""
        todo, seen = [stage], set()
        while todo:
            s = todo.pop()
            if s in seen:
                continue
            seen.add(s)
            todo += list(BY_NAME[s].after)
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
        st = BY_NAME[stage]
        if st.trains is not None and stage not in self.pending:
            if not self.paths.data_root.is_dir():
                raise UserError(f"data root {self.paths.data_root} does not exist: run the data stage "
                                "first (./run_all.sh --only data)")
            for s in ([x for x in self.stages if BY_NAME[x].trains is not None and x not in self.pending]
                      if self.executor.eager else [stage]):
                self.submit(s)
        if st.notebooks or stage in ("report", "publish"):
            self.wait_for(stage)
        for nb in st.notebooks:
            extra = {"build": self.default_root, "force": bool(self.args.force)} if stage == "data" else {}
            if nb in ("03_main_table", "04_cross_dataset", "05_cross_generator"):
                extra = {"seeds": self.args.seeds}
            sec = run_notebook(nb, nb, {**self.common, **extra}, self.paths)
            log(f"  {nb} finished in {_fmt(sec)}")
        if stage == "report":
            self._report()
        if stage == "publish":
            self._publish()
        self.credit(stage, t0, before)

    def _report(self) -> None:
        from .report import write_report

        timings_now = {**_load_timings(self.paths), **self.timings}
        path = write_report(self.paths, self.profile, timings_now, self.skipped,
                            getattr(self.args, "command", None))
        log(f"  wrote {path}")

    def _publish(self) -> None:
        from ..locks import code_root
        from .publish import publish
        from .report import _git

        done = publish(self.paths, self.profile.name, _git(code_root()), self.overrides, self.stages)
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
        from .jobs import failure_lines

        total, paths = time.time() - self.t_start, self.paths
        log("\n== summary")
        for stage, sec in self.timings.items():
            log(f"  {stage:<11} {_fmt(sec)}")
        log(f"  {'total':<11} {_fmt(total)}")
        if self.skipped:
            log(f"  skipped experiments (data missing): {', '.join(self.skipped)}")
        records = self.records
        if records and self.executor.name != "serial":
            log(f"  trainings ({self.executor.name}): {sum(r['seconds'] for r in records) / 3600:.2f} h of "
                f"training in {_fmt(total)} of wall-clock")
            for r in sorted(records, key=lambda r: r["name"]):
                log(f"    {r['experiment']:<34} {r['status']:<6} {_fmt(r['seconds']):>7}  {r['host']} ({r['where']})"
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
