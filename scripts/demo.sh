#!/usr/bin/env bash
# The main job on the bundled example: install kcovdf into a venv,
# record examples/eight_args.py and show the records.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
venv=.venv/demo
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check .
"$venv/bin/kcovdf" selftest
"$venv/bin/kcovdf" run -o kcovdf-trace-demo examples/eight_args.py
"$venv/bin/kcovdf" view kcovdf-trace-demo
