"""``kcovdf sql``: SQL (DuckDB) over a trace's views records, calls, tasks, symbols and types.

The views are Arrow tables registered in an in-memory DuckDB connection; nothing is copied
to disk. ``kcovdf sql --help`` lists their columns, read from the views themselves;
docs/exports.md explains them.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import re
import shutil
import sys
import tempfile
from collections.abc import Collection, Iterator
from typing import Any, NamedTuple, TextIO

import duckdb
import numpy as np
import pyarrow as pa

from kcovdf.cli import add_trace_argument
from kcovdf.errors import KcovdfError
from kcovdf.read import decode, index
from kcovdf.read.decode import Trace
from kcovdf.read.index import Index
from kcovdf.read.resolve import (
    NAMED,
    PAIRING,
    SMALL_TABLES,
    Pairing,
    Resolver,
    named_columns,
    pairing,
    small_tables,
    with_function,
)
from kcovdf.symbols import add_symbol_arguments, kernel_symbols_from_args

#: one call per row: the pairing of kcovdf.read.calls, with arguments and result resolved
_EMPTY = Trace(records=decode.SCHEMA.empty_table(), tasks=[])

_CALLS_VIEW = """
CREATE VIEW calls AS
WITH args AS (
    SELECT call, list(param ORDER BY arg_idx) AS params, list(rendered ORDER BY arg_idx) AS args,
           list(value ORDER BY arg_idx) AS arg_values
    FROM records WHERE kind = 'entry' AND arg_idx <> 253 GROUP BY call),
result AS (
    SELECT call, rendered AS result, class AS result_class, number AS result_number,
           value AS result_value
    FROM records WHERE kind IN ('return', 'exception'))
SELECT c.call, c.call_id, c.task, t.pid, t.tid, c.pc, c.function, c.parent, c.depth, c.entry_seq,
       c.exit_seq, c.exit, c.nargs, c.yields, c.suspends, c.resumes, c.resumers,
       a.params, a.args, a.arg_values,
       r.result, r.result_class, r.result_number, r.result_value
FROM _calls c
JOIN tasks t ON t.task = c.task
LEFT JOIN args a ON a.call = c.call
LEFT JOIN result r ON r.call = c.call
"""


#: The records view: the decoder's columns, the cheap resolved ones (resolve.NAMED: stored,
#: so a filter on them is a filter of the scan), and the costly two computed by the
#: functions of ``_register`` for the rows and columns a statement reads (a count or a
#: grouping by function renders no value). DuckDB evaluates a view's functions before a
#: filter on an expression (2.0): filter on stored columns to render few values.
_RECORDS_VIEW = """
CREATE VIEW records AS
SELECT task, pid, tid, thread, seq, CAST(kind AS VARCHAR) AS kind, pc, module, function,
       arg_idx, param, size, ptr, "values", class, number,
       _kdf_rendered(task, kind, arg_idx, "values") AS rendered,
       _kdf_value(task, kind, arg_idx, "values") AS value,
       call, depth
FROM _raw
"""


def connect(trace: Trace, sql: str | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the views records, calls, tasks, symbols, types.

    The decoder's records table is scanned in place; names and values are computed per
    chunk of the rows a statement reads. With ``sql``, calls are paired only when the
    statement reads records or calls.
    """
    raw, call_table = _raw_and_calls(trace if sql is None or _reads(sql).records else _EMPTY)
    con = duckdb.connect(":memory:")
    con.register("_raw", raw)
    con.register("_calls", call_table)
    _views(con, Resolver(trace), small_tables(trace))
    return con


