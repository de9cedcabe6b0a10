"""The ``kcovdf`` command line: the table of subcommands, their help, and the dispatch.

Each subcommand lives in its own module, which defines ``add_arguments(parser)`` and
``main(args) -> int``. A module is imported only when its subcommand runs: ``kcovdf --help``
imports none, and ``kcovdf run`` imports only ``kcovdf.run.command``, so the traced program
loads no tool library. A tool whose library does not import (missing or broken) says which
one and how to install it; its ``--help`` still prints. Standard library only.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kcovdf.errors import KcovdfError

#: The trace directory ``kcovdf run`` writes, and what the trace tools read, by default.
DEFAULT_TRACE = "kcovdf-trace"

#: The libraries of the trace tools, by import name, as pyproject.toml requires them.
LIBRARIES = {
    "numpy": "numpy>=1.24",
    "pyarrow": "pyarrow>=16",
    "duckdb": "duckdb>=1.0",
    "rich": "rich>=13",
    "elftools": "pyelftools>=0.30",
    "matplotlib": "matplotlib>=3.7",
    "tomli": "tomli>=2.0; python_version < '3.11'",
}


@dataclass(frozen=True)
class Command:
    """One subcommand: its module, its line in ``kcovdf --help``, its own help text."""

    module: str
    summary: str
    description: str
    examples: str


COMMANDS = {
    "run": Command(
        "kcovdf.run.command",
        "run a Python program (script, -m or -c), recording its calls",
        "Run a program as python would, with the selected modules instrumented: every call's\n"
        "arguments and return value go into a trace directory, one file per task (thread,\n"
        "forked child, Python subprocess). Everything after the script, the module name or\n"
        "the -c code belongs to the program.",
        f"""\
  kcovdf run --include mypkg app.py --port 8080   record mypkg and app.py into ./{DEFAULT_TRACE}
  kcovdf run --include mypkg -m pytest -q          run a module, as python -m does
  kcovdf run --include fractions -c 'import fractions; print(fractions.Fraction(2, 6))'
  kcovdf run -o trace -b 16M --instrument-all app.py
                                                   everything but the safety list, 16Mi-word buffers""",
    ),
    "view": Command(
        "kcovdf.tools.view",
        "print a trace as per-task call trees (the kernel's trigger-view)",
        "Print a trace as per-task call trees, like the kernel's trigger-view.py: a call with its\n"
        "arguments, then its return value, exception or yields, indented by call depth.",
        f"""\
  kcovdf view                                 the trace in ./{DEFAULT_TRACE}
  kcovdf view trace --function 'mypkg.parse*' -C 2
  kcovdf view --value return=None --task MainThread
  kcovdf view --raw                           the kernel's raw format, one line per record
  kcovdf view --json > records.jsonl
  kcovdf view dump.bin --kallsyms kallsyms.txt  a raw buffer of the kernel's device""",
    ),
    "sql": Command(
        "kcovdf.tools.sql",
        "query the calls and records of a trace with SQL (DuckDB)",
        "Run one SQL statement (DuckDB) over the views of a trace. The rows print as a table\n"
        "on a terminal, as CSV into a pipe, or as a JSON array with --json.",
        """\
  kcovdf sql "SELECT function, count(*) AS n FROM calls GROUP BY function ORDER BY n DESC"
  kcovdf sql trace "SELECT function, args, result FROM calls WHERE exit = 'exception'"
  kcovdf sql --json "SELECT * FROM tasks\"""",
    ),
    "export": Command(
        "kcovdf.tools.export",
        "export a trace as JSON Lines, Parquet or Daikon .decls/.dtrace",
        "Export the records of a trace, with names and values resolved, for other tools.",
        """\
  kcovdf export -f jsonl -o records.jsonl
  kcovdf export trace -f parquet -o records/    a Parquet dataset, for pandas, Spark or Dask
  kcovdf export -f daikon -o app                app.decls and app.dtrace, for Daikon""",
    ),
    "report": Command(
        "kcovdf.tools.report",
        "write a self-contained HTML report of a trace",
        "Write one self-contained HTML page about a trace: calls per function, value\n"
        "distributions, exceptions, FAULTs, drops and tasks. It opens offline.",
        f"""\
  kcovdf report                        ./{DEFAULT_TRACE} -> report.html
  kcovdf report trace -o trace.html""",
    ),
    "contracts": Command(
        "kcovdf.contracts.command",
        "learn contracts from passing runs, then check a trace against them offline",
        "Learn likely contracts (preconditions, postconditions, object invariants, exceptions)\n"
        "from traces of passing runs into a TOML file people review and edit, then check a\n"
        "later trace against it without re-running the program. docs/contracts.md explains them.",
        """\
  kcovdf contracts infer train-trace -o contracts.toml --include mypkg
  kcovdf contracts check kcovdf-trace --contracts contracts.toml
  kcovdf contracts check trace --contracts contracts.toml --format sarif -o kcovdf.sarif
  kcovdf contracts show contracts.toml
  kcovdf contracts diff old.toml new.toml""",
    ),
    "fuzz": Command(
        "kcovdf.fuzz.command",
        "fuzz a TestOneInput harness (Atheris-compatible) with data-flow feedback",
        "Fuzz a harness file defining TestOneInput(data: bytes), as Atheris and libFuzzer do, with\n"
        "libFuzzer's -flag=value options. Feedback: branch coverage, compared values and the\n"
        "arguments and returns kcovdf records; a crash shows the call tree of the crashing input.",
        """\
  kcovdf fuzz harness.py corpus/ --include mypkg -max_total_time=60
  kcovdf fuzz harness.py crash-0123abcd...        run one input again (reproduce a crash)
  kcovdf fuzz harness.py -minimize_crash=1 -runs=1000 crash-0123abcd...
  kcovdf fuzz harness.py corpus/ -jobs=2          two processes sharing corpus/""",
    ),
    "llvm-pass": Command(
        "kcovdf.native.llvm_pass",
        "instrument textual LLVM IR with the kernel's trace-args/trace-ret callbacks",
        "The opt step of the kernel's pipeline, with kcovdf's pass (an LLVM 19 plugin): one\n"
        "__sanitizer_cov_trace_args per parameter at entry, __sanitizer_cov_trace_ret before\n"
        "every return, structs decomposed from the debug info. The output is verified; a\n"
        "function the pass cannot instrument is named and left alone (docs/native.md).",
        """\
  kcovdf llvm-pass lib.ll -o lib_inst.ll     lib.ll from clang-19 -g -O2 -S -emit-llvm lib.c
  kcovdf llvm-pass lib.ll -o out.ll --no-ret --deny 'debug_*'
  kcovdf llvm-pass lib.ll -o out.ll --kernel-abi    the kernel's placement exactly
  llc-19 -filetype=obj lib_inst.ll -o lib.o  then link with the runtime (kcovdf cc does it all)""",
    ),
    "cc": Command(
        "kcovdf.native.cc",
        "a drop-in cc (clang-19) whose C code records into kcovdf's buffers",
        "Compile and link like cc, with every function that has debug info instrumented by\n"
        "kcovdf's pass and the runtime linked in: called from a recording Python thread, its\n"
        "arguments and returns go into the same task buffer (docs/native.md). Every argument\n"
        "is cc's; KCOVDF_PASS_FLAGS takes kcovdf llvm-pass's options (--no-ret, --deny GLOB).",
        """\
  kcovdf cc -O2 -shared -fPIC lib.c -o libdemo.so      a library for ctypes
  kcovdf cc -c x.c -o x.o && kcovdf cc x.o main.c -o prog
  CC="kcovdf cc" pip install ./myext                     an instrumented C extension""",
    ),
    "rustc": Command(
        "kcovdf.native.rustc",
        "rustc whose crate records into kcovdf's buffers (also RUSTC_WRAPPER=kcovdf-rustc)",
        "Compile a Rust crate with rustc, as given; when it links (cdylib, dylib, bin), its own\n"
        "code is lowered from rustc's LLVM to LLVM 19, instrumented by kcovdf's pass and compiled\n"
        "with clang-19 before rustc's linker runs (docs/native.md). For cargo, set\n"
        "RUSTC_WRAPPER=kcovdf-rustc. KCOVDF_PASS_FLAGS takes kcovdf llvm-pass's options.",
        """\
  kcovdf rustc --crate-type=cdylib -O lib.rs -o libdemo.so   a library for ctypes
  RUSTC_WRAPPER=kcovdf-rustc cargo build --release            every crate that links""",
    ),
    "selftest": Command(
        "kcovdf.tools.selftest",
        "run the kernel series' selftests against this runtime (TAP)",
        "Run the kernel series' user_ioctl selftests, and kcovdf's own cases, against kcovdf's\n"
        "device; the results print as TAP.",
        """\
  kcovdf selftest              the C core (or KCOVDF_CORE)
  kcovdf selftest --core py    the Python twin""",
    ),
}

