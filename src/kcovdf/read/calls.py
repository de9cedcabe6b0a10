"""Calls: the records of one invocation paired, from its entry to its exit.

Format 2 (docs/abi.md §1): meta's pointer is the call id, shared by all records of one call
(its entry records, yields, resume and suspend events and its one exit), so calls are keyed
by (pid, call id), also when a generator or coroutine is suspended and resumed in any order
or on another thread. Each task keeps a stack of the calls running on it: a call's first
record pushes it (its ``parent`` is the call on top then), a yield, suspend or exit takes it
off, and a RESUME pushes it back under the resumer (counted in ``resumes``; ``resumers``
lists the resuming calls). Every record gets the depth it is drawn at: records of a resumed
generator sit under the call that resumed it.

Format 1 and raw kernel dumps: meta's pointer is an address, and the record stream is a
pre-order walk of each task's calls, so pairing is a stack per task: consecutive entry
records (consecutive seq) of one pc with rising ``arg_idx`` are one call's arguments, and a
return-side record closes the innermost open call of its pc. Generators leave the stack at
a yield and are resumed by their pc.

Records lost to a full buffer (drops) can leave a call without its entry records
(``nargs`` 0, ``entry_seq`` null) or without its exit (``exit`` null).

Columnar and streaming: a pairer (``pairer()``) takes a trace's records as numpy columns,
in batches in buffer order (its state carries over from one batch to the next), and gives
every record's call index and depth; ``calls()`` is the calls table. ``drain_calls()``
hands out the calls finished so far and forgets them, so that a trace of any size is
paired in the memory of its open calls (see ``Pairer.drain``). Two twins: the C
pairer (``_core/pair.c``, ``CPairer``) while the C core is in use, and ``Pairer``, its
reference in Python, which walks the records with ``_StackWalk`` (format 1) and
``_IdWalk`` (format 2) below. ``pair_arrays`` and ``pair`` stay columnar end to end;
``pair_table`` and ``pair_columns`` also give ``Call`` objects, built from the columns.
"""

from __future__ import annotations

import logging
import operator
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa

from kcovdf import abi
from kcovdf.read.decode import KINDS
from kcovdf.runtime import core

log = logging.getLogger(__name__)

try:
    from kcovdf._core._pair import Pairer as _CPair
except ImportError as exc:  # not built: the Python twin serves
    log.info("calls: C pairer unavailable (%s); using the Python pairer", exc)
    _CPair = None

SCHEMA = pa.schema([
    ("call", pa.int64()), ("call_id", pa.uint64()), ("task", pa.int32()), ("pc", pa.uint64()),
    ("parent", pa.int64()), ("depth", pa.int32()), ("entry_seq", pa.uint32()),
    ("exit_seq", pa.uint32()), ("exit", pa.string()), ("nargs", pa.int32()),
    ("yields", pa.int32()), ("suspends", pa.int32()), ("resumes", pa.int32()),
    ("resumers", pa.list_(pa.int64())),
])

#: Kinds that take a call off its task's stack without ending it.
_SUSPENDING = ("yield", "suspend")


@dataclass(slots=True)
class Call:
    """One call: where it sits in its task's tree, how it ended, and how often it was resumed."""

    id: int                      # the call's index (the ``call`` column), whatever was drained
    task: int
    pc: int
    parent: int | None
    depth: int
    call_id: int | None = None   # the writer's call id (format 2), None for format 1
    entry_seq: int | None = None
    exit_seq: int | None = None
    exit: str | None = None
    nargs: int = 0
    yields: int = 0
    suspends: int = 0
    resumes: int = 0
    resumers: list[int | None] = field(default_factory=list)
    last_arg: int = -1
    last_seq: int = -1


class Paired(NamedTuple):
    """The result of pairing: per record its call index and depth, and the calls."""

    ids: list[int | None]        # call index of every record (None: an event of a format 1 trace)
    depths: list[int]            # the depth every record is drawn at
    calls: list[Call]


