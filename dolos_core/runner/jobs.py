"""Where the trainings run: in this process, N at a time on this machine, or one Slurm job
each through submitit.

A training is a ``TrainJob``: notebook 02 for one experiment, with its parameters. Whatever runs
it calls ``run_job``, which executes the notebook, catches a failure instead of raising it, and
writes a record (``runs/<profile>/jobs/<name>.json``: status, host, GPUs or threads, seconds,
log). The executors only decide where and when:

- ``SerialExecutor`` (``--jobs 1``; ``--jobs auto``, the default, on one GPU or MPS): in this process, when a stage needs it;
- ``PoolExecutor`` (``--jobs N``): the standard library's ``ThreadPoolExecutor`` keeps N
  trainings going, each slot a worker process of its own pinned to its GPUs
  (``CUDA_VISIBLE_DEVICES``) or, on a CPU machine, to its share of the cores
  (``OMP_NUM_THREADS``), running its trainings one after another in one warm notebook kernel
  (``notebooks.warm_kernel``); each training's output goes to ``runs/<profile>/logs/<name>.log``;
- ``SubmititExecutor`` (``--executor slurm``, or ``local``: submitit's local executor, the
  same code path on one machine): one job per training, all submitted at once as a job array
  (``--jobs`` caps how many run at a time on Slurm); logs in ``runs/<profile>/submitit/``.

A failed training is reported with its log and does not stop the others; two jobs never write
one run (each training holds its run's lock, ``train.train_experiment``); an interrupted study
started again resubmits only the unfinished trainings, which resume from their last epoch.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .stages import TRAIN_NOTEBOOK


@dataclass
class TrainJob:
    """One training: notebook 02 for ``experiment`` with ``params``; its executed copy is
    ``runs/<profile>/notebooks/<name>.ipynb``."""

    name: str                   # e.g. 02_train-patches-C (unique in a study)
    experiment: str
    stage: str
    params: dict
    root: str                   # the checkout the study writes into (DOLOS_REPO)
    code: str                   # the checkout whose dolos_core runs it (PYTHONPATH)
    profile: str
    tag: str = ""
    data_root: str = ""
    stage_name: str = ""        # the stage whose record lists this training

    def paths(self):
        from ..config import get_paths

        return get_paths(self.profile, self.data_root or None, root=self.root, tag=self.tag)


@dataclass
class JobRecord:
    """What happened to one training, where and how long."""

    name: str
    experiment: str
    stage: str
    status: str                 # done | failed
    host: str = ""
    where: str = ""             # "GPU 0,1", "CPU, 1 thread", ...
    executor: str = ""
    seconds: float = 0.0
    log: str = ""
    notebook: str = ""
    error: str = ""
    extra: dict = field(default_factory=dict)


def record_path(paths, name: str) -> Path:
    return paths.runs / "jobs" / f"{name}.json"


def failed_record(job: "TrainJob", executor: str, log: str, error: str, **fields) -> dict:
    """The record of a training whose process died before it could write its own."""
    return asdict(JobRecord(job.name, job.experiment, job.stage, "failed", executor=executor, log=log,
                            error=error, **fields))


def failure_lines(rec: dict) -> str:
    """A failed training for the terminal: the error's first line, then where to read more."""
    first = rec["error"].splitlines()[0] if rec["error"] else "failed"
    return (f"{first}\n    log: {rec['log'] or rec['notebook']}"
            + (f"\n    executed notebook: {rec['notebook']}" if rec["log"] and rec["notebook"] else ""))


def _where(device: str) -> str:
    """The GPUs or threads this process was given (its environment), else ``--device``."""
    gpus = os.environ.get("CUDA_VISIBLE_DEVICES")
    if gpus not in (None, ""):
        return f"GPU {gpus}"
    threads = os.environ.get("OMP_NUM_THREADS")
    if threads and device in ("auto", "cpu"):
        return f"CPU, {threads} thread{'s' if threads != '1' else ''}"
    return f"--device {device}"


