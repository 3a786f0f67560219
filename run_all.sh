#!/usr/bin/env bash
# The whole DOLOS study, stage by stage, with papermill. See README.md or ./run_all.sh -h.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

usage() {
  cat <<'USAGE'
usage: ./run_all.sh [options]

Runs the study: data -> train -> evaluate -> extensions -> report (DOLOS-mini by default).

  --profile smoke|mini|paper  profile (default: mini)
  --data-root DIR             a DOLOS dataset in the real layout (default: DOLOS-mini, built
                              at data/dolos-mini-<profile>/)
  --device auto|cpu|cuda|mps  device (default: auto = CUDA, then MPS, then CPU)
  --only A[,B...]             only these stages (data, train, evaluate, extensions, report;
                              and scaling, run only when named) and/or experiments (--list)
  --init paper|auto|random    starting weights (paper profile: paper = ImageNet for Grad-CAM, the
                              FFD checkpoint for Attention, read from --weights; mini and smoke:
                              auto = those files when present, random otherwise)
  --weights DIR               folder of weight files (default: weights/; see README, "Weights")
  --set FIELD=VALUE           override a profile field (repeatable), e.g. --set max_iters=2
                              --set max_test_images=12 --set schedules.patches-weak.lr=1e-4
  --tag NAME                  a variant's name: its tables and figures go to
                              results/<profile>-NAME/ and figures/<profile>-NAME/ (runs are
                              kept per configuration either way)
  --force                     redo finished work of the chosen stages
  --yes                       do not ask before a long run (paper profile on a CPU)
  --list                      print the experiments, one per line, and exit
  --tests                     set up the environment, then run the test suite
  -h, --help                  this help
USAGE
}

args=("$@")
tests=0
while [ $# -gt 0 ]; do
  case "$1" in
    --profile|--data-root|--device|--only|--repo|--init|--weights|--set|--tag)
      if [ $# -lt 2 ] || [[ "$2" == --* ]]; then
        echo "error: $1 needs a value" >&2; usage >&2; exit 2
      fi
      shift 2 ;;
    --profile=*|--data-root=*|--device=*|--only=*|--repo=*|--init=*|--weights=*|--set=*|--tag=*|--force|--list|--yes) shift ;;
    --tests) tests=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "error: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  esac
done

source scripts/bootstrap.sh

if [ "$tests" = 1 ]; then
  # Extra arguments after --tests are not accepted: the suite is one command.
  exec "$DOLOS_PYTHON" -m pytest -q -p no:cacheprovider tests
fi
exec "$DOLOS_PYTHON" -m dolos_core.pipeline "${args[@]}"
