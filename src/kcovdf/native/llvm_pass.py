"""``kcovdf llvm-pass IN.ll -o OUT.ll``: the opt step, kcovdf's trace-args/trace-ret pass."""

from __future__ import annotations

import argparse
import sys

from kcovdf.native import ir_pass, toolchain


def add_options(parser: argparse.ArgumentParser) -> None:
    """The pass's options (shared with kcovdf cc and kcovdf rustc, through KCOVDF_PASS_FLAGS)."""
    parser.add_argument("--no-args", dest="args", action="store_false",
                        help="no trace_args callbacks (CONFIG_KCOV_DATAFLOW_ARGS=n)")
    parser.add_argument("--no-ret", dest="ret", action="store_false",
                        help="no trace_ret callbacks (CONFIG_KCOV_DATAFLOW_RET=n)")
    parser.add_argument("--allow", action="append", default=[], metavar="GLOB",
                        help="instrument only functions matching GLOB (symbol or source name; repeatable)")
    parser.add_argument("--deny", action="append", default=[], metavar="GLOB",
                        help="never instrument functions matching GLOB (repeatable; wins over --allow)")
    parser.add_argument("--kernel-abi", action="store_true",
                        help="the kernel pass's placement exactly: no guard, no module registration, "
                             "no entry for functions without parameters, no return for void ones")


def options_of(args: argparse.Namespace) -> ir_pass.Options:
    """The pass options given on a command line."""
    return ir_pass.Options(args=args.args, ret=args.ret, allow=tuple(args.allow),
                           deny=tuple(args.deny), kernel_abi=args.kernel_abi)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """kcovdf llvm-pass's arguments."""
    parser.add_argument("input", metavar="IN.ll", help="textual LLVM IR (clang-19 -S -emit-llvm -g)")
    parser.add_argument("-o", "--output", required=True, metavar="OUT.ll",
                        help="the instrumented IR (verified; written only when valid)")
    add_options(parser)


def main(args: argparse.Namespace) -> int:
    """Instrument one IR file; warnings name the functions left alone."""
    try:
        result = ir_pass.instrument(args.input, args.output, options_of(args))
    except (ir_pass.PassError, toolchain.ToolchainError) as exc:
        print(f"kcovdf llvm-pass: {exc}", file=sys.stderr)
        return 1
    for line in result.messages:
        print(line, file=sys.stderr)
    return 0