class Database:
    """``kcovdf sql`` over a trace of any size: its records streamed into a DuckDB database,
    one batch (task segment) at a time, and its calls as they finish (the pairer forgets
    them: ``drain_calls``), so memory holds one batch, the calls still open and the
    finished ones not inserted yet (``CALLS_PER_INSERT``).

    Only the columns a statement reads are filled (``_reads``: DuckDB's own plan says which);
    the others are nulls, which cost next to nothing to store. The database is in memory,
    within ``memory_limit``; DuckDB spills the rest to a private temporary directory (0700;
    values can be secrets), removed on ``close()``.
    """

    #: DuckDB's own memory, beside one decoded batch and the pairer's open calls.
    MEMORY_LIMIT = "1GB"
    #: Finished calls are held back until this many go into ``_calls`` in one insert:
    #: DuckDB compresses the row groups that small inserts fill, slowly (7M records, 3M
    #: calls: an insert per batch loads in 6 s into a 450 MB database, inserts of 2**18
    #: calls in 3.3 s into 1 GB, as one insert at the end did). 1: each batch's at once.
    CALLS_PER_INSERT = 1 << 18

    def __init__(self, batches: Iterator[tuple[Trace, pa.Table]], sql: str | None = None,
                 index: Index | None = None) -> None:
        self._dir = tempfile.mkdtemp(prefix="kcovdf-sql-")
        try:
            self.con = duckdb.connect(":memory:")
            self.con.execute(f"SET memory_limit = '{self.MEMORY_LIMIT}'")
            self.con.execute(f"SET temp_directory = '{self._dir}'")
            reads = _EVERYTHING if sql is None else _reads(sql)
            calls_only = sql is not None and _calls_only(sql, reads)
            if calls_only:  # the records are paired, not kept
                reads = reads._replace(raw=frozenset(), scans_raw=False)
            #: whether the trace's index answered (no record was decoded)
            self.indexed = index is not None and sql is not None and not reads.raw
            if self.indexed:
                assert index is not None
                self.trace = _EMPTY
                self._from_index(index, reads)
                tables = {name: index.read(name) for name in SMALL_TABLES}
            else:
                self.trace = self._load(batches, reads)
                tables = small_tables(self.trace)
            _views(self.con, Resolver(self.trace), tables, calls_only=calls_only)
        except BaseException:
            self.close()
            raise

    def _from_index(self, index: Index, reads: Reads) -> None:
        """``_calls`` read from the index, and as ``_raw`` as many rows as the trace has
        records, all null: the statement reads none of their columns."""
        con = self.con
        con.read_parquet(index.table("calls")).create_view("_calls")
        _store(con, "CREATE TABLE _raw_types AS", _RAW.empty_table())
        columns = ", ".join(f'NULL::{kind} AS "{name}"' for name, kind, *_ in
                            con.execute("DESCRIBE _raw_types").fetchall())
        rows = index.records if reads.scans_raw else 0
        con.execute(f"CREATE VIEW _raw AS SELECT {columns} FROM range({rows})")

    def _load(self, batches: Iterator[tuple[Trace, pa.Table]], reads: Reads) -> Trace:
        con = self.con
        pairing = Pairing()
        trace: Trace | None = None
        paired = reads.calls or bool(reads.raw & set(PAIRING.names))
        named = reads.raw & set(NAMED.names)
        unread = [f for f in decode.SCHEMA if f.name not in reads.raw]
        _store(con, "CREATE TABLE _raw AS", _RAW.empty_table())
        _store(con, "CREATE TABLE _calls AS", _raw_and_calls(_EMPTY)[1])
        finished: list[pa.Table] = []  # drained, not inserted yet: held rows in all
        held = 0
        for trace, table in batches:
            if not reads.records:
                continue  # a statement over tasks, symbols or types: the records are not kept
            if paired:
                ids, depths = pairing.feed(trace, table)
                finished.append(with_function(trace, pairing.pairer.drain_calls()))
                held += finished[-1].num_rows
                if held >= self.CALLS_PER_INSERT:
                    _store(con, "INSERT INTO _calls", pa.concat_tables(finished))
                    finished, held = [], 0
            else:  # never read: the pairer's calls are not held
                ids, depths = np.full(len(table), -1, np.int64), np.zeros(len(table), np.int32)
            if not reads.scans_raw:
                continue  # only the calls table is read
            batch = _raw(Resolver(trace), table, pa.array(ids, pa.int64(), mask=ids < 0),
                         pa.array(depths, pa.int32()), named)
            for field in unread:
                batch = batch.set_column(batch.schema.get_field_index(field.name), field,
                                         pa.nulls(len(batch), field.type))
            _store(con, "INSERT INTO _raw", batch)
        if trace is None:
            trace = _EMPTY
        if paired:  # with the calls still open at the end (no exit, or a generator suspended)
            finished.append(with_function(trace, pairing.pairer.calls()))
            _store(con, "INSERT INTO _calls", pa.concat_tables(finished))
        return trace

    def query(self, sql: str) -> pa.Table:
        """The result of one statement; duckdb.Error when it is wrong."""
        return self.con.sql(sql).to_arrow_table()

    def close(self) -> None:
        """Close the connection and remove the database."""
        con = getattr(self, "con", None)
        if con is not None:
            con.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _store(con: duckdb.DuckDBPyConnection, into: str, table: pa.Table) -> None:
    """``into`` (``CREATE TABLE name AS`` or ``INSERT INTO name``) the rows of an Arrow table."""
    con.register("_batch", table)
    con.execute(f"{into} SELECT * FROM _batch")
    con.unregister("_batch")


