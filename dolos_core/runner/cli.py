"""The one definition of ``./run_all.sh``'s command line (standard library only: the script
checks its arguments with it before setting up any environment)."""

from __future__ import annotations

import argparse
import sys

from .stages import STAGE_TABLE


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return n


def _jobs(text: str) -> int | str:
    """``--jobs`` and ``--trainings-per-gpu``: a positive integer or ``auto`` (resolved once the
    device is known: ``jobs.auto_jobs``, ``plan.auto_trainings_per_gpu``)."""
    return "auto" if text == "auto" else _positive(text)


def _nonnegative(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return n


def _minutes(text: str) -> int:
    """Slurm's time formats: MINUTES, HH:MM:SS, D-HH[:MM[:SS]]; returned in minutes."""
    try:
        days, _, rest = text.rpartition("-")
        parts = [int(x) for x in rest.split(":")]
        if days:
            parts += [0] * (3 - len(parts))
            minutes = int(days) * 1440 + parts[0] * 60 + parts[1] + (parts[2] > 0)
        elif len(parts) == 1:
            minutes = parts[0]
        elif len(parts) in (2, 3):
            h, m, sec = ([0] + parts)[-3:] if len(parts) == 2 else parts
            minutes = h * 60 + m + (sec > 0)
        else:
            raise ValueError
    except ValueError:
        minutes = 0
    if minutes < 1:
        raise argparse.ArgumentTypeError(f"expected a Slurm time (MINUTES, HH:MM:SS or D-HH:MM), got {text!r}")
    return minutes


def build_parser() -> argparse.ArgumentParser:
    stages = "; ".join(f"{s.name}: {s.help}" for s in STAGE_TABLE)
    p = argparse.ArgumentParser(
        prog="./run_all.sh",
        description="Run the DOLOS study, stage by stage, with papermill (DOLOS-mini by default). "
                    f"Stages, in order: {stages}.",
        epilog="Maps for your own images: ./run_all.sh predict --images PATH --experiment NAME "
               "(./run_all.sh predict --help).")
    p.add_argument("--profile", default="mini", choices=["smoke", "mini", "paper"],
                   help="smoke (seconds, for tests), mini (default: DOLOS-mini on a CPU), "
                        "paper (the real data, the paper's schedules, a GPU)")
    p.add_argument("--data-root", default=None, metavar="DIR",
                   help="a DOLOS dataset in the real layout (default: DOLOS-mini, built at "
                        "data/dolos-mini-<profile>/)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"],
                   help="auto = CUDA, then MPS, then CPU")
    p.add_argument("--only", default=None, metavar="A[,B...]",
                   help="only these stages and/or experiments (names: --list); opt-in stages "
                        "run only when named here")
    p.add_argument("--seeds", type=_positive, default=1, metavar="N",
                   help="train every experiment a claim reads (Table 2, Table 3, Figure 6) with N seeds "
                        "(the profile's seed, +1, ...); the claims resample them and the report shows "
                        "Table 2's spread (default 1)")
    p.add_argument("--force", action="store_true", help="redo finished work of the chosen stages")
    p.add_argument("--rerun-notebooks", action="store_true",
                   help="execute the training notebook (02_train) of finished trainings too: it finds "
                        "the run and its predictions and trains nothing, so that every executed "
                        "notebook comes from this commit")
    p.add_argument("--yes", action="store_true",
                   help="do not ask before a long run (paper profile on a CPU)")
    p.add_argument("--list", action="store_true",
                   help="check the options as a run would, then print every training of every stage (images, "
                        "time where known) and exit")
    p.add_argument("--explain", default=None, metavar="EXPERIMENT",
                   help="print one experiment's configuration, run id, the source files its id hashes, where "
                        "its checkpoint and predictions are and the committed tables and figures that read it")
    p.add_argument("--init", default=None, metavar="paper|auto|random|FILE",
                   help="starting weights (paper profile: paper = ImageNet for Grad-CAM, the FFD "
                        "checkpoint for Attention, read from --weights; mini and smoke: auto = "
                        "those files when present, random otherwise)")
    p.add_argument("--weights", default=None, metavar="DIR",
                   help="folder of weight files (default: weights/; docs/running.md)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a profile field (repeatable), e.g. --set max_iters=2 "
                        "--set schedules.patches-weak.lr=1e-4")
    p.add_argument("--tag", default="", metavar="NAME",
                   help="a variant's name: its tables and figures go to results/<profile>-NAME/ "
                        "and figures/<profile>-NAME/ (runs are kept per configuration either way)")
    par = p.add_argument_group("many GPUs and Slurm (docs/scaling.md)")
    par.add_argument("--jobs", type=_jobs, default="auto", metavar="N|auto",
                     help="train up to N experiments at once: each on its own GPU(s) "
                          "(CUDA_VISIBLE_DEVICES), or on a CPU each with one thread; with "
                          "--executor slurm, at most N jobs run at a time (default auto: one per "
                          "CPU core on a CPU, one per GPU on CUDA, 1 on MPS and with Slurm)")
    par.add_argument("--executor", default="pool", choices=["pool", "local", "slurm"],
                     help="pool (default): --jobs processes on this machine; slurm: one Slurm job "
                          "per experiment through submitit, evaluation here once they finish; "
                          "local: submitit's local executor (every training at once, the Slurm "
                          "code path on one machine)")
    par.add_argument("--gpus-per-experiment", type=_positive, default=1, metavar="K",
                     help="train each experiment with DistributedDataParallel on K GPUs under "
                          "torchrun (same global batch and learning rate; K must divide the batch)")
    par.add_argument("--trainings-per-gpu", type=_jobs, default="auto", metavar="K|auto",
                     help="trainings sharing one GPU (a training at the paper's batch uses a fraction of "
                          "a large GPU): --jobs auto then runs K per GPU (default auto: the concurrency "
                          "benchmarks/gpu_check.py measured fastest that fits the GPU's memory by the "
                          "trainings' measured peaks; 1 when unmeasured)")
    par.add_argument("--slurm-partition", default=None, metavar="NAME", help="Slurm partition")
    par.add_argument("--slurm-gpus-per-job", type=_nonnegative, default=None, metavar="G",
                     help="GPUs per Slurm job (default: --gpus-per-experiment; 0 on a CPU-only cluster)")
    par.add_argument("--slurm-cpus-per-job", type=_positive, default=None, metavar="C",
                     help="CPUs per Slurm job (default: the cluster's)")
    par.add_argument("--slurm-time", type=_minutes, default=24 * 60, metavar="TIME",
                     help="time limit per job: MINUTES, HH:MM:SS or D-HH:MM (default 24:00:00); "
                          "a job stopped at its limit resumes from its last epoch on the next run")
    par.add_argument("--slurm-opt", dest="slurm_opts", action="append", default=[], metavar="KEY=VALUE",
                     help="any other sbatch option, repeatable, e.g. --slurm-opt account=mylab "
                          "--slurm-opt qos=high --slurm-opt constraint=a100")
    p.add_argument("--tests", action="store_true",
                   help="set up the environment, then run the test suite (nothing else)")
    p.add_argument("--repo", default=None, help=argparse.SUPPRESS)  # tests: another output root
    return p


