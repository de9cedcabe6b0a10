"""``kcovdf run``: run a script, module or ``-c`` code as ``python`` would, recording into a trace directory.

Like ``coverage run``: the program gets its own ``__main__``, ``sys.argv``,
``sys.path[0]``, exit status, exceptions and standard streams. Every thread,
forked child and Python subprocess records into its own file in the trace
directory (kcovdf.runtime.tasks, docs/run.md). One summary line goes to stderr at exit.
"""

from __future__ import annotations

import argparse
import atexit
import dataclasses
import importlib.machinery
import importlib.util
import linecache
import os
import shutil
import signal
import sys
import time
import types
from typing import Any

from kcovdf import __version__, abi, tracefile
from kcovdf.cli import DEFAULT_TRACE
from kcovdf.errors import ConfigError, RunError
from kcovdf.instrument import config, install, selection
from kcovdf.run import bootstrap, sealer
from kcovdf.runtime import tasks

DEFAULT_OUTPUT = DEFAULT_TRACE

# Set when the program ended by an uncaught KeyboardInterrupt; _finish then ends by SIGINT.
_die_by_sigint = False

#: Multipliers of the -b suffixes: binary, like the kernel's sizes.
_SUFFIXES = config.SUFFIXES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``kcovdf run [options] (script.py | -m module | -c code) [args...]``."""
    parser.usage = "%(prog)s [options] (script.py | -m module | -c code) [args ...]"
    parser.add_argument("-o", "--output", default=DEFAULT_OUTPUT, metavar="DIR",
                        help=f"trace directory to write (default: {DEFAULT_OUTPUT})")
    parser.add_argument("-b", "--buffer", type=words, default=tasks.DEFAULT_WORDS, metavar="WORDS",
                        help="buffer size of each task, in u64 words (8 bytes each); K, M and G "
                             f"multiply by 1024, 1024² and 1024³: -b 64K, -b {_size(abi.MAX_WORDS)} "
                             f"(the most: {abi.MAX_WORDS * 8 >> 20} MiB) (default: "
                             f"{_size(tasks.DEFAULT_WORDS)} words = {tasks.DEFAULT_WORDS * 8 >> 20} MiB "
                             "per task)")
    parser.add_argument("--no-threads", dest="threads", action="store_false",
                        help="record only the main thread, not threads it starts")
    parser.add_argument("--no-fork", dest="fork", action="store_false",
                        help="do not record in children made by os.fork()")
    parser.add_argument("--no-subprocess", dest="subprocess", action="store_false",
                        help="do not record in Python subprocesses")
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("-m", dest="module", action="store_true",
                      help="the target is a module name, run as with python -m")
    kind.add_argument("-c", dest="code", action="store_true",
                      help="the target is program text, run as with python -c")
    config.add_selection_arguments(parser)
    parser.add_argument("target", nargs="?", metavar="script.py | module | code",
                        help="the program to run")
    parser.add_argument("program_args", nargs=argparse.REMAINDER, metavar="args",
                        help="arguments for the program (everything after the target)")


def _size(n: int) -> str:
    """``n`` with the largest suffix that divides it: 1048576 -> 1M."""
    for suffix, factor in reversed(_SUFFIXES.items()):
        if n % factor == 0:
            return f"{n // factor}{suffix}"
    return str(n)


def words(text: str) -> int:
    """The value of -b: a number of u64 words, decimal or 0x hex, with an optional K, M or G."""
    number, factor = text.strip(), 1
    if number[-1:].upper() in _SUFFIXES:
        number, factor = number[:-1], _SUFFIXES[number[-1].upper()]
    try:
        n = int(number, 0) * factor
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of u64 words (examples: 65536, 64K, 16M)") from None
    if not abi.MIN_WORDS <= n <= abi.MAX_WORDS:
        raise argparse.ArgumentTypeError(
            f"{text} = {n} words is outside {abi.MIN_WORDS} .. {_size(abi.MAX_WORDS)} words")
    return n


def main(args: argparse.Namespace) -> int:
    """Run the program; its exit status is ours. Errors before it starts return 1 (2 when the
    script cannot be opened, as python)."""
    if not args.target:
        what = "-c needs the code" if args.code else "give a script, -m MODULE or -c CODE"
        print(f"kcovdf run: nothing to run: {what}", file=sys.stderr)
        return 2
    try:
        cfg = config.Config.from_args(args)
        program = Program.find(args.target, args.module, args.program_args, code=args.code)
        trace_dir = prepare_trace_dir(args.output)
    except RunError as exc:
        print(f"kcovdf run: {exc}", file=sys.stderr)
        return exc.status
    except (ConfigError, OSError) as exc:
        print(f"kcovdf run: {exc}", file=sys.stderr)
        return 1
    max_bytes = cfg.max_size if cfg.max_size is not None else tasks.default_budget(trace_dir)
    plan = bootstrap.Plan(trace_dir=trace_dir, words=args.buffer, threads=args.threads,
                          forks=args.fork, subprocesses=args.subprocess, mode=cfg.mode,
                          max_bytes=max_bytes, ring_bytes=cfg.ring_size)
    write_run_info(trace_dir, [*(["-c"] if args.code else []), args.target, *args.program_args], cfg, plan)
    # before the program, while this process has one thread; a ring removes its own old files
    seal = sealer.start(trace_dir) if plan.mode != "ring" else None
    recording = bootstrap.start(cfg, plan)
    atexit.register(_finish, recording, trace_dir, seal)
    return program.run(recording)


# --- the trace directory -------------------------------------------------------------
def prepare_trace_dir(path: str) -> str:
    """Create (0700) or empty the trace directory; refuse a directory that is not a trace."""
    path = os.path.abspath(path)
    if os.path.isdir(path):
        if not sealer.wait(path):
            raise RunError(f"{path}: the run before this one is still compressing it; try again "
                           "later, or give another -o/--output")
        found = tracefile.list_dir(path)
        if not found.run_info and (found.tasks or found.unknown):
            raise RunError(f"{path} exists and is not a kcovdf trace directory (no "
                           f"{tracefile.RUN_INFO}); give another -o/--output")
        ours = [tracefile.RUN_INFO] if found.run_info else []
        ours += [t.name for t in found.tasks]
        ours += [n for n in found.unknown if tracefile.looks_like_task_file(n)]
        for name in ours:
            os.unlink(os.path.join(path, name))
        shutil.rmtree(os.path.join(path, tracefile.INDEX_DIR), ignore_errors=True)
    elif os.path.exists(path):
        raise RunError(f"{path} exists and is not a directory; give another -o/--output")
    tracefile.private_dir(path)
    return path


def write_run_info(trace_dir: str, argv: list[str], cfg: config.Config,
                   plan: bootstrap.Plan | None = None) -> None:
    """run.json (tracefile.write_run_info adds the format version), 0600; with the recording
    mode, which readers need (a ring's stream may start at a later segment)."""
    plan = plan or bootstrap.Plan(trace_dir)
    tracefile.write_run_info(trace_dir, {
        "kcovdf": __version__, "argv": argv, "started_ns": time.time_ns(), "pid": os.getpid(),
        "config": cfg.to_env(), "python": sys.version.split()[0], "mode": plan.mode,
        "buffer_words": plan.words, "max_bytes": plan.max_bytes, "ring_bytes": plan.ring_bytes})


def _finish(recording: bootstrap.Recording, trace_dir: str, seal: sealer.Sealer | None = None) -> None:
    """At exit, after the program's own atexit handlers and joined threads: stop, let the sealer
    compress what is left, summarise."""
    if os.getpid() != recording.pid:
        return  # a forked child that exited normally: only the parent reports
    recording.stop()
    if seal is not None and not seal.finish():
        sys.stderr.write("kcovdf: note: the trace is being compressed in the background (the size "
                         "below is before); the tools read it meanwhile\n")
    for note in unrecorded(recording.hook):
        sys.stderr.write(f"kcovdf: note: {note}\n")
    s = tasks.summarize(trace_dir)
    rel = os.path.relpath(trace_dir)
    shown = trace_dir if rel.startswith("..") else rel
    sys.stderr.write(summary_line(s, recording.tasks, f"{shown}{os.sep}") + "\n")
    sys.stderr.flush()
    if _die_by_sigint:
        # Python ends by SIGINT after an uncaught KeyboardInterrupt (status -2, 130 in a shell).
        sys.stdout.flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)


