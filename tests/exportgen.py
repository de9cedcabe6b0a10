"""Write .kdf trace files and trace directories for the export, SQL and report tests.

Traces are built by tracegen's TraceBuilder (the reference encoder and the ABI word packing),
exactly as docs/abi.md §1-3 and docs/core.md §3-4 describe them, so the readers are tested
against the documented format rather than against the recorder.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from kcovdf import abi, tracefile
from tracegen import TraceBuilder, pc_of, sym_line, trace_dir, write_kdf

#: Passed as an argument value: recorded as the REDACTED form (pointer 0).
REDACT = object()


class TaskTrace:
    """One task's buffer and table (a tracegen.TraceBuilder), filled by calls in program order.

    Pointers are deterministic, so that exports compare across runs.
    """

    def __init__(self, pid: int = 4242, tid: int = 4243, name: str = "MainThread") -> None:
        self.pid, self.tid, self.name = pid, tid, name
        self.drops = 0
        self.trace = TraceBuilder()
        self._ptr = 0x7F0000001000

    @property
    def words(self) -> list[int]:
        """The record words written so far."""
        return self.trace.words

    def function(self, module: str, qualname: str, params: list[str], line: int = 1,
                 file: str | None = None) -> int:
        """Declare an instrumented function (a sym line); returns its pc (docs/core.md §4)."""
        pc = pc_of(module, qualname, line)
        self.trace.syms[pc] = sym_line(module, qualname, line,
                                       [(p, "POSITIONAL_OR_KEYWORD") for p in params], file)
        return pc

    def _record(self, rtype: int, pc: int, arg_idx: int, value: object) -> None:
        redacted = value is REDACT
        self._ptr += 0x40
        self.trace.value(rtype, pc, arg_idx, None if redacted else value, redacted, self._ptr)

    def enter(self, pc: int, *args: object) -> None:
        """Entry records, one per argument, at positions 0..n-1."""
        for i, arg in enumerate(args):
            self._record(abi.TYPE_ENTRY, pc, i, arg)

    def leave(self, pc: int, value: object = None) -> None:
        """A return record."""
        self._record(abi.TYPE_RETURN, pc, abi.ARG_RETURN, value)

    def raise_(self, pc: int, exc: BaseException) -> None:
        """A return record for a raised exception."""
        self._record(abi.TYPE_RETURN, pc, abi.ARG_EXCEPTION, exc)

    def yield_(self, pc: int, value: object) -> None:
        """A return record for a yielded value."""
        self._record(abi.TYPE_RETURN, pc, abi.ARG_YIELD, value)

    def call(self, pc: int, *args: object, ret: object = None) -> None:
        """A whole call that returns ``ret``."""
        self.enter(pc, *args)
        self.leave(pc, ret)

    def table_lines(self) -> list[dict]:
        """The JSON lines of this task's table: types, symbols, then the task line."""
        return self.trace.table_lines((self.pid, self.tid, self.name))

    def write(self, path: str | os.PathLike, *, spare_words: int = 16) -> Path:
        """Write a .kdf file (0600) holding this task's buffer and table."""
        return write_kdf(path, self.trace.buffer(len(self.words) + 1 + spare_words), self.table_lines(),
                         drops=self.drops, pid=self.pid, created_ns=1_700_000_000_000_000_000)


def write_dir(path: str | os.PathLike, tasks: list[TaskTrace]) -> Path:
    """A trace directory (docs/core.md §3): run.json and one .kdf per task."""
    path = trace_dir(path)
    for t in tasks:
        t.write(tracefile.free_task_path(str(path), t.pid, t.tid))
    return path


@dataclasses.dataclass
class Point:
    """A class with named fields (decomposed into p.x, p.y)."""

    x: int
    y: int


@dataclasses.dataclass
class Account:
    """A dataclass whose declared field ``balance`` is shadowed by a property."""

    owner: str
    balance: int = 0


# reading a property would run program code, so the encoder writes FAULT for it
Account.balance = property(lambda self: 0)  # type: ignore[assignment]


def account(owner: str) -> Account:
    """An Account whose ``balance`` field is FAULT in its record."""
    acc = object.__new__(Account)
    acc.__dict__["owner"] = owner
    return acc


def sample_task(pid: int = 4242, tid: int = 4243, name: str = "MainThread") -> TaskTrace:
    """A small trace touching every record kind and value form the tools must show."""
    t = TaskTrace(pid, tid, name)
    add = t.function("geo", "add", ["a", "b"], line=3)
    norm = t.function("geo", "Point.norm", ["self"], line=10)
    greet = t.function("app", "greet", ["name", "loud"], line=20)
    parse = t.function("app", "parse", ["text"], line=30)
    login = t.function("app", "login", ["user", "password"], line=40)
    gen = t.function("app", "numbers", ["n"], line=50)
    tick = t.function("app", "tick", [], line=60)
    for i in range(5):
        t.call(add, i, i * 2, ret=i * 3)
    t.call(add, 1.5, 2.25, ret=3.75)
    for i in range(3):
        p = Point(i, i + 1)
        t.call(norm, p, ret=float(i * i + (i + 1) ** 2) ** 0.5)
    t.enter(greet, "alice", True)
    t.call(add, 2, 3, ret=5)  # nested inside greet
    t.leave(greet, "HELLO ALICE")
    t.call(greet, "bob", False, ret="hello bob")
    t.enter(parse, "x=1")
    t.leave(parse, {"x": 1})
    t.enter(parse, "bad input")
    t.raise_(parse, ValueError("bad input", 7))
    t.call(login, "root", REDACT, ret=True)
    t.enter(gen, 2)
    t.yield_(gen, 0)
    t.yield_(gen, 1)
    t.leave(gen, None)
    t.call(tick, ret=None)
    t.call(norm, account("eve"), ret=0.0)
    t.call(parse, [1, 2, 3], ret=(1 << 70))
    return t


def sample_dir(path: str | os.PathLike) -> Path:
    """A trace directory with two tasks, the second one with drops."""
    main = sample_task()
    worker = TaskTrace(4242, 4250, "worker-1")
    add = worker.function("geo", "add", ["a", "b"], line=3)
    worker.call(add, 10, 20, ret=30)
    worker.call(add, -1, 1, ret=0)
    worker.drops = 3
    return write_dir(path, [main, worker])