#: The calls view for a statement that reads none of its arguments or results: DuckDB does
#: not drop the two joins itself, and their lists of every call's values are what a large
#: trace cannot hold in memory.
_CALLS_ONLY_VIEW = _CALLS_VIEW[:_CALLS_VIEW.index("WITH args")] + """
SELECT c.call, c.call_id, c.task, t.pid, t.tid, c.pc, c.function, c.parent, c.depth, c.entry_seq,
       c.exit_seq, c.exit, c.nargs, c.yields, c.suspends, c.resumes, c.resumers,
       NULL::VARCHAR[] AS params, NULL::VARCHAR[] AS args, NULL::VARCHAR[] AS arg_values,
       NULL::VARCHAR AS result, NULL::VARCHAR AS result_class, NULL::DOUBLE AS result_number,
       NULL::VARCHAR AS result_value
FROM _calls c
JOIN tasks t ON t.task = c.task
"""


def _views(con: duckdb.DuckDBPyConnection, res: Resolver, tables: dict[str, pa.Table],
           calls_only: bool = False) -> None:
    """Everything but _raw and _calls: the small tables (tasks, symbols, types), the
    functions, the views (``calls_only``: a calls view without arguments and results, for a
    statement that reads neither)."""
    _register(con, res)
    for name, table in tables.items():
        con.register(name, table)
    con.execute(_RECORDS_VIEW)
    con.execute(_CALLS_ONLY_VIEW if calls_only else _CALLS_VIEW)
    # the same without arguments and results, for the report's counts
    con.execute(_CALLS_ONLY_VIEW.replace("CREATE VIEW calls AS", "CREATE VIEW calls_light AS"))


def _raw_and_calls(trace: Trace) -> tuple[pa.Table, pa.Table]:
    """The decoder's records with their named columns, call and depth; the calls table."""
    records, ids, depths, call_table = pairing(trace)
    return _raw(Resolver(trace), records, ids, depths, True), call_table


#: The columns of ``_raw``: the decoder's, the cheap resolved ones, the pairing.
_RAW = pa.schema(list(decode.SCHEMA) + list(NAMED) + list(PAIRING))


def _raw(res: Resolver, records: pa.Table, ids: Any, depths: Any,
         named: Collection[str] | bool) -> pa.Table:
    """One batch of ``_raw``; its named columns not in ``named`` (all with True, none with
    False) are nulls (never read)."""
    want = NAMED.names if named is True else () if named is False else named
    for field, col in zip(NAMED, named_columns(res, records, want=want), strict=True):
        records = records.append_column(field, col)
    records = records.append_column(PAIRING.field("call"), ids)
    return records.append_column(PAIRING.field("depth"), depths)


def _register(con: duckdb.DuckDBPyConnection, res: Resolver) -> None:
    """The functions the records view computes its columns with, over Arrow chunks."""
    def udf(name: str, fn: Any, params: list[str], returns: str) -> None:
        empty = pa.array([], pa.string())

        # DuckDB calls once per chunk, also for the chunks a filter emptied: answer those at
        # once (DuckDB reads the arity from the signature)
        def call(a: pa.Array, b: pa.Array, c: pa.Array, d: pa.Array) -> pa.Array:
            return fn(a, b, c, d) if len(a) else empty

        # "special": a NULL in or out is the function's business (a class may be unknown)
        con.create_function(f"_kdf_{name}", call, params, returns, type="arrow", null_handling="special")

    def value_column(i: int) -> Any:
        return lambda task, kind, arg, words: res.values(task, _text(kind), arg, words, (i,))[0]

    for i, name in ((2, "rendered"), (3, "value")):
        udf(name, value_column(i), ["INTEGER", "VARCHAR", "UTINYINT", "UBIGINT[]"], "VARCHAR")


