#!/usr/bin/env bash
# Install ClientGate into .venv, create the SQLite database with demo accounts, and run it
# on http://localhost:5000 in development mode (codes appear in the console and /dev/outbox).
set -euo pipefail
cd "$(dirname "$0")/.."

# Development prints every code and shows it on /dev/outbox, and the demo accounts' password
# is printed below: it serves this machine only.
for arg in "$@"; do
  case "$arg" in
    -h|--host|--host=*) echo "dev.sh serves http://localhost only; use docs/operators-guide.md to serve others." >&2; exit 2 ;;
  esac
done

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt

export CLIENTGATE_ENV=${CLIENTGATE_ENV:-development}
export FLASK_APP=app
.venv/bin/flask db upgrade
.venv/bin/flask demo
echo
echo "Open http://localhost:${PORT:-5000}/login — codes appear below and at http://localhost:${PORT:-5000}/dev/outbox"
exec .venv/bin/flask run --host 127.0.0.1 --port "${PORT:-5000}" "$@"
