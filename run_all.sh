#!/usr/bin/env bash
# The whole DOLOS study, stage by stage, with papermill. See README.md or ./run_all.sh -h.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

# The command line is defined once, in dolos_core/cli.py (standard library only): it is checked
# here, before any environment is set up, so a mistyped option fails at once with the usage.
_py="$(command -v python3 || command -v python)" || { echo "error: no python3 found on PATH" >&2; exit 1; }
"$_py" -m dolos_core.cli "$@" || exit $?
tests=0
for a in "$@"; do
  case "$a" in
    -h|--help) exit 0 ;;
    --tests) tests=1 ;;
  esac
done

source scripts/bootstrap.sh

if [ "$tests" = 1 ]; then
  # Extra arguments after --tests are not accepted: the suite is one command.
  exec "$DOLOS_PYTHON" -m pytest -q -p no:cacheprovider tests
fi
exec "$DOLOS_PYTHON" -m dolos_core.pipeline "$@"
