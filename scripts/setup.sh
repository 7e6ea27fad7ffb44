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
[ -f "$DAGSTER_HOME/dagster.yaml" ] || cp dagster.yaml "$DAGSTER_HOME/dagster.yaml"