class _Calls:
    """The calls not drained yet, by index (in index order), and the index of the next one."""

    __slots__ = ("by_index", "next")

    def __init__(self) -> None:
        self.by_index: dict[int, Call] = {}
        self.next = 0

    def new(self, task: int, pc: int, parent: int | None, depth: int, call_id: int | None = None) -> Call:
        call = Call(self.next, task, pc, parent, depth, call_id)
        self.by_index[self.next] = call
        self.next += 1
        return call


class _StackWalk:
    """Format 1: the stack walk over one task's records, pairing by pc."""

    def __init__(self, task: int, calls: _Calls) -> None:
        self.task = task
        self.calls = calls
        self.stack: list[Call] = []
        self.suspended: list[Call] = []
        self.collecting: Call | None = None  # the call whose arguments are still arriving

    def _new(self, pc: int) -> Call:
        parent = self.stack[-1].id if self.stack else None
        return self.calls.new(self.task, pc, parent, len(self.stack))

    def entry(self, pc: int, arg_idx: int, seq: int) -> Call:
        call = self.collecting
        if call is None or call.pc != pc or arg_idx <= call.last_arg \
                or seq != (call.last_seq + 1) & abi.SEQ_MASK:
            call = self._new(pc)
            call.entry_seq = seq
            self.stack.append(call)
        call.last_arg, call.last_seq = arg_idx, seq
        call.nargs += 1
        self.collecting = call
        return call

    def _find(self, pc: int) -> Call | None:
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i].pc == pc:
                call = self.stack[i]
                del self.stack[i:]  # calls above it lost their returns
                return call
        for i in range(len(self.suspended) - 1, -1, -1):
            if self.suspended[i].pc == pc:
                return self.suspended.pop(i)
        return None

    def exit(self, pc: int, kind: str, seq: int) -> Call:
        self.collecting = None
        call = self._find(pc)
        if call is None:  # no entry records: a function without parameters, or they were dropped
            call = self._new(pc)
        if kind == "yield":
            call.yields += 1
            self.suspended.append(call)
        else:
            call.exit, call.exit_seq = kind, seq
        return call


class _IdWalk:
    """Format 2: pairing by (pid, call id); one stack per task, one index of calls per pid."""

    def __init__(self, task: int, calls: _Calls, index: dict[int, Call]) -> None:
        self.task = task
        self.calls = calls
        self.index = index           # call id -> call, shared by the tasks of one pid
        self.stack: list[Call] = []

    def _new(self, pc: int, call_id: int) -> Call:
        parent = self.stack[-1].id if self.stack else None
        call = self.calls.new(self.task, pc, parent, len(self.stack), call_id)
        self.index[call_id] = call
        return call

    def _position(self, call: Call) -> int:
        """Where ``call`` is on the stack, -1 when it is not on it."""
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i] is call:
                return i
        return -1

    def record(self, kind: str, pc: int, arg_idx: int, seq: int, call_id: int,
               value: int | None) -> tuple[Call, int]:
        """The call of one record and the depth it is drawn at."""
        call = self.index.get(call_id)
        # A call id met again after its call ended, or under another pc, is a new call
        # (ids restart in a process that exec'd; or the earlier records were lost).
        fresh = call is None or call.pc != pc or (kind == "entry" and call.exit is not None)
        if kind == "entry":
            if fresh:
                call = self._new(pc, call_id)
            assert call is not None
            at = self._position(call)
            if at < 0:
                if call.entry_seq is None and call.task != self.task:
                    # first met through a record of another task read earlier: the entry decides
                    call.task, call.depth = self.task, len(self.stack)
                    call.parent = self.stack[-1].id if self.stack else None
                at = len(self.stack)
                self.stack.append(call)
            if call.entry_seq is None:
                call.entry_seq = seq
            if arg_idx != abi.ARG_NONE:
                call.nargs += 1
            return call, at
        if fresh:
            call = self._new(pc, call_id)
        assert call is not None
        at = self._position(call)
        if kind == "resume":
            if at >= 0:  # its suspension was lost: it leaves its old place
                del self.stack[at]
            resumer = self.index.get(value) if value else None
            call.resumes += 1
            call.resumers.append(resumer.id if resumer is not None else None)
            self.stack.append(call)
            return call, len(self.stack) - 1
        if kind == "event":
            return call, at if at >= 0 else len(self.stack)
        depth = at if at >= 0 else len(self.stack)
        if at >= 0:
            del self.stack[at:]  # calls above it lost their exits or suspensions
        if kind == "yield":
            call.yields += 1
        elif kind == "suspend":
            call.suspends += 1
        else:
            call.exit, call.exit_seq = kind, seq
        return call, depth


