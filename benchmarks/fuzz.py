"""kcovdf fuzz against Atheris on the planted-bug targets of benchmarks/fuzz_targets/.

Each target runs under both fuzzers from an empty corpus, for each seed, two runs at a
time (2 cores), and the table gives, per fuzzer, the median time to the bug (a miss
counts as infinite, time is wall time from the start of the process) and the runs that
found it. exec/s comes from one more run per target and fuzzer on the same code with the
planted exception swallowed (a run that finds its bug at once says little about speed);
the empty target measures the loops alone. Then each of the issue's
targets is checked. Atheris runs on a Python its wheels support (``--atheris-python``,
default .venv/atheris/bin/python; ``pip install '.[bench]'`` there).

    python benchmarks/fuzz.py                       3 seeds x 120 s
    python benchmarks/fuzz.py --seconds 20          a quick run
    python benchmarks/fuzz.py --only blind_in magic_int
"""

from __future__ import annotations

import argparse
import concurrent.futures
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TARGETS = os.path.join(HERE, "fuzz_targets")
ROOT = os.path.dirname(HERE)
_EXEC = re.compile(r"exec/s: (\d+)")


def targets(only: list[str]) -> list[tuple[str, str, str]]:
    """(name, class, exception name) of each target."""
    out = []
    for file in sorted(os.listdir(TARGETS)):
        if not file.endswith(".py") or file.startswith("_"):
            continue
        name = file[:-3]
        if only and name not in only:
            continue
        with open(os.path.join(TARGETS, file)) as f:
            text = f.read()
        kind = re.search(r'^CLASS = "(\w+)"', text, re.M)
        bug = re.search(r"^class (\w+)\(Exception\)", text, re.M)
        out.append((name, kind.group(1) if kind else "?", bug.group(1) if bug else ""))
    return out


def command(fuzzer: str, name: str, seed: int, seconds: float, artifacts: str, pythons: dict[str, str],
            speed: bool = False) -> list[str]:
    """The command line of one run (``speed``: on the harness that swallows the planted bug)."""
    path = os.path.join(TARGETS, f"{name}.py")
    flags = [f"-seed={seed}", f"-max_total_time={seconds:g}", f"-artifact_prefix={artifacts}/"]
    if fuzzer == "kcovdf":
        harness = os.path.join(TARGETS, "_swallow.py") if speed else path
        return [pythons["kcovdf"], "-m", "kcovdf", "fuzz", harness, "--include", name, "-calltree=0", *flags]
    return [pythons["atheris"], os.path.join(TARGETS, "_atheris_runner.py"), path, *flags]


def run_one(cmd: list[str], bug: str, seconds: float,
            env: dict[str, str] | None = None) -> tuple[float, float]:
    """(seconds to the bug or inf, exec/s of the last status line) of one run."""
    with tempfile.TemporaryDirectory() as scratch:
        started = time.monotonic()
        proc = subprocess.run(cmd, cwd=scratch, capture_output=True, text=True, timeout=seconds + 120,
                              check=False, env=env)
        elapsed = time.monotonic() - started
    out = proc.stdout + proc.stderr
    speeds = _EXEC.findall(out)
    found = bool(bug) and f"{bug}" in out and proc.returncode != 0
    return (elapsed if found else math.inf), (float(speeds[-1]) if speeds else 0.0)


