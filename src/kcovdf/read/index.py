"""The calls index of a finished trace: its calls table, small tables and record count, kept
beside it so that a statement reading no record column answers without decoding a record.

A whole run of 100M records takes tens of seconds to decompress, scan and pair, whatever the
statement: ``SELECT count(*) FROM records`` or a grouping of ``calls`` by function read no
value, yet every record went through the pairer. The pairing is the same every time, so the
sealer does it once, after the run, for traces large enough to be worth it
(``kcovdf.run.sealer.INDEX_MIN_RECORDS``), and writes what ``kcovdf sql`` would have built (docs/run.md, "The
index")::

    TRACE/index/calls.parquet    the calls table, as kcovdf.tools.sql's _calls (zstd)
    TRACE/index/tasks.parquet    and symbols.parquet, types.parquet: the small tables
    TRACE/index/index.json       version, record count, and the task files it was made of

``index.json`` is written last, so an index is whole or absent; it is used only while the
trace directory holds exactly the task files (names and sizes) it lists. Files are 0600:
function names and seqs are less than values, but the trace's permissions are the rule.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from kcovdf import tracefile
from kcovdf.read import decode
from kcovdf.read.resolve import SMALL_TABLES, Pairing, small_tables, with_function

VERSION = 1
_JSON = "index.json"
_TABLES = ("calls", *SMALL_TABLES)


@dataclass(frozen=True)
class Index:
    """A valid index of a trace directory."""

    path: str      #: the index directory
    records: int   #: the records the trace decodes to

    def table(self, name: str) -> str:
        """The Parquet file of one of ``calls``, ``tasks``, ``symbols``, ``types``."""
        return os.path.join(self.path, f"{name}.parquet")

    def read(self, name: str) -> pa.Table:
        """One of the small tables, whole."""
        return pq.read_table(self.table(name))


def _files(trace_dir: str) -> list[list[Any]]:
    """The task files of a trace directory with their sizes, in reading order."""
    listing = tracefile.list_dir(trace_dir)
    return [[t.name, os.stat(os.path.join(trace_dir, t.name)).st_size] for t in listing.tasks]


def build(trace_dir: str | os.PathLike[str], min_records: int = 0) -> Index | None:
    """Make the index of a finished trace directory; None when it holds fewer than
    ``min_records`` records, or changed while it was read (an index must be of one state)."""
    trace_dir = os.fspath(trace_dir)
    out = os.path.join(trace_dir, tracefile.INDEX_DIR)
    tracefile.private_dir(out)
    if os.path.exists(os.path.join(out, _JSON)):
        os.unlink(os.path.join(out, _JSON))  # the old one stops being valid first
    try:
        return _build(trace_dir, out, min_records)
    except _Small:
        shutil.rmtree(out, ignore_errors=True)  # an old index, of another state, goes too
        return None


def _build(trace_dir: str, out: str, min_records: int) -> Index | None:
    before = _files(trace_dir)
    pairing = Pairing()
    records = 0
    trace = None
    with tracefile.private_file(os.path.join(out, "calls.parquet")) as f:
        writer: pq.ParquetWriter | None = None
        for trace, table in decode.batches(trace_dir):
            records += table.num_rows
            pairing.feed(trace, table)
            writer = _write(writer, f, with_function(trace, pairing.pairer.drain_calls()))
        if trace is None:
            raise _Small
        writer = _write(writer, f, with_function(trace, pairing.pairer.calls()))
        assert writer is not None
        writer.close()
        if records < min_records:
            raise _Small
    for name, table in small_tables(trace).items():
        with tracefile.private_file(os.path.join(out, f"{name}.parquet")) as f:
            pq.write_table(table, f)
    if _files(trace_dir) != before:
        return None
    with tracefile.private_file(os.path.join(out, _JSON)) as f:
        f.write(json.dumps({"version": VERSION, "records": records, "files": before}).encode())
    return Index(out, records)


class _Small(Exception):
    """Too few records for an index (private_file then leaves nothing behind)."""


def _write(writer: pq.ParquetWriter | None, f: Any, table: pa.Table) -> pq.ParquetWriter:
    if writer is None:
        # ids, seqs, parents and depths mostly grow by small steps: delta-encoded they take
        # well under a byte per call (3M calls of a loop: 50 MB with dictionaries, 0.25 MB so)
        ints = [c.name for c in table.schema if pa.types.is_integer(c.type)]
        writer = pq.ParquetWriter(f, table.schema, compression="zstd",
                                  use_dictionary=[n for n in table.column_names if n not in ints],
                                  column_encoding=dict.fromkeys(ints, "DELTA_BINARY_PACKED"))
    if table.num_rows:
        writer.write_table(table)
    return writer


def load(trace: Any) -> Index | None:
    """The index of ``trace`` when it is a trace directory with a valid one, else None."""
    if not isinstance(trace, (str, os.PathLike)) or not os.path.isdir(trace):
        return None
    path = os.path.join(os.fspath(trace), tracefile.INDEX_DIR)
    try:
        with open(os.path.join(path, _JSON), "rb") as f:
            info = json.loads(f.read())
        if info.get("version") != VERSION or info.get("files") != _files(os.fspath(trace)):
            return None
        if not all(os.path.isfile(os.path.join(path, f"{name}.parquet")) for name in _TABLES):
            return None
        return Index(path, int(info["records"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
