#!/usr/bin/env bash
# Install kcovdf with its test dependencies into one venv per Python (.venv/pyX.Y) and run
# the whole test suite in each: on the C core, then on the Python twin (KCOVDF_CORE=py,
# slow tests left out: they run on the C core).
#
# Pythons: $KCOVDF_PYTHONS (space-separated commands or paths), else the default python3
# and a Python 3.13: python3.13 on PATH, else the newest of pyenv's versions/3.13*.
# Exits non-zero, saying what is missing, when one cannot be found; CI needs both.
# Arguments are passed to every pytest run (e.g. -x, -k NAME, a test path).
set -euo pipefail
cd "$(dirname "$0")/.."

die() {
  echo "scripts/test.sh: $*" >&2
  exit 2
}

# The native tests (tests/native) need LLVM 19 (clang-19, opt-19, llc-19, llvm-link-19 and the
# headers of llvm-19-dev, for kcovdf's pass plugin) from Debian's packages, and rustc: the
# packages are installed when missing (through sudo unless root); no rustc fails here.
llvm_missing() {
  local t
  for t in clang-19 clang++-19 opt-19 llc-19 llvm-link-19 llvm-as-19 llvm-config-19; do
    command -v "$t" >/dev/null || return 0
  done
  [ ! -e /usr/lib/llvm-19/include/llvm/Passes/PassPlugin.h ]
}
if llvm_missing; then
  echo "scripts/test.sh: installing LLVM 19 for the native tests (apt-get install -y clang-19 llvm-19 llvm-19-dev)"
  as_root=()
  [ "$(id -u)" -eq 0 ] || as_root=(sudo -n)
  export DEBIAN_FRONTEND=noninteractive
  { "${as_root[@]}" apt-get update -q && "${as_root[@]}" apt-get install -y -q clang-19 llvm-19 llvm-19-dev; } \
    || die "could not install clang-19 llvm-19 llvm-19-dev (Debian's packages): the native tests need them"
fi
# rustup installs into ~/.cargo/bin, which a non-login shell may not have on PATH
if ! command -v rustc >/dev/null && [ -x "$HOME/.cargo/bin/rustc" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
command -v rustc >/dev/null && command -v cargo >/dev/null \
  || die "no rustc/cargo on PATH: the native tests build Rust code (install Rust 1.7x+, e.g. Debian's rustc and cargo)"

# Whether "$1" runs and is Python $2 (a pyenv shim of an inactive version is found but fails).
is_python() {
  "$1" -c "import sys; sys.exit(sys.version_info[:2] != tuple(map(int, '$2'.split('.'))))" \
    >/dev/null 2>&1
}

find_python313() {
  local root candidate
  if command -v python3.13 >/dev/null && is_python python3.13 3.13; then
    echo python3.13
    return 0
  fi
  root=${PYENV_ROOT:-$HOME/.pyenv}
  # the newest first: 3.13.10 sorts after 3.13.9
  while IFS= read -r candidate; do
    if [ -x "$candidate" ] && is_python "$candidate" 3.13; then
      echo "$candidate"
      return 0
    fi
  done < <(printf '%s\n' "$root"/versions/3.13*/bin/python3 | sort -rV)
  return 1
}

if [ -n "${KCOVDF_PYTHONS:-}" ]; then
  pythons=$KCOVDF_PYTHONS
  for py in $pythons; do
    "$py" -c "" >/dev/null 2>&1 || die "KCOVDF_PYTHONS names '$py', which does not run"
  done
else
  command -v python3 >/dev/null && python3 -c "" >/dev/null 2>&1 \
    || die "no python3 on PATH: the default Python is one of the two CI tests"
  py313=$(find_python313) || die "no Python 3.13 found: looked for python3.13 on PATH and \
${PYENV_ROOT:-$HOME/.pyenv}/versions/3.13*/bin/python3. CI tests the default python3 and 3.13. \
Install one (pyenv install 3.13, or your distribution's python3.13 with its venv module), \
or name the interpreters: KCOVDF_PYTHONS=\"python3 /path/to/python3.13\" bash scripts/test.sh"
  pythons="python3 $py313"
fi

results=()
status=0

# One pytest run; a failure, or no test run at all (pytest's exit 5), fails the script.
run_pytest() {
  local label=$1 rc=0 start=$SECONDS
  shift
  echo "--- $label"
  "$@" || rc=$?
  case $rc in
    0) results+=("ok      $label ($((SECONDS - start)) s)") ;;
    5) results+=("FAILED  $label: pytest collected no tests (exit 5)") ;;
    *) results+=("FAILED  $label: pytest exit $rc") ;;
  esac
  [ "$rc" -eq 0 ] || status=1
}

for py in $pythons; do
  ver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  venv=".venv/py$ver"
  echo "=== Python $ver ($py)"
  [ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
  pip=("$venv/bin/python" -m pip install -q --disable-pip-version-check)
  "${pip[@]}" --upgrade pip
  "${pip[@]}" --force-reinstall --no-deps .
  "${pip[@]}" ".[test,bench]"
  "$venv/bin/python" -m ruff check .
  pytest=("$venv/bin/python" -m pytest -p no:cacheprovider)
  run_pytest "Python $ver, C core" "${pytest[@]}" "$@"
  run_pytest "Python $ver, Python twin (KCOVDF_CORE=py)" env KCOVDF_CORE=py "${pytest[@]}" -m "not slow" "$@"
done

echo "=== Summary"
printf '%s\n' "${results[@]}"
exit $status
