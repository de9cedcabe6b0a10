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
import fnmatch
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TextIO

import numpy as np

from kcovdf import abi
from kcovdf.cli import add_trace_argument
from kcovdf.errors import KcovdfError
from kcovdf.read import calls, decode, resolve, values
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
    rows: list[int]
    depth: int = 0
    call: int | None = None


class _Records:
    """Column access to a trace's records, value words rendered on demand."""

    def __init__(self, t: decode.Trace) -> None:
        rec = t.records
        self.trace = t
        self.task = rec.column("task").to_numpy().tolist()
        self.seq = rec.column("seq").to_numpy().tolist()
        self.kind = rec.column("kind").to_pylist()
        self.pc = rec.column("pc").to_numpy().tolist()
        self.arg_idx = rec.column("arg_idx").to_numpy().tolist()
        self.size = rec.column("size").to_numpy().tolist()
        self.ptr = rec.column("ptr").to_numpy().tolist()
        # The values column is a list-view per task whose child may be that task's whole
        # buffer: keep the chunks apart rather than concatenating their children.
        chunks = [c for c in rec.column("values").chunks if len(c)]
        self._flats = [c.values.to_numpy() for c in chunks]
        self._chunk = np.repeat(np.arange(len(chunks)), [len(c) for c in chunks]).tolist()
        self._start = np.concatenate([c.offsets.to_numpy() for c in chunks] or [[0]]).tolist()
        self._count = np.concatenate([c.sizes.to_numpy() for c in chunks] or [[0]]).tolist()
        self._value: dict[int, dict[str, Any]] = {}
        self.paired = calls.pair_columns(self.task, self.seq, self.kind, self.pc, self.arg_idx,
                                         self.ptr, self._resumers(), t.tasks)

    def _resumers(self) -> dict[int, int]:
        """The value word (the resumer's call id) of every resume record, by row."""
        return {row: (w[0] if (w := self.words(row)) else 0)
                for row, k in enumerate(self.kind) if k == "resume"}

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


def build_lines(rec: _Records, raw: bool) -> list[Line]:
    """The lines of every task: call trees (depth from kcovdf.read.calls' pairing), or raw records."""
    if raw:
        return [Line(task, kind, pc, [row]) for row, (task, kind, pc)
                in enumerate(zip(rec.task, rec.kind, rec.pc, strict=True))]
    ids, depths = rec.paired.ids, rec.paired.depths
    lines: list[Line] = []
    last: Line | None = None
    for row, call_id in enumerate(ids):
        if rec.kind[row] == "entry" and last is not None and last.kind == "call" \
                and ids[last.rows[-1]] == call_id:
            last.rows.append(row)
            continue
        kind = "call" if rec.kind[row] == "entry" else rec.kind[row]
        last = Line(rec.task[row], kind, rec.pc[row], [row], depths[row], call_id)
        lines.append(last)
    return lines


def entry_rows(lines: list[Line]) -> dict[int, list[int]]:
    """The entry rows of every call that has a call line (to name it where it is resumed)."""
    return {line.call: line.rows for line in lines if line.kind == "call" and line.call is not None}


class _Filter:
    """--task, --function, --module and --value."""

    def __init__(self, args: argparse.Namespace, rec: _Records, names: Symbolizer) -> None:
        self.args = args
        self.rec = rec
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
        if a.value and not any(self._value(sym, row, name, want)
                               for row in line.rows for name, want in self.values):
            return False
        return True

    @staticmethod
    def _function(sym: Symbol | None, pc: int, pattern: str) -> bool:
        if sym is None:
            return pattern in (f"{pc:#x}", str(pc))
        return any(fnmatch.fnmatchcase(n, pattern) for n in (sym.qualname, sym.display,
                                                              f"{sym.module}.{sym.qualname}"))

    def _value(self, sym: Symbol | None, row: int, name: str | None, want: str) -> bool:
        if name is not None and name != self._role(sym, row):
            return False
        if self.rec.text(row) == want:
            return True
        v = self.rec.value(row)
        try:
            number = int(want, 0)
        except ValueError:
            return v.get("form") == "str" and v.get("value") == want and not v.get("truncated")
        if v.get("form") == "raw":
            return [int(w, 16) for w in v["words"] if w != "FAULT"] == [number & (2**64 - 1)]
        return v.get("form") == "scalar" and type(v["value"]) is int and v["value"] == number

    def _role(self, sym: Symbol | None, row: int) -> str:
        kind = self.rec.kind[row]
        if kind != "entry":
            return kind
        idx = self.rec.arg_idx[row]
        name = sym.param(idx) if sym else None
        return name.lstrip("*") if name else f"arg{idx}"