_DESCRIPTION = """\
kcovdf records the arguments and return values of selected Python functions as
Linux KCOV-Dataflow traces, and reads them back: call trees, SQL, exports, reports."""

_EPILOG = f"""\
examples:
  kcovdf run --include mypkg app.py arg1      record mypkg's calls into ./{DEFAULT_TRACE}
  kcovdf view                                 show them as call trees
  kcovdf sql "SELECT function, count(*) FROM calls GROUP BY 1"
  kcovdf export -f jsonl -o records.jsonl
  kcovdf report -o report.html
  kcovdf contracts infer trace -o contracts.toml   learn contracts, then check later traces

'kcovdf COMMAND --help' shows the options of a command."""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Room for the longest command name ("contracts") beside its summary."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=26)
        # argparse measures a subcommand one indent short of where it prints it
        self._action_max_length = 14


class Parser(argparse.ArgumentParser):
    """An ArgumentParser that takes no abbreviations, keeps examples as written and
    suggests close options for an unknown one. ``more_help``, when set, adds text that is
    computed only when the help is printed."""

    more_help: Callable[[], str] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def parse_args(self, args: Any = None, namespace: Any = None) -> Any:  # type: ignore[override]
        """Parse, refusing unknown options with this parser's usage and close matches."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            self.error(unrecognized(self, extras))
        return parsed

    def format_help(self) -> str:
        """The usual help, then ``more_help()``."""
        text = super().format_help()
        return text + "\n" + self.more_help() if self.more_help is not None else text


def unrecognized(parser: argparse.ArgumentParser, extras: list[str]) -> str:
    """The error for arguments ``parser`` does not know, naming options that are close."""
    import difflib

    known = [s for action in parser._actions for s in action.option_strings]
    message = "unrecognized arguments: " + " ".join(extras)
    close = [m for arg in extras if arg.startswith("-")
             for m in difflib.get_close_matches(arg.partition("=")[0], known, n=3, cutoff=0.75)]
    if close:
        message += " (did you mean " + " or ".join(dict.fromkeys(close)) + "?)"
    return message


def build_parser() -> Parser:
    """The top-level parser: the commands and their one-line summaries (imports none of them)."""
    from kcovdf import __version__

    parser = Parser(prog="kcovdf", description=_DESCRIPTION, epilog=_EPILOG)
    parser.add_argument("--version", action="version", version=f"kcovdf {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name, command in COMMANDS.items():
        sub.add_parser(name, help=command.summary)
    return parser


class Unavailable(KcovdfError):
    """A subcommand's library does not import; the message says what to install."""

    slug = "unavailable"

    def __init__(self, command: str, library: str, cause: BaseException) -> None:
        requirement = LIBRARIES[library].split(";")[0]
        super().__init__(
            f"this command needs {requirement.split('>')[0]}, which does not import here "
            f"({type(cause).__name__}: {cause}); install it with: "
            f"{sys.executable} -m pip install '{requirement}'")
        self.command, self.library = command, library


