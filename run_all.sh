#!/usr/bin/env bash
# The whole DOLOS study, stage by stage, with papermill. See README.md or ./run_all.sh -h.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

# The command line is defined once, in dolos_core/runner/cli.py (standard library only): it is checked
# here, before any environment is set up, so a mistyped option fails at once with the usage.
_py="$(command -v python3 || command -v python)" || { echo "error: no python3 found on PATH" >&2; exit 1; }
"$_py" -m dolos_core.runner.cli "$@" || exit $?
tests=0
for a in "$@"; do
  case "$a" in
    -h|--help) exit 0 ;;
    --tests) tests=1 ;;
  esac
done

source scripts/bootstrap.sh

if [ "$tests" = 1 ]; then
  # The suite is one command: two pytest-xdist workers (the smoke study, the paper dry run and
  # the training tests each stay on one worker, as groups), one torch thread each.
  export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
  if ! "$DOLOS_PYTHON" -c 'import xdist, importlinter' 2>/dev/null; then
    echo "[setup] pytest-xdist or import-linter is missing from this environment: installing them" >&2
    "$DOLOS_PYTHON" -m pip install -q "pytest-xdist>=3.5" "import-linter>=2.1" >&2
  fi
  exec "$DOLOS_PYTHON" -m pytest -q -p no:cacheprovider -n auto --maxprocesses 2 --dist loadgroup --durations=25 tests
fi
if [ "${1:-}" = predict ]; then
  exec "$DOLOS_PYTHON" -m dolos_core.runner.your_images "${@:2}"
fi
exec "$DOLOS_PYTHON" -m dolos_core.runner.pipeline "$@"