def _module_matches(module: str, pattern: str) -> bool:
    return module == pattern or module.startswith(pattern + ".") or fnmatch.fnmatchcase(module, pattern)


def select(lines: list[Line], flt: _Filter, context: int | None) -> list[Line | None]:
    """The lines to show; with a context, None where a gap separates groups (grep's ``--``)."""
    by_task: dict[int, list[Line]] = {}
    for line in lines:
        by_task.setdefault(line.task, []).append(line)
    out: list[Line | None] = []
    for task_lines in by_task.values():
        if not flt.matching:
            out.extend(task_lines)
            continue
        keep = np.zeros(len(task_lines), dtype=bool)
        around = context or 0
        for i, line in enumerate(task_lines):
            if flt.match(line):
                keep[max(0, i - around):i + around + 1] = True
        prev = -2
        for i in np.flatnonzero(keep).tolist():
            if context is not None and prev >= 0 and prev != i - 1:
                out.append(None)
            out.append(task_lines[i])
            prev = i
    return out


class _Printer:
    """Turns lines into text segments (plain or rich) or JSON objects."""

    def __init__(self, rec: _Records, names: Symbolizer, raw: bool,
                 entries: dict[int, list[int]] | None = None) -> None:
        self.rec = rec
        self.names = names
        self.raw = raw
        self.entries = entries or {}

    def segments(self, line: Line) -> list[tuple[str, str]]:
        rec = self.rec
        name = self.names.name(line.pc)
        if self.raw:
            row = line.rows[0]
            kind = rec.kind[row]
            if kind == "entry":
                role = "none" if rec.arg_idx[row] == abi.ARG_NONE else f"arg[{rec.arg_idx[row]}]"
            else:
                role = _RAW_ROLE[kind]
            value = [(self._word(row), "")] if kind in _EVENTS or role == "none" else self._value(row)
            return [(f"{_RAW_TAGS[kind]} seq={rec.seq[row]:3d} ", ""), (name, "name"),
                    (f" {role}({rec.size[row]}) = ", ""), *value]
        indent = ("  " * line.depth, "")
        if line.kind == "call":
            return [indent, *self._call(name, line.pc, line.rows)]
        row = line.rows[0]
        if line.kind == "resume":
            segs = [indent, ("↻ ", "resume"),
                    *self._call(name, line.pc, self.entries.get(line.call, []))]
            parent = self.rec.paired.calls[line.call].parent if line.call is not None else None
            if parent is not None:
                segs += [("  created by ", "header"),
                         (self.names.name(self.rec.paired.calls[parent].pc), "name"), ("()", "")]
            return segs
        if line.kind in ("suspend", "event"):
            what = " suspended" if line.kind == "suspend" else f" event {rec.arg_idx[row]}"
            return [indent, (name, "name"), ("()", ""), (what, "suspend")]
        if line.kind == "return":
            return [indent, *self._value(row, "return"), (" = ", ""), (name, "name"), ("()", "")]
        verb = " raised " if line.kind == "exception" else " yielded "
        return [indent, (name, "name"), ("()", ""), (verb, line.kind), *self._value(row, line.kind)]

    def _call(self, name: str, pc: int, rows: list[int]) -> list[tuple[str, str]]:
        """``name(p=value, ...)`` from a call's entry rows."""
        rec = self.rec
        sym = self.names.lookup(pc)
        segs: list[tuple[str, str]] = [(name, "name"), ("(", "")]
        rows = [r for r in rows if rec.arg_idx[r] != abi.ARG_NONE]
        for i, row in enumerate(rows):
            pname = sym.param(rec.arg_idx[row]) if sym and not sym.kernel else None
            segs += [(", ", "")] if i else []
            segs += [(f"{pname}=", "param")] if pname else []
            segs += self._value(row)
        return segs + [(")", "")]

    def _word(self, row: int) -> str:
        words = self.rec.words(row)
        return f"{words[0]:#x}" if words else ""

    def _value(self, row: int, style: str = "") -> list[tuple[str, str]]:
        text = self.rec.text(row)
        return [(text, "fault" if text == "FAULT" else style)]

    def json(self, line: Line) -> Iterator[dict[str, Any]]:
        """One object per record of ``line``: the columns of ``resolve.RECORD_COLUMNS``."""
        rec = self.rec
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
                "class": resolve.class_name(value), "number": resolve.number(value),
                "rendered": values.text(value), "value": value,
                "call": rec.paired.ids[row], "depth": rec.paired.depths[row]})