#: Kind codes, the indexes of ``decode.KINDS`` (the scanner's codes, pair.c's K_*).
_KIND_CODE = {name: code for code, name in enumerate(KINDS)}
_RESUME = _KIND_CODE["resume"]
_KIND_NAMES = pa.array(KINDS, pa.string())

#: The input columns of ``feed``: name, item size and the dtype they are read as.
_FEED = (("task", 4, np.int32), ("kind", 1, np.int8), ("pc", 8, np.uint64), ("arg_idx", 1, np.uint8),
         ("seq", 4, np.uint32), ("ptr", 8, np.uint64), ("value0", 8, np.uint64))
_INT_FORMATS = "bBhHiIlLqQnN"

#: The columns of ``columns()``, in pair.c's order (the call index, CALL_COLUMNS, the
#: resumers). call is the call's index (after a drain, no longer its position); flags says
#: which of call_id, entry_seq, exit_seq and last_seq are set (_F_*); -1 stands for None in
#: parent, exit (else the kind code that ended the call), last_arg and resumers.
_COLUMNS = (("call", np.int64), ("call_id", np.uint64), ("pc", np.uint64), ("parent", np.int64),
            ("task", np.int32), ("depth", np.int32), ("entry_seq", np.uint32), ("exit_seq", np.uint32),
            ("nargs", np.int32), ("yields", np.int32), ("suspends", np.int32), ("resumes", np.int32),
            ("last_seq", np.uint32), ("last_arg", np.int16), ("exit", np.int8), ("flags", np.uint8),
            ("resumers", np.int64))
_F_CALL_ID, _F_ENTRY_SEQ, _F_EXIT_SEQ, _F_LAST_SEQ = 1, 2, 4, 8


def _column(name: str, size: int, dtype: Any, obj: object) -> np.ndarray:
    """One input column of ``feed``, checked as pair.c's get_column checks it (same errors)."""
    try:
        view = memoryview(obj)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"Pairer.feed: {name} must be a 1-d array of {size}-byte integers "
                        f"(an object with the buffer protocol), not {type(obj).__name__}") from None
    fmt = view.format
    if fmt[:1] in ("@", "=") or (fmt[:1] == "<" and sys.byteorder == "little"):
        fmt = fmt[1:]
    if view.ndim != 1 or not view.c_contiguous or view.itemsize != size \
            or len(fmt) != 1 or fmt not in _INT_FORMATS:
        gap = ", not contiguous" if view.ndim == 1 and not view.c_contiguous else ""
        raise ValueError(f"Pairer.feed: {name} must be a 1-d contiguous array of {size}-byte integers, "
                         f"got {view.ndim} dimension(s), format '{view.format}', item size "
                         f"{view.itemsize}{gap}")
    return np.frombuffer(view, dtype)


def _feed_columns(*objs: object) -> list[np.ndarray]:
    """The columns of one ``feed``, checked whole before any state changes."""
    cols = [_column(name, size, dtype, obj) for (name, size, dtype), obj in zip(_FEED, objs, strict=True)]
    if len({len(c) for c in cols}) > 1:
        raise ValueError("Pairer.feed: the columns have different lengths: "
                         + ", ".join(f"{name} {len(c)}" for (name, _, _), c in zip(_FEED, cols, strict=True)))
    task, kind = cols[0], cols[1]
    if len(bad := np.flatnonzero(task < 0)):
        raise ValueError(f"Pairer.feed: task {task[bad[0]]} at row {bad[0]} is negative")
    if len(bad := np.flatnonzero((kind < 0) | (kind >= len(KINDS)))):
        raise ValueError(f"Pairer.feed: kind {kind[bad[0]]} at row {bad[0]} is not a kind code "
                         f"(0 to {len(KINDS) - 1})")
    return cols


