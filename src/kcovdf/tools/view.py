"""``kcovdf view``: a trace as per-task call trees, the kernel's trigger-view.py for kcovdf.

Each task's records become lines of a call tree, indented by call depth:

    app.f(a=1, p=Point(x=1, y=2))        the entry records of one call, joined
      3 = app.g()                        a return (value first, as trigger-view)
      app.h() raised ValueError('bad')   an exception leaving a function
      app.gen() yielded 3                a value yielded by a generator
      ↻ app.gen(n=2)  created by app.f() a suspended call resumed here (format 2)
      app.gen() suspended                it left the stack without a yield record

Depth comes from kcovdf.read.calls' pairing. In a format 2 trace every record carries
its call's id: a resumed generator or coroutine is drawn under the call that resumed
it, on a ``↻`` line naming it by its arguments and the call that created it. In a
format 1 trace a return closes the innermost open call of its function; a return with
no open call (a function without parameters recorded no entry) is printed at the
current depth.
``--raw`` prints the kernel's raw format instead:
``[ENTRY] seq=%3d sym arg[i](size) = val`` and ``[RET]``/``[EXC]``/``[YIELD]``, and
``[RESUME]``/``[SUSPEND]``/``[EVENT]`` with the event's word.
``--json`` prints one object per record with the columns every output shares
(``kcovdf.read.resolve.RECORD_COLUMNS``).

Exit status: 0, 1 when a filter matches nothing, 2 for input that is not a trace.
"""

from __future__ import annotations

import argparse
import collections
import fnmatch
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TextIO

import numpy as np
import pyarrow as pa

from kcovdf import abi
from kcovdf.cli import add_trace_argument
from kcovdf.errors import KcovdfError
from kcovdf.read import decode, render, resolve, sources, values
from kcovdf.symbols import Symbol, Symbolizer, add_symbol_arguments, kernel_symbols_from_args

_RAW_TAGS = {"entry": "[ENTRY]", "return": "[RET]", "exception": "[EXC]", "yield": "[YIELD]",
             "resume": "[RESUME]", "suspend": "[SUSPEND]", "event": "[EVENT]"}
_RAW_ROLE = {"return": "ret", "exception": "exc", "yield": "yield", "resume": "resume",
             "suspend": "suspend", "event": "event"}
