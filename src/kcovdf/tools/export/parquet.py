"""Parquet export: a directory of tables that Spark, Dask, DuckDB or pandas read directly."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from kcovdf import __version__, tracefile
from kcovdf.read.decode import Trace
from kcovdf.read.resolve import records_and_calls, stats, symbols_table, tasks_table, types_table
from kcovdf.tools.export.base import Exporter, register


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
        tracefile.private_dir(out)
        records, call_table = records_and_calls(trace)
        meta = {"kcovdf.format": str(tracefile.FORMAT_VERSION), "kcovdf.version": __version__,
                "kcovdf.stats": json.dumps(stats(trace))}
        records = records.replace_schema_metadata({**(records.schema.metadata or {}), **meta})
        return [_write(records, out / "records.parquet"), _write(call_table, out / "calls.parquet"),
                _write(tasks_table(trace), out / "tasks.parquet"),
                _write(types_table(trace), out / "types.parquet"),
                _write(symbols_table(trace), out / "symbols.parquet")]