def _c_int(value: object, bits: int, what: str) -> int:
    """``value`` as PyArg_ParseTuple's "i" (bits 32) or "L" (bits 64) takes it."""
    v = operator.index(value)  # type: ignore[call-overload]
    if not -(1 << (bits - 1)) <= v < 1 << (bits - 1):
        raise OverflowError(f"Pairer.task: {what} {v} does not fit in {bits} bits")
    return v


def _columns_of(cs: Sequence[Call]) -> dict[str, np.ndarray]:
    """The columns (``_COLUMNS``) of calls, as pair.c lays them out."""
    values: dict[str, list[Any]] = {
        "call": [c.id for c in cs],
        "call_id": [c.call_id or 0 for c in cs],
        "parent": [-1 if c.parent is None else c.parent for c in cs],
        "entry_seq": [c.entry_seq or 0 for c in cs],
        "exit_seq": [c.exit_seq or 0 for c in cs],
        "last_seq": [max(c.last_seq, 0) for c in cs],
        "exit": [-1 if c.exit is None else _KIND_CODE[c.exit] for c in cs],
        "flags": [(c.call_id is not None) * _F_CALL_ID | (c.entry_seq is not None) * _F_ENTRY_SEQ
                  | (c.exit_seq is not None) * _F_EXIT_SEQ | (c.last_seq >= 0) * _F_LAST_SEQ
                  for c in cs],
        "resumers": [-1 if r is None else r for c in cs for r in c.resumers],
    }
    for name in ("task", "pc", "depth", "nargs", "yields", "suspends", "resumes", "last_arg"):
        values[name] = [getattr(c, name) for c in cs]
    return {name: np.array(values[name], dtype) if values[name] else np.zeros(0, dtype)
            for name, dtype in _COLUMNS}


class _PairerBase:
    """What both pairers share: the calls table from their columns."""

    def columns(self) -> dict[str, np.ndarray]:  # pragma: no cover - defined by each twin
        raise NotImplementedError

    def drain(self) -> dict[str, np.ndarray]:  # pragma: no cover - defined by each twin
        raise NotImplementedError

    def calls(self) -> pa.Table:
        """Every call not drained yet, one row each, in ``call`` order (columns: ``SCHEMA``)."""
        return _calls_table(self.columns())

    def drain_calls(self) -> pa.Table:
        """The calls finished since the last drain, in ``call`` order (columns: ``SCHEMA``),
        forgotten by the pairer (see ``Pairer.drain``)."""
        return _calls_table(self.drain())


