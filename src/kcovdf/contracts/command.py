"""``kcovdf contracts infer | check | show | diff``."""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import nullcontext
from typing import TextIO

from kcovdf.contracts import model, report
from kcovdf.contracts.expr import ContractError
from kcovdf.errors import KcovdfError
from kcovdf.symbols import add_symbol_arguments, kernel_symbols_from_args

#: check's exit statuses
CLEAN, VIOLATIONS, BAD_INPUT, INCOMPLETE = 0, 1, 2, 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The four subcommands and their options."""
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    infer = sub.add_parser("infer", help="learn contracts from traces of passing runs",
                           description="Learn likely contracts (Daikon's families, statistically "
                                       "justified) from one or more traces; an existing OUT keeps "
                                       "its edits (require, ignore, hand-written contracts).")
    infer.add_argument("traces", nargs="+", metavar="TRACE")
    infer.add_argument("-o", "--output", required=True, metavar="OUT", help="the contract file (TOML)")
    infer.add_argument("--include", action="append", default=[], metavar="MOD",
                       help="learn the functions of this module or package only (repeatable)")
    infer.add_argument("--source", metavar="DIR", help="where relative source paths are (for SARIF)")
    add_symbol_arguments(infer)
    check = sub.add_parser("check", help="check a trace against contracts, offline",
                           description="Name every call of TRACE that breaks a contract. Exit 0: "
                                       "none; 1: violations; 2: bad input; 3: the trace lost records "
                                       "(a clean result proves less; --allow-incomplete: 0 or 1).")
    check.add_argument("trace", metavar="TRACE")
    check.add_argument("--contracts", required=True, metavar="FILE")
    check.add_argument("--format", choices=report.FORMATS, default="text")
    check.add_argument("-o", "--output", metavar="FILE", help="write the report here (default: stdout)")
    check.add_argument("--baseline", metavar="FILE",
                       help="a previous --format json or sarif output: its violations are not reported again")
    check.add_argument("--allow-incomplete", action="store_true",
                       help="exit 0 or 1 even when the trace lost records")
    check.add_argument("--novelty", action="store_true",
                       help="list novelty warnings in json output too (severity: novelty)")
    check.add_argument("--source", metavar="DIR", help="the root SARIF paths are relative to (default: .)")
    add_symbol_arguments(check)
    show = sub.add_parser("show", help="print what a contract file holds, with its evidence")
    show.add_argument("contracts", metavar="FILE")
    diff = sub.add_parser("diff", help="what changed between two contract files")
    diff.add_argument("old", metavar="OLD")
    diff.add_argument("new", metavar="NEW")


def main(args: argparse.Namespace) -> int:
    """Run one action; 2 with a message naming the problem for bad input."""
    try:
        return {"infer": _infer, "check": _check, "show": _show, "diff": _diff}[args.action](args)
    except (KcovdfError, OSError, ValueError) as exc:
        print(f"kcovdf contracts {args.action}: {exc}", file=sys.stderr)
        return BAD_INPUT


def _observe(trace: str, args: argparse.Namespace, include: tuple[str, ...] = ()):  # noqa: ANN202
    from kcovdf.contracts.observe import observe

    if not os.path.exists(trace):
        raise KcovdfError(f"no trace at {trace}")
    return observe(trace, include, kernel=kernel_symbols_from_args(args))


def _infer(args: argparse.Namespace) -> int:
    from kcovdf.contracts.infer import infer

    observations = [_observe(t, args, tuple(args.include)) for t in args.traces]
    cs = infer(observations, list(args.traces))
    drops = sum(o.drops for o in observations)
    if os.path.exists(args.output):
        cs = model.merge(model.read(args.output), cs)
    model.write(cs, args.output)
    print(f"kcovdf contracts: {cs.count()} contracts for {len(cs.functions)} functions and "
          f"{len(cs.classes)} classes -> {args.output}", file=sys.stderr)
    if drops:
        print(f"kcovdf contracts: warning: the traces lost {drops:,} records; what was learned "
              "did not see every call", file=sys.stderr)
    return 0


def _check(args: argparse.Namespace) -> int:
    from kcovdf.contracts.check import check

    cs = model.read(args.contracts)
    obs = _observe(args.trace, args)
    result = check(obs, cs)
    if args.baseline:
        known = report.baseline_keys(args.baseline)
        result.findings = [f for f in result.findings if f.severity != "violation"
                           or report.fingerprint(f.owner, f.invariant) not in known]
    out_cm = open(args.output, "w", encoding="utf-8") if args.output else nullcontext(sys.stdout)  # noqa: SIM115
    with out_cm as out:
        _write(result, obs, args, out)
    if result.drops and not args.allow_incomplete:
        print(f"kcovdf contracts check: the trace lost {result.drops:,} records: calls were not "
              "all checked (exit 3; --allow-incomplete: 0 or 1)", file=sys.stderr)
        return VIOLATIONS if result.violations else INCOMPLETE
    return VIOLATIONS if result.violations else CLEAN


def _write(result, obs, args: argparse.Namespace, out: TextIO) -> None:  # noqa: ANN001
    if args.format == "json":
        report.as_json(result.findings if args.novelty else result.violations, out)
    elif args.format == "sarif":
        report.sarif(result, obs.files, out, args.source)
    elif args.format == "junit":
        report.junit(result, out)
    else:
        report.text(result, out)
    if args.format != "text":
        print(f"kcovdf contracts: {len(result.violations)} violations, {len(result.novelties)} novelty "
              "warnings", file=sys.stderr)


def _show(args: argparse.Namespace) -> int:
    from kcovdf.contracts.infer import describe

    cs = model.read(args.contracts)
    out = sys.stdout
    for title, specs in (("function", cs.functions), ("class", cs.classes)):
        for name in sorted(specs):
            spec = specs[name]
            unit = "calls" if title == "function" else "observations"
            out.write(f"{title} {name}  ({spec.calls} {unit})\n")
            if spec.constants:
                out.write("  constant in training: " +
                          ", ".join(f"{k} = {v!r}" for k, v in sorted(spec.constants.items())) + "\n")
            for c in spec.contracts:
                mark = "" if c.status == "inferred" else f" [{c.status}]"
                evidence = describe(c) if c.family != "manual" else "written by hand"
                out.write(f"  {c.kind:9} {c.effective():11} {c.expr}{mark}   ({evidence})\n")
    out.write(f"{cs.count()} contracts\n")
    return 0


def _diff(args: argparse.Namespace) -> int:
    old, new = model.read(args.old), model.read(args.new)
    changes = 0
    for table in ("functions", "classes"):
        a, b = getattr(old, table), getattr(new, table)
        for name in sorted(set(a) | set(b)):
            before = {c.expr: c for c in a[name].contracts} if name in a else {}
            after = {c.expr: c for c in b[name].contracts} if name in b else {}
            for e in sorted(set(before) - set(after)):
                print(f"- {name}: {e}")
                changes += 1
            for e in sorted(set(after) - set(before)):
                print(f"+ {name}: {e}")
                changes += 1
            for e in sorted(set(after) & set(before)):
                x, y = before[e], after[e]
                if (x.kind, x.effective()) != (y.kind, y.effective()):
                    print(f"~ {name}: {e}  ({x.kind}/{x.effective()} -> {y.kind}/{y.effective()})")
                    changes += 1
    print(f"{changes} changes", file=sys.stderr)
    return 1 if changes else 0


__all__ = ["ContractError", "add_arguments", "main"]
