"""Parquet export: a directory of tables that Spark, Dask, DuckDB or pandas read directly."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from kcovdf import __version__, tracefile
from kcovdf.read import calls
from kcovdf.read.decode import Trace
from kcovdf.read.resolve import (
    PAIRING,
    SCHEMA,
    Resolved,
    stats,
    symbols_table,
    tasks_table,
    types_table,
)
from kcovdf.tools.export.base import Batches, Exporter, register

#: records.parquet's columns: the record columns of every output (docs/exports.md).
RECORDS = pa.schema(list(SCHEMA) + list(PAIRING))
#: calls.parquet's columns: the calls table with the function's name (resolve.with_function).
_AT = calls.SCHEMA.get_field_index("pc") + 1
CALLS = pa.schema(list(calls.SCHEMA)[:_AT] + [pa.field("function", pa.string())] + list(calls.SCHEMA)[_AT:])


def _write(table: pa.Table, path: Path) -> Path:
    with tracefile.private_file(path) as f:
        pq.write_table(table, f, compression="zstd")
    return path


@register
class ParquetExporter(Exporter):
    """records, calls, tasks, types and symbols as five Parquet files in one directory."""

    name = "parquet"
    description = "Parquet: OUT is a directory of records/calls/tasks/types/symbols .parquet"

    def write(self, trace: Trace, out: Path) -> list[Path]:
        """Write the five tables of ``trace`` into the directory ``out`` (created 0700)."""
        return self.write_batches(lambda: iter([(trace, trace.records)]), out)[0]

    def write_batches(self, batches: Batches, out: Path) -> tuple[list[Path], Trace]:
        """Write records.parquet as the batches come, then the other four tables.

        The trace's counters (``kcovdf.stats``) are known at the end: they go into the
        file's key-value metadata when it is closed.
        """
        tracefile.private_dir(out)
        path, calls_path = out / "records.parquet", out / "calls.parquet"
        schema = RECORDS.with_metadata({"kcovdf.format": str(tracefile.FORMAT_VERSION),
                                        "kcovdf.version": __version__})
        with tracefile.private_file(calls_path) as cf, \
                pq.ParquetWriter(cf, CALLS, compression="zstd") as calls_w:
            # calls are written as they finish: the pairer forgets them
            resolved = Resolved(batches(), lambda t: calls_w.write_table(t.cast(CALLS)))
            with tracefile.private_file(path) as f, pq.ParquetWriter(f, schema, compression="zstd") as w:
                for table in resolved:
                    w.write_table(table.cast(schema))
                trace = resolved.trace
                if trace is None:
                    raise ValueError("no trace was read")
                w.add_key_value_metadata({"kcovdf.stats": json.dumps(stats(trace))})
            calls_w.write_table(resolved.calls().cast(CALLS))
        return [path, calls_path,
                _write(tasks_table(trace), out / "tasks.parquet"),
                _write(types_table(trace), out / "types.parquet"),
                _write(symbols_table(trace), out / "symbols.parquet")], trace
