"""kcovdf.read.calls: format 2 pairing by (pid, call id), and format 1's stack pairing kept.

The record streams are the ones a format 2 writer produces for the issue's examples
(docs/abi.md §1); each test states the truth the program computes and compares the
calls table (through ``kcovdf sql``'s calls view) with it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import tracegen as tg
from kcovdf import abi, cli
from kcovdf.read import calls, decode
from kcovdf.tools import sql


def _load(tmp_path: Path, b: tg.TraceBuilder, version: int = 2, name: str = "t.kdf") -> decode.Trace:
    return decode.load(tg.write_kdf(tmp_path / name, b.buffer(len(b.words) + 8),
                                    b.table_lines((7, 8, "MainThread")), version=version, pid=7))


def _calls(t: decode.Trace, cols: str = "call, function, args, result, exit, parent, depth, "
                                         "yields, resumes, resumers") -> list[dict]:
    return sql.query(t, f"SELECT {cols} FROM calls ORDER BY call").to_pylist()


def test_zip_of_two_generators_pairs_each_with_its_own_result(tmp_path: Path) -> None:
    rows = _calls(_load(tmp_path, tg.zip_generators()))
    assert rows == [
        {"call": 0, "function": "m.main", "args": None, "result": "2", "exit": "return",
         "parent": None, "depth": 0, "yields": 0, "resumes": 0, "resumers": []},
        {"call": 1, "function": "m.gen", "args": ["1", "2"], "result": "'done1'", "exit": "return",
         "parent": 0, "depth": 1, "yields": 2, "resumes": 2, "resumers": [0, 0]},
        {"call": 2, "function": "m.helper", "args": ["1"], "result": "1", "exit": "return",
         "parent": 1, "depth": 2, "yields": 0, "resumes": 0, "resumers": []},
        {"call": 3, "function": "m.gen", "args": ["2", "2"], "result": "GeneratorExit()",
         "exit": "exception", "parent": 0, "depth": 1, "yields": 2, "resumes": 2, "resumers": [0, 0]},
        {"call": 4, "function": "m.helper", "args": ["2"], "result": "2", "exit": "return",
         "parent": 3, "depth": 2, "yields": 0, "resumes": 0, "resumers": []},
        # the calls made by a resumed body sit under that generator, not under the other one
        {"call": 5, "function": "m.helper", "args": ["2"], "result": "2", "exit": "return",
         "parent": 1, "depth": 2, "yields": 0, "resumes": 0, "resumers": []},
        {"call": 6, "function": "m.helper", "args": ["3"], "result": "3", "exit": "return",
         "parent": 3, "depth": 2, "yields": 0, "resumes": 0, "resumers": []},
    ]


def test_the_same_stream_without_call_ids_is_paired_by_stack_as_format_1(tmp_path: Path) -> None:
    # Format 1 keeps its pairing by pc and stack, with issue 9 §2's wrong answer on this
    # stream (results swapped, yield counts 1 and 3): only call ids can tell them apart.
    t = _load(tmp_path, tg.zip_generators(), version=1)
    assert [x.format for x in t.tasks] == [1]
    gens = [r for r in _calls(t, "function, result, yields") if r["function"] == "m.gen"]
    assert gens == [{"function": "m.gen", "result": "GeneratorExit()", "yields": 1},
                    {"function": "m.gen", "result": "'done1'", "yields": 3}]


def test_gather_gives_each_coroutine_its_own_result_none_inside_another(tmp_path: Path) -> None:
    rows = _calls(_load(tmp_path, tg.gather_coroutines()),
                  "function, args, result, parent, depth, resumes, resumers")
    assert rows == [
        {"function": "m.amain", "args": None, "result": "[0, 10, 20]", "parent": None, "depth": 0,
         "resumes": 1, "resumers": [None]},
        *({"function": "m.acoro", "args": [str(i)], "result": str(i * 10), "parent": None, "depth": 0,
           "resumes": 1, "resumers": [None]} for i in range(3)),
    ]
    t = _load(tmp_path, tg.gather_coroutines(), name="again.kdf")
    _, depths, _ = calls.pair_table(t.records, t.tasks)
    assert set(depths) == {0}


def test_a_function_without_parameters_has_an_entry_and_its_callees_under_it(tmp_path: Path) -> None:
    t = _load(tmp_path, tg.no_parameters())
    rec = t.records.to_pylist()
    assert rec[0]["kind"] == "entry" and rec[0]["arg_idx"] == abi.ARG_NONE and rec[0]["ptr"] == 1
    rows = _calls(t, "function, params, args, nargs, result, parent, depth")
    assert rows == [
        {"function": "m.main", "params": None, "args": None, "nargs": 0, "result": "3",
         "parent": None, "depth": 0},
        {"function": "m.add", "params": ["a", "b"], "args": ["1", "2"], "nargs": 2, "result": "3",
         "parent": 0, "depth": 1},
    ]
    records = sql.query(t, "SELECT kind, param, rendered, value, call, depth FROM records").to_pylist()
    assert records[0] == {"kind": "entry", "param": None, "rendered": "", "value": '{"form": "none"}',
                          "call": 0, "depth": 0}


def test_a_format_1_function_without_parameters_pairs_as_before(tmp_path: Path) -> None:
    # format 1 wrote no entry for main(): its callee is at depth 0, its return an orphan call
    b = tg.TraceBuilder()
    main = b.func("m", "main", 1)
    add = b.func("m", "add", 4, ("a", "b"))
    b.call(add, 1, 2).ret(add, 3).ret(main, 3)
    rows = _calls(_load(tmp_path, b, version=1), "function, nargs, result, parent, depth")
    assert rows == [
        {"function": "m.add", "nargs": 2, "result": "3", "parent": None, "depth": 0},
        {"function": "m.main", "nargs": 0, "result": "3", "parent": None, "depth": 0},
    ]


def test_recursion_and_lost_records(tmp_path: Path) -> None:
    b = tg.TraceBuilder()
    f = b.func("m", "f", 1, ("n",))
    b.call(f, 2, cid=1).call(f, 1, cid=2).call(f, 0, cid=3)
    b.ret(f, 0, cid=3)
    # f(1)'s return was dropped: f(2)'s return closes it too
    b.ret(f, 2, cid=1)
    # the return of a call whose entry was dropped: a call of its own, nargs 0
    b.ret(f, 9, cid=8)
    rows = _calls(_load(tmp_path, b), "args, result, exit, parent, depth")
    assert rows == [
        {"args": ["2"], "result": "2", "exit": "return", "parent": None, "depth": 0},
        {"args": ["1"], "result": None, "exit": None, "parent": 0, "depth": 1},
        {"args": ["0"], "result": "0", "exit": "return", "parent": 1, "depth": 2},
        {"args": None, "result": "9", "exit": "return", "parent": None, "depth": 0},
    ]


def test_a_call_id_met_again_after_its_exit_is_a_new_call(tmp_path: Path) -> None:
    # a process that exec'd restarts its call ids under the same pid
    b = tg.TraceBuilder()
    f = b.func("m", "f", 1, ("n",))
    b.call(f, 1, cid=1).ret(f, 1, cid=1).call(f, 2, cid=1).ret(f, 2, cid=1)
    rows = _calls(_load(tmp_path, b), "args, result")
    assert rows == [{"args": ["1"], "result": "1"}, {"args": ["2"], "result": "2"}]


def test_a_generator_resumed_on_another_thread(tmp_path: Path) -> None:
    # created and first run by main() on one thread, resumed by worker() on another thread
    # of the same process: one call, with its records under each resumer
    a, w = tg.TraceBuilder(), tg.TraceBuilder()
    main = a.func("m", "main", 1)
    gen = a.func("m", "gen", 5, ("n",))
    worker = w.func("m", "worker", 9, ("g",))
    w.func("m", "gen", 5, ("n",))
    a.call(main, cid=1).call(gen, 3, cid=2).yld(gen, 0, cid=2).ret(main, None, cid=1)
    w.call(worker, "g", cid=3).resume(gen, 2, by=3).yld(gen, 1, cid=2)
    w.resume(gen, 2, by=3).ret(gen, "end", cid=2).ret(worker, None, cid=3)
    d = tg.write_dir(tmp_path / "run", {(7, 8, "MainThread"): a, (7, 9, "Thread-1"): w}, version=2)
    t = decode.load(d)
    rows = _calls(t, "function, task, result, parent, depth, yields, resumes, resumers")
    assert rows == [
        {"function": "m.main", "task": 0, "result": "None", "parent": None, "depth": 0, "yields": 0,
         "resumes": 0, "resumers": []},
        {"function": "m.gen", "task": 0, "result": "'end'", "parent": 0, "depth": 1, "yields": 2,
         "resumes": 2, "resumers": [2, 2]},
        {"function": "m.worker", "task": 1, "result": "None", "parent": None, "depth": 0, "yields": 0,
         "resumes": 0, "resumers": []},
    ]
    recs = sql.query(t, "SELECT task, kind, depth FROM records WHERE call = 1").to_pylist()
    assert recs == [{"task": 0, "kind": "entry", "depth": 1}, {"task": 0, "kind": "yield", "depth": 1},
                    {"task": 1, "kind": "resume", "depth": 1}, {"task": 1, "kind": "yield", "depth": 1},
                    {"task": 1, "kind": "resume", "depth": 1}, {"task": 1, "kind": "return", "depth": 1}]


def test_call_ids_of_two_processes_do_not_mix(tmp_path: Path) -> None:
    a, b = tg.TraceBuilder(), tg.TraceBuilder()
    f = a.func("m", "f", 1, ("n",))
    b.func("m", "f", 1, ("n",))
    a.call(f, 1, cid=1).ret(f, 10, cid=1)
    b.call(f, 2, cid=1).ret(f, 20, cid=1)
    t = decode.load(tg.write_dir(tmp_path / "run", {(7, 7, "a"): a, (8, 8, "b"): b}, version=2))
    assert _calls(t, "pid, args, result") == [{"pid": 7, "args": ["1"], "result": "10"},
                                               {"pid": 8, "args": ["2"], "result": "20"}]


@pytest.mark.parametrize("version", [1, 2])
def test_pair_returns_one_call_index_per_record(tmp_path: Path, version: int) -> None:
    b = tg.zip_generators() if version == 2 else tg.no_parameters()
    t = _load(tmp_path, b, version=version)
    ids, table = calls.pair(t.records, t.tasks)
    assert len(ids) == len(t) and ids.null_count == 0
    assert table.schema.equals(calls.SCHEMA)
    assert table.column("call_id").null_count == (table.num_rows if version == 1 else 0)


# --- docs/abi.md §1.1: the worked example is this builder's stream, word for word ----------
DOC = Path(__file__).resolve().parents[2] / "docs" / "abi.md"


def test_abi_doc_format_2_example_words_and_view(tmp_path: Path, capsys) -> None:
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("A format 2 call sequence:"):]
    blocks = re.findall(r"```text\n(.*?)```", section, re.S)
    words = [int(line.split()[0], 16) for line in blocks[0].splitlines()]
    b = tg.TraceBuilder()
    main = b.func("app", "main", 5)
    gen = b.func("app", "gen", 1, ("n",))
    b.call(main, cid=1).call(gen, 7, cid=2).suspend(gen, 2).resume(gen, 2, by=1)
    b.ret(gen, None, cid=2).ret(main, 7, cid=1)
    assert [f"{w:#018x}" for w in words] == [f"{w:#018x}" for w in b.words]
    path = tg.write_kdf(tmp_path / "doc.kdf", b.buffer(), b.table_lines(), version=2)
    assert cli.main(["view", str(path)]) == 0
    shown = [ln for ln in capsys.readouterr().out.splitlines() if not ln.startswith("#")]
    assert shown == blocks[1].splitlines()