_EVENTS = ("resume", "suspend", "event")
_STYLE = {"name": "bold cyan", "return": "green", "exception": "bold red", "yield": "magenta",
          "resume": "bold magenta", "suspend": "dim", "header": "dim", "param": "dim",
          "fault": "bold red"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``kcovdf view``."""
    add_trace_argument(parser)
    parser.add_argument("--raw", action="store_true",
                        help="one line per record in the kernel's raw format, no tree")
    parser.add_argument("-C", "--context", type=int, metavar="N",
                        help="show N lines around each line matched by --function/--module/--value, "
                             "with -- between groups")
    parser.add_argument("--function", action="append", default=[], metavar="NAME",
                        help="only calls of this function (qualname, module.qualname or kernel "
                             "symbol; glob patterns allowed; repeatable)")
    parser.add_argument("--module", action="append", default=[], metavar="NAME",
                        help="only calls into this module or its submodules (kernel: [module]; repeatable)")
    parser.add_argument("--task", action="append", default=[], metavar="TASK",
                        help="only this task: index, pid, tid or thread name (repeatable)")
    parser.add_argument("--value", action="append", default=[], metavar="[NAME=]VALUE",
                        help="only lines where a value prints as VALUE (an argument NAME, 'return', "
                             "or any value without NAME=); numbers compare by value (repeatable)")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per record on stdout (header lines go to stderr)")
    parser.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                        help="colour: auto = on a terminal only")
    parser.add_argument("--encoding", choices=("kcovdf", "kernel"),
                        help="how value words are read (default: recognised from the trace)")
    add_symbol_arguments(parser)


@dataclass
class Line:
    """One printed line: a call (its entry records), or one return, exception, yield or event."""

    task: int
    kind: str            # "call", "return", "exception", "yield", "resume", "suspend", "event",
    pc: int              # or "entry" in --raw
    rows: list[int]      # rows of ``rec``
    depth: int = 0
    call: int | None = None
    rec: _Records | None = None


class _Records:
    """Column access to one batch of records (a task segment), value words rendered on demand.

    ``ids`` and ``depths`` are the batch's pairing (kcovdf.read.calls.Pairer, fed in order).
    """

    def __init__(self, t: decode.Trace, rec: pa.Table, ids: np.ndarray, depths: np.ndarray) -> None:
        self.trace = t
        self.table = rec
        self.task = rec.column("task").to_numpy().tolist()
        self.seq = rec.column("seq").to_numpy().tolist()
        self.kind = rec.column("kind").to_pylist()
        self.pc = rec.column("pc").to_numpy().tolist()
        self.arg_idx = rec.column("arg_idx").to_numpy().tolist()
        self.size = rec.column("size").to_numpy().tolist()
        self.ptr = rec.column("ptr").to_numpy().tolist()
        self.ids = [None if i < 0 else i for i in ids.tolist()]
        self.depths = depths.tolist()
        # The values column is a list-view whose child may be the task's whole buffer:
        # keep the chunks apart rather than concatenating their children.
        chunks = [c for c in rec.column("values").chunks if len(c)]
        self._flats = [c.values.to_numpy() for c in chunks]
        self._chunk = np.repeat(np.arange(len(chunks)), [len(c) for c in chunks]).tolist()
        self._start = np.concatenate([c.offsets.to_numpy() for c in chunks] or [[0]]).tolist()
        self._count = np.concatenate([c.sizes.to_numpy() for c in chunks] or [[0]]).tolist()
        self._value: dict[int, dict[str, Any]] = {}

    def words(self, row: int) -> list[int]:
        start = self._start[row]
        return self._flats[self._chunk[row]][start:start + self._count[row]].tolist()

    def value(self, row: int) -> dict[str, Any]:
        v = self._value.get(row)
        if v is None:
            enc = self.trace.tasks[self.task[row]].encoding
            v = self._value[row] = values.of_record(self.kind[row], self.arg_idx[row],
                                                    self.words(row), self.trace.types, enc)
        return v

    def text(self, row: int) -> str:
        return values.text(self.value(row))


class _Lines:
    """Records in, lines out, one batch after another: the call trees' lines (depth from
    kcovdf.read.calls' pairing), or one line per record in ``--raw``.

    A call's entry records may straddle two batches: the last call line of a batch is held
    back, with its records, until the next batch shows whether more of its entries follow.
    """

    def __init__(self, raw: bool) -> None:
        self.raw = raw
        self.pairing = resolve.Pairing()
        self._held: tuple[pa.Table, np.ndarray, np.ndarray] | None = None
        self._calls: dict[str, np.ndarray] | None = None
        #: the pc and parent of every finished call, by call index: the pairer forgets them
        #: (16 bytes a call instead of its whole row), and a resumed call's creator may be one
        self._pc_of = np.zeros(0, np.uint64)
        self._parent_of = np.zeros(0, np.int64)

    def feed(self, t: decode.Trace, table: pa.Table) -> list[Line]:
        """The complete lines of one more batch of records (in buffer order)."""
        ids, depths = self.pairing.feed(t, table)
        done = self.pairing.pairer.drain()
        if len(done["call"]):
            top = int(done["call"].max()) + 1
            if top > len(self._pc_of):
                size = max(top, 2 * len(self._pc_of))
                self._pc_of = np.concatenate([self._pc_of, np.zeros(size - len(self._pc_of), np.uint64)])
                self._parent_of = np.concatenate([self._parent_of,
                                                  np.full(size - len(self._parent_of), -1, np.int64)])
            self._pc_of[done["call"]] = done["pc"]
            self._parent_of[done["call"]] = done["parent"]
        if self._held is not None:
            held, held_ids, held_depths = self._held
            table = pa.concat_tables([held, table.cast(held.schema)]) if len(held) else table
            ids, depths = np.concatenate([held_ids, ids]), np.concatenate([held_depths, depths])
            self._held = None
        rec = _Records(t, table, ids, depths)
        self._calls = None
        lines = self._lines(rec)
        if not self.raw and lines and lines[-1].kind == "call":
            last = lines.pop()
            first = last.rows[0]
            self._held = (table.slice(first), ids[first:], depths[first:])
        return lines

    def creator(self, call: int) -> int | None:
        """The pc of the call that created ``call`` (its parent), None for a top-level call."""
        if self._calls is None:
            # read once per batch, only when a resumed call is printed: the pairer's columns
            # are copied back at its next feed
            cols = self.pairing.pairer.columns()
            self._calls = {"call": cols["call"], "parent": cols["parent"], "pc": cols["pc"]}
        parent = self._field("parent", call)
        return None if parent is None or parent < 0 else self._field("pc", parent)

    def _field(self, name: str, call: int) -> int | None:
        """``name`` (pc or parent) of a call, open or finished."""
        assert self._calls is not None
        live = self._calls["call"]  # in call order
        at = int(np.searchsorted(live, call))
        if at < len(live) and live[at] == call:
            return int(self._calls[name][at])
        done = self._pc_of if name == "pc" else self._parent_of
        return int(done[call]) if call < len(done) else None

    def flush(self, t: decode.Trace) -> list[Line]:
        """The line held back at the end of the last batch."""
        if self._held is None:
            return []
        held, ids, depths = self._held
        self._held = None
        return self._lines(_Records(t, held, ids, depths))

    def _lines(self, rec: _Records) -> list[Line]:
        if self.raw:
            return [Line(task, kind, pc, [row], rec=rec) for row, (task, kind, pc)
                    in enumerate(zip(rec.task, rec.kind, rec.pc, strict=True))]
        ids, depths = rec.ids, rec.depths
        lines: list[Line] = []
        last: Line | None = None
        for row, call_id in enumerate(ids):
            if rec.kind[row] == "entry" and last is not None and last.kind == "call" \
                    and ids[last.rows[-1]] == call_id:
                last.rows.append(row)
                continue
            kind = "call" if rec.kind[row] == "entry" else rec.kind[row]
            last = Line(rec.task[row], kind, rec.pc[row], [row], depths[row], call_id, rec)
            lines.append(last)
        return lines


class _Filter:
    """--task, --function, --module and --value."""

    def __init__(self, args: argparse.Namespace, names: Symbolizer) -> None:
        self.args = args
        self.names = names
        self.values = [v.split("=", 1) if "=" in v else [None, v] for v in args.value]
        self.matching = bool(args.function or args.module or args.value)

    def task_ok(self, task: decode.Task) -> bool:
        want = self.args.task
        return not want or any(w in (str(task.index), str(task.pid), str(task.tid), task.name)
                               for w in want)

    def match(self, line: Line) -> bool:
        sym = self.names.lookup(line.pc)
        a = self.args
        if a.function and not any(self._function(sym, line.pc, f) for f in a.function):
            return False
        if a.module and not (sym and any(_module_matches(sym.module, m) for m in a.module)):
            return False
        rec = line.rec
        if a.value and not any(self._value(rec, sym, row, name, want)
                               for row in line.rows for name, want in self.values):
            return False
        return True

    @staticmethod
    def _function(sym: Symbol | None, pc: int, pattern: str) -> bool:
        if sym is None:
            return pattern in (f"{pc:#x}", str(pc))
        return any(fnmatch.fnmatchcase(n, pattern) for n in (sym.qualname, sym.display,
                                                              f"{sym.module}.{sym.qualname}"))

    def _value(self, rec: Any, sym: Symbol | None, row: int, name: str | None, want: str) -> bool:
        if name is not None and name != self._role(rec, sym, row):
            return False
        if rec.text(row) == want:
            return True
        v = rec.value(row)
        try:
            number = int(want, 0)
        except ValueError:
            return v.get("form") == "str" and v.get("value") == want and not v.get("truncated")
        if v.get("form") == "raw":
            return [int(w, 16) for w in v["words"] if w != "FAULT"] == [number & (2**64 - 1)]
        return v.get("form") == "scalar" and type(v["value"]) is int and v["value"] == number

    @staticmethod
    def _role(rec: Any, sym: Symbol | None, row: int) -> str:
        kind = rec.kind[row]
        if kind != "entry":
            return kind
        idx = rec.arg_idx[row]
        name = sym.param(idx) if sym else None
        return name.lstrip("*") if name else f"arg{idx}"


def _module_matches(module: str, pattern: str) -> bool:
    return module == pattern or module.startswith(pattern + ".") or fnmatch.fnmatchcase(module, pattern)


class _Select:
    """The lines to show, as they come; with a context, None where a gap separates groups
    (grep's ``--``). Groups never span two tasks."""

    def __init__(self, flt: _Filter, context: int | None) -> None:
        self.flt = flt
        self.context = context
        self.around = context or 0
        self._before: collections.deque[Line] = collections.deque(maxlen=self.around or 1)
        self._after = 0          # lines still to show after the last match
        self._task: int | None = None
        self._shown_in_task = False
        self._gap = False        # lines were left out since the last one shown
        self.shown = 0

    def feed(self, lines: list[Line]) -> Iterator[Line | None]:
        """The lines of ``lines`` to show, in order."""
        flt = self.flt
        for line in lines:
            if line.task != self._task:
                self._task, self._shown_in_task, self._gap, self._after = line.task, False, False, 0
                self._before.clear()
            if not flt.matching:
                self.shown += 1
                yield line
                continue
            if flt.match(line):
                if self._gap and self._shown_in_task and self.context is not None:
                    yield None
                yield from self._before
                self.shown += 1
                yield line
                self._before.clear()
                self._after, self._gap, self._shown_in_task = self.around, False, True
            elif self._after:
                self._after -= 1
                yield line
            else:
                if self.around:
                    if len(self._before) == self._before.maxlen:
                        self._gap = True
                    self._before.append(line)
                else:
                    self._gap = True


class _Printer:
    """Turns lines into text segments (plain or rich) or JSON objects."""

    #: How many call lines are remembered to name a call where it is resumed.
    REMEMBERED = 1 << 16

    def __init__(self, names: Symbolizer, raw: bool, lines: _Lines) -> None:
        self.names = names
        self.raw = raw
        self.lines = lines
        self.entries: dict[int, Line] = {}   # the call lines of calls that may be resumed

    def remember(self, lines: list[Line]) -> None:
        """Keep the call lines of ``lines`` (bounded), to name their calls where they are resumed."""
        for line in lines:
            if line.kind == "call" and line.call is not None:
                if len(self.entries) >= self.REMEMBERED:
                    self.entries.pop(next(iter(self.entries)))
                self.entries[line.call] = line

    def segments(self, line: Line) -> list[tuple[str, str]]:
        rec = line.rec
        assert rec is not None
        name = self.names.name(line.pc)
        if self.raw:
            row = line.rows[0]
            kind = rec.kind[row]
            if kind == "entry":
                role = "none" if rec.arg_idx[row] == abi.ARG_NONE else f"arg[{rec.arg_idx[row]}]"
            else:
                role = _RAW_ROLE[kind]
            value = [(self._word(rec, row), "")] if kind in _EVENTS or role == "none" \
                else self._value(rec, row)
            return [(f"{_RAW_TAGS[kind]} seq={rec.seq[row]:3d} ", ""), (name, "name"),
                    (f" {role}({rec.size[row]}) = ", ""), *value]
        indent = ("  " * line.depth, "")
        if line.kind == "call":
            return [indent, *self._call(name, line.pc, rec, line.rows)]
        row = line.rows[0]
        if line.kind == "resume":
            entry = self.entries.get(line.call) if line.call is not None else None
            segs = [indent, ("↻ ", "resume"),
                    *self._call(name, line.pc, entry.rec if entry else rec, entry.rows if entry else [])]
            creator = self.lines.creator(line.call) if line.call is not None else None
            if creator is not None:
                segs += [("  created by ", "header"), (self.names.name(creator), "name"), ("()", "")]
            return segs
        if line.kind in ("suspend", "event"):
            what = " suspended" if line.kind == "suspend" else f" event {rec.arg_idx[row]}"
            return [indent, (name, "name"), ("()", ""), (what, "suspend")]
        if line.kind == "return":
            return [indent, *self._value(rec, row, "return"), (" = ", ""), (name, "name"), ("()", "")]
        verb = " raised " if line.kind == "exception" else " yielded "
        return [indent, (name, "name"), ("()", ""), (verb, line.kind), *self._value(rec, row, line.kind)]

    def _call(self, name: str, pc: int, rec: Any, rows: list[int]) -> list[tuple[str, str]]:
        """``name(p=value, ...)`` from a call's entry rows."""
        sym = self.names.lookup(pc)
        segs: list[tuple[str, str]] = [(name, "name"), ("(", "")]
        rows = [r for r in rows if rec.arg_idx[r] != abi.ARG_NONE]
        for i, row in enumerate(rows):
            pname = sym.param(rec.arg_idx[row]) if sym and not sym.kernel else None
            segs += [(", ", "")] if i else []
            segs += [(f"{pname}=", "param")] if pname else []
            segs += self._value(rec, row)
        return segs + [(")", "")]

    @staticmethod
    def _word(rec: Any, row: int) -> str:
        words = rec.words(row)
        return f"{words[0]:#x}" if words else ""

    @staticmethod
    def _value(rec: Any, row: int, style: str = "") -> list[tuple[str, str]]:
        text = rec.text(row)
        return [(text, "fault" if text == "FAULT" else style)]

    def json(self, line: Line) -> Iterator[dict[str, Any]]:
        """One object per record of ``line``: the columns of ``resolve.RECORD_COLUMNS``."""
        rec = line.rec
        assert rec is not None
        trace = rec.trace
        sym = self.names.lookup(line.pc)
        task = trace.tasks[line.task]
        for row in line.rows:
            kind, idx, value = rec.kind[row], rec.arg_idx[row], rec.value(row)
            yield resolve.json_record({
                "task": task.index, "pid": task.pid, "tid": task.tid, "thread": task.name,
                "seq": rec.seq[row], "kind": kind, "pc": line.pc,
                "module": sym.module if sym else None, "function": resolve.function_name(trace, line.pc),
                "arg_idx": idx, "param": resolve.param_name(trace, line.pc, kind, idx),
                "size": rec.size[row], "ptr": rec.ptr[row], "values": rec.words(row),
                "class": render.class_name(value), "number": render.number(value),
                "rendered": values.text(value), "value": value,
                "call": rec.ids[row], "depth": rec.depths[row]})


def header_lines(t: decode.Trace) -> list[str]:
    """The ``#`` lines printed first: words, records, drops (if any), what was skipped or missing."""
    idle = len(t.tasks) - len(t.records.column("task").unique())
    known = [x.drops for x in t.tasks if x.drops is not None]
    return summary_lines(t.words, len(t), len(t.tasks), idle, sum(known),
                         len(known) < len(t.tasks)) + problem_lines(t)


def summary_lines(words: int, records: int, tasks: int, idle: int, drops: int,
                  drops_unknown: bool = False) -> list[str]:
    """The ``#`` lines on what a trace holds: words, records, tasks, drops."""
    out = [f"# Captured {words} words", f"# {records} records"]
    if tasks > 1:
        out.append(f"# {tasks} tasks" + (f" ({idle} recorded nothing)" if idle else ""))
    if drops:
        out.append(f"# Dropped {drops} records that did not fit in a full buffer")
    if drops_unknown:
        out.append("# Drops unknown for raw kernel buffers (no header)")
    return out


def problem_lines(t: decode.Trace, since: tuple[int, int, int] = (0, 0, 0)) -> list[str]:
    """The ``#`` lines on what was skipped, is missing or was noted (those after ``since``:
    how many of each were printed already)."""
    return ([f"# Skipped {s}" for s in decode.describe_skipped(t)[since[0]:]]
            + [f"# Missing: {m}" for m in t.missing[since[1]:]]
            + [f"# Note: {n}" for n in t.notes[since[2]:]])


def _printed(t: decode.Trace) -> tuple[int, int, int]:
    return len(t.skipped), len(t.missing), len(t.notes)


class _Output:
    """Plain text to a pipe, rich colour on a terminal."""

    def __init__(self, stream: TextIO, color: str) -> None:
        self.stream = stream
        tty = stream.isatty() and not os.environ.get("NO_COLOR")
        self.console = None
        if color == "always" or (color == "auto" and tty):
            from rich.console import Console

            self.console = Console(file=stream, highlight=False, soft_wrap=True,
                                   force_terminal=True, emoji=False, markup=False)

    def write(self, segments: list[tuple[str, str]]) -> None:
        if self.console is None:
            self.stream.write("".join(s for s, _ in segments) + "\n")
            return
        from rich.text import Text

        self.console.print(Text.assemble(*((s, _STYLE.get(style, "")) for s, style in segments)))


def main(args: argparse.Namespace) -> int:
    """Run ``kcovdf view``; returns the exit status."""
    if args.context is not None and args.context < 0:
        print(f"kcovdf view: error: --context {args.context}: expected N >= 0", file=sys.stderr)
        return 2
    try:
        batches, first, printed = _open(args)
    except (KcovdfError, OSError) as exc:
        print(f"kcovdf view: error: {exc}", file=sys.stderr)
        return 2
    try:
        return _show(batches, first, printed, args)
    except BrokenPipeError:
        # the reader went away (| head): stop quietly, and keep Python from
        # complaining again when it flushes stdout at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (KcovdfError, OSError) as exc:
        print(f"kcovdf view: error: {exc}", file=sys.stderr)
        return 2


def _open(args: argparse.Namespace) -> tuple[Iterator[tuple[decode.Trace, pa.Table]], list[str],
                                             tuple[int, int, int]]:
    """(the trace's batches of records, the header lines to print first, the problems they name).

    A trace directory streams one task segment at a time, its header read from the
    files' headers; a single buffer is decoded first.
    """
    kernel = kernel_symbols_from_args(args)
    if os.path.isdir(args.trace):
        head = sources.survey(args.trace)
        batches = decode.stream(args.trace, encoding=args.encoding, kernel=kernel)
        return batches, summary_lines(head.words, head.records, head.tasks, head.idle,
                                      head.drops), (0, 0, 0)
    t = decode.load(args.trace, encoding=args.encoding, kernel=kernel)
    return iter([(t, t.records)]), header_lines(t), _printed(t)


def _show(batches: Iterator[tuple[decode.Trace, pa.Table]], first: list[str],
          printed: tuple[int, int, int], args: argparse.Namespace) -> int:
    out = _Output(sys.stdout, "never" if args.json else args.color)
    head = _Output(sys.stderr, args.color) if args.json else out
    for h in first:
        head.write([(h, "header")])
    builder = _Lines(args.raw)
    printer: _Printer | None = None
    pick: _Select | None = None
    t: decode.Trace | None = None
    current = None
    tasks_ok: dict[int, bool] = {}

    def emit(lines: list[Line]) -> None:
        nonlocal current
        assert printer is not None and pick is not None and t is not None
        printer.remember(lines)
        for line in pick.feed([ln for ln in lines if tasks_ok.get(ln.task)]):
            if line is None:
                if not args.json:
                    out.write([("--", "header")])
                continue
            if args.json:
                for obj in printer.json(line):
                    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
                continue
            if line.task != current and not args.raw:
                current = line.task
                task = t.tasks[current]
                label = f" {task.name}" if task.name else ""
                out.write([(f"## task {task.index}: pid {task.pid} tid {task.tid}{label} ({task.source})",
                            "header")])
            out.write(printer.segments(line))

    for t, table in batches:
        if printer is None:
            printer = _Printer(t.names, args.raw, builder)
            flt = _Filter(args, t.names)
            pick = _Select(flt, args.context)
        for x in t.tasks[len(tasks_ok):]:
            tasks_ok[x.index] = flt.task_ok(x)
        emit(builder.feed(t, table))
    if t is None:  # a directory without a readable task file
        return 0
    emit(builder.flush(t))
    for h in problem_lines(t, printed):
        head.write([(h, "header")])
    if args.task and not any(tasks_ok.values()):
        print(f"kcovdf view: no task matches --task {' '.join(args.task)}", file=sys.stderr)
        return 1
    if pick is not None and pick.flt.matching and not pick.shown:
        wanted = " ".join(f"--{k} {v}" for k in ("function", "module", "value")
                          for v in getattr(args, k))
        print(f"kcovdf view: no record matches {wanted}", file=sys.stderr)
        return 1
    sys.stdout.flush()
    return 0
