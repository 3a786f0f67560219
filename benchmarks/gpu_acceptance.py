"""One GPU acceptance run: the whole ./run_all.sh path of the paper profile on a GPU, capped,
and the GPU check, with every output in one folder.

    python benchmarks/gpu_acceptance.py [--device cuda] [--out DIR] [--iters 2] [--trainings-per-gpu 2]
    python benchmarks/gpu_acceptance.py --device cpu --tiny --out /tmp/acc      # the suite's check

Needs only a Python with torch and the runner's packages (papermill, nbformat, nbconvert,
ipykernel, pandas, scikit-learn, seaborn, timm, hdbscan, tabulate, tqdm, opencv): not this
project's ``.venv``. It checks they import first; on a machine without internet, make a wheel
folder on a connected one (``pip download -d wheels papermill nbconvert ... --python-version
3.X --only-binary=:all:``) and pass ``--wheels DIR``: they are installed with ``pip install
--no-index --find-links DIR --user``. Then it writes a real-layout DOLOS set at 256 px (every
dataset, ``--n`` images per split; ``benchmarks/_layout.py``), runs
``./run_all.sh --profile paper --device DEV --init random --set max_iters=ITERS --yes`` through
the default stages (papermill kernels, ``--jobs auto`` with ``--trainings-per-gpu`` shared
slots, evaluation at 299 px, the report) and ``benchmarks/gpu_check.py``, and writes
``OUT/acceptance.json`` (device, torch, each command's exit status and seconds, the stage
timings) beside ``OUT/run_all.log``, ``OUT/study/`` (results, figures, REPORT.md) and
``OUT/gpu_check/``. ``--tiny``: one experiment's data and training only and no GPU check (the
suite runs it on the CPU to keep the script working).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NEEDED = ("torch", "timm", "papermill", "nbformat", "nbconvert", "ipykernel", "pandas", "sklearn", "seaborn",
          "hdbscan", "tabulate", "tqdm", "cv2", "scipy", "PIL")


def missing_packages() -> list[str]:
    out = []
    for name in NEEDED:
        try:
            importlib.import_module(name)
        except ImportError:
            out.append(name)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", default=None, help="output folder (default results/gpu/acceptance-<time>)")
    ap.add_argument("--n", type=int, default=4, help="images per split of the written set")
    ap.add_argument("--iters", type=int, default=2, help="iterations per training (max_iters)")
    ap.add_argument("--trainings-per-gpu", type=int, default=2)
    ap.add_argument("--wheels", default=None, help="a folder of wheels to install missing packages from")
    ap.add_argument("--tiny", action="store_true", help="one experiment, no GPU check (the suite's CPU check)")
    args = ap.parse_args(argv)
    out = Path(args.out or REPO / "results" / "gpu" / f"acceptance-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.wheels and missing_packages():
        subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--find-links", args.wheels, "--user",
                        *("scikit-learn" if m == "sklearn" else "opencv-python-headless" if m == "cv2"
                          else "pillow" if m == "PIL" else m for m in missing_packages())], check=False)
        importlib.invalidate_caches()
    if missing := missing_packages():
        print(f"missing packages: {', '.join(missing)}; bring them as wheels (--wheels DIR, see -h)", file=sys.stderr)
        return 2
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "benchmarks"))
    import torch
    from _layout import write_real_layout

    data = write_real_layout(out / "data", n=args.n)
    env = {**os.environ, "DOLOS_PYTHON": sys.executable, "PYTHONUNBUFFERED": "1"}
    only = ["--only", "data,train,patches-C"] if args.tiny else []
    steps = [("run_all", [str(REPO / "run_all.sh"), "--profile", "paper", "--data-root", str(data), "--device",
                          args.device, "--init", "random", "--set", f"max_iters={args.iters}", "--set",
                          "max_test_images=12", "--repo", str(out / "study"), "--yes",
                          "--trainings-per-gpu", str(args.trainings_per_gpu), *only])]
    if not args.tiny:
        steps.append(("gpu_check", [sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--device", args.device,
                                    "--out", str(out / "gpu_check")]))
    record = {"device": args.device, "torch": torch.__version__, "python": sys.version.split()[0],
              "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None, "steps": {}}
    rc = 0
    for name, cmd in steps:
        t0 = time.time()
        with open(out / f"{name}.log", "w") as log:
            r = subprocess.run(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        record["steps"][name] = {"command": " ".join(cmd), "returncode": r.returncode,
                                 "seconds": round(time.time() - t0, 1)}
        print(f"{name}: exit {r.returncode} in {time.time() - t0:.0f} s (log: {out / f'{name}.log'})", flush=True)
        rc = rc or r.returncode
    timings = out / "study" / "runs" / "paper" / "timings.json"
    record["stage_seconds"] = json.loads(timings.read_text()) if timings.exists() else {}
    (out / "acceptance.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"written: {out / 'acceptance.json'}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