_KEPT = {"whole": "whole run", "ring": "the last {ring} of each task", "once": "one buffer per task"}


def summary_line(s: tasks.Summary, task_set: tasks.Tasks, where: str) -> str:
    """``kcovdf: 8,000,002 records (612 MB, whole run), 0 drops, 1 task -> trace/``: what was
    kept, in which mode, and what to change when something was dropped."""
    kept = _KEPT[task_set.mode].format(ring=f"{task_set.ring_bytes >> 20} MiB")
    drops = f"{s.drops:,} drops"
    if s.drops:
        drops += {"whole": " (the --max-size budget or the disk was reached: give a larger --max-size)",
                  "ring": " (the disk was full)",
                  "once": " (the buffer filled: record the whole run with --mode whole, or give a "
                          "larger -b)"}[task_set.mode]
    return (f"kcovdf: {s.records:,} records ({_megabytes(s.bytes)}, {kept}), {drops}, "
            f"{s.tasks:,} task{'' if s.tasks == 1 else 's'} -> {where}")


def _megabytes(n: int) -> str:
    if n < 1e6:
        return f"{n / 1e3:,.0f} kB"
    return f"{n / 1e6:,.1f} MB" if n < 10e6 else f"{n / 1e6:,.0f} MB"


def unrecorded(hook: Any) -> list[str]:
    """What the selection left out and why, and how to select when nothing was selected."""
    notes = hook.notes()
    cfg = hook.config
    if not cfg.include and not cfg.instrument_all:
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        package = spec.name.partition(".")[0] if spec is not None else ""
        example = f" (here perhaps --include {package})" if package and package != "__main__" else ""
        notes.append(f"no module was selected, so only the main {'module' if spec else 'script'} was "
                     f"instrumented: name the modules and packages to record with --include MODULE[,MODULE]"
                     f"{example}, or use --instrument-all")
    return notes


