"""``kcovdf rustc ARGS…`` (and ``RUSTC_WRAPPER=kcovdf-rustc cargo build``): Rust through kcovdf's pass.

rustc's LLVM (22 for rustc 1.95) is newer than Debian's LLVM 19, so its IR cannot go
through llc-19 as the kernel's pipeline does. The route kept here leaves rustc everything
but the code generation of the crate's own code unit:

1. rustc compiles as asked, with debug info, one codegen unit, and ``--emit=llvm-ir`` beside
   its usual outputs, and with kcovdf's linker wrapper as ``-C linker``;
2. when rustc links (a ``cdylib``, ``dylib`` or ``bin``), the wrapper takes the crate's IR,
   lowers it to LLVM 19 (``kcovdf.native.lower``: a rule per newer construct, steered by
   llvm-as-19's parser and verifier), runs the pass, links the runtime and compiles it with
   clang-19 into the crate's own object (``<module>.rcgu.o``, in place of rustc's), then runs
   the real linker with rustc's arguments unchanged: std, the version script and the rest.

Limits (docs/native.md): crates compiled as ``rlib`` (dependencies) are not instrumented, only
the crate that links; fat LTO (``-C lto``) leaves the crate uninstrumented, with a warning;
a construct of newer LLVM that no lowering rule knows fails the build, naming its line.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

from kcovdf import cli
from kcovdf.native import cc, ir_pass, lower, toolchain

#: Crate types whose build ends in a link by rustc: the ones instrumented.
LINKED = {"cdylib", "dylib", "bin"}


def _value(args: list[str], flag: str) -> list[str]:
    """Every value of ``flag`` (``--flag v`` or ``--flag=v``)."""
    out = []
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            out.append(args[i + 1])
        elif a.startswith(flag + "="):
            out.append(a[len(flag) + 1:])
    return out


def _codegen(args: list[str]) -> dict[str, str]:
    """The -C options of a rustc command line."""
    out = {}
    for i, a in enumerate(args):
        opt = args[i + 1] if a == "-C" and i + 1 < len(args) else a[2:] if a.startswith("-C") and len(a) > 2 \
            else None
        if opt:
            key, _, val = opt.partition("=")
            out[key] = val
    return out


def _without_codegen(args: list[str], keys: set[str]) -> list[str]:
    out: list[str] = []
    skip = False
    for i, a in enumerate(args):
        if skip:
            skip = False
            continue
        if a == "-C" and i + 1 < len(args) and args[i + 1].partition("=")[0] in keys:
            skip = True
            continue
        if a.startswith("-C") and len(a) > 2 and a[2:].partition("=")[0] in keys:
            continue
        out.append(a)
    return out


def instrumented_args(args: list[str], work: Path) -> list[str] | None:
    """rustc's arguments with the pipeline's, or None when this invocation is not one to instrument."""
    if any(a in ("-vV", "-V", "--version", "-") or a.startswith("--print") for a in args):
        return None
    if not any(a.endswith(".rs") for a in args if not a.startswith("-")):
        return None
    types = {t for v in _value(args, "--crate-type") for t in v.split(",")} or {"bin"}
    name = (_value(args, "--crate-name") or [""])[0]
    if not types & LINKED or name.startswith("build_script_"):
        return None
    cg = _codegen(args)
    if "lto" in cg and cg["lto"] not in ("off", "no", "n", "false"):
        print(f"kcovdf rustc: warning: crate {name or '?'}: -C lto leaves it uninstrumented", file=sys.stderr)
        return None
    ir = work / "crate.ll"
    out = _without_codegen(args, {"debuginfo", "codegen-units", "linker"})
    emits = _value(out, "--emit")
    out = [a for i, a in enumerate(out) if not (a == "--emit" or a.startswith("--emit=")
                                                or (i and out[i - 1] == "--emit"))]
    kinds = ",".join(emits) if emits else "link"
    out += [f"--emit={kinds},llvm-ir={ir}", "-C", "debuginfo=2", "-C", "codegen-units=1",
            "-C", f"linker={_linker_script()}"]
    os.environ["KCOVDF_RUSTC_LINKER"] = cg.get("linker") or "cc"
    os.environ["KCOVDF_RUSTC_IR"] = str(ir)
    return out


def _linker_script() -> Path:
    """An executable that runs this module's link step with this Python (-I: whatever the environment)."""
    key = hashlib.sha256(sys.executable.encode()).hexdigest()[:12]
    script = toolchain.cache_dir() / f"rustc-linker-{key}"
    text = f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -I -m kcovdf.native.rustc --link \"$@\"\n"
    if not script.exists() or script.read_text() != text:
        tmp = script.with_name(script.name + f".{os.getpid()}")
        tmp.write_text(text)
        tmp.chmod(stat.S_IRWXU)
        os.replace(tmp, script)
    return script


