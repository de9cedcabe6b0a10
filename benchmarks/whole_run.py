"""A whole run recorded, and the tools over whole runs of 1M and 100M records.

Run: python benchmarks/whole_run.py [ITERATIONS] [--tools 1M,100M] [--only TEXT]
     (default 1,000,000 iterations: about 7M records; --tools "" skips the second part,
     --only sql times only the tools whose label holds "sql")

Part 1. One loop calls three small functions with int and dataclass arguments; it runs
plain, then under ``kcovdf run`` in each mode (whole, ring, once), all in this one run,
and the ratios are printed side by side. Targets for the whole mode: 0 drops, at most
3x the plain run, at most 16 bytes per record on disk. The time is until ``kcovdf run``
returns; the bytes are those once its sealer has compressed the trace, in the background,
and "compressed after" says when that was.

Part 2. The same loop recorded whole at each size of ``--tools``; on each trace, the
tools a user runs: ``kcovdf sql`` (a count, a grouped aggregate over calls), ``export``
to Parquet and Daikon, ``report`` and ``view | head -100``. Each prints its time, its
records/s and words/s, the words/s of the kernel documentation's C parsing loop
(benchmarks/decode.py, gcc -O2, in memory) on the same trace's words, and its peak RSS,
the sizes side by side: linear tools keep their records/s. Targets: the SQL aggregate
at least 0.25x the C loop's words/s, peak RSS at most 2 GB, ``view | head`` under 2 s.
The tools run once the sealer is done, the calls index of a large trace included
(docs/run.md, The index): its header line says how long after the run that was.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

from kcovdf.read import index, sources
from kcovdf.run import sealer
from kcovdf.runtime import tasks

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from decode import C_LOOP  # noqa: E402  (the C parsing loop, from its own benchmark)

PROGRAM = textwrap.dedent("""\
    import dataclasses
    import sys


    @dataclasses.dataclass
    class Point:
        x: int
        y: int


    def add(a, b):
        return a + b


    def norm1(p):
        return abs(p.x) + abs(p.y)


    def step(i):
        return add(i, 1) + norm1(Point(i, -i))


    total = 0
    for i in range(int(sys.argv[1])):
        total += step(i)
    print(total)
    """)


def timed(cmd: list[str], cwd: str) -> tuple[float, str]:
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=True)
    return time.perf_counter() - start, out.stdout


#: Records the loop writes per iteration: step, add (2 args) and norm1 entries and returns.
RECORDS_PER_ITERATION = 7

#: The tools timed on each trace: (label, kcovdf arguments; TRACE and OUT are filled in).
TOOLS = [
    ("sql count(*) records", ["sql", "TRACE", "SELECT count(*) FROM records"]),
    ("sql calls GROUP BY", ["sql", "TRACE", "SELECT function, count(*), avg(nargs) FROM calls "
                                            "GROUP BY function"]),
    ("export -f parquet", ["export", "TRACE", "-f", "parquet", "-o", "OUT"]),
    ("export -f daikon", ["export", "TRACE", "-f", "daikon", "-o", "OUT"]),
    ("report", ["report", "TRACE", "-o", "OUT.html"]),
]

#: Run one command, then print its peak RSS (KB) on stderr's last line: a process of its own,
#: so that the peak is that command's alone.
_RSS = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
        "sys.exit(r.returncode)")


def size(text: str) -> int:
    """1M, 100M, 250k or a plain number."""
    text = text.strip().lower()
    scale = {"k": 10**3, "m": 10**6}.get(text[-1:], 1)
    return int(float(text.rstrip("km")) * scale)


def modes(n: int) -> None:
    """Part 1: the loop plain and in each mode."""
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "loop.py"), "w") as f:
            f.write(PROGRAM)
        plain, expected = timed([sys.executable, "loop.py", str(n)], tmp)
        print(f"{n:,} iterations; plain run {plain:.2f} s")
        print(f"{'mode':<6} {'time':>8} {'ratio':>6} {'records kept':>14} {'dropped':>12} "
              f"{'on disk':>10} {'B/record':>9} {'compressed after':>17}")
        for mode in tasks.MODES:
            trace = os.path.join(tmp, f"trace-{mode}")
            start = time.perf_counter()
            t, out = timed([sys.executable, "-m", "kcovdf", "run", "--mode", mode, "-o", trace,
                            "loop.py", str(n)], tmp)
            assert out == expected, "the traced program printed something else"
            # kcovdf run leaves a large backlog to its sealer, in the background: the bytes
            # on disk are those once it is done, and when that was is printed too
            assert sealer.wait(trace)
            sealed = time.perf_counter() - start
            s = tasks.summarize(trace)
            per = s.bytes / s.records if s.records else 0
            print(f"{mode:<6} {t:>7.2f}s {t / plain:>5.1f}x {s.records:>14,} {s.drops:>12,} "
                  f"{s.bytes / 1e6:>8.0f}MB {per:>9.1f} {sealed:>16.2f}s")


def c_loop_words_per_second(trace: str, tmp: str) -> float:
    """Words/s of the C parsing loop over the words of the trace's buffers, in memory."""
    dump = Path(tmp, "words.bin")
    count = 0
    with open(dump, "wb") as f:  # one raw buffer: buf[0], then every buffer's words in turn
        f.write(bytes(8))
        for src in sources.iter_trace(trace)[1]:
            body = src.words[1:1 + min(int(src.words[0]), len(src.words) - 1)]
            f.write(body.tobytes())
            count += len(body)
        f.seek(0)
        f.write(np.array([count], np.uint64).tobytes())
    src, exe = Path(tmp, "loop.c"), Path(tmp, "loop")
    src.write_text(C_LOOP)
    subprocess.run(["gcc", "-O2", "-o", str(exe), str(src)], check=True)
    out = subprocess.run([str(exe), str(dump), "3"], check=True, capture_output=True, text=True)
    dump.unlink()
    return count / float(out.stdout.split()[1])


