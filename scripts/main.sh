#!/usr/bin/env bash
# Set up the project (once), then materialize the whole asset graph on the bundled sample with Dagster's default
# local storage ($DAGSTER_HOME, .dagster_home when unset); prints the subsets and where the files and plots are.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/entropy-assets ]; then
    echo "setting up .venv (pip's output: .venv/install.log)"
    python3 -m venv .venv
    if ! { .venv/bin/pip install --upgrade pip && .venv/bin/pip install -e ".[train]"; } > .venv/install.log 2>&1; then
        tail -n 30 .venv/install.log >&2
        exit 1
    fi
fi
mkdir -p .dagster_home
log=.dagster_home/materialize_all.log
if ! .venv/bin/python -m dagster_project.materialize_all 2> "$log"; then
    tail -n 40 "$log" >&2
    exit 1
fi
echo "(Dagster's run log: $log)"
