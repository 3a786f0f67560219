"""The plan of a ``./run_all.sh``: what it will run, before anything runs.

Which stages and experiments ``--only`` names (``resolve_only``), the trainings each stage runs
(``stage_trainings``), the ``--set`` overrides and stage options, the checks made before any
notebook (weights, the data root: ``check_weights``, ``check_data``, ``preflight_root``), and the
estimates (training images, GPU hours from the GPU check, the wall-clock of N slots, trainings per
GPU); ``--list`` prints the plan (``list_plan``). The scheduler that runs it is
``dolos_core.runner.pipeline``.
"""

from __future__ import annotations

import difflib
import re
import shutil
from pathlib import Path

from ..config import ConfigError, get_paths, get_profile, repo_root, resolve_device
from ..data.layout import DatasetKey, all_keys, list_images, split_exists
from ..experiments import EXPERIMENTS, plan_for
from ..locks import code_root
from ..runs import experiment_init
from ..trainings import gpu_check_record, gpu_throughput
from ..weights import INIT_POLICIES, WeightsMissing
from . import stages as stage_table
from .jobs import SlurmOptions
from .notebooks import UserError, log
from .overrides import parse_set


def resolve_only(only: str | None):
    """Split ``--only`` into stages and experiment names (unknown names are an error)."""
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
            out[s] = _user_errors(stage_table.function_of(st.trains), profile, paths, seeds if st.seeded else 1,
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
        if args.init not in INIT_POLICIES and not Path(args.init).is_file():
            raise UserError(f"--init {args.init!r}: choose {', '.join(INIT_POLICIES)} or a checkpoint file")
        out["init"] = args.init
    if args.weights is not None:
        out["weights_dir"] = str(Path(args.weights).expanduser().resolve())
    return out, sets


def check_weights(exps, profile, paths) -> None:
    """Before any training: every weight file the chosen experiments start from is there
    (``init=paper``), else one line naming the first missing file."""
    for e in exps:
        try:
            experiment_init(e, profile, paths)
        except WeightsMissing as exc:
            raise UserError(str(exc))


def check_data(paths, exps):
    """Before any training: which experiments the data root can serve; the rest are skipped."""
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
    root = paths.data_root
    present = [(k, s) for k in all_keys() for s in ("train", "valid", "test") if list_images(k.images_dir(root, s))]
    if not present:
        example = all_keys()[0].images_dir(root, "train")
        raise UserError(f"data root {root} holds no image in the DOLOS layout (none in any "
                        "<source>/real/<split>/ or <source>/fake/<generator>/images/<split>/ folder, "
                        f"e.g. {example}); the layout: docs/STUDY.md#the-data-dolos")
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
    overrides, sets = cli_overrides(args)
    profile = _user_errors(get_profile, args.profile, **overrides)
    _user_errors(resolve_device, args.device)
    if args.executor == "slurm" and not shutil.which("sbatch"):
        raise UserError("--executor slurm: no Slurm here (sbatch is not on PATH); run on a cluster's "
                        "login node, or use --jobs N on one machine")
    if args.data_root is not None and not Path(args.data_root).expanduser().is_dir():
        raise UserError(f"data root {args.data_root} does not exist (--data-root)")
    paths = _user_errors(get_paths, args.profile, args.data_root, root=args.repo or repo_root(), tag=args.tag)
    rates = cpu_rates(code_root()) if profile.build_sizes is not None else {}    # the code's committed benchmark
    table = stage_table.by_name()
    # the paper profile and the stages sized for a GPU: GPU hours from the GPU check, when run
    gpu = profile.build_sizes is None or any(table[s].gpu for s in stage_table.names())
    thr = gpu_throughput(paths.root, profile.precision) if gpu else None      # the checkout's, as the stages read it
    once = gpu_throughput(paths.root, profile.precision, "once_s") if gpu else None
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
            trains = stage_table.function_of(st.trains)(profile, paths, args.seeds if st.seeded else 1,
                                                  **stage_options(st, sets))
        except (ConfigError, UserError, ValueError) as exc:
            log(f"{s}\t-\tnot under this profile: {str(exc).splitlines()[0]}")
            continue
        mark = f" (opt-in: --only {s})" if st.opt_in else ""
        total_img = total_min = 0.0
        gpu_hours = gpu and (profile.build_sizes is None or st.gpu)     # this stage's rows have GPU hours
        total_h = 0.0 if gpu_hours else None
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
            if gpu_hours:
                h = estimate_hours([e], t.profile, thr, once)
                cells += f"\t{h[e.name]:.2f}" if h else "\tnot measured"
                total_h = total_h + h[e.name] if h and total_h is not None else None
            elif gpu:
                cells += "\t-"
            log(f"{s}{mark}\t{label}\t{e.description}\t{img:,}{cells}")
        log(f"# {s}{mark}: {len(trains)} trainings, {total_img:,.0f} images"
            + (f", {total_min:.1f} CPU minutes of training steps" if rates else "")
            + (f", {60 * total_h:.1f} GPU minutes by the GPU check" if total_h else ""))
    if profile.name == "paper":
        paper = profile
        images = training_images(EXPERIMENTS.values(), paper)
        hours = estimate_hours(EXPERIMENTS.values(), paper, thr, once) or {}
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
                record = gpu_check_record(paths.root) or {}
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


def _user_errors(fn, *args, **kw):
    """``fn(...)``, with a ConfigError turned into a one-line UserError."""

    try:
        return fn(*args, **kw)
    except ConfigError as exc:
        raise UserError(str(exc)) from None