class Pairer(_PairerBase):
    """The streaming pairer in Python: the reference twin of the C pairer (``CPairer``).

    Declare tasks with ``task()``, then ``feed()`` records in buffer order, in one batch or
    several; ``calls()`` is the calls table so far, ``drain()`` takes the finished calls
    out. Same methods, arguments, results and errors as ``CPairer``, record for record.
    """

    def __init__(self) -> None:
        self._calls = _Calls()
        self._by_pid: dict[int, dict[int, Call]] = {}
        self._walks: dict[int, _StackWalk | _IdWalk] = {}
        self._declared: dict[int, tuple[int, int]] = {}

    def task(self, index: int, format: int, pid: int) -> None:
        """Declare a task before its first record: format >= 2 pairs its records by (pid, call
        id); format 1, and every task never declared, by stack and pc."""
        index, format, pid = _c_int(index, 32, "index"), _c_int(format, 32, "format"), _c_int(pid, 64, "pid")
        if index < 0:
            raise ValueError(f"Pairer.task: index {index} is negative")
        if format < 1:
            raise ValueError(f"Pairer.task: format {format} is not a record format (1 or 2)")
        if index in self._walks:
            raise ValueError(f"Pairer.task: task {index} already has records; declare a task "
                             "before feeding them")
        self._declared[index] = (format, pid)

    def _walk(self, t: int) -> _StackWalk | _IdWalk:
        fmt, pid = self._declared.get(t, (1, 0))
        walk = _IdWalk(t, self._calls, self._by_pid.setdefault(pid, {})) if fmt >= 2 \
            else _StackWalk(t, self._calls)
        self._walks[t] = walk
        return walk

    def feed(self, task: object, kind: object, pc: object, arg_idx: object, seq: object,
             ptr: object, value0: object) -> tuple[np.ndarray, np.ndarray]:
        """Pair one batch of records in buffer order, after the batches fed before.

        Columns: 1-d contiguous integer arrays (numpy) of task (int32), kind (int8, the codes
        of ``decode.KINDS``), pc (uint64), arg_idx (uint8), seq (uint32), ptr (uint64: format
        2, the call id) and value0 (uint64: the first value word, read for resume records
        only; 0 when none). Returns (ids int64: every record's call index, -1 for none;
        depths int32: the depth every record is drawn at).
        """
        cols = _feed_columns(task, kind, pc, arg_idx, seq, ptr, value0)
        ids: list[int] = []
        depths: list[int] = []
        walks = self._walks
        for t, k, p, a, s, cid, v in zip(*(c.tolist() for c in cols), strict=True):
            walk = walks.get(t) or self._walk(t)
            name = KINDS[k]
            if type(walk) is _IdWalk:
                call, depth = walk.record(name, p, a, s, cid, v)
            elif name == "entry":
                call = walk.entry(p, a, s)
                depth = call.depth
            elif name in ("return", "exception", "yield"):
                call = walk.exit(p, name, s)
                depth = call.depth
            else:  # an event record in a format 1 trace belongs to no call
                ids.append(-1)
                depths.append(len(walk.stack))
                continue
            ids.append(call.id)
            depths.append(depth)
        return np.array(ids, np.int64), np.array(depths, np.int32)

    def columns(self) -> dict[str, np.ndarray]:
        """Every call not drained yet, in ``call`` order, one numpy array per column
        (``_COLUMNS``)."""
        return _columns_of(list(self._calls.by_index.values()))

    def drain(self) -> dict[str, np.ndarray]:
        """The calls finished since the last drain, as ``columns()`` lays them out, forgotten.

        A call is finished when it has its exit (return or exception), is on no task's stack
        or suspended list (format 1) and is not the call whose arguments are still arriving
        (format 1); the others stay. Indexes never change: ``call``, ``parent``, ``resumers``
        and what ``feed`` returns are the same with drains as without, and the calls drained
        and those left make the calls of an undrained run, but for one thing: the ids of
        drained calls are forgotten (that is what frees their memory). A later record naming
        one is a new call, where without the drain a record other than an entry (an entry
        always opens a new call after an exit) would have found the finished call, and a
        resume naming one as its resumer would have had it; neither happens in a stream the
        writer made, where a call has no records after its exit and a resumer is running.
        """
        held: set[int] = set()
        for walk in self._walks.values():
            held.update(c.id for c in walk.stack)
            if type(walk) is _StackWalk:
                held.update(c.id for c in walk.suspended)
                if walk.collecting is not None:
                    held.add(walk.collecting.id)
        by_index = self._calls.by_index
        done = [c for c in by_index.values() if c.exit is not None and c.id not in held]
        if done:
            for c in done:
                del by_index[c.id]
            for index in self._by_pid.values():
                for key in [key for key, c in index.items() if c.id not in by_index]:
                    del index[key]
        return _columns_of(done)


