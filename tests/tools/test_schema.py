"""One schema for every output (issue 9 §6): view --json, JSONL, Parquet and SQL share the
record columns of ``kcovdf.read.resolve.RECORD_COLUMNS``, by name, order and value."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import exportgen
import tracegen as tg
from kcovdf import cli
from kcovdf.read import decode
from kcovdf.read.resolve import RECORD_COLUMNS
from kcovdf.tools import sql


def _hex(v):
    return f"{v:#x}" if isinstance(v, int) else v


def _as_json(row: dict) -> dict:
    """A row of a typed output (Parquet, SQL) in the JSON outputs' representation."""
    out = dict(row)
    out["pc"], out["ptr"] = _hex(row["pc"]), _hex(row["ptr"])
    out["values"] = [_hex(w) for w in row["values"]]
    out["value"] = json.loads(row["value"])
    return out


@pytest.fixture(params=["format1", "format2"])
def trace(request, tmp_path: Path) -> Path:
    if request.param == "format1":
        return exportgen.sample_dir(tmp_path / "run")
    b = tg.zip_generators()
    return tg.write_dir(tmp_path / "run", {(7, 8, "MainThread"): b}, version=2)


def test_every_output_has_the_one_list_of_record_columns(trace: Path, tmp_path: Path, capsys) -> None:
    assert cli.main(["view", "--json", str(trace)]) == 0
    viewed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert cli.main(["export", str(trace), "--format", "jsonl", "-o", str(tmp_path / "r.jsonl")]) == 0
    jsonl = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert cli.main(["export", str(trace), "--format", "parquet", "-o", str(tmp_path / "pq")]) == 0
    parquet = pq.read_table(tmp_path / "pq" / "records.parquet")
    con = sql.connect(decode.load(trace))
    described = [row[0] for row in con.sql("DESCRIBE records").fetchall()]

    assert all(list(obj) == list(RECORD_COLUMNS) for obj in viewed + jsonl)
    assert parquet.column_names == list(RECORD_COLUMNS)
    assert described == list(RECORD_COLUMNS)
    # the same values, too: JSON's hex strings and nested objects are the typed columns' values
    from_sql = [_as_json(r) for r in con.sql("SELECT * FROM records").to_arrow_table().to_pylist()]
    from_parquet = [_as_json(r) for r in parquet.to_pylist()]
    assert len(jsonl) == len(from_sql) > 0
    assert jsonl == from_sql == from_parquet
    assert sorted(viewed, key=lambda o: (o["task"], o["seq"])) == \
        sorted(jsonl, key=lambda o: (o["task"], o["seq"]))


def test_parquet_calls_match_the_calls_table_of_sql(trace: Path, tmp_path: Path) -> None:
    assert cli.main(["export", str(trace), "--format", "parquet", "-o", str(tmp_path / "pq")]) == 0
    calls = pq.read_table(tmp_path / "pq" / "calls.parquet")
    internal = sql.connect(decode.load(trace)).sql("SELECT * FROM _calls").to_arrow_table()
    assert calls.column_names == internal.column_names
    assert calls.to_pylist() == internal.to_pylist() and calls.num_rows > 0
