"""The pass over textual LLVM IR: ``instrument(IN.ll, OUT.ll)`` runs kcovdf's plugin in opt-19.

The IR is read by LLVM 19's own parser (opt), instrumented by the plugin
(``pass/KcovdfDataflow.cpp``) and checked by LLVM's verifier before it is written, so the
output is what ``llc-19`` accepts or nothing is written. Options mirror the kernel's Kconfig:
args only, returns only, and allow/deny lists of functions (globs on the symbol or the
source name).
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from kcovdf.errors import KcovdfError
from kcovdf.native import toolchain


class PassError(KcovdfError):
    """IR that LLVM 19 cannot read, or output the verifier refuses; the message names the line."""

    slug = "llvm-pass"


@dataclass(frozen=True)
class Options:
    """What the pass places, as CONFIG_KCOV_DATAFLOW_ARGS/_RET and a function allow/deny list."""

    args: bool = True
    ret: bool = True
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    kernel_abi: bool = False   # the kernel's placement exactly: no guard, registration, ARG_NONE, void ret

    def flags(self) -> list[str]:
        """opt-19's options for the plugin."""
        out = [f"-kcovdf-args={str(self.args).lower()}", f"-kcovdf-ret={str(self.ret).lower()}"]
        for name, pats in (("allow", self.allow), ("deny", self.deny)):
            for pat in pats:
                if "," in pat:
                    raise PassError(f"--{name}: a function pattern cannot hold a comma: {pat!r}")
                out.append(f"-kcovdf-{name}={pat}")
        if self.kernel_abi:
            out.append("-kcovdf-kernel-abi")
        return out


@dataclass
class Result:
    """What the pass said: warnings (functions left uninstrumented) and notes."""

    messages: list[str] = field(default_factory=list)


_OPT_PREFIX = re.compile(r"^\S*opt(-19)?: ")


def instrument(src: str | os.PathLike[str], out: str | os.PathLike[str],
               options: Options = Options()) -> Result:
    """Instrument the IR in ``src`` into ``out`` (textual IR, created 0600); PassError if unreadable."""
    src, out = Path(src), Path(out)
    if not src.is_file():
        raise PassError(f"{src}: no such file")
    fd, tmp = tempfile.mkstemp(dir=out.parent if str(out.parent) else ".", prefix=f".{out.name}.",
                               suffix=".ll")
    os.close(fd)
    try:
        cmd = [toolchain.tool("opt"), f"-load-pass-plugin={toolchain.plugin()}",
               "-passes=kcovdf-dataflow,verify", *options.flags(), "-S", str(src), "-o", tmp]
        done = subprocess.run(cmd, capture_output=True, text=True)
        lines = [_OPT_PREFIX.sub("", ln) for ln in done.stderr.splitlines() if ln.strip()]
        if done.returncode != 0:
            raise PassError(f"{src}: LLVM 19 cannot read or verify this IR:\n  " + "\n  ".join(lines[:20]))
        os.chmod(tmp, 0o600)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return Result([ln for ln in lines if ln.startswith("kcovdf:")])
