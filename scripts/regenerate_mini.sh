#!/usr/bin/env bash
# The committed mini results, regenerated from one clean commit (a maintainer's tool).
#
#   scripts/regenerate_mini.sh            # in a clean checkout; trainings already made under
#                                         # this code are reused by run id, the rest are trained
#
# 1. the study with every experiment a claim reads under 3 seeds, the loss variants, the geometry
#    stage, the report and the published notebooks (every notebook executed again at this commit);
# 2. the benchmarks that read the study's saved predictions (nothing trained): Patches-MIL's goal
#    seed by seed, IoU by mask area, the seeds a claim of a given size needs;
# 3. the report and the publication again (they show the benchmarks' files), then the README's
#    results block and the generated spans of the docs.
# It refuses a tree with uncommitted changes (the results name the commit they come from) and
# leaves the regenerated files for you to read and commit.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
    echo "regenerate_mini: the tree has uncommitted changes; commit them first (results name their commit)" >&2
    exit 1
fi
./run_all.sh --only data,train,evaluate,extensions,geometry,report,publish --seeds 3 --rerun-notebooks --yes
.venv/bin/python benchmarks/mil_goal.py --profile mini --seeds 3
.venv/bin/python benchmarks/mil_by_area.py --profile mini
.venv/bin/python benchmarks/seeds_needed.py --profile mini
./run_all.sh --only report,publish --yes        # REPORT.md and the published copies with the benchmarks' files
.venv/bin/python scripts/update_readme_results.py
echo "regenerate_mini: done at $(git rev-parse --short HEAD); read git status and the diff, then commit"
