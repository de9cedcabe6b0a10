"""A whole run recorded: time against the plain run, records kept and dropped, bytes per record.

Run: python benchmarks/whole_run.py [ITERATIONS]   (default 1,000,000: about 8M records)

One loop calls three small functions with int and dataclass arguments; it runs plain,
then under ``kcovdf run`` in each mode (whole, ring, once), all in this one run, and
the ratios are printed side by side. Targets for the whole mode: 0 drops, at most 3x
the plain run, at most 16 bytes per record on disk.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
import time

from kcovdf.runtime import tasks

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


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "loop.py"), "w") as f:
            f.write(PROGRAM)
        plain, expected = timed([sys.executable, "loop.py", str(n)], tmp)
        print(f"{n:,} iterations; plain run {plain:.2f} s")
        print(f"{'mode':<6} {'time':>8} {'ratio':>6} {'records kept':>14} {'dropped':>12} "
              f"{'on disk':>10} {'B/record':>9}")
        for mode in tasks.MODES:
            trace = os.path.join(tmp, f"trace-{mode}")
            t, out = timed([sys.executable, "-m", "kcovdf", "run", "--mode", mode, "-o", trace,
                            "loop.py", str(n)], tmp)
            assert out == expected, "the traced program printed something else"
            s = tasks.summarize(trace)
            per = s.bytes / s.records if s.records else 0
            print(f"{mode:<6} {t:>7.2f}s {t / plain:>5.1f}x {s.records:>14,} {s.drops:>12,} "
                  f"{s.bytes / 1e6:>8.0f}MB {per:>9.1f}")


if __name__ == "__main__":
    main()
