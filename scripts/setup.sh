#!/usr/bin/env bash
# Sets up everything the platform needs, reproducibly: a virtualenv with the locked packages,
# the project itself, and a persistent Dagster instance folder. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .

export DAGSTER_HOME=${DAGSTER_HOME:-$PWD/dagster_home}
mkdir -p "$DAGSTER_HOME" data/outbox
# $DAGSTER_HOME/dagster.yaml is generated from the repository's file at every setup and start,
# never edited in place: the embedded SQLite instance, or PostgreSQL when COUNTS_DAGSTER_PG_URL
# is set.
instance=dagster.yaml
if [ -n "${COUNTS_DAGSTER_PG_URL:-}" ]; then
  instance=deploy/dagster.postgres.yaml
fi
if ! cmp -s "$instance" "$DAGSTER_HOME/dagster.yaml"; then
  cp "$instance" "$DAGSTER_HOME/dagster.yaml"
  echo "instance settings: $DAGSTER_HOME/dagster.yaml now follows $instance"
fi
