"""``kcovdf cc ARGS…``: a drop-in for cc whose C code records into kcovdf's buffers.

Every C source on the command line goes through the kernel's pipeline, with clang-19:
``clang-19 ARGS -g -S -emit-llvm`` → kcovdf's pass (``ir_pass``) → the runtime's bitcode
linked in (``llvm-link-19``; its definitions are weak and hidden, one copy per shared object)
→ ``clang-19 -c``. Then, unless ``-c`` (or ``-S``, ``-E``, ``-M``) says otherwise, the objects
are linked by clang-19 with every other argument as given, so ``-shared``, executables,
``-l``/``-L``/``-Wl`` and prebuilt objects work as with cc. ``-E`` and the dependency-only modes
run clang-19 unchanged.

``KCOVDF_PASS_FLAGS`` holds ``kcovdf llvm-pass`` options (``--no-ret --deny 'dbg_*'``) for the
pass; ``KCOVDF_CC_VERBOSE=1`` prints the commands. ``kcovdf cc --kcovdf-runtime`` prints the
runtime's bitcode (to link ``kcovdf llvm-pass`` output by hand), ``kcovdf cc --kcovdf-device``
the user-space device for programs without Python (LD_PRELOAD it; docs/native.md).
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from kcovdf import cli
from kcovdf.native import ir_pass, toolchain

#: Sources the pipeline instruments (C and C++; preprocessed C as .i).
SOURCE_SUFFIXES = (".c", ".i", ".cc", ".cpp", ".cxx", ".C")
#: Modes that produce no object: clang-19 runs them unchanged.
_PASSTHROUGH = {"-E", "-M", "-MM", "--version", "-v", "-###", "-dumpversion", "-dumpmachine",
                "-print-search-dirs", "-print-prog-name", "--help"}
#: Options whose value is the next argument.
_TAKES_VALUE = {"-o", "-I", "-D", "-U", "-include", "-isystem", "-iquote", "-idirafter", "-x",
                "-MF", "-MT", "-MQ", "-L", "-l", "-Xlinker", "-arch", "-target", "--target",
                "-imacros", "-isysroot", "--sysroot", "-T", "-u", "-e"}
#: Arguments that only the link step takes.
_LINK_ONLY = ("-l", "-L", "-Wl,", "-Xlinker", "-shared", "-static", "-rdynamic", "-pie", "-no-pie",
              "-nostdlib", "-nostartfiles", "-T", "-u", "-e")
#: Dependency-file options: kept for the compile of the source, not for the later steps.
_DEP_FLAGS = ("-MD", "-MMD", "-MF", "-MT", "-MQ", "-MP")


class CcError(Exception):
    """A step of the pipeline failed; the message holds its output."""


def _verbose() -> bool:
    return os.environ.get("KCOVDF_CC_VERBOSE", "") not in ("", "0")


def _run(cmd: list[str]) -> int:
    if _verbose():
        print("kcovdf cc:", shlex.join(cmd), file=sys.stderr)
    return subprocess.run(cmd).returncode


def pass_options() -> ir_pass.Options:
    """The pass options of KCOVDF_PASS_FLAGS (kcovdf llvm-pass's own)."""
    from kcovdf.native import llvm_pass

    parser = argparse.ArgumentParser(prog="KCOVDF_PASS_FLAGS", add_help=False)
    llvm_pass.add_options(parser)
    return llvm_pass.options_of(parser.parse_args(shlex.split(os.environ.get("KCOVDF_PASS_FLAGS", ""))))


def split(argv: list[str]) -> tuple[list[str], list[str | None], list[str], str | None, set[str]]:
    """(compile flags, link arguments, sources, -o's value, modes) of a cc command line.

    The link arguments keep the command's order, with ``None`` where a source was (its object
    goes there).
    """
    flags: list[str] = []
    link: list[str | None] = []
    sources: list[str] = []
    out = None
    modes: set[str] = set()
    i = 0
    while i < len(argv):
        a = argv[i]
        value = argv[i + 1] if a in _TAKES_VALUE and i + 1 < len(argv) else None
        step = 2 if value is not None else 1
        if a == "-o" and value is not None:
            out = value
        elif a in ("-c", "-S") or a in _PASSTHROUGH:
            modes.add(a)
        elif not a.startswith("-") and a.endswith(SOURCE_SUFFIXES):
            sources.append(a)
            link.append(None)
        elif a.startswith(_LINK_ONLY) or (not a.startswith("-") and value is None):
            link.extend([a] if value is None else [a, value])   # objects, archives, -l, -Wl
        else:
            flags.extend([a] if value is None else [a, value])
            if not a.startswith(_DEP_FLAGS):
                link.extend([a] if value is None else [a, value])
        i += step
    return flags, link, sources, out, modes


def compile_source(src: str, flags: list[str], obj: str, work: Path, options: ir_pass.Options) -> None:
    """src → instrumented object obj: IR with debug info, the pass, the runtime, codegen."""
    clang = toolchain.tool("clang")
    stem = Path(src).name
    ll, inst, linked = work / f"{stem}.ll", work / f"{stem}.inst.ll", work / f"{stem}.bc"
    deps: list[str] = []
    if any(f in ("-MD", "-MMD") for f in flags):   # the dependency file names the object, as cc's
        if not any(f in ("-MT", "-MQ") for f in flags):
            deps += ["-MT", obj]
        if "-MF" not in flags:
            deps += ["-MF", str(Path(obj).with_suffix(".d"))]
    if _run([clang, *flags, *deps, "-g", "-S", "-emit-llvm", src, "-o", str(ll)]) != 0:
        raise CcError(f"clang-19 could not compile {src}")
    result = ir_pass.instrument(ll, inst, options)
    for line in result.messages:
        print(line, file=sys.stderr)
    if _run([toolchain.tool("llvm-link"), str(inst), str(toolchain.runtime_bitcode()),
             "-o", str(linked)]) != 0:
        raise CcError(f"llvm-link-19 could not link kcovdf's runtime into {src}")
    codegen = [f for f in flags if not f.startswith(_DEP_FLAGS)]
    if _run([clang, *codegen, "-Wno-unused-command-line-argument", "-c", str(linked), "-o", obj]) != 0:
        raise CcError(f"clang-19 could not compile the instrumented {src}")


#: kcovdf cc's own queries (alone on the command line): the paths of its native parts.
QUERIES = {"--kcovdf-runtime": toolchain.runtime_bitcode, "--kcovdf-device": toolchain.device_shim}


def build(argv: list[str]) -> int:
    """Run one cc command line through the pipeline; its exit status."""
    if len(argv) == 1 and argv[0] in QUERIES:
        print(QUERIES[argv[0]]())
        return 0
    clang = toolchain.tool("clang")
    flags, link, sources, out, modes = split(argv)
    if modes & _PASSTHROUGH or "-S" in modes or not sources:
        return _run([clang, *argv])   # no object of ours to make: clang-19 as cc
    options = pass_options()
    if "-c" in modes and out and len(sources) > 1:
        print("kcovdf cc: cannot specify -o with -c and several sources", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="kcovdf-cc-") as tmp:
        work = Path(tmp)
        objects = []
        for k, src in enumerate(sources):
            if "-c" in modes:
                obj = out or Path(src).with_suffix(".o").name
            else:
                obj = str(work / f"{k}-{Path(src).stem}.o")
            compile_source(src, flags, obj, work, options)
            objects.append(obj)
        if "-c" in modes:
            return 0
        placed = iter(objects)
        args = [next(placed) if a is None else a for a in link]
        # C++ sources link with clang++-19 (its runtime library), as a C++ compiler driver would
        linker = toolchain.tool("clang++") if any(not s.endswith((".c", ".i")) for s in sources) else clang
        return _run([linker, "-Wno-unused-command-line-argument", *args, *(["-o", out] if out else [])])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Every argument is cc's: they are taken as given, none is kcovdf's."""
    cli.pass_through(parser, "cc_args", "cc")


def main(args: argparse.Namespace) -> int:
    """kcovdf cc: build, or name what failed."""
    try:
        return build(args.cc_args)
    except (CcError, ir_pass.PassError, toolchain.ToolchainError) as exc:
        print(f"kcovdf cc: {exc}", file=sys.stderr)
        return 1
