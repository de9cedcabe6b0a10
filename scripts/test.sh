#!/usr/bin/env bash
# Install kcovdf with its test dependencies into one venv per Python and run the
# whole test suite in each. Pythons: $KCOVDF_PYTHONS, or the default python3 and 3.13.
set -euo pipefail
cd "$(dirname "$0")/.."
pythons=${KCOVDF_PYTHONS:-"python3 /root/.pyenv/versions/3.13.0/bin/python3"}
status=0
for py in $pythons; do
  ver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  venv=".venv/py$ver"
  echo "=== Python $ver ($py) ==="
  [ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps .
  "$venv/bin/python" -m pip install -q --disable-pip-version-check ".[test,bench]"
  "$venv/bin/python" -m ruff check .
  "$venv/bin/python" -m pytest -p no:cacheprovider "$@" || status=$?
done
exit $status