def _text(kind: pa.Array) -> pa.Array:
    # DuckDB may hand strings over as string views
    return kind if kind.type == pa.string() else kind.cast(pa.string())


class Reads(NamedTuple):
    """What a statement reads of a trace's records: the columns of ``_raw`` its scans read
    (in their output or their filters), whether it scans ``_raw``, whether it reads calls."""

    raw: frozenset[str]
    scans_raw: bool
    calls: bool

    @property
    def records(self) -> bool:
        """Whether the records are decoded at all."""
        return self.scans_raw or self.calls


_EVERYTHING = Reads(frozenset(_RAW.names), True, True)


def _calls_only(sql: str, reads: Reads) -> bool:
    """Whether ``sql`` reads the calls view but none of its arguments or results (and not the
    records view itself): the plan then reads none of their records' columns.

    DuckDB keeps the view's joins that gather every call's values even when nothing reads
    them, so its plan cannot tell; the statement's own parse tree does (a ``*`` or any
    column of those names counts as reading them)."""
    if not reads.calls:
        return False
    refs = _references(sql)
    if refs is None:
        return False
    tables, columns, star = refs
    return "records" not in tables and not star and not columns & _CALL_VALUE_COLUMNS


#: The columns of the calls view that come from the records of each call.
_CALL_VALUE_COLUMNS = frozenset({"params", "args", "arg_values", "result", "result_class",
                                 "result_number", "result_value"})


def _references(sql: str) -> tuple[set[str], set[str], bool] | None:
    """(tables, column names, whether a ``*`` is selected) that ``sql`` names, from DuckDB's
    parse tree of it (not bound: no table need exist); None when it does not parse."""
    try:
        tree = json.loads(_probe().execute("SELECT json_serialize_sql(?)", [sql]).fetchall()[0][0])
    except (duckdb.Error, json.JSONDecodeError, IndexError, TypeError):
        return None
    if not isinstance(tree, dict) or tree.get("error"):
        return None
    tables: set[str] = set()
    columns: set[str] = set()
    star = False
    nodes: list[Any] = [tree]
    while nodes:
        node = nodes.pop()
        if isinstance(node, list):
            nodes.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        kind = node.get("type")
        if kind == "BASE_TABLE":
            tables.add(str(node.get("table_name", "")).lower())
        elif kind == "COLUMN_REF" and node.get("column_names"):
            columns.add(str(node["column_names"][-1]).lower())
        elif kind == "STAR":
            star = True
        nodes.extend(node.values())
    return tables, columns, star


@functools.cache
def _probe() -> duckdb.DuckDBPyConnection:
    """The views over empty DuckDB tables ``_raw`` and ``_calls``, to bind and plan statements
    (one per process: binding and planning change nothing in it).

    Statistics propagation is off: over empty tables it would prove every scan empty and
    plan it away."""
    con = duckdb.connect(":memory:")
    raw, calls = _raw_and_calls(_EMPTY)
    _store(con, "CREATE TABLE _raw AS", raw)
    _store(con, "CREATE TABLE _calls AS", calls)
    _views(con, Resolver(_EMPTY), small_tables(_EMPTY))
    con.execute("SET disabled_optimizers = 'statistics_propagation'")
    return con


def _reads(sql: str) -> Reads:
    """What ``sql`` reads, from DuckDB's optimized plan of it (the projections and filters
    pushed into its scans); everything when the plan cannot tell."""
    try:
        plan = json.loads(_probe().sql("EXPLAIN (FORMAT json) " + sql).fetchall()[0][1])
    except (duckdb.Error, json.JSONDecodeError, IndexError, TypeError):
        return _EVERYTHING
    words: set[str] = set()
    scans: set[str] = set()
    nodes = list(plan) if isinstance(plan, list) else [plan]
    while nodes:
        node = nodes.pop()
        if not isinstance(node, dict):
            continue
        nodes.extend(node.get("children") or ())
        info = node.get("extra_info")
        table = str(info.get("Table", "")).rsplit(".", 1)[-1] if isinstance(info, dict) else ""
        if table in ("_raw", "_calls"):
            scans.add(table)
            if table == "_raw":
                words.update(re.findall(r"\w+", json.dumps([info.get("Projections"),
                                                             info.get("Filters")])))
    return Reads(frozenset(words & set(_RAW.names)), "_raw" in scans, "_calls" in scans)


