"""``kcovdf sql``: SQL (DuckDB) over a trace's views records, calls, tasks, symbols and types.

The views are Arrow tables registered in an in-memory DuckDB connection; nothing is copied
to disk. ``kcovdf sql --help`` lists their columns, read from the views themselves;
docs/exports.md explains them.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from typing import Any, TextIO

import duckdb
import pyarrow as pa

from kcovdf.cli import add_trace_argument
from kcovdf.errors import KcovdfError
from kcovdf.read.decode import Trace
from kcovdf.read.resolve import records_and_calls, symbols_table, tasks_table, types_table
from kcovdf.symbols import add_symbol_arguments, kernel_symbols_from_args

#: one call per row: the pairing of kcovdf.read.calls, with arguments and result resolved
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


def connect(trace: Trace, sql: str | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the views records, calls, tasks, symbols, types.

    With ``sql``, the records and calls are resolved only when the statement reads them:
    they are the costly views (a value rendered per record); the others are a row per
    task, symbol or class.
    """
    if sql is not None and not {"records", "calls"} & _tables_read(sql):
        from kcovdf.read.decode import SCHEMA

        records, call_table = records_and_calls(Trace(records=SCHEMA.empty_table(), tasks=[]))
    else:
        records, call_table = records_and_calls(trace)
    con = duckdb.connect(":memory:")
    for name, table in (("records", records), ("_calls", call_table), ("tasks", tasks_table(trace)),
                        ("symbols", symbols_table(trace)), ("types", types_table(trace))):
        con.register(name, table)
    con.execute(_CALLS_VIEW)
    return con


def _tables_read(sql: str) -> set[str]:
    """The tables and views a statement names (lower case); every view when DuckDB cannot tell."""
    try:
        return {name.lower() for name in duckdb.get_table_names(sql)}
    except duckdb.Error:
        return set(VIEWS)


def check(sql: str) -> None:
    """Bind ``sql`` against the views of an empty trace: a wrong view or column name fails
    here, in milliseconds, before any trace is decoded (duckdb.Error)."""
    from kcovdf.read.decode import SCHEMA

    connect(Trace(records=SCHEMA.empty_table(), tasks=[])).sql(sql)


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
    from kcovdf.read.decode import SCHEMA

    con = connect(Trace(records=SCHEMA.empty_table(), tasks=[]))
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
    add_symbol_arguments(parser)
    parser.more_help = describe_views  # type: ignore[attr-defined]


def main(args: argparse.Namespace) -> int:
    """Run ``kcovdf sql``; 1 with DuckDB's message for a bad query, or when the trace is unreadable."""
    from kcovdf.read import decode

    try:
        check(args.query)
    except duckdb.Error as exc:
        print(f"kcovdf sql: {exc}", file=sys.stderr)
        return 1
    try:
        trace = decode.load(args.trace, kernel=kernel_symbols_from_args(args))
    except (KcovdfError, OSError) as exc:
        print(f"kcovdf sql: {exc}", file=sys.stderr)
        return 1
    try:
        result = query(trace, args.query)
    except duckdb.Error as exc:
        print(f"kcovdf sql: {exc}", file=sys.stderr)
        return 1
    print_table(result, sys.stdout, as_json=args.json)
    return 0