def _library_of(exc: BaseException) -> str | None:
    """The tool library whose import raised ``exc``, or None when it is not one of them."""
    if isinstance(exc, ImportError) and exc.name:
        top = exc.name.partition(".")[0]
        if top in LIBRARIES:
            return top
    tb = exc.__traceback__
    while tb is not None:
        top = str(tb.tb_frame.f_globals.get("__name__", "")).partition(".")[0]
        if top in LIBRARIES:
            return top
        tb = tb.tb_next
    return None


def command_parser(name: str) -> tuple[Parser, Callable[[argparse.Namespace], int]]:
    """The parser of subcommand ``name`` and its main(); Unavailable when its library is missing."""
    command = COMMANDS[name]
    parser = Parser(prog=f"kcovdf {name}", description=command.description,
                    epilog="examples:\n" + command.examples)
    try:
        module = importlib.import_module(command.module)
    except Exception as exc:  # noqa: BLE001 - a broken library may raise anything at import
        library = _library_of(exc)
        if library is None:
            raise
        raise Unavailable(name, library, exc) from exc
    module.add_arguments(parser)
    return parser, module.main


def pass_through(parser: argparse.ArgumentParser, dest: str, tool: str) -> None:
    """Make ``parser`` take every argument as given, into ``dest``: a drop-in for ``tool``
    (kcovdf cc, kcovdf rustc), whose options are not ours to parse. Only a lone -h/--help
    is kcovdf's."""
    parser.add_argument(dest, nargs="*", metavar="ARGS", help=f"{tool}'s arguments")

    def take_all(args: list[str] | None = None, namespace: object = None) -> argparse.Namespace:
        argv = list(sys.argv[2:] if args is None else args)
        if argv in (["-h"], ["--help"]):
            parser.print_help()
            parser.exit()
        return argparse.Namespace(**{dest: argv})

    parser.parse_args = take_all  # type: ignore[method-assign]