class CPairer(_PairerBase):
    """The C pairer (``kcovdf._core._pair.Pairer``, pair.c) with its twin ``Pairer``'s methods:
    numpy arrays wrap what it returns without a copy, and ``calls()`` builds the table."""

    __slots__ = ("_c",)

    def __init__(self) -> None:
        if _CPair is None:
            raise ImportError("kcovdf._core._pair is not built (pip install . builds it)")
        self._c = _CPair()

    def task(self, index: int, format: int, pid: int) -> None:
        """See ``Pairer.task``."""
        self._c.task(index, format, pid)

    def feed(self, task: object, kind: object, pc: object, arg_idx: object, seq: object,
             ptr: object, value0: object) -> tuple[np.ndarray, np.ndarray]:
        """See ``Pairer.feed``."""
        ids, depths = self._c.feed(task, kind, pc, arg_idx, seq, ptr, value0)
        return np.frombuffer(ids, np.int64), np.frombuffer(depths, np.int32)

    def columns(self) -> dict[str, np.ndarray]:
        """See ``Pairer.columns`` (read-only arrays: the C pairer's own, handed over)."""
        return _wrap(self._c.columns())

    def drain(self) -> dict[str, np.ndarray]:
        """See ``Pairer.drain`` (read-only arrays, handed over)."""
        return _wrap(self._c.drain())


def _wrap(buffers: tuple[Any, ...]) -> dict[str, np.ndarray]:
    """The C pairer's columns as numpy arrays, without a copy."""
    return {name: np.frombuffer(b, dtype) for (name, dtype), b in zip(_COLUMNS, buffers, strict=True)}


def pairer() -> Pairer | CPairer:
    """A new pairer: the C one while the C core is in use (kcovdf.runtime.core chooses), else its twin."""
    # The C pairer is the fast path; Pairer is its reference twin, and the fallback without it.
    return CPairer() if _CPair is not None and core.name == "c" else Pairer()


def _masked(a: np.ndarray, none: np.ndarray, type_: pa.DataType | None = None) -> pa.Array:
    """``a`` as an Arrow array, null where ``none`` is true."""
    return pa.array(a, type_, mask=none) if none.any() else pa.array(a, type_)


def _calls_table(cols: dict[str, np.ndarray]) -> pa.Table:
    """The calls table (``SCHEMA``) of a pairer's columns."""
    n = len(cols["call"])
    flags = cols["flags"]
    offsets = np.zeros(n + 1, np.int32)
    np.cumsum(cols["resumes"], out=offsets[1:])
    exits = pa.DictionaryArray.from_arrays(_masked(cols["exit"], cols["exit"] < 0), _KIND_NAMES)
    resumers = cols["resumers"]
    arrays = {
        "call": pa.array(cols["call"]),
        "call_id": _masked(cols["call_id"], (flags & _F_CALL_ID) == 0),
        "parent": _masked(cols["parent"], cols["parent"] < 0),
        "entry_seq": _masked(cols["entry_seq"], (flags & _F_ENTRY_SEQ) == 0),
        "exit_seq": _masked(cols["exit_seq"], (flags & _F_EXIT_SEQ) == 0),
        "exit": exits.cast(pa.string()),
        "resumers": pa.ListArray.from_arrays(pa.array(offsets), _masked(resumers, resumers < 0)),
    }
    for name in ("task", "pc", "depth", "nargs", "yields", "suspends", "resumes"):
        arrays[name] = pa.array(cols[name], SCHEMA.field(name).type)
    return pa.Table.from_arrays([arrays[name] for name in SCHEMA.names], schema=SCHEMA)


def _optional(a: np.ndarray) -> list[int | None]:
    """``a`` as a list, None where it is negative."""
    out: list[int | None] = a.tolist()
    for i in np.flatnonzero(a < 0).tolist():
        out[i] = None
    return out


