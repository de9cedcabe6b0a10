"""kcovdf.read.calls' pairers: the C pairer (_core/pair.c) against its Python twin.

Random record streams (tasks of both formats sharing pids, colliding call ids, resumes by
known and unknown callers) must give the same call index and depth for every record and
the same calls from both twins, and the same whether fed in one batch or several; with
drains between batches both twins drain the same calls, and the calls drained and left
are those of an undrained run (in streams that never name a finished call's id again,
the one place where a drain may change the pairing: calls.Pairer.drain). Both twins are
tested directly, whatever KCOVDF_CORE says; the C one is skipped only when its
extension is not built.
"""

from __future__ import annotations

import itertools
import re
import threading
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tracegen as tg
from kcovdf import abi
from kcovdf.read import calls, decode

C_BUILT = calls._CPair is not None
needs_c = pytest.mark.skipif(not C_BUILT, reason="the C pairer kcovdf._core._pair is not built "
                                                  "(pip install -e . builds it)")
TWINS = [pytest.param(calls.Pairer, id="py"), pytest.param(calls.CPairer, id="c", marks=needs_c)]

KIND = {name: code for code, name in enumerate(decode.KINDS)}
PCS = (0x11, 0x22, 0x33)
DTYPES = (np.int32, np.int8, np.uint64, np.uint8, np.uint32, np.uint64, np.uint64)


def _arrays(rows: list[tuple[int, ...]]) -> list[np.ndarray]:
    """The feed columns (task, kind, pc, arg_idx, seq, ptr, value0) of record tuples."""
    cols = list(zip(*rows, strict=True)) if rows else [()] * 7
    return [np.array(c, dtype) for c, dtype in zip(cols, DTYPES, strict=True)]