def timed_tool(args: list[str], cwd: str) -> tuple[float, int] | None:
    """(seconds, peak RSS in bytes) of one kcovdf command; None (its error printed) when it failed."""
    start = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", _RSS, sys.executable, "-m", "kcovdf", *args],
                       cwd=cwd, capture_output=True, text=True)
    took = time.perf_counter() - start
    if r.returncode:
        err = r.stderr.strip().splitlines()
        print(f"FAILED after {took:.1f} s: kcovdf {' '.join(args)}\n  " + "\n  ".join(err[:-1][-6:]),
              flush=True)
        return None
    return took, int(r.stderr.splitlines()[-1]) * 1024


def view_head(trace: str, cwd: str, lines: int = 100) -> float:
    """Seconds until ``kcovdf view TRACE | head -100`` has its lines."""
    start = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-m", "kcovdf", "view", trace], cwd=cwd,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert p.stdout is not None
    for _ in range(lines):
        p.stdout.readline()
    took = time.perf_counter() - start
    p.stdout.close()
    p.wait()
    return took


def tools(sizes: list[int], only: str = "") -> None:
    """Part 2: the tools over whole runs of each size."""
    if not shutil.which("gcc"):
        print("gcc not found: the C parsing loop cannot be built; part 2 skipped", file=sys.stderr)
        return
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "loop.py"), "w") as f:
            f.write(PROGRAM)
        rows: dict[str, list[str]] = {}
        header = []
        for records in sizes:
            trace = os.path.join(tmp, f"trace-{records}")
            iterations = records // RECORDS_PER_ITERATION
            timed([sys.executable, "-m", "kcovdf", "run", "-o", trace, "loop.py", str(iterations)], tmp)
            start = time.perf_counter()
            assert sealer.wait(trace, timeout=3600)
            sealed = time.perf_counter() - start
            s = tasks.summarize(trace)
            words = sources.survey(trace).words
            c_rate = c_loop_words_per_second(trace, tmp)
            indexed = index.load(trace) is not None
            header.append(f"{s.records / 1e6:,.0f}M records, {words / 1e6:,.0f}M words, "
                          f"{s.drops} drops, {s.bytes / s.records:.1f} B/record on disk; C loop "
                          f"{c_rate / 1e6:,.0f} Mwords/s; sealer done {sealed:.1f} s after the run "
                          f"({'with' if indexed else 'no'} calls index)")
            for label, args in [t for t in TOOLS if only in t[0]]:
                out = os.path.join(tmp, f"out-{records}-{label.split()[-1]}")
                filled = [a.replace("TRACE", trace).replace("OUT", out) for a in args]
                got = timed_tool(filled, tmp)
                if got is None:
                    rows.setdefault(label, []).append(f"{'FAILED (above)':>49}")
                    continue
                took, rss = got
                rows.setdefault(label, []).append(
                    f"{took:7.1f}s {s.records / took / 1e6:6.2f} Mrec/s {words / took / c_rate:6.3f}x C "
                    f"{rss / 2**30:5.2f} GB")
                shutil.rmtree(out, ignore_errors=True)
                for leftover in (out + ".html", out + ".decls", out + ".dtrace"):
                    if os.path.exists(leftover):
                        os.unlink(leftover)
            head = view_head(trace, tmp)
            rows.setdefault("view | head -100", []).append(f"{head:7.2f}s (to the 100th line)")
            shutil.rmtree(trace)
        print()
        for i, h in enumerate(header):
            print(f"[{i + 1}] {h}")
        print(f"{'tool':<22} " + " | ".join(f"[{i + 1}] {'time':>6} {'records/s':>12} "
                                           f"{'words/s':>8} {'peak RSS':>8}" for i in range(len(sizes))))
        for label, cells in rows.items():
            print(f"{label:<22} " + " | ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("iterations", nargs="?", type=int, default=1_000_000)
    parser.add_argument("--tools", default="1M,100M",
                        help="trace sizes (records) for part 2, comma-separated; empty: skip it")
    parser.add_argument("--only", default="",
                        help="part 2: only the tools whose label holds this text (e.g. sql)")
    args = parser.parse_args()
    modes(args.iterations)
    sizes = [size(x) for x in args.tools.split(",") if x.strip()]
    if sizes:
        tools(sizes, args.only)


if __name__ == "__main__":
    main()
