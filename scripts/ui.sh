#!/usr/bin/env bash
# The Dagster UI and daemon on the persistent instance, with the platform's environment, both
# talking to one code server (the production shape: the Dockerfile runs the same code server).
# Extra arguments go to dagster-webserver (e.g. -p 3001). Ctrl-C stops all three.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh  # packages, and $DAGSTER_HOME/dagster.yaml from the repository's file
export DAGSTER_HOME=${DAGSTER_HOME:-$PWD/dagster_home}
# A ranged run (a backfill) records one planned-materialization event per asset instead of one
# per partition: a year of one org is 4 events, not 1,460. The price, in Dagster's words: the
# partitions of a failed run show as missing, not failed (the run and the checks still say why).
# The instance files' event logs answer so themselves; this is Dagster's own switch, for when
# COUNTS_DAGSTER_INTERNALS=false turns their answer off.
export DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS=true
port=${COUNTS_CODE_SERVER_PORT:-4266}
# One code server for both: each of them would otherwise start its own and watch it with
# heartbeats ("No heartbeat received ... shutting down" in the logs when one side is busy).
workspace="$DAGSTER_HOME/workspace.yaml"
cat > "$workspace" <<YAML
load_from:
  - grpc_server:
      host: 127.0.0.1
      port: $port
      location_name: counts_assets
YAML
pids=()
# A script's background jobs ignore SIGINT, and Dagster's processes then ignore SIGTERM too (they
# map one to the other): each is started with SIGINT back to its default, so both stop it.
start() {
  .venv/bin/python -c 'import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.execvp(sys.argv[1], sys.argv[1:])' "$@" &
  pids+=($!)
}
stop() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop EXIT
trap 'exit 130' INT TERM
start .venv/bin/dagster code-server start -h 127.0.0.1 -p "$port" -m counts_assets.definitions
for _ in $(seq 1 120); do  # the code server loads the definitions first
  if .venv/bin/python -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" \
      2>/dev/null; then
    break
  fi
  sleep 1
done
# The instance's storage is created once, here, before the two start: the daemon and the
# webserver creating a fresh SQLite instance at the same moment can stamp its schema version
# twice, and every later start then fails with "more than one head present". (Loading an
# existing instance changes nothing; upgrading its schema stays `dagster instance migrate`.)
.venv/bin/python -c 'import dagster as dg; dg.DagsterInstance.get().dispose()'
start .venv/bin/dagster-daemon run -w "$workspace"
start .venv/bin/dagster-webserver -w "$workspace" -h 127.0.0.1 -p 3000 "$@"
wait -n "${pids[@]}"
