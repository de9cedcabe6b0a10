"""Call pairing throughput: the C pairer (_core/pair.c) against its Python twin.

Pairs one records table of several million records with both twins of
kcovdf.read.calls (declaring the tasks, feeding the table batch by batch, building the
calls table) and prints records/s side by side, after checking that both gave the same
ids, depths and calls. The table is synthetic (a loop of calls with arguments, a
generator resumed by its caller, format 2 call ids; --format 1: the same stream paired by
stack), or a real trace with --trace.

    python benchmarks/pair.py [--records N] [--format 1|2] [--repeat R] [--trace PATH]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

import numpy as np
import pyarrow as pa
from decode import best_of  # the benchmarks' one timer (benchmarks/ is the script's directory)

from kcovdf import abi
from kcovdf.read import calls, decode

KIND = {name: code for code, name in enumerate(decode.KINDS)}

# One turn of the loop: step(i) calls add(i, 1) and norm1(p), then runs a generator that
# yields twice and returns, resumed by step. (kind, function, arg_idx, call of the turn,
# resumer's call or None); call 0 is step, 1 add, 2 norm1, 3 the generator.
TURN = [
    ("entry", "step", 0, 0, None),
    ("entry", "add", 0, 1, None), ("entry", "add", 1, 1, None), ("return", "add", 0, 1, None),
    ("entry", "norm1", 0, 2, None), ("return", "norm1", 0, 2, None),
    ("entry", "gen", abi.ARG_NONE, 3, None), ("yield", "gen", abi.ARG_YIELD, 3, None),
    ("resume", "gen", abi.EVENT_RESUME, 3, 0), ("yield", "gen", abi.ARG_YIELD, 3, None),
    ("resume", "gen", abi.EVENT_RESUME, 3, 0), ("return", "gen", 0, 3, None),
    ("return", "step", 0, 0, None),
]
CALLS_PER_TURN = 4


def synthetic(records: int, fmt: int) -> tuple[pa.Table, list[decode.Task]]:
    """A records table of about ``records`` records of one task (the decoder's schema but for
    one value word per record: the resumer's call id on resume records, else 0)."""
    turns = max(1, records // len(TURN))
    pcs = {name: abi.fnv1a64(f"app:{name}:1".encode()) for name in ("step", "add", "norm1", "gen")}
    kind = np.array([KIND[k] for k, *_ in TURN], np.int8)
    pc = np.array([pcs[f] for _, f, *_ in TURN], np.uint64)
    arg = np.array([a for _, _, a, _, _ in TURN], np.uint8)
    call = np.array([c for *_, c, _ in TURN], np.uint64)
    by = np.array([-1 if r is None else r for *_, r in TURN], np.int64)
    base = (np.arange(turns, dtype=np.uint64) * CALLS_PER_TURN + 1)[:, None]
    n = turns * len(TURN)
    ptr = (base + call).ravel() if fmt == 2 else np.zeros(n, np.uint64)
    value0 = np.where(by >= 0, base + by.astype(np.uint64), 0).ravel().astype(np.uint64)
    table = pa.Table.from_arrays([
        pa.array(np.zeros(n, np.int32)),
        pa.array((np.arange(n, dtype=np.uint32) + 1) & np.uint32(abi.SEQ_MASK)),
        pa.DictionaryArray.from_arrays(pa.array(np.tile(kind, turns)), pa.array(decode.KINDS)),
        pa.array(np.tile(pc, turns)), pa.array(np.tile(arg, turns)), pa.array(np.full(n, 8, np.uint8)),
        pa.array(ptr),
        pa.ListViewArray.from_arrays(pa.array(np.arange(n, dtype=np.int32)), pa.array(np.ones(n, np.int32)),
                                     pa.array(value0)),
    ], schema=decode.SCHEMA)
    task = decode.Task(0, 1000, 1000, "MainThread", "synthetic", format=fmt)
    return table, [task]


def run(make: Callable[[], calls.Pairer | calls.CPairer], records: pa.Table,
        tasks: list[decode.Task]) -> calls.PairedArrays:
    """The whole pairing of one table with one twin, as ``calls.pair_arrays`` does it."""
    p = make()
    for task in tasks:
        p.task(task.index, task.format, task.pid)
    ids, depths = calls.feed_table(p, records)
    return calls.PairedArrays(ids, depths, p.calls())


def main() -> int:
    """Run the benchmark and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=5_000_000)
    parser.add_argument("--format", type=int, choices=(1, 2), default=2)
    parser.add_argument("--repeat", type=int, default=3, help="runs of the C pairer (best kept); "
                        "the Python twin runs once")
    parser.add_argument("--trace", help="pair this trace (kcovdf.read.decode.load) instead")
    args = parser.parse_args()
    if calls._CPair is None:
        print("the C pairer kcovdf._core._pair is not built (pip install -e .)", file=sys.stderr)
        return 2
    if args.trace:
        trace = decode.load(args.trace)
        records, tasks, what = trace.records, trace.tasks, args.trace
    else:
        records, tasks = synthetic(args.records, args.format)
        what = f"synthetic, format {args.format}"
    n = records.num_rows
    t_c, c = best_of(args.repeat, lambda: run(calls.CPairer, records, tasks))
    t_py, py = best_of(1, lambda: run(calls.Pairer, records, tasks))
    assert np.array_equal(c.ids, py.ids) and np.array_equal(c.depths, py.depths)
    assert c.calls.equals(py.calls)
    print(f"trace: {what}: {n:,} records, {c.calls.num_rows:,} calls, "
          f"{int(c.calls.column('resumes').to_numpy().sum()):,} resumes")
    print(f"{'C pairer (_core/pair.c)':32s} {t_c:8.3f} s {n / t_c / 1e6:8.2f} M records/s")
    print(f"{'Python twin (calls.Pairer)':32s} {t_py:8.3f} s {n / t_py / 1e6:8.2f} M records/s")
    print(f"ratio C / Python: {t_py / t_c:.0f}x  (identical ids, depths and calls)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