def add_trace_argument(parser: argparse.ArgumentParser) -> None:
    """The TRACE positional of the trace tools; it defaults to what ``kcovdf run`` writes."""
    parser.add_argument("trace", nargs="?", metavar="TRACE",
                        help="a trace directory (kcovdf run -o), a .kdf file or a raw kernel buffer "
                             f"dump (default: {DEFAULT_TRACE})")


def run_command(name: str, argv: list[str]) -> int:
    """Parse ``argv`` for subcommand ``name`` and run it; its exit status."""
    try:
        parser, main = command_parser(name)
    except Unavailable as exc:
        # Its help still prints (with the reason); anything else stops here.
        command = COMMANDS[name]
        parser = Parser(prog=f"kcovdf {name}", description=command.description,
                        epilog=f"examples:\n{command.examples}\n\nkcovdf {name}: {exc}")
        parser.parse_known_args(argv)
        print(f"kcovdf {name}: {exc}", file=sys.stderr)
        return 1
    args = parser.parse_args(argv)
    if "trace" in vars(args) and args.trace is None:
        if not os.path.exists(DEFAULT_TRACE):
            print(f"kcovdf {name}: no TRACE given, and no {DEFAULT_TRACE} here (the directory "
                  "kcovdf run writes by default)", file=sys.stderr)
            return 2
        args.trace = DEFAULT_TRACE
    return int(main(args) or 0)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in COMMANDS:
        return run_command(argv[0], argv[1:])
    parser = build_parser()
    parser.parse_args(argv)  # --help, --version and unknown commands or options end here
    parser.print_help(sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
