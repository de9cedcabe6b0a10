"""The ``kcovdf`` command: one subcommand per module, each with add_arguments() and main()."""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module, one-line help). Each module defines
# add_arguments(parser) and main(args) -> int.
COMMANDS = {
    "run": ("kcovdf.run.command", "run a script or module with instrumentation, recording into a trace"),
    "view": ("kcovdf.tools.view", "print a trace as per-task call trees (trigger-view)"),
    "export": ("kcovdf.tools.export", "export a trace as JSON Lines, Parquet or Daikon .decls/.dtrace"),
    "sql": ("kcovdf.tools.sql", "run SQL (DuckDB) over the records of a trace"),
    "report": ("kcovdf.tools.report", "write a self-contained HTML report of a trace"),
    "selftest": ("kcovdf.tools.selftest", "run the kernel series' selftests against this runtime (TAP)"),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser with every subcommand whose module is present (or only subcommand ``only``)."""
    from kcovdf import __version__

    parser = argparse.ArgumentParser(prog="kcovdf", description=__doc__)
    parser.add_argument("--version", action="version", version=f"kcovdf {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        if only is not None and name != only:
            continue
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            continue
        p = sub.add_parser(name, help=help_text, description=help_text)
        mod.add_arguments(p)
        p.set_defaults(_main=mod.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    # Import only the chosen subcommand: `kcovdf run` must not load the tools into the traced program.
    parser = build_parser(argv[0] if argv and argv[0] in COMMANDS else None)
    args = parser.parse_args(argv)
    if not getattr(args, "_main", None):
        parser.print_help(sys.stderr)
        return 2
    return int(args._main(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