def run_job(job: TrainJob, executor: str = "serial", log: str = "") -> dict:
    """Run one training (notebook 02) here and now; never raises for a failed training: the
    record says what failed and where its log is. Called in this process, in a pool worker's
    process (``python -m dolos_core.runner.jobs``) or in a submitit job."""
    from ..io import write_json
    from .notebooks import UserError, run_notebook

    os.environ["DOLOS_REPO"] = job.root
    if job.code not in sys.path:
        sys.path.insert(0, job.code)
    os.environ["PYTHONPATH"] = os.pathsep.join([job.code] + [
        p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != job.code])
    paths = job.paths()
    rec = JobRecord(job.name, job.experiment, job.stage, "done", host=socket.gethostname(),
                    where=_where(job.params.get("device", "auto")), executor=executor, log=log,
                    notebook=str(paths.notebooks_out / f"{job.name}.ipynb"))
    if os.environ.get("SLURM_JOB_ID"):
        rec.extra["slurm_job_id"] = os.environ["SLURM_JOB_ID"]
        if os.environ.get("SLURM_ARRAY_JOB_ID"):     # one task of a job array: <array>_<task>
            rec.extra["slurm_array"] = f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ.get('SLURM_ARRAY_TASK_ID', '')}"
    t0 = time.time()
    try:
        run_notebook(TRAIN_NOTEBOOK, job.name, job.params, paths, stage=job.stage_name)
    except UserError as exc:
        rec.status, rec.error = "failed", str(exc)
    except Exception as exc:        # a crash outside the notebook (kernel died, disk full)
        rec.status, rec.error = "failed", f"{type(exc).__name__}: {exc}"
    rec.seconds = round(time.time() - t0, 1)
    write_json(record_path(paths, job.name), asdict(rec))
    return asdict(rec)


class Handle:
    """A submitted training: ``done()`` says whether it has finished (a serial one is always
    ready: it runs when asked), ``result()`` waits for its record."""

    def __init__(self, job: TrainJob, get, done=lambda: True):
        self.job, self._get, self._done, self._rec = job, get, done, None

    def done(self) -> bool:
        return self._rec is not None or self._done()

    def result(self) -> dict:
        if self._rec is None:
            self._rec = self._get()
        return self._rec


def completed(handles: list[Handle], poll: float = 1.0):
    """The handles in the order their trainings finish (serial ones in order)."""
    left = list(handles)
    while left:
        ready = [h for h in left if h.done()]
        if not ready:
            time.sleep(poll)
            continue
        for h in ready:
            left.remove(h)
            h.result()
            yield h


class SerialExecutor:
    """``--jobs 1``: each training runs in this process when a stage waits for it."""

    name = "serial"
    eager = False
    describe = "one after another in this process"

    def submit(self, jobs: list[TrainJob]) -> list[Handle]:
        return [Handle(j, lambda j=j: run_job(j, "serial")) for j in jobs]

    def close(self) -> None:
        pass