def _call_objects(cols: dict[str, np.ndarray]) -> list[Call]:
    """The calls of a pairer's columns as ``Call`` objects."""
    n = len(cols["call"])
    flags = cols["flags"].tolist()

    def unless(name: str, flag: int, none: Any) -> list[Any]:
        return [v if f & flag else none for v, f in zip(cols[name].tolist(), flags, strict=True)]

    exits = [None if e < 0 else KINDS[e] for e in cols["exit"].tolist()]
    flat = _optional(cols["resumers"])
    starts = np.zeros(n + 1, np.int64)
    np.cumsum(cols["resumes"], out=starts[1:])
    bounds = starts.tolist()
    resumers = [flat[bounds[i]:bounds[i + 1]] for i in range(n)]
    return list(map(Call, cols["call"].tolist(), cols["task"].tolist(), cols["pc"].tolist(),
                    _optional(cols["parent"]), cols["depth"].tolist(), unless("call_id", _F_CALL_ID, None),
                    unless("entry_seq", _F_ENTRY_SEQ, None), unless("exit_seq", _F_EXIT_SEQ, None), exits,
                    cols["nargs"].tolist(), cols["yields"].tolist(), cols["suspends"].tolist(),
                    cols["resumes"].tolist(), resumers, cols["last_arg"].tolist(),
                    unless("last_seq", _F_LAST_SEQ, -1)))


def _declare(p: Pairer | CPairer, tasks: Sequence[Any]) -> None:
    """Declare the trace's tasks (``decode.Task``: pid and format), by their position."""
    for index, info in enumerate(tasks):
        if info is not None:
            p.task(index, info.format, info.pid)


