"""Rendering speed: ``kcovdf.read.render.columns`` over every batch of a trace directory.

Times the four value columns (class, number, rendered, value) of each batch, as
``kcovdf.read.resolve`` asks for them, and how many records ``render`` reads one by one
(the slow path, outside every template and every columnar str). With ``--check N`` it
also compares the first N records of each batch (-1: all) with ``kcovdf.read.values``.

    python benchmarks/render.py TRACE_DIR [--repeat R] [--chunk ROWS] [--check N]

``--chunk``: render each batch in slices of ROWS records, as DuckDB calls the value columns
of ``kcovdf sql`` and ``kcovdf contracts`` (a few thousand records a call; the slow path's
memo starts afresh each call).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pyarrow.compute as pc

from kcovdf.read import decode, render


def main() -> None:
    """Parse the arguments, then time and count each batch's rendering."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trace")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--chunk", type=int, default=0, help="records per call (0: a whole batch)")
    ap.add_argument("--check", type=int, default=0,
                    help="records per batch compared with kcovdf.read.values (-1: all)")
    args = ap.parse_args()
    batches = []
    for trace, b in decode.batches(args.trace):
        kind = b.column("kind").combine_chunks()
        codes = np.asarray(pc.index_in(kind.dictionary, value_set=decode._KIND_DICT))[
            kind.indices.to_numpy(zero_copy_only=False)].astype(np.int8)
        batches.append((np.asarray(b.column("task")).astype(np.int64), codes,
                        np.asarray(b.column("arg_idx")), b.column("values").combine_chunks(),
                        [t.encoding for t in trace.tasks], trace.types))
    records = sum(len(x[1]) for x in batches)
    calls = [(task[lo:lo + step], kind[lo:lo + step], arg_idx[lo:lo + step], vals[lo:lo + step],
              enc, types)
             for task, kind, arg_idx, vals, enc, types in batches
             for step in [args.chunk or len(kind)] for lo in range(0, len(kind), step)]
    slow = 0
    original = render._one_by_one

    def counting(rows, *a, **k):  # type: ignore[no-untyped-def]
        nonlocal slow
        slow += len(rows)
        return original(rows, *a, **k)

    render._one_by_one = counting
    best = float("inf")
    for _ in range(args.repeat):
        slow = 0
        t0 = time.perf_counter()
        for call in calls:
            render.columns(*call)
        best = min(best, time.perf_counter() - t0)
    render._one_by_one = original
    print(f"{records:,} records in {len(batches)} batches, {len(calls)} calls: render.columns {best:.2f} s "
          f"(best of {args.repeat}), {slow:,} read one by one")
    if args.check:
        # the reference: each distinct value read by kcovdf.read.values (render's memoized slow path)
        for task, kind, arg_idx, vals, enc, types in batches:
            n = len(kind) if args.check < 0 else min(args.check, len(kind))
            got = render.columns(task[:n], kind[:n], arg_idx[:n], vals[:n], enc, types)
            off, size, child = render._lists(vals[:n])
            want = original(np.arange(n), task[:n], kind[:n], arg_idx[:n], off, size, child,
                            enc, types, render.ALL)
            assert all(g.equals(w) for g, w in zip(got, want, strict=True))
        print("checked: equal to kcovdf.read.values record by record"
              + ("" if args.check < 0 else f" (first {args.check:,} records of each batch)"))


if __name__ == "__main__":
    main()
