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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa

from kcovdf import abi

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

    id: int                      # index in the calls table (the ``call`` column)
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


class _StackWalk:
    """Format 1: the stack walk over one task's records, pairing by pc."""

    def __init__(self, task: int, calls: list[Call]) -> None:
        self.task = task
        self.calls = calls
        self.stack: list[Call] = []
        self.suspended: list[Call] = []
        self.collecting: Call | None = None  # the call whose arguments are still arriving

    def _new(self, pc: int) -> Call:
        parent = self.stack[-1].id if self.stack else None
        call = Call(len(self.calls), self.task, pc, parent, len(self.stack))
        self.calls.append(call)
        return call

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

    def __init__(self, task: int, calls: list[Call], index: dict[int, Call]) -> None:
        self.task = task
        self.calls = calls
        self.index = index           # call id -> call, shared by the tasks of one pid
        self.stack: list[Call] = []

    def _new(self, pc: int, call_id: int) -> Call:
        parent = self.stack[-1].id if self.stack else None
        call = Call(len(self.calls), self.task, pc, parent, len(self.stack), call_id)
        self.calls.append(call)
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


def pair(records: pa.Table, tasks: Sequence[Any] = ()) -> tuple[pa.Array, pa.Table]:
    """(call index of every record, the calls table) of a records table in buffer order.

    ``records`` needs the columns task, seq, kind, pc, arg_idx, ptr and values; rows of one
    task must be in the order they were written (the decoder's order). ``tasks`` are the
    trace's tasks (``decode.Task``: pid and format); tasks not given pair as format 1.
    """
    ids, _, calls = pair_table(records, tasks)
    return pa.array(ids, pa.int64()), calls_table(calls)


def pair_table(records: pa.Table, tasks: Sequence[Any] = ()) -> Paired:
    """The pairing of a records table (see ``pair``), with the depth of every record."""
    kind = records.column("kind").combine_chunks()
    if pa.types.is_dictionary(kind.type):
        names = kind.dictionary.to_pylist()
        kinds = [names[i] for i in kind.indices.to_numpy(zero_copy_only=False).tolist()]
    else:
        kinds = kind.to_pylist()
    cols = [records.column(c).to_numpy().tolist() for c in ("task", "seq", "pc", "arg_idx", "ptr")]
    resume_rows = np.flatnonzero(np.array(kinds, dtype=object) == "resume") if "resume" in kinds else []
    value0: dict[int, int] = {}
    if len(resume_rows):
        words = records.column("values").take(pa.array(resume_rows, pa.int64())).to_pylist()
        value0 = {int(r): (w[0] if w else 0) for r, w in zip(resume_rows, words, strict=True)}
    task_col, seq, pc, arg_idx, ptr = cols
    return pair_columns(task_col, seq, kinds, pc, arg_idx, ptr, value0, tasks)


def pair_columns(task: Sequence[int], seq: Sequence[int], kind: Sequence[str], pc: Sequence[int],
                 arg_idx: Sequence[int], ptr: Sequence[int] | None = None,
                 value0: dict[int, int] | None = None, tasks: Sequence[Any] = ()) -> Paired:
    """The pairing of records given as columns in buffer order.

    ``value0`` maps the row of every resume record to its value word (the resumer's call id);
    ``tasks`` (``decode.Task``) say which tasks are format 2 and their pids.
    """
    calls: list[Call] = []
    by_pid: dict[int, dict[int, Call]] = {}
    walks: dict[int, Any] = {}
    ids: list[int | None] = [None] * len(task)
    depths: list[int] = [0] * len(task)
    value0 = value0 or {}
    for row, (t, s, k, p, a) in enumerate(zip(task, seq, kind, pc, arg_idx, strict=True)):
        walk = walks.get(t)
        if walk is None:
            info = tasks[t] if t < len(tasks) else None
            if info is not None and info.format >= 2 and ptr is not None:
                walk = _IdWalk(t, calls, by_pid.setdefault(info.pid, {}))
            else:
                walk = _StackWalk(t, calls)
            walks[t] = walk
        if type(walk) is _IdWalk:
            call, depths[row] = walk.record(k, p, a, s, ptr[row], value0.get(row))  # type: ignore[index]
        elif k == "entry":
            call = walk.entry(p, a, s)
            depths[row] = call.depth
        elif k in ("return", "exception", "yield"):
            call = walk.exit(p, k, s)
            depths[row] = call.depth
        else:  # an event record in a format 1 trace belongs to no call
            depths[row] = len(walk.stack)
            continue
        ids[row] = call.id
    return Paired(ids, depths, calls)


def calls_table(calls: Sequence[Call]) -> pa.Table:
    """The calls as a table (columns: ``SCHEMA``)."""
    columns = {name: [getattr(c, "id" if name == "call" else name) for c in calls]
               for name in SCHEMA.names}
    return pa.table(columns, schema=SCHEMA)


__all__ = ["SCHEMA", "Call", "Paired", "calls_table", "pair", "pair_columns", "pair_table"]