def kind_codes(kind: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The int8 codes (indexes of ``decode.KINDS``) of a kind column, without a string per record;
    ValueError for a name that is not a record kind, or a null."""
    if isinstance(kind, pa.ChunkedArray):
        kind = kind.combine_chunks()
    if not pa.types.is_dictionary(kind.type):
        kind = kind.dictionary_encode()
    names = kind.dictionary.to_pylist()
    unknown = [name for name in names if name not in _KIND_CODE]
    if unknown:
        raise ValueError(f"kind column: {unknown} are not record kinds {KINDS}")
    if kind.null_count:
        raise ValueError("kind column: it has nulls")
    codes = kind.indices.to_numpy()
    lut = np.array([_KIND_CODE[name] for name in names], np.int8)
    if np.array_equal(lut, np.arange(len(lut))):  # the decoder's dictionary: the codes themselves
        return codes.astype(np.int8, copy=False)
    return lut[codes]


def _first_words(values: pa.Array, rows: np.ndarray) -> np.ndarray:
    """The first value word (0 for none) of the given rows of a list or list-view column."""
    t = values.type
    if pa.types.is_list_view(t) or pa.types.is_large_list_view(t):
        starts = values.offsets.to_numpy()[rows]
        sizes = values.sizes.to_numpy()[rows]
    elif pa.types.is_list(t) or pa.types.is_large_list(t):
        offsets = values.offsets.to_numpy()
        starts, sizes = offsets[rows], offsets[rows + 1] - offsets[rows]
    else:
        raise TypeError(f"pair: the values column is {t}, not a list of value words")
    if values.null_count:
        sizes = np.where(values.is_valid().to_numpy(zero_copy_only=False)[rows], sizes, 0)
    out = np.zeros(len(rows), np.uint64)
    has = sizes > 0
    if has.any():  # the offsets index the whole child, whatever the column's slice
        out[has] = values.values.to_numpy(zero_copy_only=False)[starts[has]]
    return out


def feed_table(p: Pairer | CPairer, records: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """Feed the rows of a records table (see ``pair``) to ``p``, after those fed before, one
    record batch at a time: (ids int64, -1 for none; depths int32) of all its rows.

    The kind column's dictionary indices are the codes (no string per record); value words
    are read for resume records only.
    """
    numeric = [(name, dtype) for name, _, dtype in _FEED if name not in ("kind", "value0")]
    with_values = "values" in records.column_names
    ids: list[np.ndarray] = []
    depths: list[np.ndarray] = []
    wanted = [name for name, _ in numeric] + ["kind"] + ["values"] * with_values
    for batch in records.select(wanted).to_batches():
        if not batch.num_rows:
            continue
        task, pcs, arg_idx, seq, ptr = (
            np.ascontiguousarray(batch.column(name).to_numpy(zero_copy_only=False), dtype)
            for name, dtype in numeric)
        kind = kind_codes(batch.column("kind"))
        value0 = np.zeros(batch.num_rows, np.uint64)
        resumes = np.flatnonzero(kind == _RESUME)
        if len(resumes):
            value0[resumes] = _first_words(batch.column("values"), resumes)
        got = p.feed(task, kind, pcs, arg_idx, seq, ptr, value0)
        ids.append(got[0])
        depths.append(got[1])
    if not ids:
        return np.zeros(0, np.int64), np.zeros(0, np.int32)
    return np.concatenate(ids), np.concatenate(depths)


class PairedArrays(NamedTuple):
    """The pairing as columns: per record its call index and depth, and the calls table."""

    ids: np.ndarray              # int64 call index of every record, -1: none (an event of format 1)
    depths: np.ndarray           # int32 depth every record is drawn at
    calls: pa.Table              # columns: SCHEMA


def pair_arrays(records: pa.Table, tasks: Sequence[Any] = ()) -> PairedArrays:
    """The pairing of a records table (see ``pair``) as numpy columns and the calls table:
    columnar all the way, the fast path for large traces."""
    p = pairer()
    _declare(p, tasks)
    ids, depths = feed_table(p, records)
    return PairedArrays(ids, depths, p.calls())


def pair(records: pa.Table, tasks: Sequence[Any] = ()) -> tuple[pa.Array, pa.Table]:
    """(call index of every record, the calls table) of a records table in buffer order.

    ``records`` needs the columns task, seq, kind, pc, arg_idx, ptr and values; rows of one
    task must be in the order they were written (the decoder's order). ``tasks`` are the
    trace's tasks (``decode.Task``: pid and format); tasks not given pair as format 1.
    """
    ids, _, table = pair_arrays(records, tasks)
    return pa.array(ids, pa.int64(), mask=ids < 0), table


def pair_table(records: pa.Table, tasks: Sequence[Any] = ()) -> Paired:
    """The pairing of a records table (see ``pair``), with the depth of every record."""
    p = pairer()
    _declare(p, tasks)
    ids, depths = feed_table(p, records)
    return Paired(_optional(ids), depths.tolist(), _call_objects(p.columns()))


def pair_columns(task: Sequence[int], seq: Sequence[int], kind: Sequence[str], pc: Sequence[int],
                 arg_idx: Sequence[int], ptr: Sequence[int] | None = None,
                 value0: dict[int, int] | None = None, tasks: Sequence[Any] = ()) -> Paired:
    """The pairing of records given as columns in buffer order.

    ``value0`` maps the row of every resume record to its value word (the resumer's call id);
    ``tasks`` (``decode.Task``) say which tasks are format 2 and their pids (without ``ptr``
    every task pairs as format 1).
    """
    n = len(task)
    p = pairer()
    if ptr is not None:
        _declare(p, tasks)
    try:
        codes = np.array([_KIND_CODE[k] for k in kind], np.int8)
    except KeyError as exc:
        raise ValueError(f"pair_columns: {exc.args[0]!r} is not a record kind {KINDS}") from None
    words = np.zeros(n, np.uint64)
    for row, w in (value0 or {}).items():
        if 0 <= row < n:
            words[row] = w
    ids, depths = p.feed(np.array(task, np.int32), codes, np.array(pc, np.uint64),
                         np.array(arg_idx, np.uint8), np.array(seq, np.uint32),
                         np.zeros(n, np.uint64) if ptr is None else np.array(ptr, np.uint64), words)
    return Paired(_optional(ids), depths.tolist(), _call_objects(p.columns()))


def calls_table(calls: Sequence[Call]) -> pa.Table:
    """The calls as a table (columns: ``SCHEMA``)."""
    columns = {name: [getattr(c, "id" if name == "call" else name) for c in calls]
               for name in SCHEMA.names}
    return pa.table(columns, schema=SCHEMA)


__all__ = ["SCHEMA", "Call", "CPairer", "Paired", "PairedArrays", "Pairer", "calls_table", "feed_table",
           "pair", "pair_arrays", "pair_columns", "pair_table", "pairer"]