def _feed(p: Any, rows: list[tuple[int, ...]], cuts: list[int] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Feed ``rows`` to ``p`` in the batches ``cuts`` delimit: (ids, depths) of all of them."""
    ids, depths = [], []
    bounds = [0, *sorted(cuts), len(rows)]
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        i, d = p.feed(*_arrays(rows[lo:hi]))
        assert i.dtype == np.int64 and d.dtype == np.int32 and len(i) == len(d) == hi - lo
        ids.append(i)
        depths.append(d)
    return np.concatenate(ids), np.concatenate(depths)


def _declare(p: Any, tasks: list[tuple[int, int] | None]) -> Any:
    for index, info in enumerate(tasks):
        if info is not None:
            p.task(index, *info)
    return p


def _columns_equal(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert list(a) == list(b) == [name for name, _ in calls._COLUMNS]
    for name in a:
        assert a[name].dtype == b[name].dtype, name
        assert np.array_equal(a[name], b[name]), name


# --- the streams ------------------------------------------------------------------------

# (format, pid) of declared tasks, None for an undeclared one (format 1); two pids, so
# that tasks share a call-id index and ids of other processes collide
task_info = st.one_of(st.none(), st.tuples(st.sampled_from([1, 2, 2, 3]), st.sampled_from([7, 8])))
kinds = st.sampled_from(decode.KINDS).map(KIND.get)
arg_idx = st.sampled_from([0, 1, 2, 3, abi.ARG_NONE, abi.ARG_YIELD, abi.ARG_EXCEPTION])
call_ids = st.integers(0, 6)
# a resumer: none, a call id that may be known, or one never used
value0 = st.sampled_from([0, 1, 2, 3, 4, 5, 99])


@st.composite
def streams(draw: st.DrawFn, clean: bool = False) -> tuple[list[tuple[int, int] | None],
                                                          list[tuple[int, ...]]]:
    """Declared tasks and records in buffer order: (task, kind, pc, arg_idx, seq, ptr, value0).

    ``clean``: no record but an entry names the id of a call that may have exited, and no
    resume names one as its resumer (such records take a new id, or no resumer), so that
    drains change nothing (calls.Pairer.drain)."""
    tasks = draw(st.lists(task_info, min_size=1, max_size=4))
    n = draw(st.integers(0, 80))
    rows = []
    # sequences mostly consecutive per task (format 1 joins an entry's arguments by seq),
    # starting where they wrap at 24 and at 32 bits
    seq = {t: draw(st.sampled_from([0, abi.SEQ_MASK - 2, 2**32 - 3])) for t in range(len(tasks) + 1)}
    exited: set[tuple[int, int]] = set()  # (pid, call id) whose last call may have its exit
    new_ids = itertools.count(100)        # never drawn, and not 99 (value0's unknown resumer)
    for _ in range(n):
        t = draw(st.integers(0, len(tasks)))  # len(tasks): a task never declared
        seq[t] = (seq[t] + draw(st.sampled_from([1, 1, 1, 2, 0]))) & 0xFFFFFFFF
        row = [t, draw(kinds), draw(st.sampled_from(PCS)), draw(arg_idx), seq[t], draw(call_ids),
               draw(value0)]
        info = tasks[t] if t < len(tasks) else None
        if clean and info is not None and info[0] >= 2:
            pid, kind = info[1], row[1]
            if kind != KIND["entry"] and (pid, row[5]) in exited:
                row[5] = next(new_ids)
            if kind == KIND["resume"] and (pid, row[6]) in exited:
                row[6] = 0
            if kind in (KIND["return"], KIND["exception"]):
                exited.add((pid, row[5]))
            elif kind == KIND["entry"]:  # the id's call now has no exit (a new one if it had)
                exited.discard((pid, row[5]))
        rows.append(tuple(row))
    return tasks, rows


cuts = st.lists(st.integers(0, 80), max_size=5)
# after which batches (at most six: five cuts) to drain
drains = st.lists(st.booleans(), min_size=6, max_size=6)


@needs_c
@settings(max_examples=400, deadline=None)
@given(streams(), cuts)
def test_the_c_pairer_and_its_twin_agree_record_for_record(stream, cut: list[int]) -> None:
    tasks, rows = stream
    cut = [c for c in cut if c <= len(rows)]
    py, c = _declare(calls.Pairer(), tasks), _declare(calls.CPairer(), tasks)
    py_ids, py_depths = _feed(py, rows)
    c_ids, c_depths = _feed(c, rows, cut)  # in batches: the same as one batch of the twin
    assert c_ids.tolist() == py_ids.tolist()
    assert c_depths.tolist() == py_depths.tolist()
    _columns_equal(c.columns(), py.columns())
    table = c.calls()
    assert table.schema.equals(calls.SCHEMA)
    assert table.equals(py.calls())
    # the table built from the columns is the one of the Call objects built from them
    assert calls.calls_table(calls._call_objects(c.columns())).equals(table)


@pytest.mark.parametrize("make", TWINS)
@settings(max_examples=200, deadline=None)
@given(stream=streams(), cut=cuts)
def test_batches_pair_as_one_batch(make, stream, cut: list[int]) -> None:
    tasks, rows = stream
    cut = [c for c in cut if c <= len(rows)]
    whole = _declare(make(), tasks)
    ids, depths = _feed(whole, rows)
    split = _declare(make(), tasks)
    bounds = [0, *sorted(cut), len(rows)]
    got_ids, got_depths = [], []
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        i, d = split.feed(*_arrays(rows[lo:hi]))
        got_ids += i.tolist()
        got_depths += d.tolist()
        # reading the calls between batches (the C pairer hands its arrays over) changes
        # nothing; every call was opened by a record, which has its index
        assert split.calls().num_rows == max(got_ids, default=-1) + 1
    assert got_ids == ids.tolist() and got_depths == depths.tolist()
    assert split.calls().equals(whole.calls())
    _columns_equal(split.columns(), whole.columns())


def _batches(rows: list[tuple[int, ...]], cut: list[int]) -> list[list[tuple[int, ...]]]:
    bounds = [0, *sorted(c for c in cut if c <= len(rows)), len(rows)]
    return [rows[lo:hi] for lo, hi in itertools.pairwise(bounds)]


def _check_drained(table: pa.Table) -> None:
    """A drained table: the schema, in call order, every call with its exit."""
    assert table.schema.equals(calls.SCHEMA)
    assert table.column("call").to_pylist() == sorted(table.column("call").to_pylist())
    assert table.column("exit").null_count == 0


@needs_c
@settings(max_examples=400, deadline=None)
@given(streams(), cuts, drains)
def test_the_twins_drain_alike(stream, cut: list[int], drain: list[bool]) -> None:
    tasks, rows = stream
    py, c = _declare(calls.Pairer(), tasks), _declare(calls.CPairer(), tasks)
    seen: list[int] = []  # the call indexes drained or left: each once
    top = -1
    for batch, after in zip(_batches(rows, cut), drain, strict=False):
        c_ids, c_depths = c.feed(*_arrays(batch))
        py_ids, py_depths = py.feed(*_arrays(batch))
        assert c_ids.tolist() == py_ids.tolist() and c_depths.tolist() == py_depths.tolist()
        top = max([top, *c_ids.tolist()])
        if after:
            got = c.drain()
            _columns_equal(got, py.drain())
            table = calls._calls_table(got)
            _check_drained(table)
            seen += table.column("call").to_pylist()
            _columns_equal(c.columns(), py.columns())
    left = c.calls()
    assert left.equals(py.calls())
    assert calls.calls_table(calls._call_objects(c.columns())).equals(left)
    # every call was opened by a record, which has its index
    assert sorted(seen + left.column("call").to_pylist()) == list(range(top + 1))


@pytest.mark.parametrize("make", TWINS)
@settings(max_examples=200, deadline=None)
@given(stream=streams(clean=True), cut=cuts, drain=drains)
def test_drained_and_left_calls_are_the_calls_of_an_undrained_run(make, stream, cut: list[int],
                                                                  drain: list[bool]) -> None:
    tasks, rows = stream
    whole = _declare(make(), tasks)
    ids, depths = _feed(whole, rows)
    p = _declare(make(), tasks)
    got_ids: list[int] = []
    got_depths: list[int] = []
    parts = []
    for batch, after in zip(_batches(rows, cut), drain, strict=False):
        i, d = p.feed(*_arrays(batch))
        got_ids += i.tolist()
        got_depths += d.tolist()
        if after:
            parts.append(p.drain_calls())
            _check_drained(parts[-1])
    assert got_ids == ids.tolist() and got_depths == depths.tolist()
    parts.append(p.calls())
    assert pa.concat_tables(parts).sort_by("call").equals(whole.calls())


@pytest.mark.parametrize("make", TWINS)
def test_a_drain_takes_only_finished_calls(make) -> None:
    p = _declare(make(), [(2, 7), (2, 7), None])
    ids, _ = _feed(p, _rows(
        (0, "entry", 0x11, 0, 1, 1),          # call 0: open on task 0
        (0, "entry", 0x22, 0, 2, 2),          # call 1: returns on task 1, still on task 0's stack
        (1, "return", 0x22, 0, 1, 2),
        (0, "entry", 0x33, 0, 3, 3),          # call 2: yields, no exit
        (0, "yield", 0x33, abi.ARG_YIELD, 4, 3),
        (0, "entry", 0x33, 0, 5, 4),          # call 3: finished
        (0, "return", 0x33, 0, 6, 4),
        (2, "entry", 0x11, 0, 1, 0),          # format 1, call 4: returns
        (2, "entry", 0x22, 0, 2, 0),          # call 5: yields (suspended)
        (2, "yield", 0x22, abi.ARG_YIELD, 3, 0),
        (2, "return", 0x11, 0, 4, 0),
        (2, "entry", 0x33, 0, 5, 0),          # call 6: its arguments still arriving
    ))
    assert ids.tolist() == [0, 1, 1, 2, 2, 3, 3, 4, 5, 5, 4, 6]
    assert p.drain_calls().column("call").to_pylist() == [3, 4]
    assert p.calls().column("call").to_pylist() == [0, 1, 2, 5, 6]
    assert p.drain_calls().num_rows == 0  # nothing finished since
    ids, depths = _feed(p, _rows(
        (0, "return", 0x11, 0, 7, 1),         # call 0 ends: call 1 leaves task 0's stack with it
        (2, "entry", 0x33, 1, 6, 0),          # call 6's next argument
        (2, "return", 0x22, 0, 7, 0),         # call 5 resumed and returns
        (0, "entry", 0x11, 0, 8, 5),          # a new call: 7, under nothing
    ))
    assert ids.tolist() == [0, 6, 5, 7] and depths.tolist() == [0, 0, 1, 0]
    drained = p.drain_calls().to_pylist()
    assert [(c["call"], c["parent"], c["exit"]) for c in drained] == [
        (0, None, "return"), (1, 0, "return"), (5, 4, "return")]
    assert p.calls().column("call").to_pylist() == [2, 6, 7]
    assert p.calls().column("nargs").to_pylist() == [1, 2, 1]


@pytest.mark.parametrize("make", TWINS)
def test_a_drained_call_id_is_forgotten(make) -> None:
    # the documented difference (calls.Pairer.drain): a record other than an entry naming a
    # drained call's id is a new call; undrained, it is the finished call's
    rows = _rows((0, "entry", 0x11, 0, 1, 1), (0, "entry", 0x22, 0, 2, 2),
                 (0, "resume", 0x22, 1, 3, 2, 1), (0, "return", 0x22, 0, 4, 2),
                 (0, "return", 0x11, 0, 5, 1))
    later = _rows((0, "event", 0x11, 9, 6, 1), (0, "entry", 0x33, 0, 7, 3),
                  (0, "resume", 0x33, 1, 8, 3, 2))
    undrained = _declare(make(), [(2, 7)])
    _feed(undrained, rows)
    assert _feed(undrained, later)[0].tolist() == [0, 2, 2]
    p = _declare(make(), [(2, 7)])
    _feed(p, rows)
    drained = p.drain_calls()
    assert drained.column("call").to_pylist() == [0, 1]
    assert drained.column("resumers").to_pylist() == [[], [0]]  # a drained call's resumes go with it
    assert _feed(p, later)[0].tolist() == [2, 3, 3]
    left = p.calls().to_pylist()
    assert [(c["call"], c["call_id"], c["resumers"]) for c in left] == [(2, 1, []), (3, 3, [None])]
    assert undrained.calls().column("resumers").to_pylist() == [[], [0], [1]]


@pytest.mark.parametrize("make", TWINS)
def test_drain_of_a_new_pairer_and_its_columns(make) -> None:
    p = make()
    got = p.drain()
    assert list(got) == [name for name, _ in calls._COLUMNS] and all(len(a) == 0 for a in got.values())
    p.task(0, 2, 7)
    p.feed(*_arrays(_rows((0, "entry", 0x11, 0, 1, 5), (0, "return", 0x11, 0, 2, 5),
                          (0, "entry", 0x22, 0, 3, 6))))
    cols = p.columns()
    first = {name: a.copy() for name, a in cols.items()}
    table = p.calls()
    assert p.drain()["call"].tolist() == [0]
    # what columns() handed over before the drain keeps its values
    _columns_equal(cols, first)
    assert table.column("call").to_pylist() == [0, 1]
    assert p.columns()["call"].tolist() == [1]
    assert calls._call_objects(p.columns())[0].id == 1


@pytest.mark.parametrize("make", TWINS)
def test_columns_taken_before_a_feed_keep_their_values(make) -> None:
    p = make()
    p.task(0, 2, 7)
    p.feed(*_arrays([(0, KIND["entry"], 0x11, 0, 1, 5, 0)]))
    cols = p.columns()
    first = {name: a.copy() for name, a in cols.items()}
    table = p.calls()
    p.feed(*_arrays([(0, KIND["return"], 0x11, 0, 2, 5, 0), (0, KIND["entry"], 0x22, 0, 3, 6, 0)]))
    _columns_equal(cols, first)
    assert table.column("exit").to_pylist() == [None]
    after = p.calls()
    assert after.column("exit").to_pylist() == ["return", None]
    assert after.column("exit_seq").to_pylist() == [2, None]


# --- the semantics, on streams worked by hand -------------------------------------------

def _rows(*records: tuple[Any, ...]) -> list[tuple[int, ...]]:
    """(task, kind name, pc, arg_idx, seq, call id[, value0]) as feed rows."""
    return [(t, KIND[k], pc, a, s, cid, *(rest or (0,))) for t, k, pc, a, s, cid, *rest in records]


@pytest.mark.parametrize("make", TWINS)
def test_format_2_edge_cases(make) -> None:
    p = _declare(make(), [(2, 7), (2, 7), (2, 8)])
    ids, depths = _feed(p, _rows(
        (0, "entry", 0x11, 0, 1, 1),            # call 0: f, id 1
        (0, "entry", 0x11, 1, 2, 1),            # its second argument
        (0, "return", 0x11, 0, 3, 1),
        (0, "entry", 0x11, 0, 4, 1),            # id 1 again after its exit: call 1
        (0, "return", 0x22, 0, 5, 1),           # id 1 under another pc: call 2
        (1, "yield", 0x33, abi.ARG_YIELD, 1, 2),  # call 3, met first on task 1 ...
        (0, "entry", 0x33, 0, 6, 2),            # ... its entry on task 0 decides where it is
        (2, "entry", 0x33, 0, 1, 2),            # pid 8: the same id is another call (4)
        (1, "resume", 0x33, 1, 2, 2, 1),        # call 3 resumed on task 1 by id 1 (call 2)
        (1, "resume", 0x33, 1, 3, 2, 99),       # again, its suspension lost, by an unknown id
        (1, "event", 0x33, 9, 4, 2),
        (1, "suspend", 0x33, 2, 5, 2),
    ))
    assert ids.tolist() == [0, 0, 0, 1, 2, 3, 3, 4, 3, 3, 3, 3]
    assert depths.tolist() == [0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0]
    table = p.calls().to_pylist()
    assert [(c["call"], c["task"], c["parent"], c["depth"], c["nargs"], c["exit"]) for c in table] == [
        (0, 0, None, 0, 2, "return"), (1, 0, None, 0, 1, None), (2, 0, 1, 1, 0, "return"),
        (3, 0, 1, 1, 1, None), (4, 2, None, 0, 1, None)]
    assert table[3]["resumes"] == 2 and table[3]["resumers"] == [2, None]
    assert table[3]["yields"] == 1 and table[3]["suspends"] == 1
    assert [c["call_id"] for c in table] == [1, 1, 1, 2, 2]


@pytest.mark.parametrize("make", TWINS)
def test_format_1_pairs_by_pc_and_sequence(make) -> None:
    p = make()  # task 0 undeclared: format 1, call ids ignored
    ids, depths = _feed(p, _rows(
        (0, "entry", 0x11, 0, 1, 9),
        (0, "entry", 0x11, 1, 2, 9),   # the same call's next argument
        (0, "entry", 0x11, 2, 4, 9),   # a seq gap: a new call
        (0, "resume", 0x11, 1, 5, 9),  # an event belongs to no call
        (0, "yield", 0x11, abi.ARG_YIELD, 6, 9),
        (0, "return", 0x22, 0, 7, 9),  # no open call of its pc: a call of its own
        (0, "return", 0x11, 0, 8, 9),  # the innermost open call of its pc: call 0 on the stack
        (0, "return", 0x11, 0, 9, 9),  # none on the stack: the suspended one
    ))
    assert ids.tolist() == [0, 0, 1, -1, 1, 2, 0, 1]
    assert depths.tolist() == [0, 0, 1, 2, 1, 1, 0, 1]
    table = p.calls()
    assert table.column("call_id").null_count == 3
    assert table.column("nargs").to_pylist() == [2, 1, 0]
    assert table.column("yields").to_pylist() == [0, 1, 0]
    assert table.column("exit").to_pylist() == ["return", "return", "return"]


# --- bad input --------------------------------------------------------------------------

def _good(n: int = 2) -> list[np.ndarray]:
    return _arrays([(0, KIND["entry"], 0x11, 0, i + 1, 1, 0) for i in range(n)])


def _bad_inputs() -> list[Any]:
    good = _good()
    cases = []
    for at, (bad, exc, words) in enumerate([
        ([0, 0], TypeError, "task must be a 1-d array of 4-byte integers"),
        (np.array([0, 0], np.int64), ValueError, "task must be a 1-d contiguous array of 4-byte"),
        (np.array([0.0, 0.0], np.float32), ValueError, "format 'f'"),
        (np.zeros((2, 1), np.int32), ValueError, "2 dimension"),
        (np.zeros(4, np.int32)[::2], ValueError, "not contiguous"),
        (np.zeros(2, ">i4"), ValueError, "format '>i'"),
        (np.zeros(3, np.int32), ValueError, "different lengths: task 3, kind 2"),
        (np.array([0, -1], np.int32), ValueError, "task -1 at row 1 is negative"),
    ]):
        cases.append(pytest.param([bad, *good[1:]], exc, words, id=f"task-{at}"))
    kind = [*good[:1], np.array([0, 7], np.int8), *good[2:]]
    cases.append(pytest.param(kind, ValueError, "kind 7 at row 1 is not a kind code (0 to 6)", id="kind-7"))
    kind = [*good[:1], np.array([-1, 0], np.int8), *good[2:]]
    cases.append(pytest.param(kind, ValueError, "kind -1 at row 0", id="kind-neg"))
    value0 = [*good[:6], np.zeros(2, np.int64).view(np.float64)]
    cases.append(pytest.param(value0, ValueError, "value0 must be a 1-d contiguous array of 8-byte",
                              id="value0-float"))
    cases.append(pytest.param([*good[:3], b"\x00", *good[4:]], ValueError, "different lengths",
                              id="bytes-short"))
    cases.append(pytest.param([*good[:6], None], TypeError, "value0 must be a 1-d array", id="none"))
    return cases


@pytest.mark.parametrize("make", TWINS)
@pytest.mark.parametrize(("args", "exc", "words"), _bad_inputs())
def test_bad_feed_input_raises_and_changes_nothing(make, args: list[Any], exc: type, words: str) -> None:
    p = make()
    p.task(0, 2, 7)
    p.feed(*_good(1))
    with pytest.raises(exc, match=f"^Pairer.feed: .*{re.escape(words)}"):
        p.feed(*args)
    # the pairer is as it was: the next batch pairs as if the bad one never came
    ids, depths = p.feed(*_arrays([(0, KIND["return"], 0x11, 0, 2, 1, 0)]))
    assert ids.tolist() == [0] and depths.tolist() == [0]
    assert p.calls().column("exit").to_pylist() == ["return"]


@pytest.mark.parametrize("make", TWINS)
def test_bytes_are_1_byte_columns(make) -> None:
    good = _good(2)
    ids, _ = make().feed(good[0], bytes([0, 1]), good[2], bytes(2), *good[4:])
    assert ids.tolist() == [0, 0]


@pytest.mark.parametrize("make", TWINS)
@pytest.mark.parametrize(("args", "exc", "words"), [
    ((-1, 2, 7), ValueError, "index -1 is negative"),
    ((0, 0, 7), ValueError, "format 0 is not a record format"),
    ((0, 2.0, 7), TypeError, ""),
    (("0", 2, 7), TypeError, ""),
    ((0, 2, 2**63), OverflowError, ""),
    ((2**31, 2, 7), OverflowError, ""),
])
def test_bad_task_declarations(make, args: tuple[Any, ...], exc: type, words: str) -> None:
    with pytest.raises(exc, match=words or None):
        make().task(*args)


@pytest.mark.parametrize("make", TWINS)
def test_a_task_is_declared_before_its_records(make) -> None:
    p = make()
    p.task(0, 2, 7)
    p.task(0, 1, 7)  # before any record: the last declaration counts
    p.feed(*_good(1))
    with pytest.raises(ValueError, match="task 0 already has records"):
        p.task(0, 2, 7)
    assert p.calls().column("call_id").to_pylist() == [None]


@pytest.mark.parametrize("make", TWINS)
def test_feed_takes_seven_columns(make) -> None:
    with pytest.raises(TypeError):
        make().feed(*_good()[:6])
    with pytest.raises(TypeError):
        make(1)


def _unaligned(a: np.ndarray) -> np.ndarray:
    """``a``'s values in an array one byte off its natural alignment."""
    raw = bytearray(a.nbytes + 1)
    out = np.frombuffer(raw, a.dtype, count=len(a), offset=1)
    out[:] = a
    assert a.itemsize == 1 or not out.flags.aligned
    return out


@pytest.mark.parametrize("make", TWINS)
def test_unaligned_columns(make) -> None:
    rows = _rows((0, "entry", 0x11, 0, 1, 3), (0, "resume", 0x11, 1, 2, 3, 3), (0, "return", 0x11, 0, 3, 3))
    want = _declare(make(), [(2, 7)]).feed(*_arrays(rows))
    got = _declare(make(), [(2, 7)]).feed(*(_unaligned(a) for a in _arrays(rows)))
    assert [a.tolist() for a in got] == [a.tolist() for a in want] == [[0, 0, 0], [0, 0, 0]]


@pytest.mark.parametrize("make", TWINS)
def test_feed_takes_its_columns_by_name(make) -> None:
    names = ("task", "kind", "pc", "arg_idx", "seq", "ptr", "value0")
    ids, _ = make().feed(**dict(zip(names, _good(), strict=True)))
    assert ids.tolist() == [0, 1]  # two first arguments: two calls


@pytest.mark.parametrize("make", TWINS)
@pytest.mark.parametrize("pattern", ["counting", "strided", "random", "descending"])
def test_call_ids_of_any_pattern(make, pattern: str) -> None:
    # the C pairer's id tables hash by the id while ids count up, and switch to a mixing
    # hash when they do not: both give the twin's pairing
    n = 3000
    rng = np.random.default_rng(5)
    ids = {"counting": np.arange(1, n + 1), "strided": np.arange(1, n + 1) << 20,
           "random": rng.integers(1, 2**48, n), "descending": np.arange(n, 0, -1)}[pattern]
    rows = []
    for i, cid in enumerate(ids.tolist()):
        rows.append((i % 2, KIND["entry"], PCS[i % 3], 0, i, cid, 0))
        if i % 3:
            rows.append((i % 2, KIND["resume"], PCS[i % 3], 1, i, int(ids[i // 2]), int(ids[i // 3])))
        if i % 4:
            rows.append((i % 2, KIND["return"], PCS[i % 3], 0, i, cid, 0))
    py = _declare(calls.Pairer(), [(2, 7), (2, 7)])
    want = _feed(py, rows)
    p = _declare(make(), [(2, 7), (2, 7)])
    got = _feed(p, rows, [len(rows) // 3])
    assert got[0].tolist() == want[0].tolist() and got[1].tolist() == want[1].tolist()
    assert p.calls().equals(py.calls())


@pytest.mark.parametrize("make", TWINS)
@pytest.mark.parametrize("pattern", ["counting", "strided", "random", "descending"])
def test_call_ids_of_any_pattern_with_drains(make, pattern: str) -> None:
    # the C pairer rebuilds its id tables at a drain, for the calls left: the pairing goes
    # on as without drains. Resumes name calls that never return (every fourth), resumed
    # by such calls, so that no record names a drained call.
    n = 3000
    rng = np.random.default_rng(5)
    ids = {"counting": np.arange(1, n + 1), "strided": np.arange(1, n + 1) << 20,
           "random": rng.choice(2**48, n, replace=False) + 1,
           "descending": np.arange(n, 0, -1)}[pattern].tolist()
    rows = []
    for i, cid in enumerate(ids):
        rows.append((i % 2, KIND["entry"], PCS[i % 3], 0, i, cid, 0))
        if i % 3:
            j, by = (i // 2) & ~3, (i // 3) & ~3
            rows.append((i % 2, KIND["resume"], PCS[j % 3], 1, i, ids[j], ids[by]))
        if i % 4:
            rows.append((i % 2, KIND["return"], PCS[i % 3], 0, i, cid, 0))
    whole = _declare(make(), [(2, 7), (2, 7)])
    want = _feed(whole, rows)
    p = _declare(make(), [(2, 7), (2, 7)])
    got_ids, parts = [], []
    for lo, hi in itertools.pairwise([0, len(rows) // 5, len(rows) // 2, len(rows) - 7, len(rows)]):
        got_ids += p.feed(*_arrays(rows[lo:hi]))[0].tolist()
        parts.append(p.drain_calls())
    assert got_ids == want[0].tolist()
    assert sum(t.num_rows for t in parts) > n // 2
    assert pa.concat_tables([*parts, p.calls()]).sort_by("call").equals(whole.calls())


@needs_c
def test_the_c_type_takes_no_arguments() -> None:
    with pytest.raises(TypeError):
        calls._CPair(1)
    with pytest.raises(TypeError):
        calls._CPair(x=1)


@needs_c
def test_the_c_pairer_is_used_by_one_thread_at_a_time() -> None:
    # feed() runs without the GIL: another thread's call on the same pairer meanwhile is
    # refused, never a race; each thread's own pairer is independent
    n = 500_000
    big = [np.repeat(a, n) for a in _arrays([(0, KIND["entry"], 0x11, 0, 1, 1, 0)])]
    p = calls.CPairer()
    p.task(0, 2, 7)
    errors: list[BaseException] = []
    done = threading.Event()

    def other() -> None:
        while not done.is_set():
            try:
                p.columns()
            except RuntimeError as exc:
                errors.append(exc)
                return

    t = threading.Thread(target=other)
    t.start()
    try:
        for batch in range(3):
            big[5] = np.arange(batch * n + 1, (batch + 1) * n + 1, dtype=np.uint64)  # new call ids
            p.feed(*big)
    finally:
        done.set()
        t.join()
    assert p.calls().num_rows == 3 * n
    assert all("in use by another thread" in str(e) for e in errors)


# --- the table helpers ------------------------------------------------------------------

def _load(tmp_path, b: tg.TraceBuilder) -> decode.Trace:
    return decode.load(tg.write_kdf(tmp_path / "t.kdf", b.buffer(len(b.words) + 8),
                                    b.table_lines((7, 8, "MainThread")), version=2, pid=7))


def _plain(records: pa.Table) -> pa.Table:
    """The records with kind as plain strings and values as a plain list column."""
    values = records.column("values").combine_chunks()
    lists = pa.array(values.to_pylist(), pa.list_(pa.uint64()))
    kinds = records.column("kind").cast(pa.string())
    return records.set_column(records.schema.get_field_index("kind"), "kind", kinds) \
        .set_column(records.schema.get_field_index("values"), "values", lists)


def test_pairing_uses_the_core_in_use(recorder) -> None:
    from kcovdf.runtime import core

    want = calls.CPairer if core.name == "c" and C_BUILT else calls.Pairer
    assert type(calls.pairer()) is want


@pytest.mark.parametrize("core_name", ["c", "py"])
def test_pair_table_reads_any_kind_and_values_column(tmp_path, monkeypatch, core_name: str) -> None:
    if core_name == "c" and not C_BUILT:
        pytest.skip("the C pairer kcovdf._core._pair is not built")
    monkeypatch.setattr(calls.core, "name", core_name)
    assert isinstance(calls.pairer(), calls.CPairer if core_name == "c" else calls.Pairer)
    t = _load(tmp_path, tg.zip_generators())
    got = calls.pair_table(t.records, t.tasks)
    assert got == calls.pair_table(_plain(t.records), t.tasks)
    # the same as the records given as Python columns
    rec = t.records.to_pylist()
    value0 = {i: r["values"][0] for i, r in enumerate(rec) if r["kind"] == "resume"}
    columns = ([r[c] for r in rec] for c in ("task", "seq", "kind", "pc", "arg_idx", "ptr"))
    assert got == calls.pair_columns(*columns, value0, t.tasks)
    ids, depths, table = calls.pair_arrays(t.records, t.tasks)
    assert ids.tolist() == got.ids and depths.tolist() == got.depths
    assert table.equals(calls.calls_table(got.calls))
    assert any(c.resumers for c in got.calls)


@pytest.mark.parametrize("kind", ["list_", "large_list", "list_view", "large_list_view"])
def test_first_value_words_of_any_list_column(kind: str) -> None:
    words = [[5, 6], None, [], [7], [8, 9], [10]]
    values = pa.array(words, getattr(pa, kind)(pa.uint64())).slice(1)
    assert calls._first_words(values, np.array([0, 1, 2, 3, 4])).tolist() == [0, 0, 7, 8, 10]
    assert calls._first_words(values, np.array([3])).tolist() == [8]
    with pytest.raises(TypeError, match="not a list of value words"):
        calls._first_words(pa.array([1], pa.uint64()), np.array([0]))


def test_an_unknown_kind_is_an_error() -> None:
    records = pa.table({"task": pa.array([0], pa.int32()), "seq": pa.array([1], pa.uint32()),
                        "kind": pa.array(["entry?"]), "pc": pa.array([1], pa.uint64()),
                        "arg_idx": pa.array([0], pa.uint8()), "ptr": pa.array([0], pa.uint64())})
    with pytest.raises(ValueError, match=r"\['entry\?'\] are not record kinds"):
        calls.pair_table(records)
    with pytest.raises(ValueError, match="not a record kind"):
        calls.pair_columns([0], [1], ["entry?"], [1], [0])


def test_pair_of_an_empty_table() -> None:
    empty = decode.SCHEMA.empty_table()
    ids, table = calls.pair(empty)
    assert len(ids) == 0 and table.num_rows == 0 and table.schema.equals(calls.SCHEMA)
    assert calls.pair_table(empty) == calls.Paired([], [], [])
