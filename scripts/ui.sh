#!/usr/bin/env bash
# The Dagster UI, daemon and code server on the persistent instance, with the platform's
# environment. Extra arguments go to `dagster dev` (e.g. -p 3001).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh  # packages, and $DAGSTER_HOME/dagster.yaml from the repository's file
export DAGSTER_HOME=${DAGSTER_HOME:-$PWD/dagster_home}
# A ranged run (a backfill) records one planned-materialization event per asset instead of one
# per partition: a year of one org is 4 events, not 1,460. The price, in Dagster's words: the
# partitions of a failed run show as missing, not failed (the run and the checks still say why).
export DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS=true
exec .venv/bin/dagster dev "$@"