def _slots(jobs: int, gpus_per_job: int, device_type: str, per_gpu: int = 1) -> list[dict]:
    """The environment of each of the ``jobs`` concurrent trainings: its own GPUs
    (``CUDA_VISIBLE_DEVICES``) on CUDA, ``per_gpu`` trainings sharing each GPU (one training uses
    a fraction of a large GPU; ``--trainings-per-gpu``), and everywhere its share of the cores
    (``OMP_NUM_THREADS``: N trainings with all the cores each would fight over them)."""
    cores = int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)
    threads = str(max(1, cores // jobs))
    if device_type == "cuda":
        import torch

        if per_gpu > 1 and gpus_per_job > 1:
            raise ValueError("--trainings-per-gpu > 1 shares a GPU between trainings; it cannot be "
                             "combined with --gpus-per-experiment > 1")
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        ids = ([g.strip() for g in visible.split(",") if g.strip()] if visible
               else [str(i) for i in range(torch.cuda.device_count())])
        groups = -(-jobs // per_gpu)              # GPU groups the slots fill, per_gpu slots each
        need = groups * gpus_per_job
        if need > len(ids):
            share = f" ({per_gpu} per GPU)" if per_gpu > 1 else ""
            raise ValueError(f"--jobs {jobs}{share} x --gpus-per-experiment {gpus_per_job} needs {need} GPUs; "
                             f"this machine shows {len(ids)} ({', '.join(ids) or 'none'})")
        return [{"CUDA_VISIBLE_DEVICES": ",".join(ids[(k // per_gpu) * gpus_per_job:(k // per_gpu + 1) * gpus_per_job]),
                 "OMP_NUM_THREADS": threads} for k in range(jobs)]
    return [{"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads} for _ in range(jobs)]


class _Worker:
    """A pool slot's process (``python -m dolos_core.runner.jobs --serve``): it takes one
    training at a time (a line ``<spec>\t<log>`` on its stdin), runs it with its output in the
    training's log, and answers one line when the record is written; its notebooks share one warm
    kernel. A worker that dies takes only its current training with it."""

    def __init__(self, env: dict):
        self.proc = subprocess.Popen([sys.executable, "-m", "dolos_core.runner.jobs", "--serve"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env={**os.environ, **env})
        self.busy = False

    def run(self, spec: Path, log: Path) -> int | None:
        """Run one training; None when it finished, else the worker's exit status."""
        self.busy = True
        try:
            self.proc.stdin.write(f"{spec}\t{log}\n")
            self.proc.stdin.flush()
            if self.proc.stdout.readline():
                return None
        except (BrokenPipeError, OSError):
            pass
        finally:
            self.busy = False
        return self.proc.wait()

    def stop(self) -> None:
        """An idle worker ends on its own (its kernel shut down cleanly) when its input closes;
        a busy one, interrupted, is terminated (its training resumes next time). Returns at once;
        ``join`` waits."""
        if self.proc.poll() is None and not self.busy:
            try:
                self.proc.stdin.close()
                return
            except OSError:
                pass
        if self.proc.poll() is None:
            self.proc.terminate()

    def join(self) -> None:
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class PoolExecutor:
    """``--jobs N``: N trainings at a time on this machine (``concurrent.futures``), each slot a
    worker process (``_Worker``) with its slot's environment; output to ``runs/<profile>/logs/``."""

    name = "pool"
    eager = True

    def __init__(self, jobs: int, gpus_per_job: int, device_type: str, log_dir: Path, per_gpu: int = 1):
        self.slots: queue.Queue = queue.Queue()
        for s in _slots(jobs, gpus_per_job, device_type, per_gpu):
            self.slots.put(s)
        self.pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="dolos-job")
        self.log_dir = log_dir
        self.workers: dict[int, _Worker] = {}       # id(slot) -> its worker, started on first use
        first = self.slots.queue[0]
        self.describe = (f"up to {jobs} at a time on this machine, each on "
                         + (f"GPU {first['CUDA_VISIBLE_DEVICES']}, ..." if "CUDA_VISIBLE_DEVICES" in first
                            else f"{first['OMP_NUM_THREADS']} CPU thread(s)") + f"; logs in {log_dir}")

    def submit(self, jobs: list[TrainJob]) -> list[Handle]:
        futures = [self.pool.submit(self._run, j) for j in jobs]
        return [Handle(j, f.result, f.done) for j, f in zip(jobs, futures)]

    def _run(self, job: TrainJob) -> dict:
        slot = self.slots.get()
        try:
            log = self.log_dir / f"{job.name}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            spec = log.with_suffix(".job.json")
            spec.write_text(json.dumps(asdict(job)))
            worker = self.workers.get(id(slot))
            if worker is None or worker.proc.poll() is not None:
                worker = self.workers[id(slot)] = _Worker(slot)
            rc = worker.run(spec, log)
            spec.unlink(missing_ok=True)
            f = record_path(job.paths(), job.name)
            if rc is None and f.exists():
                return json.loads(f.read_text())
            return failed_record(job, "pool", str(log), f"the job's process exited with status {rc}",
                                 host=socket.gethostname(), where=", ".join(f"{k}={v}" for k, v in slot.items()))
        finally:
            self.slots.put(slot)

    def close(self) -> None:
        workers = list(self.workers.values())
        for w in workers:       # finished, or interrupted: the running trainings resume later
            w.stop()
        for w in workers:
            w.join()
        self.pool.shutdown(wait=True, cancel_futures=True)


@dataclass
class SlurmOptions:
    partition: str | None = None
    gpus_per_job: int | None = None     # default: --gpus-per-experiment
    time_min: int = 24 * 60
    cpus_per_job: int | None = None
    extra: dict = field(default_factory=dict)   # more sbatch options, e.g. {"account": "lab"}


class SubmititExecutor:
    """``--executor slurm`` / ``local``: one submitit job per training, all submitted at once;
    the stages wait on their results."""

    eager = True

    def __init__(self, cluster: str, folder: Path, jobs: int, gpus_per_job: int, device_type: str,
                 slurm: SlurmOptions):
        if cluster == "slurm" and not shutil.which("sbatch"):
            raise RuntimeError("--executor slurm: no Slurm here (sbatch is not on PATH); run on a "
                               "cluster's login node, or use --jobs N on one machine")
        try:
            import submitit
        except ImportError:
            raise ImportError("--executor local|slurm needs submitit: pip install submitit "
                              "(it is in pyproject.toml and environment.yml)") from None
        self.name = cluster
        self.ex = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
        per_job = slurm.gpus_per_job if slurm.gpus_per_job is not None else gpus_per_job
        gpus = per_job if (device_type == "cuda" or cluster == "slurm") else 0
        params = {"name": "dolos", "timeout_min": slurm.time_min, "nodes": 1, "tasks_per_node": 1}
        if cluster == "slurm":
            params.update(slurm_partition=slurm.partition, slurm_array_parallelism=jobs,
                          slurm_gpus_per_node=gpus or None,     # 0: a CPU cluster, no GPU request
                          slurm_additional_parameters=dict(slurm.extra))
            if slurm.cpus_per_job:
                params["cpus_per_task"] = slurm.cpus_per_job
            params = {k: v for k, v in params.items() if v is not None}
        else:
            params["gpus_per_node"] = gpus
        self.ex.update_parameters(**params)
        self.jobs: list = []
        self.describe = ("submitit's local executor, every training at once on this machine (its first "
                         "GPU(s) when there are GPUs: use --jobs N to spread over a node's GPUs)"
                         if cluster == "local" else
                         f"one Slurm job per training, up to {jobs} at a time, {gpus} GPU(s) each"
                         + (f", partition {slurm.partition}" if slurm.partition else "")) + f"; logs in {folder}"

    def submit(self, jobs: list[TrainJob]) -> list[Handle]:
        if not jobs:
            return []
        with self.ex.batch():
            futures = [self.ex.submit(run_job, j, self.name) for j in jobs]
        self.jobs += futures
        return [Handle(j, lambda f=f, j=j: self._result(f, j), f.done) for f, j in zip(futures, jobs)]

    def _result(self, fut, job: TrainJob) -> dict:
        try:
            rec = fut.result()
            rec["log"] = rec.get("log") or str(fut.paths.stdout)
            rec.setdefault("extra", {})["job_id"] = fut.job_id
            return rec
        except Exception as exc:        # the job itself died (killed, timed out, node lost)
            text = str(exc).strip()
            return failed_record(job, self.name, str(fut.paths.stderr),
                                 f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}",
                                 extra={"job_id": fut.job_id})

    def close(self) -> None:
        for f in self.jobs:
            if not f.done():
                f.cancel(check=False)


def auto_jobs(kind: str, device_type: str, gpus_per_job: int = 1, per_gpu: int = 1) -> int:
    """``--jobs auto``: how many trainings run at once. On a CPU, one per core (a CPU training
    computes with one thread, ``numerics.TRAIN_CPU_THREADS``, so N side by side use N cores and
    learn what each would alone); on CUDA, ``per_gpu`` per group of ``gpus_per_job`` visible GPUs; on
    MPS (one device shared) and with Slurm (the cluster schedules), 1."""
    if kind != "pool":
        return 1
    if device_type == "cpu":
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:            # macOS has no affinity call
            return max(1, os.cpu_count() or 1)
    if device_type == "cuda":
        import torch

        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        n = len([g for g in visible.split(",") if g.strip()]) if visible else torch.cuda.device_count()
        return max(1, n // gpus_per_job) * per_gpu
    return 1


def make_executor(kind: str, jobs: int, gpus_per_job: int, device_type: str, paths, slurm: SlurmOptions,
                  per_gpu: int = 1):
    if kind == "pool":
        if jobs == 1:
            return SerialExecutor()
        return PoolExecutor(jobs, gpus_per_job, device_type, paths.runs / "logs", per_gpu)
    return SubmititExecutor(kind, paths.runs / "submitit", jobs, gpus_per_job, device_type, slurm)


def _main(spec: str, log: str) -> int:
    """Run one training, its record on disk; a line saying how it went."""
    job = TrainJob(**json.loads(Path(spec).read_text()))
    rec = run_job(job, "pool", log)
    print(f"{job.name}: {rec['status']} in {rec['seconds']} s on {rec['host']} ({rec['where']})"
          + (f"\n{rec['error']}" if rec["error"] else ""), flush=True)
    return 0


def _serve() -> int:
    """A pool worker's process: trainings one after another, as ``_Worker`` sends them, each
    with this process's stdout and stderr in its log."""
    answer = os.fdopen(os.dup(1), "w")
    saved = os.dup(1), os.dup(2)
    for line in sys.stdin:
        spec, log = line.rstrip("\n").split("\t")
        with open(log, "w") as fh:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(fh.fileno(), 1)
            os.dup2(fh.fileno(), 2)
            try:
                _main(spec, log)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
        answer.write("done\n")
        answer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_serve() if sys.argv[1:] == ["--serve"] else _main(sys.argv[1], sys.argv[2]))
