"""``kcovdf export``: write a trace as JSON Lines, Parquet or Daikon .decls/.dtrace.

One module per format (jsonl, parquet, daikon), each registering an ``Exporter`` in
``kcovdf.tools.export.base.REGISTRY``; ``resolve`` and ``calls`` hold what they share.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from kcovdf.cli import add_trace_argument
from kcovdf.errors import KcovdfError
from kcovdf.read.decode import Trace
from kcovdf.symbols import add_symbol_arguments, kernel_symbols_from_args
from kcovdf.tools.export import daikon, jsonl, parquet  # noqa: F401  (each registers its format)
from kcovdf.tools.export.base import REGISTRY, Batches


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``kcovdf export``."""
    add_trace_argument(parser)
    parser.add_argument("--format", "-f", required=True, choices=sorted(REGISTRY),
                        help="; ".join(f"{n}: {c.description}" for n, c in sorted(REGISTRY.items())))
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="OUT",
                        help="output file (jsonl), directory (parquet) or file stem (daikon)")
    add_symbol_arguments(parser)


def main(args: argparse.Namespace) -> int:
    """Run ``kcovdf export``; 0 on success, 1 when the trace cannot be read or written."""
    from kcovdf.read import decode

    try:
        kernel = kernel_symbols_from_args(args)
        counted = _Counted(lambda: decode.batches(args.trace, kernel=kernel))
        paths, trace = REGISTRY[args.format]().write_batches(counted.start, args.output)
    except (KcovdfError, OSError) as exc:
        print(f"kcovdf export: {exc}", file=sys.stderr)
        return 1
    for note in [*trace.notes, *trace.missing]:
        print(f"kcovdf export: note: {note}", file=sys.stderr)
    print(f"{counted.records} records -> " + ", ".join(str(p) for p in paths), file=sys.stderr)
    return 0


class _Counted:
    """Passes over the batches, counting the records of the last one."""

    def __init__(self, batches: Batches) -> None:
        self.batches = batches
        self.records = 0

    def start(self) -> Iterator[tuple[Trace, pa.Table]]:
        """One more pass."""
        self.records = 0
        for t, table in self.batches():
            self.records += table.num_rows
            yield t, table
