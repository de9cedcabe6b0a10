#!/usr/bin/env python3
"""Run real libraries' own test suites with the library entirely instrumented.

For each pinned library the sdist (which ships the tests) is fetched once with
``pip download`` into a cache directory and unpacked; its suite then runs twice
with this interpreter's pytest: plainly, and under
``kcovdf run --include LIBRARY -m pytest``. The outcome counts (passed, failed,
skipped, ...) must be identical, the trace must hold records of the
library's own functions, with 0 drops (the whole run, default options), and
``kcovdf sql "SELECT count(*) FROM calls"`` must count one call per first entry
record. Exit status 0 when every library matches, else 1.

Usage: python scripts/realcode.py [--cache DIR] [--only NAME]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import subprocess
import sys
import tarfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_CACHE = os.path.join(HERE, os.pardir, "build", "realcode")


@dataclasses.dataclass(frozen=True)
class Library:
    """A pinned pure-Python library whose sdist carries its test suite."""

    name: str              # distribution name
    version: str
    module: str            # the import name, instrumented with --include
    src: str               # directory of the package inside the sdist
    tests: str             # test directory inside the sdist
    helpers: tuple[str, ...] = ()   # pinned test-only dependencies (sdists, put on PYTHONPATH)


# tomli's sdists ship no tests, so more-itertools (tests included) stands beside packaging.
LIBRARIES = (
    Library("packaging", "24.2", "packaging", "src", "tests", helpers=("pretend==1.0.9",)),
    Library("more-itertools", "10.5.0", "more_itertools", ".", "tests"),
)

OUTCOME = re.compile(r"(\d+) (passed|failed|skipped|xfailed|xpassed|errors?|warnings?|"
                     r"subtests passed|subtests failed|subtests skipped|deselected)")


def fetch(requirement: str, cache: str) -> str:
    """Unpacked sdist directory of ``name==version``, downloading it once."""
    name, version = requirement.split("==")
    for candidate in (name, name.replace("-", "_")):
        unpacked = os.path.join(cache, f"{candidate}-{version}")
        if os.path.isdir(unpacked):
            return unpacked
    archives = os.path.join(cache, "sdists")
    os.makedirs(archives, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
                    "--no-deps", "--no-binary", ":all:", requirement, "-d", archives], check=True)
    for fname in sorted(os.listdir(archives)):
        stem = fname.lower().replace("_", "-")
        if stem.startswith(f"{name.lower()}-{version}.") and fname.endswith(".tar.gz"):
            with tarfile.open(os.path.join(archives, fname)) as tar:
                top = tar.getnames()[0].split("/")[0]
                if hasattr(tarfile, "data_filter"):  # 3.12+, and 3.10/3.11 security releases
                    tar.extractall(cache, filter="data")
                else:
                    tar.extractall(cache)
            return os.path.join(cache, top)
    raise SystemExit(f"realcode: pip download of {requirement} produced no sdist in {archives}")


def outcomes(output: str) -> dict[str, int]:
    """Counts from pytest's final summary line, e.g. {"passed": 10, "skipped": 1}."""
    lines = [ln for ln in output.splitlines() if ln.strip() and OUTCOME.search(ln)]
    if not lines:
        return {}
    counts = {kind: int(n) for n, kind in OUTCOME.findall(lines[-1])}
    counts.pop("warning", None)
    counts.pop("warnings", None)  # warnings differ harmlessly (DeprecationWarnings seen once)
    return counts