def compile_crate(rustc: str, args: list[str]) -> int:
    """One rustc invocation, instrumented when it links; rustc's exit status."""
    with tempfile.TemporaryDirectory(prefix="kcovdf-rustc-") as tmp:
        changed = instrumented_args(args, Path(tmp))
        # close_fds=False: cargo's jobserver descriptors go to rustc, as without kcovdf
        argv = [rustc, *(changed if changed is not None else args)]
        return subprocess.run(argv, close_fds=False).returncode


def link(args: list[str]) -> int:
    """The linker wrapper: the crate's object rebuilt from its instrumented IR, then the real link."""
    ir = Path(os.environ["KCOVDF_RUSTC_IR"])
    linker = os.environ.get("KCOVDF_RUSTC_LINKER", "cc")
    module = re.search(r"^; ModuleID = '([^']+)'", ir.read_text(errors="replace"), re.M)
    target = next((a for a in args if module and a.endswith(f"{module.group(1)}.rcgu.o")), None)
    if target is None:
        print(f"kcovdf rustc: warning: no object of {ir.name}'s module among the linker's arguments: "
              "left uninstrumented", file=sys.stderr)
    else:
        work = ir.parent
        lowered, inst, linked = work / "crate19.ll", work / "crate_inst.ll", work / "crate.bc"
        lower.lower(ir, lowered)
        for line in ir_pass.instrument(lowered, inst, cc.pass_options()).messages:
            if "warning" in line:   # notes about std's generic code would drown the build
                print(line, file=sys.stderr)
        toolchain.run([toolchain.tool("llvm-link"), str(inst), str(toolchain.runtime_bitcode()),
                       "-o", str(linked)], "llvm-link-19 of the crate and kcovdf's runtime")
        toolchain.run([toolchain.tool("clang"), "-O2", "-fPIC", "-c", str(linked), "-o", target],
                      "clang-19 -c of the instrumented crate")
    return subprocess.run([shutil.which(linker) or linker, *args], close_fds=False).returncode


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Every argument is rustc's (a first argument naming a rustc, as cargo's RUSTC_WRAPPER passes)."""
    cli.pass_through(parser, "rustc_args", "rustc")


def main(args: argparse.Namespace) -> int:
    """kcovdf rustc [RUSTC] ARGS."""
    argv = args.rustc_args
    rustc = "rustc"
    if argv and not argv[0].startswith("-") and Path(argv[0]).name.startswith("rustc") \
            and not argv[0].endswith(".rs"):
        rustc, argv = argv[0], argv[1:]
    if not shutil.which(rustc):
        print(f"kcovdf rustc: {rustc} not found: install Rust (rustc and cargo)", file=sys.stderr)
        return 1
    try:
        return compile_crate(rustc, argv)
    except (toolchain.ToolchainError, ir_pass.PassError, lower.LoweringError) as exc:
        print(f"kcovdf rustc: {exc}", file=sys.stderr)
        return 1


def wrapper_main() -> int:
    """The ``kcovdf-rustc`` console script, for ``RUSTC_WRAPPER=kcovdf-rustc cargo build``."""
    return main(argparse.Namespace(rustc_args=sys.argv[1:]))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--link"]:
        try:
            sys.exit(link(sys.argv[2:]))
        except (toolchain.ToolchainError, ir_pass.PassError, lower.LoweringError) as exc:
            print(f"kcovdf rustc: {exc}", file=sys.stderr)
            sys.exit(1)
    sys.exit(wrapper_main())