def header_lines(t: decode.Trace) -> list[str]:
    """The ``#`` lines printed first: words, records, drops (if any), what was skipped or missing."""
    out = [f"# Captured {t.words} words", f"# {len(t)} records"]
    if len(t.tasks) > 1:
        idle = len(t.tasks) - len(t.records.column("task").unique())
        out.append(f"# {len(t.tasks)} tasks" + (f" ({idle} recorded nothing)" if idle else ""))
    known = [x.drops for x in t.tasks if x.drops is not None]
    if sum(known):
        out.append(f"# Dropped {sum(known)} records that did not fit in a full buffer")
    if len(known) < len(t.tasks):
        out.append("# Drops unknown for raw kernel buffers (no header)")
    out += [f"# Skipped {s}" for s in decode.describe_skipped(t)]
    out += [f"# Missing: {m}" for m in t.missing]
    out += [f"# Note: {n}" for n in t.notes]
    return out


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
    try:
        t = decode.load(args.trace, encoding=args.encoding, kernel=kernel_symbols_from_args(args))
    except (KcovdfError, OSError) as exc:
        print(f"kcovdf view: error: {exc}", file=sys.stderr)
        return 2
    if args.context is not None and args.context < 0:
        print(f"kcovdf view: error: --context {args.context}: expected N >= 0", file=sys.stderr)
        return 2
    try:
        return _show(t, args)
    except BrokenPipeError:
        # the reader went away (| head): stop quietly, and keep Python from
        # complaining again when it flushes stdout at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _show(t: decode.Trace, args: argparse.Namespace) -> int:
    names = t.names
    rec = _Records(t)
    flt = _Filter(args, rec, names)
    tasks = {x.index for x in t.tasks if flt.task_ok(x)}
    if args.task and not tasks:
        print(f"kcovdf view: no task matches --task {' '.join(args.task)}", file=sys.stderr)
        return 1
    lines = [ln for ln in build_lines(rec, args.raw) if ln.task in tasks]
    shown = select(lines, flt, args.context)
    out = _Output(sys.stdout, "never" if args.json else args.color)
    head = _Output(sys.stderr, args.color) if args.json else out
    for h in header_lines(t):
        head.write([(h, "header")])
    printer = _Printer(rec, names, args.raw, entry_rows(lines))
    current = None
    for line in shown:
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
    if flt.matching and not any(ln is not None for ln in shown):
        wanted = " ".join(f"--{k} {v}" for k in ("function", "module", "value")
                          for v in getattr(args, k))
        print(f"kcovdf view: no record matches {wanted}", file=sys.stderr)
        return 1
    sys.stdout.flush()
    return 0