def run_suite(lib: Library, root: str, helper_dirs: list[str], trace: str | None) -> tuple[dict, str, float]:
    """Run the library's suite; (outcome counts, output, seconds)."""
    env = dict(os.environ)
    path = [os.path.join(root, lib.src), *helper_dirs]
    env["PYTHONPATH"] = os.pathsep.join(path + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    pytest = ["-m", "pytest", "-q", "-p", "no:cacheprovider", lib.tests]
    if trace is None:
        cmd = [sys.executable, *pytest]
    else:
        cmd = [sys.executable, "-m", "kcovdf", "run", "-o", trace, "--include", lib.module, *pytest]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
    return outcomes(proc.stdout), proc.stdout, time.perf_counter() - start


def library_symbols(trace: str, module: str) -> tuple[int, int]:
    """(functions of ``module`` the trace names (0: nothing was instrumented), calls it holds:
    its first entry records, one per call, counted from the records themselves)."""
    import pyarrow.compute as pc

    from kcovdf import abi
    from kcovdf.read import decode

    t = decode.load(trace)
    nsyms = sum(1 for s in t.symbols.values() if s.module == module or s.module.startswith(module + "."))
    rec = t.records
    first = pc.and_(pc.equal(rec.column("kind").cast("string"), "entry"),
                    pc.is_in(rec.column("arg_idx"), value_set=pc.cast([0, abi.ARG_NONE], "uint8")))
    return nsyms, pc.sum(first.cast("int64")).as_py() or 0


def sql_calls(trace: str) -> int | None:
    """``SELECT count(*) FROM calls`` through ``kcovdf sql``, as a user would ask it."""
    proc = subprocess.run([sys.executable, "-m", "kcovdf", "sql", trace, "SELECT count(*) AS n FROM calls",
                           "--json"], capture_output=True, text=True, timeout=1200)
    try:
        return int(json.loads(proc.stdout)[0]["n"])
    except (ValueError, KeyError, IndexError):
        print(proc.stderr[-2000:])
        return None


def drops_of(summary: str) -> int | None:
    """The drop count of kcovdf's summary line."""
    m = re.search(r"\), ([\d,]+) drops", summary)
    return int(m.group(1).replace(",", "")) if m else None


def check(lib: Library, cache: str) -> bool:
    """Run one library both ways and print the comparison; True when they match."""
    root = fetch(f"{lib.name}=={lib.version}", cache)
    helpers = [fetch(h, cache) for h in lib.helpers]
    plain, plain_out, t_plain = run_suite(lib, root, helpers, None)
    trace = os.path.join(cache, f"trace-{lib.module}")
    traced, traced_out, t_traced = run_suite(lib, root, helpers, trace)
    summary = [ln for ln in traced_out.splitlines() if ln.startswith("kcovdf: ") and " records (" in ln]
    nsyms, entries = library_symbols(trace, lib.module) if os.path.isdir(trace) else (0, 0)
    drops = drops_of(summary[-1]) if summary else None
    t0 = time.perf_counter()
    counted = sql_calls(trace) if os.path.isdir(trace) else None
    t_sql = time.perf_counter() - t0
    # the whole suite, nothing dropped; every call paired once: SQL's calls = the first entries
    ok = bool(plain) and plain == traced and nsyms > 0 and drops == 0 and counted == entries
    print(f"{lib.name} {lib.version}: plain {plain} in {t_plain:.0f}s; "
          f"instrumented {traced} in {t_traced:.0f}s; {nsyms} functions of {lib.module} in the trace")
    print(f"  {summary[-1] if summary else 'kcovdf: no summary line'}")
    print(f"  calls: {entries:,} first entry records, kcovdf sql counts {counted} ({t_sql:.0f}s); "
          f"drops {drops}")
    print(f"  {'MATCH' if ok else 'MISMATCH'}")
    if not ok:
        print(traced_out[-3000:])
    return ok


def main() -> int:
    """Check every library (or --only one); 0 when all match."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default=DEFAULT_CACHE, help="where sdists are kept and unpacked")
    parser.add_argument("--only", choices=[lib.module for lib in LIBRARIES], help="check one library")
    args = parser.parse_args()
    cache = os.path.abspath(args.cache)
    os.makedirs(cache, exist_ok=True)
    results = [check(lib, cache) for lib in LIBRARIES if args.only in (None, lib.module)]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
