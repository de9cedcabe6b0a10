"""Calls: entry records paired with the return (or exception) of the same invocation.

A record stream is a pre-order walk of each task's calls, so pairing is a stack per task:
consecutive entry records (consecutive seq) of one pc with rising ``arg_idx`` are one call's
arguments, and a return-side record closes the innermost open call of its pc. Generators leave the stack at a
yield and are resumed by their pc. Records lost to a full buffer (drops) can leave a call
without its entry records (``nargs`` 0) or without its return (``exit`` null).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa

from kcovdf import abi

SCHEMA = pa.schema([
    ("call", pa.int64()), ("task", pa.int32()), ("pc", pa.uint64()), ("parent", pa.int64()),
    ("depth", pa.int32()), ("entry_seq", pa.uint32()), ("exit_seq", pa.uint32()),
    ("exit", pa.string()), ("nargs", pa.int32()), ("yields", pa.int32()),
])


@dataclass
class _Call:
    id: int
    task: int
    pc: int
    parent: int | None
    depth: int
    entry_seq: int | None = None
    exit_seq: int | None = None
    exit: str | None = None
    last_arg: int = -1
    last_seq: int = -1
    nargs: int = 0
    yields: int = 0


class _Pairing:
    """The stack walk over one task's records."""

    def __init__(self, task: int, calls: list[_Call]) -> None:
        self.task = task
        self.calls = calls
        self.stack: list[_Call] = []
        self.suspended: list[_Call] = []
        self.collecting: _Call | None = None  # the call whose arguments are still arriving

    def _new(self, pc: int) -> _Call:
        parent = self.stack[-1].id if self.stack else None
        call = _Call(len(self.calls), self.task, pc, parent, len(self.stack))
        self.calls.append(call)
        return call

    def entry(self, pc: int, arg_idx: int, seq: int) -> _Call:
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

    def _find(self, pc: int) -> _Call | None:
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i].pc == pc:
                call = self.stack[i]
                del self.stack[i:]  # calls above it lost their returns
                return call
        for i in range(len(self.suspended) - 1, -1, -1):
            if self.suspended[i].pc == pc:
                return self.suspended.pop(i)
        return None

    def exit(self, pc: int, kind: str, seq: int) -> _Call:
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


def pair(records: pa.Table) -> tuple[pa.Array, pa.Table]:
    """(call id of every record, the calls table) of a records table in buffer order.

    ``records`` needs the columns task, seq, kind, pc and arg_idx; rows of one task must be in
    the order they were written (the decoder's order).
    """
    cols = [records.column(c).to_pylist() for c in ("task", "seq", "kind", "pc", "arg_idx")]
    ids, calls = pair_columns(*cols)
    table = pa.table({name: [getattr(c, name if name != "call" else "id") for c in calls]
                      for name in SCHEMA.names}, schema=SCHEMA)
    return pa.array(ids, pa.int64()), table


def pair_columns(task: Sequence[int], seq: Sequence[int], kind: Sequence[str], pc: Sequence[int],
                 arg_idx: Sequence[int]) -> tuple[list[int], list[_Call]]:
    """(call id of every record, the calls) of records given as columns in buffer order."""
    calls: list[_Call] = []
    walks: dict[int, _Pairing] = {}
    ids: list[int] = []
    for t, s, k, p, a in zip(task, seq, kind, pc, arg_idx, strict=True):
        walk = walks.get(t)
        if walk is None:
            walk = walks[t] = _Pairing(t, calls)
        call = walk.entry(p, a, s) if k == "entry" else walk.exit(p, k, s)
        ids.append(call.id)
    return ids, calls
