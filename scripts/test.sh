#!/usr/bin/env bash
# One command: set up, run the linters (ruff, lint-imports) and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The tests run a real OpenSSH server (Debian's openssh-server) and a real PostgreSQL server
# (Debian's postgresql) on loopback.
missing=()
if ! command -v sshd >/dev/null 2>&1 && [ ! -x /usr/sbin/sshd ]; then
  missing+=(openssh-server)
fi
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  missing+=(postgresql)
fi
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
.venv/bin/ruff check .
# The layers and domains declared in pyproject.toml ([tool.importlinter]).
.venv/bin/lint-imports
exec .venv/bin/python -m pytest "$@"
