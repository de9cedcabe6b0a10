#!/usr/bin/env bash
# Render a kcovdf report in headless Chromium and check the screenshot is not blank.
# Installs Debian's chromium when missing. Usage: scripts/report_screenshot.sh [OUT_DIR]
# Prints the path of the PNG; exits non-zero when the page did not render.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:-build/report-screenshot}")
py=${PYTHON:-.venv/dev/bin/python}
[ -x "$py" ] || py=python3
browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
  browser=$(command -v chromium)
fi
mkdir -p "$out"
chmod 700 "$out"
# A generated trace (tests/exportgen.py) touching every record kind the report shows.
"$py" - "$out" <<'PY'
import sys
sys.path.insert(0, "tests")
import exportgen
exportgen.sample_dir(sys.argv[1] + "/trace")
PY
"$py" -m kcovdf report "$out/trace" -o "$out/report.html"
rm -f "$out/report.png"
# --no-sandbox: CI containers run as root, where Chromium's sandbox refuses to start.
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars \
  --screenshot="$out/report.png" --window-size=1280,2000 "file://$out/report.html" 2>"$out/chromium.log" || {
  cat "$out/chromium.log" >&2; exit 1; }
"$py" - "$out/report.png" <<'PY'
import struct, sys
path = sys.argv[1]
data = open(path, "rb").read()
if data[:8] != b"\x89PNG\r\n\x1a\n":
    sys.exit(f"{path}: not a PNG")
width, height = struct.unpack(">II", data[16:24])
# a blank page compresses to almost nothing; a rendered report has text and plots
if (width, height) != (1280, 2000) or len(data) < 50_000:
    sys.exit(f"{path}: {width}x{height}, {len(data)} bytes: the page did not render")
print(f"{path}: {width}x{height}, {len(data)} bytes")
PY
echo "$out/report.png"
