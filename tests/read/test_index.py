"""kcovdf.read.index: the calls index answers what the records would, or is not used."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from kcovdf import tracefile
from kcovdf.read import decode, index
from kcovdf.run import sealer
from kcovdf.tools import sql

PROGRAM = """\
import threading

def gen(n):
    for i in range(n):
        yield i * 2

def add(a, b):
    if a == 7:
        raise ValueError(a)
    return a + b

def work(k):
    total = 0
    for i in range(k):
        try:
            total += add(i, sum(gen(i % 4)))
        except ValueError:
            pass
    return total

t = threading.Thread(target=work, args=(300,))
t.start()
print(work(500))
t.join()
"""

QUERIES = [
    "SELECT count(*) FROM records",
    "SELECT function, count(*) AS n, avg(nargs), sum(yields), max(depth) FROM calls GROUP BY 1 ORDER BY 1",
    "SELECT exit, count(*) FROM calls GROUP BY 1 ORDER BY 1",
    "SELECT c.task, t.name, count(*) FROM calls c JOIN tasks t USING (task) GROUP BY 1, 2 ORDER BY 1",
    "SELECT call, call_id, parent, depth, entry_seq, exit_seq, resumes, resumers FROM calls ORDER BY call",
    "SELECT count(*) FROM symbols",
]


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("index")
    (d / "prog.py").write_text(PROGRAM)
    r = subprocess.run([sys.executable, "-m", "kcovdf", "run", "-b", "4k", "--include", "prog", "prog.py"],
                       cwd=d, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = d / "kcovdf-trace"
    assert sealer.wait(out)
    assert len(tracefile.list_dir(out).tasks) > 2  # segments of two tasks
    return out


def _query(trace: Path, q: str, **kw: object) -> tuple[list, bool]:
    found = index.load(str(trace)) if kw.get("use", True) else None
    with sql.Database(decode.batches(str(trace)), q, found) as db:
        return db.query(q).to_pylist(), db.indexed


def test_statements_that_read_no_record_column_answer_the_same_from_the_index(trace: Path) -> None:
    built = index.build(trace)
    assert built is not None and built.records == len(decode.load(str(trace)))
    for q in QUERIES:
        with_index, used = _query(trace, q)
        assert used, q
        assert with_index == _query(trace, q, use=False)[0], q
    for name in os.listdir(built.path):
        assert stat.S_IMODE(os.stat(os.path.join(built.path, name)).st_mode) == 0o600
    # the tools see no stray file: the index is not part of the records
    assert not decode.load(str(trace)).notes


def test_a_statement_that_reads_records_decodes_them(trace: Path) -> None:
    assert index.build(trace) is not None
    for q in ("SELECT count(*) FROM records WHERE kind = 'exception'",
              "SELECT function, list(args) FROM calls WHERE exit = 'exception' GROUP BY 1"):
        rows, used = _query(trace, q)
        assert not used and rows == _query(trace, q, use=False)[0] and rows[0] != (0,)


def test_an_index_of_another_state_of_the_trace_is_not_used(trace: Path, tmp_path: Path) -> None:
    copy = tmp_path / "t"
    copy.mkdir()
    for p in trace.iterdir():
        if p.is_file():
            (copy / p.name).write_bytes(p.read_bytes())
    assert index.build(copy) is not None and index.load(str(copy)) is not None
    last = sorted(copy.glob("task-*"))[-1]
    last.write_bytes(last.read_bytes()[:-8])  # a task file changed since
    assert index.load(str(copy)) is None
    assert index.build(copy) is not None
    info = copy / tracefile.INDEX_DIR / "index.json"
    info.write_text(json.dumps({**json.loads(info.read_text()), "version": 0}))
    assert index.load(str(copy)) is None
    r = subprocess.run([sys.executable, "-m", "kcovdf", "sql", str(copy), "SELECT count(*) FROM records"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and int(r.stdout.split()[-1]) == len(decode.load(str(copy))), r.stderr


def test_the_sealer_indexes_large_whole_runs_only(trace: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "t"
    copy.mkdir()
    for p in trace.iterdir():
        if p.is_file():
            (copy / p.name).write_bytes(p.read_bytes())
    monkeypatch.setattr(os, "nice", lambda n: 0)
    sealer.index_dir(str(copy))  # far fewer records than INDEX_MIN_RECORDS
    assert not (copy / tracefile.INDEX_DIR).exists()
    monkeypatch.setattr(sealer, "INDEX_MIN_RECORDS", 1)
    sealer.index_dir(str(copy))
    assert index.load(str(copy)) is not None
    assert index.build(copy, min_records=10**9) is None and not (copy / tracefile.INDEX_DIR).exists()
    info = copy / tracefile.RUN_INFO
    info.write_text(json.dumps({**json.loads(info.read_text()), "mode": "ring"}))
    sealer.index_dir(str(copy))
    assert not (copy / tracefile.INDEX_DIR).exists()


def test_a_new_run_into_the_directory_removes_its_index(trace: Path, tmp_path: Path) -> None:
    (tmp_path / "prog.py").write_text("print(1)\n")
    out = tmp_path / "kcovdf-trace"
    out.mkdir()
    for p in trace.iterdir():
        if p.is_file():
            (out / p.name).write_bytes(p.read_bytes())
    assert index.build(out) is not None
    r = subprocess.run([sys.executable, "-m", "kcovdf", "run", "prog.py"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert not (out / tracefile.INDEX_DIR).exists()