def build_predict_parser() -> argparse.ArgumentParser:
    """``./run_all.sh predict``: maps, overlays and scores for your own images."""
    p = argparse.ArgumentParser(
        prog="./run_all.sh predict",
        description="Fake-probability maps, overlays and image scores for your own images (one file or a "
                    "folder, any size, PNG or JPEG) from a trained run of this checkout or a checkpoint "
                    "file (dolos_core/localize.py; notebook 12_your_images).")
    p.add_argument("--images", required=True, metavar="PATH", help="an image file or a folder of images (recursive)")
    p.add_argument("--experiment", required=True, metavar="NAME",
                   help="whose model: its trained run under --profile (names: ./run_all.sh --list), or, with "
                        "--checkpoint, the method and supervision the file holds (e.g. patches-C)")
    p.add_argument("--checkpoint", default=None, metavar="FILE",
                   help="a checkpoint file instead of the experiment's run (ours, or the authors' released Patches weights)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="where the maps go (default: runs/<profile>/your_images/<experiment>/)")
    p.add_argument("--profile", default="mini", choices=["smoke", "mini", "paper"],
                   help="the profile whose run is read (and its input side)")
    p.add_argument("--data-root", default=None, metavar="DIR", help="the data root the run was trained on")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"],
                   help="where the model runs: auto = CUDA, then MPS, then CPU")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="FIELD=VALUE",
                   help="the profile overrides the run was trained with")
    p.add_argument("--tag", default="", metavar="NAME", help=argparse.SUPPRESS)
    p.add_argument("--batch", type=_positive, default=16, help="images per batch on the device (default 16)")
    p.add_argument("--threshold", type=float, default=0.5,
                   help="the overlay's contour and fake_share's threshold, between 0 and 1 (default 0.5)")
    p.add_argument("--repo", default=None, help=argparse.SUPPRESS)
    return p


def parse_args(argv: list[str]) -> argparse.Namespace:
    if argv[:1] == ["predict"]:
        args = build_predict_parser().parse_args(argv[1:])
        args.command = "predict"
        return args
    args = build_parser().parse_args(argv)
    args.command = "study"
    return args


if __name__ == "__main__":          # ./run_all.sh: check the arguments, print help
    parse_args(sys.argv[1:])
