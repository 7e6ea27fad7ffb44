#!/usr/bin/env bash
# One command: set up, build the demo store, run the daily and monthly jobs on the embedded
# defaults and print where the files are.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export DAGSTER_HOME=${DAGSTER_HOME:-$PWD/dagster_home}
exec .venv/bin/python -m counts_assets.demo "$@"
