"""``./run_all.sh``: the study as stages of papermill notebooks, resumable, with a summary.

The stages are a table (``dolos_core.runner.stages``): each trains its experiments (notebook 02 once
per experiment) and then runs its notebooks; the command line is ``dolos_core.runner.cli``, what a run
will do (stages, trainings, checks, estimates, ``--list``) ``dolos_core.runner.plan``, and this module
the scheduler that runs it. A finished
experiment (checkpoint and predictions on disk) is skipped unless ``--force``; an interrupted
training resumes from its last epoch. Errors the user can fix (a missing data root, a broken
file, an unknown name) end with one message and exit status 1 (2 for bad arguments), never a
Python traceback.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import signal
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path

from .. import cpu_pin
from ..config import ConfigError, get_paths, get_profile, resolve_device
from ..io import write_json
from ..locks import Locked, WrongCheckout, check_checkout, code_root, hold
from ..models import methods
from ..predictions import missing_predictions
from ..progress import active as active_trainings
from ..progress import line as progress_line
from ..train import is_trained
from . import stages as stage_table
from .cli import parse_args
from .jobs import TrainJob, auto_jobs, completed, failure_lines, make_executor
from .notebooks import (STATUS, UserError, declared_params, ensure_kernel, fmt_seconds, log,
                        notebook_stem, run_notebook)
from .plan import (_user_errors, auto_trainings_per_gpu, check_data, check_weights,
                   cli_overrides, estimate_hours, estimate_wallclock, gpu_check_record, gpu_throughput, list_plan,
                   preflight_root, resolve_only, root_tag, slurm_options, stage_options, stage_trainings,
                   training_images)

# Without a GPU a paper-profile run that trains more images than this stops unless --device cpu.
_CPU_IMAGES_LIMIT = 200_000


def _interrupted(signum, frame):
    raise KeyboardInterrupt


def _stop_on_sigterm() -> None:
    """``kill PID`` (SIGTERM, what schedulers and ``timeout`` send) stops a run as Ctrl-C does:
    its training workers are stopped, finished work is kept, the same command resumes."""
    try:
        signal.signal(signal.SIGTERM, _interrupted)
    except ValueError:          # not the main thread (the runner called from another one)
        pass


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
        stages = [s for s in study.stages if s in study.timings and not study.pending.get(s)]
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
                # on this machine: the run this machine's numerics make (a native-kernel run of the
                # same configuration is another run); under Slurm: the run its nodes made, found
                here = args.device if args.executor == "pool" else None
                finished = (is_trained(run_paths, e, prof, here, args.gpus_per_experiment)
                            and not missing_predictions(run_paths, e, prof, args.device))
                if finished and not args.force and not args.rerun_notebooks:
                    log(f"  [{name} #{i} of {len(todo)}] {e.name}: done, skipped")
                    continue
                params = {**self.common, "overrides": {**self.overrides, **t.overrides},
                          "data_root": str(run_paths.data_root)}
                job_name = f"{stage_table.TRAIN_NOTEBOOK}-{e.name}{t.suffix}"
                if self.monitor is not None:   # what the study's ETA weighs each training by
                    self.monitor.images[job_name] = training_images([e], prof)[e.name]
                out.append(TrainJob(job_name, e.name, f"{name} #{i} of {len(todo)}",
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
            _user_errors(stage_table.function_of(st.prepare), self.profile, self.paths,
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
                t = time.time()
                self.collect(self.pending[s])       # still pending until collected (an interrupt
                self.pending[s] = []                # in between leaves the stage unfinished)
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
        wait for what its notebooks read, run them, then the stage's own function (``Stage.run``:
        the report's, the publication's)."""
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
        if st.notebooks or st.run:
            self.wait_for(stage)
        values = {"build": self.default_root, "force": bool(self.args.force), "seeds": self.args.seeds,
                  **stage_options(st, self.stage_sets)}
        for nb in st.notebooks:
            declared = declared_params(nb)
            extra = {k: values[k] for k in (*st.params, *st.options) if k in values and k in declared}
            sec = run_notebook(nb, notebook_stem(nb), {**self.common, **extra}, self.paths, stage=stage)
            log(f"  {notebook_stem(nb)} finished in {fmt_seconds(sec)}")
        if st.run:
            stage_table.function_of(st.run)(self, **stage_options(st, self.stage_sets))
        self.credit(stage, t0, before)

    def all_timings(self) -> dict:
        """Every stage's last wall clock: the saved ones, this run's over them."""
        return {**_load_timings(self.paths), **self.timings}

    @property
    def command(self) -> str | None:
        return getattr(self.args, "command", None)

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
            log(f"  trainings ({self.executor.name}): {fmt_seconds(sum(r['seconds'] for r in records))} of "
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
    write_json(_timings_path(paths), {**_load_timings(paths), **{k: round(v, 1) for k, v in timings.items()}})


def _headline(paths) -> list[str]:
    import pandas as pd

    f = paths.results / "table2.csv"
    if not f.exists():
        return []
    df = pd.read_csv(f).set_index("experiment")
    out = ["headline (Table 2, IoU-lg %):"]
    for m in methods():
        cells = []
        for s in "ABC":
            v = df["iou"].get(f"{m}-{s}", float("nan"))
            cells.append(f"{s} {v:5.1f}" if v == v else f"{s} missing" if f"{m}-{s}" in df.index else f"{s}   n/a")
        out.append(f"  {m:<9} " + "  ".join(cells))
    return out


if __name__ == "__main__":
    sys.exit(main())
