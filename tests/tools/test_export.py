"""kcovdf export: JSON Lines and Parquet files, the call pairing they share, the subcommand."""

from __future__ import annotations

import argparse
import json
import os
import stat
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

import exportgen
from kcovdf import abi, tracefile
from kcovdf.read import calls, decode
from kcovdf.runtime.encode import encode_value
from kcovdf.tools import export
from kcovdf.tools.export.jsonl import JsonLinesExporter
from kcovdf.tools.export.parquet import ParquetExporter


@pytest.fixture(scope="module")
def trace_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return exportgen.sample_dir(tmp_path_factory.mktemp("trace") / "run")


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    export.add_arguments(parser)
    return export.main(parser.parse_args(argv))


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_jsonl_one_line_per_record_with_names_and_values(trace_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "t.jsonl"
    assert _run([str(trace_dir), "--format", "jsonl", "-o", str(out)]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == len(decode.load(trace_dir))
    greet = [r for r in lines if r["function"] == "app.greet" and r["kind"] == "entry"]
    assert [(r["param"], r["rendered"]) for r in greet] == \
        [("name", "'alice'"), ("loud", "True"), ("name", "'bob'"), ("loud", "False")]
    first = greet[0]
    assert (first["pid"], first["tid"], first["thread"]) == (4242, 4243, "MainThread")
    assert first["values"] == [f"{w:#x}" for w in encode_value("alice").words]
    assert first["value"]["value"] == "alice" and first["class"] == "builtins.str"
    pc = int(first["pc"], 16)
    assert pc == abi.fnv1a64(b"app:greet:20")
    login = [r for r in lines if r["function"] == "app.login" and r["param"] == "password"]
    assert login[0]["rendered"] == "<redacted>" and login[0]["ptr"] == "0x0"
    raised = [r for r in lines if r["kind"] == "exception"]
    assert [r["class"] for r in raised] == ["builtins.ValueError"]
    worker = [r for r in lines if r["tid"] == 4250]
    assert [r["seq"] for r in worker] == [1, 2, 3, 4, 5, 6]
    assert _mode(out) == 0o600


def test_an_existing_output_file_is_replaced_private(trace_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "t.jsonl"
    out.write_text("old\n")
    os.chmod(out, 0o644)
    assert _run([str(trace_dir), "-f", "jsonl", "-o", str(out)]) == 0
    assert _mode(out) == 0o600
    assert "old" not in out.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["t.jsonl"]  # no temporary file left


def test_parquet_tables_and_metadata(trace_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "pq"
    paths = ParquetExporter().write(decode.load(trace_dir), out)
    assert sorted(p.name for p in paths) == ["calls.parquet", "records.parquet", "symbols.parquet",
                                             "tasks.parquet", "types.parquet"]
    assert all(_mode(p) == 0o600 for p in paths) and _mode(out) == 0o700
    records = pq.read_table(out / "records.parquet")
    assert records.num_rows == 55
    for col in ("task", "pid", "tid", "seq", "kind", "pc", "module", "function", "arg_idx", "param",
                "values", "class", "number", "rendered", "value", "call"):
        assert col in records.column_names
    # the file's key-value metadata: the counters are written when the last batch is
    meta = pq.read_metadata(out / "records.parquet").metadata
    stats = json.loads(meta[b"kcovdf.stats"])
    assert stats["drops"] == 3
    assert meta[b"kcovdf.format"] == str(tracefile.FORMAT_VERSION).encode()
    # what Spark or Dask do: read the files, join records with symbols by pc
    rows = duckdb.sql(f"""
        SELECT s.qualname, s.line, count(*) AS n
        FROM read_parquet('{out}/records.parquet') r
        JOIN read_parquet('{out}/symbols.parquet') s USING (pc)
        WHERE r.kind = 'entry' AND r.arg_idx = 0 GROUP BY ALL ORDER BY n DESC, 1""").fetchall()
    assert rows[0] == ("add", 3, 9)
    tasks = pq.read_table(out / "tasks.parquet").to_pylist()
    assert [(t["tid"], t["name"], t["drops"]) for t in tasks] == \
        [(4243, "MainThread", 0), (4250, "worker-1", 3)]
    types = {t["class"]: t["fields"] for t in pq.read_table(out / "types.parquet").to_pylist()}
    assert types["exportgen.Point"] == ["x", "y"]


def test_jsonl_exporter_is_registered_under_its_name() -> None:
    from kcovdf.tools.export.base import REGISTRY

    assert REGISTRY["jsonl"] is JsonLinesExporter
    assert set(REGISTRY) == {"jsonl", "parquet", "daikon"}


def test_unreadable_trace_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bogus = tmp_path / "notatrace.bin"
    bogus.write_bytes(b"\xff" * 64)
    assert _run([str(bogus), "-f", "jsonl", "-o", str(tmp_path / "o.jsonl")]) == 1
    err = capsys.readouterr().err
    assert "notatrace.bin" in err and "not a trace" in err and "Traceback" not in err
    assert not (tmp_path / "o.jsonl").exists()


def test_unknown_format_names_the_option(trace_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _run([str(trace_dir), "-f", "xml", "-o", "x"])
    assert "--format" in capsys.readouterr().err


def _pairs(task: exportgen.TaskTrace, tmp_path: Path) -> list[dict]:
    t = decode.load(task.write(tmp_path / "t.kdf"))
    ids, table = calls.pair(t.records)
    assert len(ids) == len(t)
    return table.to_pylist()


def test_argument_records_with_a_seq_gap_start_a_new_call() -> None:
    # rising arg_idx alone would join them; the gap says a record (a return) was dropped between
    ids, _, found = calls.pair_columns([0, 0, 0], [1, 2, 4], ["entry", "entry", "entry"],
                                       [7, 7, 7], [0, 1, 2])
    assert ids == [0, 0, 1]
    assert [(c.nargs, c.depth) for c in found] == [(2, 0), (1, 1)]


def test_calls_nest_and_close(tmp_path: Path) -> None:
    t = exportgen.TaskTrace()
    outer = t.function("m", "outer", ["x"])
    inner = t.function("m", "inner", ["a", "b"], line=5)
    noargs = t.function("m", "noargs", [], line=9)
    t.enter(outer, 1)
    t.call(inner, 1, 2, ret=3)
    t.call(noargs, ret=None)
    t.raise_(outer, KeyError("k"))
    t.call(inner, 5, 6, ret=11)
    rows = _pairs(t, tmp_path)
    got = [(r["pc"], r["parent"], r["depth"], r["nargs"], r["exit"]) for r in rows]
    assert got == [(outer, None, 0, 1, "exception"), (inner, 0, 1, 2, "return"),
                   (noargs, 0, 1, 0, "return"), (inner, None, 0, 2, "return")]
    assert rows[2]["entry_seq"] is None and rows[1]["entry_seq"] == 2


def test_generator_resumes_and_lost_returns_leave_calls_open(tmp_path: Path) -> None:
    t = exportgen.TaskTrace()
    gen = t.function("m", "gen", ["n"])
    f = t.function("m", "f", ["v"], line=4)
    g = t.function("m", "g", ["v"], line=8)
    t.enter(gen, 2)
    t.yield_(gen, 0)
    t.call(f, 0, ret=0)   # the consumer runs between two yields
    t.yield_(gen, 1)
    t.leave(gen)
    t.enter(f, 1)
    t.enter(g, 2)         # g's return was lost (a full buffer drops whole records)
    t.leave(f, 1)
    rows = _pairs(t, tmp_path)
    assert [(r["pc"], r["yields"], r["exit"]) for r in rows] == \
        [(gen, 2, "return"), (f, 0, "return"), (f, 0, "return"), (g, 0, None)]
