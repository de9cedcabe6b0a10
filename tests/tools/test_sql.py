"""kcovdf sql: the DuckDB views and the three output forms."""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path

import pyarrow as pa
import pytest

import exportgen
from kcovdf.read import decode
from kcovdf.tools import sql


@pytest.fixture(scope="module")
def trace_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return exportgen.sample_dir(tmp_path_factory.mktemp("trace") / "run")


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    sql.add_arguments(parser)
    return sql.main(parser.parse_args(argv))


def test_calls_view_joins_entries_with_their_return(trace_dir: Path) -> None:
    rows = sql.query(decode.load(trace_dir), """
        SELECT function, params, args, result, exit, depth FROM calls
        WHERE function IN ('app.greet', 'app.parse', 'app.tick') ORDER BY call""").to_pylist()
    assert rows == [
        {"function": "app.greet", "params": ["name", "loud"], "args": ["'alice'", "True"],
         "result": "'HELLO ALICE'", "exit": "return", "depth": 0},
        {"function": "app.greet", "params": ["name", "loud"], "args": ["'bob'", "False"],
         "result": "'hello bob'", "exit": "return", "depth": 0},
        {"function": "app.parse", "params": ["text"], "args": ["'x=1'"], "result": "{'x': 1}",
         "exit": "return", "depth": 0},
        {"function": "app.parse", "params": ["text"], "args": ["'bad input'"],
         "result": "ValueError('bad input', 7)", "exit": "exception", "depth": 0},
        {"function": "app.tick", "params": None, "args": None, "result": "None", "exit": "return",
         "depth": 0},
        {"function": "app.parse", "params": ["text"], "args": ["[1, 2, 3]"],
         "result": "0x…0000000000000000(71 bits)", "exit": "return", "depth": 0},
    ]


def test_views_records_tasks_symbols_types(trace_dir: Path) -> None:
    t = decode.load(trace_dir)
    nested = sql.query(t, """
        SELECT c.function, p.function AS caller FROM calls c JOIN calls p ON p.call = c.parent""")
    assert nested.to_pylist() == [{"function": "geo.add", "caller": "app.greet"}]
    per_task = sql.query(t, """
        SELECT t.name, count(*) AS n FROM records r JOIN tasks t USING (task)
        GROUP BY ALL ORDER BY n""").to_pylist()
    assert per_task == [{"name": "worker-1", "n": 6}, {"name": "MainThread", "n": 49}]
    sym = sql.query(t, "SELECT file, line, params FROM symbols WHERE function = 'app.login'")
    assert sym.to_pylist() == [{"file": "/src/app.py", "line": 40, "params": ["user", "password"]}]
    fields = sql.query(t, "SELECT fields FROM types WHERE class = 'exportgen.Point'").column(0)
    assert fields.to_pylist() == [["x", "y"]]
    avg = sql.query(t, "SELECT avg(number) FROM records WHERE function = 'geo.add' AND param = 'b'")
    assert avg.column(0).to_pylist() == [pytest.approx((0 + 2 + 4 + 6 + 8 + 2.25 + 3 + 20 + 1) / 9)]


def test_piped_output_is_csv_and_json_is_an_array(trace_dir: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    query = "SELECT function, count(*) AS n FROM calls GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 2"
    assert _run([str(trace_dir), query]) == 0
    assert list(csv.reader(io.StringIO(capsys.readouterr().out))) == \
        [["function", "n"], ["geo.add", "9"], ["geo.Point.norm", "4"]]
    assert _run([str(trace_dir), query, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"function": "geo.add", "n": 9},
                                                   {"function": "geo.Point.norm", "n": 4}]


def test_terminal_output_is_a_table() -> None:
    out = io.StringIO()
    sql.print_table(pa.table({"function": ["m.f"], "n": [3]}), out, pretty=True)
    text = out.getvalue()
    assert "function" in text and "m.f" in text and "1 rows" in text and "," not in text


@pytest.mark.parametrize(("query", "message"), [
    ("SELEC 1", "syntax error"),
    ("SELECT * FROM nosuch", "nosuch"),
    ("SELECT nocolumn FROM records", "nocolumn"),
])
def test_bad_query_prints_duckdb_message_and_exits_1(trace_dir: Path, query: str, message: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert _run([str(trace_dir), query]) == 1
    captured = capsys.readouterr()
    assert message in captured.err and "Traceback" not in captured.err and captured.out == ""


def test_missing_trace_exits_1_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run([str(tmp_path / "gone"), "SELECT 1"]) == 1
    assert "gone" in capsys.readouterr().err