def check(sql: str) -> None:
    """Bind ``sql`` against the views of an empty trace: a wrong view or column name fails
    here, in milliseconds, before any trace is decoded (duckdb.Error)."""
    _probe().sql(sql)


def query(trace: Trace, sql: str) -> pa.Table:
    """The result of one SQL statement over ``trace``'s views; duckdb.Error when it is wrong."""
    return connect(trace, sql).sql(sql).to_arrow_table()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value, default=str)
    return str(value)


def print_table(table: pa.Table, out: TextIO, *, as_json: bool = False, pretty: bool | None = None) -> None:
    """Print a result: JSON (an array of row objects), a rich table, or CSV with a header.

    ``pretty`` defaults to whether ``out`` is a terminal, so piped output stays machine-readable.
    """
    rows = table.to_pylist()
    if as_json:
        json.dump(rows, out, default=str, ensure_ascii=False)
        out.write("\n")
        return
    if pretty is None:
        pretty = out.isatty()
    if pretty:
        from rich.console import Console
        from rich.table import Table

        view = Table(*table.column_names, caption=f"{table.num_rows} rows")
        for row in rows:
            view.add_row(*(_cell(v) for v in row.values()))
        Console(file=out).print(view)
        return
    writer = csv.writer(out)
    writer.writerow(table.column_names)
    writer.writerows([_cell(v) for v in row.values()] for row in rows)


#: The views of connect(), and what one row of each is.
VIEWS = {
    "calls": "one call: its function, arguments and result",
    "records": "one record (a call's entry has one per argument), names and values resolved",
    "tasks": "one task: a thread, or a process after fork",
    "symbols": "one function: an instrumented one, or a kernel symbol naming a recorded pc",
    "types": "one class of the recorded objects",
}


def describe_views() -> str:
    """The views and their columns, read from a connection over an empty trace (for --help)."""
    con = connect(_EMPTY)
    out = ["views and their columns:"]
    for view, row in VIEWS.items():
        out.append(f"  {view:8} {row}")
        line = " " * 11
        for name, kind, *_ in con.sql(f"DESCRIBE {view}").fetchall():
            column = f"{name} {kind.lower()},"
            if len(line) + len(column) > 90:
                out.append(line.rstrip())
                line = " " * 11
            line += column + " "
        out.append(line.rstrip(", "))
    return "\n".join(out) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``kcovdf sql``; its help lists the views and their columns."""
    add_trace_argument(parser)
    parser.add_argument("query", help=f"one SQL statement over the views {', '.join(VIEWS)} (below)")
    parser.add_argument("--json", action="store_true", help="print the rows as a JSON array")
    parser.add_argument("--no-index", action="store_true",
                        help="decode the records even where the trace's index could answer "
                             "(docs/run.md, The index)")
    add_symbol_arguments(parser)
    parser.more_help = describe_views  # type: ignore[attr-defined]


def main(args: argparse.Namespace) -> int:
    """Run ``kcovdf sql``; 1 with DuckDB's message for a bad query, or when the trace is unreadable."""
    try:
        check(args.query)
    except duckdb.Error as exc:
        print(f"kcovdf sql: {exc}", file=sys.stderr)
        return 1
    try:
        kernel = kernel_symbols_from_args(args)
        # kernel symbols name what the index could not: it holds the trace's own names only
        found = None if args.no_index or kernel is not None else index.load(args.trace)
        with Database(decode.batches(args.trace, kernel=kernel), args.query, found) as db:
            result = db.query(args.query)
    except (KcovdfError, OSError) as exc:
        print(f"kcovdf sql: {exc}", file=sys.stderr)
        return 1
    except duckdb.Error as exc:
        print(f"kcovdf sql: {exc}", file=sys.stderr)
        return 1
    print_table(result, sys.stdout, as_json=args.json)
    return 0
