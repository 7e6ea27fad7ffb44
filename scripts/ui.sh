#!/usr/bin/env bash
# The Dagster UI and daemon on the persistent instance, with the platform's environment.
# Extra arguments go to dagster-webserver (e.g. -p 3001).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh  # packages, and $DAGSTER_HOME/dagster.yaml from the repository's file
export DAGSTER_HOME=${DAGSTER_HOME:-$PWD/dagster_home}
# A ranged run (a backfill) records one planned-materialization event per asset instead of one
# per partition: a year of one org is 4 events, not 1,460. The price, in Dagster's words: the
# partitions of a failed run show as missing, not failed (the run and the checks still say why).
export DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS=true
# The two processes `dagster dev` starts, started directly: `dagster dev` is deprecated, and it
# warns that the repository's dagster.yaml is not used (setup.sh has just copied it into
# $DAGSTER_HOME, which is the one used).
.venv/bin/dagster-daemon run -w workspace.yaml &
daemon=$!
trap 'kill "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true' EXIT
.venv/bin/dagster-webserver -w workspace.yaml -h 127.0.0.1 -p 3000 "$@"
