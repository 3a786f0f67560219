"""The runner: what turns the research library (``dolos_core``) into ``./run_all.sh``. The
stages of the study (``stages``), the command line (``cli``), the pipeline that executes them
with papermill (``pipeline``), where trainings run (``jobs``), the report and the
published notebooks (``report``, ``publish``). The library never imports this
package (an import-linter contract in pyproject.toml, run by the test suite)."""
