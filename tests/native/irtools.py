"""Helpers of the native tests: C to IR with clang-19, and LLVM 19's checks of IR."""

from __future__ import annotations

import subprocess
from pathlib import Path

from kcovdf.native import toolchain


def compile_ir(src: Path, *flags: str) -> Path:
    """C source → textual IR with clang-19 (-g unless flags say otherwise)."""
    out = src.with_suffix(".ll")
    subprocess.run([toolchain.tool("clang"), *(flags or ("-g", "-O1")), "-S", "-emit-llvm", str(src),
                    "-o", str(out)], check=True)
    return out


def verify(ll: Path) -> None:
    """The IR is valid for LLVM 19: llvm-as-19, opt-19's verifier and llc-19 all accept it."""
    subprocess.run([toolchain.tool("llvm-as"), str(ll), "-o", "/dev/null"], check=True)
    subprocess.run([toolchain.tool("opt"), "-passes=verify", "-disable-output", str(ll)], check=True)
    subprocess.run([toolchain.tool("llc"), "-filetype=obj", str(ll), "-o", "/dev/null"], check=True)
