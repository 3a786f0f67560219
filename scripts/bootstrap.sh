#!/usr/bin/env bash
# Make sure a Python environment with dolos_core and its dependencies is active, and that a
# Jupyter kernel named "dolos" points at it. Sourced by run_all.sh; idempotent and quiet when
# everything is already in place.
#   - If the current `python` already imports dolos_core (a conda env from environment.yml, or an
#     activated venv), it is used as it is.
#   - Otherwise .venv/ is created with pip and the project is installed into it (editable).
set -euo pipefail
_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_have() { "$1" -c 'import dolos_core, torch, timm, papermill, hdbscan' >/dev/null 2>&1; }

if [ -z "${DOLOS_PYTHON:-}" ]; then
  if command -v python >/dev/null 2>&1 && _have python && [ -z "${DOLOS_FORCE_VENV:-}" ]; then
    DOLOS_PYTHON="$(command -v python)"
  elif [ -x "$_root/.venv/bin/python" ] && _have "$_root/.venv/bin/python"; then
    DOLOS_PYTHON="$_root/.venv/bin/python"
  else
    _py="$(command -v python3 || command -v python)" || { echo "error: no python3 found on PATH" >&2; exit 1; }
    echo "[setup] creating $_root/.venv and installing dolos_core (first run only; several minutes)" >&2
    [ -x "$_root/.venv/bin/python" ] || "$_py" -m venv "$_root/.venv"
    _log="$_root/.venv/install.log"
    { "$_root/.venv/bin/python" -m pip install -q --upgrade pip &&
      "$_root/.venv/bin/python" -m pip install -q -e "$_root[dev]"; } >"$_log" 2>&1 || {
      tail -n 30 "$_log" >&2
      echo "error: installing the environment failed; pip's full output is in $_log" >&2; exit 1; }
    DOLOS_PYTHON="$_root/.venv/bin/python"
  fi
fi
export DOLOS_PYTHON
# The kernel papermill uses: registered for the chosen interpreter, under the name "dolos".
_kdir="$("$DOLOS_PYTHON" -c 'import sys, os; print(os.path.join(sys.prefix, "share", "jupyter", "kernels", "dolos"))')"
if [ ! -f "$_kdir/kernel.json" ] || ! grep -q "$DOLOS_PYTHON" "$_kdir/kernel.json"; then
  "$DOLOS_PYTHON" -m ipykernel install --sys-prefix --name dolos --display-name "Python (dolos)" >/dev/null
fi
export PATH="$(dirname "$DOLOS_PYTHON"):$PATH"