# --- the program -----------------------------------------------------------------------
class Program:
    """A script, a module or ``-c`` code to run as ``__main__``, found before anything is recorded."""

    def __init__(self, name: str, argv0: str, path0: str, spec: importlib.machinery.ModuleSpec | None,
                 filename: str, args: list[str], code: str | None = None) -> None:
        self.name, self.argv0, self.path0, self.spec = name, argv0, path0, spec
        self.filename, self.args, self.code = filename, args, code

    @classmethod
    def find(cls, target: str, is_module: bool, args: list[str], *, code: bool = False) -> Program:
        """The script at ``target``, the module named ``target`` or the code ``target`` (``code``);
        RunError if there is none."""
        if code:
            return cls("-c", "-c", "", None, "<string>", args, target)
        if not is_module:
            if os.path.isdir(target):
                raise RunError(f"can't run {target!r}: is a directory")
            try:
                with open(target, "rb"):
                    pass
            except OSError as exc:
                # python's own message and status for a script it cannot open
                raise RunError(f"can't open file '{os.path.abspath(target)}': [Errno {exc.errno}] "
                               f"{exc.strerror}", status=2) from None
            return cls(target, target, os.path.dirname(os.path.abspath(target)), None,
                       os.path.abspath(target), args)
        # python -m searches the current directory first; so do we, before importing anything.
        sys.path[0] = os.getcwd()
        try:
            spec = importlib.util.find_spec(target)
            if spec is not None and spec.submodule_search_locations is not None:
                spec = importlib.util.find_spec(target + ".__main__")
        except (ImportError, ValueError) as exc:
            raise RunError(f"can't run module {target!r}: {exc}") from None
        if spec is None or spec.loader is None:
            raise RunError(f"no module named {target!r}")
        origin = spec.origin or target
        return cls(target, origin, os.getcwd(), spec, origin, args)

    def run(self, recording: bootstrap.Recording) -> int:
        """Execute as ``__main__``; the exit status Python itself would give."""
        main = types.ModuleType("__main__")
        try:
            code = self._code(recording, main)
        except SyntaxError as exc:
            # as python prints it: where and what, without a traceback
            sys.excepthook(type(exc), exc.with_traceback(None), None)
            return 1
        except (OSError, ImportError) as exc:
            print(f"kcovdf run: can't run {self.name!r}: {exc}", file=sys.stderr)
            return 1
        main.__dict__["__builtins__"] = sys.modules["builtins"]
        if self.code is not None:
            main.__loader__ = importlib.machinery.BuiltinImporter  # type: ignore[assignment]
        elif self.spec is not None:
            main.__spec__ = self.spec
            main.__loader__ = self.spec.loader
            main.__package__ = self.spec.parent
        else:
            main.__loader__ = importlib.machinery.SourceFileLoader("__main__", self.filename)
        if self.code is None:
            main.__dict__.update(__file__=self.filename, __cached__=None)
        elif sys.version_info >= (3, 13):
            # python -c keeps the code in linecache from 3.13 on, so that tracebacks show its lines
            linecache.cache[self.filename] = (len(self.code), None,
                                              [line + "\n" for line in self.code.splitlines()],
                                              self.filename)
        sys.modules["__main__"] = main
        sys.argv = [self.argv0, *self.args]
        sys.path[0] = self.path0
        try:
            exec(code, main.__dict__)
        except SystemExit:
            raise  # the interpreter turns it into the exit status and message as usual
        except BaseException as exc:
            return _uncaught(exc)
        return 0

    def _code(self, recording: bootstrap.Recording, main: types.ModuleType) -> types.CodeType:
        """The main module's code: instrumented unless excluded, like the script coverage measures."""
        if self.spec is not None and not (self.spec.has_location and self.filename.endswith(".py")):
            code = self.spec.loader.get_code(self.spec.name)  # type: ignore[union-attr]
            if code is None:
                raise ImportError(f"no code object for {self.spec.name!r}")
            return code
        if self.code is not None:
            source = self.code.encode()
        else:
            with open(self.filename, "rb") as f:
                source = f.read()
        if self._selected(recording.hook.config):
            cfg = recording.hook.config
            if self.code is not None:  # there is no file to cache next to
                cfg = dataclasses.replace(cfg, cache=False)
            code = install.module_code("__main__", self.filename, source, cfg, main.__dict__,
                                       recording.hook.tally)
            if code is not None:
                return code
        return compile(source, self.filename, "exec", dont_inherit=True)

    def _selected(self, cfg: config.Config) -> bool:
        """The program's own main module is instrumented unless excluded or never instrumentable."""
        name = self.spec.name if self.spec is not None else "__main__"
        verdict = selection.by_name(name, cfg)
        return verdict.instrument or verdict.rule == "not selected"


def _uncaught(exc: BaseException) -> int:
    """Report an uncaught exception as Python does, without kcovdf's frames; the exit status."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    exc.__traceback__ = tb
    sys.excepthook(type(exc), exc, tb)
    if isinstance(exc, KeyboardInterrupt):
        global _die_by_sigint
        _die_by_sigint = True
    return 1
