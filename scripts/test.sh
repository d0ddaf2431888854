#!/usr/bin/env bash
# Install everything the tests need (Python packages, Debian's chromium and postgresql),
# then run the whole test suite on SQLite and again on PostgreSQL. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
# npm brings axe-core, which the browser tests run inside each page (package-lock.json).
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
# The suite runs a second time on a throwaway PostgreSQL server (scripts/pgtemp.py).
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 \
  || need_apt+=(postgresql)
# Real web servers and Redis, each started by the test fixtures on 127.0.0.1 with their own
# configuration and temporary folders (never the system services).
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_apt+=(nginx)
command -v caddy >/dev/null 2>&1 || need_apt+=(caddy)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v sqlite3 >/dev/null 2>&1 || need_apt+=(sqlite3)
if ((${#need_apt[@]})); then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "Missing Debian packages: ${need_apt[*]} (run as root, or: sudo apt-get install ${need_apt[*]})" >&2
    exit 1
  fi
fi

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
[ -f node_modules/axe-core/axe.min.js ] || npm ci --no-audit --no-fund --loglevel=error

# Once on SQLite, then again on PostgreSQL (browser tests only once: they test pages, not
# the database). The server is stopped at the end even when tests fail.
status=0
echo "== tests on SQLite =="
env -u TEST_DATABASE_URL .venv/bin/python -m pytest "$@" || status=$?
echo "== tests on PostgreSQL =="
.venv/bin/python scripts/pgtemp.py run -- .venv/bin/python -m pytest -m "not browser" "$@" \
  || status=$?
exit "$status"