def main() -> int:
    """Run the comparison and print the table."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=120.0, help="time limit of each run (default 120)")
    parser.add_argument("--seeds", type=int, default=3, help="runs per target and fuzzer (default 3)")
    parser.add_argument("--parallel", type=int, default=2, help="runs at a time (default 2)")
    parser.add_argument("--speed-seconds", type=float, default=10.0,
                        help="length of each exec/s run, the bug swallowed (default 10)")
    own = os.path.join(ROOT, ".venv", "atheris", "bin", "python")
    parser.add_argument("--atheris-python", default=own if os.path.exists(own) else sys.executable,
                        help="a Python with atheris installed (default .venv/atheris, else this one)")
    parser.add_argument("--kcovdf-python", default=sys.executable)
    parser.add_argument("--only", nargs="*", default=[], metavar="TARGET")
    args = parser.parse_args()
    pythons = {"kcovdf": args.kcovdf_python, "atheris": args.atheris_python}
    fuzzers = ["kcovdf"]
    if subprocess.run([args.atheris_python, "-c", "import atheris"], capture_output=True,
                      check=False).returncode == 0:
        fuzzers.append("atheris")
    else:
        print(f"Atheris does not import in {args.atheris_python}: kcovdf alone", file=sys.stderr)
    found = targets(args.only)
    artifacts = tempfile.mkdtemp(prefix="kcovdf-fuzz-bench-")
    jobs = []  # (key, command, bug, seconds, env)
    for name, kind, bug in found:
        for fuzzer in fuzzers:
            if kind != "speed":
                for seed in range(1, args.seeds + 1):
                    jobs.append(((name, fuzzer, "hunt"), command(fuzzer, name, seed, args.seconds, artifacts,
                                                                  pythons), bug, args.seconds, None))
            env = dict(os.environ, KCOVDF_BENCH_TARGET=name, KCOVDF_BENCH_BUG=bug,
                       PYTHONPATH=TARGETS + os.pathsep + os.environ.get("PYTHONPATH", ""))
            speed = command(fuzzer, name, 1, args.speed_seconds, artifacts, pythons, speed=True)
            jobs.append(((name, fuzzer, "speed"), speed, "", args.speed_seconds, env))
    results: dict[tuple[str, str, str], list[tuple[float, float]]] = {}
    print(f"{len(jobs)} runs, {args.parallel} at a time: {args.seeds} seed(s) x up to {args.seconds:g} s per "
          f"target and fuzzer, then {args.speed_seconds:g} s of exec/s with the bug swallowed "
          f"(kcovdf on Python {sys.version.split()[0]}: {args.kcovdf_python}; "
          f"Atheris: {args.atheris_python})",
          flush=True)
    with concurrent.futures.ThreadPoolExecutor(args.parallel) as pool:
        futures = {pool.submit(run_one, cmd, bug, seconds, env): key for key, cmd, bug, seconds, env in jobs}
        for future in concurrent.futures.as_completed(futures):
            results.setdefault(futures[future], []).append(future.result())
    print()
    head = f"{'target':<18} {'class':<9}"
    for fuzzer in fuzzers:
        head += f" | {fuzzer + ' ttb':>12} {'found':>5}"
    for fuzzer in fuzzers:
        head += f" | {fuzzer + ' exec/s':>14}"
    if len(fuzzers) == 2:
        head += " | ratio"
    print(head)
    print("-" * len(head))
    verdicts = []
    for name, kind, _bug in found:
        line = f"{name:<18} {kind:<9}"
        stats = {}
        for fuzzer in fuzzers:
            hunts = results.get((name, fuzzer, "hunt"), [])
            ttb = statistics.median(t for t, _ in hunts) if hunts else math.inf
            hits = sum(1 for t, _ in hunts if t < math.inf)
            speed = results[(name, fuzzer, "speed")][0][1]
            stats[fuzzer] = (ttb, hits, speed, len(hunts))
            shown = "-" if not hunts else ("inf" if ttb == math.inf else f"{ttb:.1f}s")
            line += f" | {shown:>12} {f'{hits}/{len(hunts)}' if hunts else '-':>5}"
        for fuzzer in fuzzers:
            line += f" | {stats[fuzzer][2]:>14.0f}"
        if len(fuzzers) == 2:
            ratio = stats["kcovdf"][2] / stats["atheris"][2] if stats["atheris"][2] else math.inf
            line += f" | {ratio:.2f}x"
        print(line)
        k = stats["kcovdf"]
        if kind == "speed":
            verdicts.append((f"empty loop >= 100k exec/s ({k[2]:.0f})", k[2] >= 100_000))
        if kind == "dataflow":
            verdicts.append((f"{name}: kcovdf finds it in >= 7/9 runs, scaled to {k[3]} ({k[1]}/{k[3]})",
                             k[1] >= math.ceil(7 * k[3] / 9)))
        if kind == "blind":
            verdicts.append((f"{name}: kcovdf finds it within 60 s in median ({k[0]:.1f}s)", k[0] <= 60))
        if "atheris" in stats:
            a = stats["atheris"]
            if a[0] < math.inf:
                verdicts.append((f"{name}: Atheris finds it; kcovdf at least as fast in median "
                                 f"({k[0]:.1f}s vs {a[0]:.1f}s)", k[0] <= a[0]))
            if a[2]:
                verdicts.append((f"{name}: kcovdf exec/s >= 0.5x Atheris ({k[2] / a[2]:.2f}x)",
                                 k[2] >= 0.5 * a[2]))
    print()
    for text, ok in verdicts:
        print(f"[{'MET' if ok else 'NOT MET'}] {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
