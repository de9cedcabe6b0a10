"""The LLVM 19 toolchain, and the two native parts kcovdf builds with it on first use.

Debian's ``clang-19``, ``llvm-19`` and ``llvm-19-dev`` packages give the tools: ``clang-19``,
``opt-19``, ``llc-19``, ``llvm-link-19`` and ``llvm-config-19`` on PATH (or under
``/usr/lib/llvm-19/bin``). A missing one is named with the package that brings it.

kcovdf keeps its native parts as source (``pass/KcovdfDataflow.cpp``, ``runtime/runtime.c``)
and builds them the first time they are needed into a private cache directory
(``$XDG_CACHE_HOME/kcovdf/native`` or ``~/.cache/kcovdf/native``, mode 0700), under a name
keyed by a hash of the source, the compiler's version and the flags: an edited source or a
new compiler builds again, and a build is renamed into place whole.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from kcovdf.errors import KcovdfError

HERE = Path(__file__).resolve().parent
PASS_SOURCE = HERE / "pass" / "KcovdfDataflow.cpp"
RUNTIME_SOURCE = HERE / "runtime" / "runtime.c"
DEVICE_SOURCE = HERE / "runtime" / "device.c"
#: The recorder's table (runtime.c and device.c include it, as does _core/native.c).
API_HEADER = HERE / "runtime" / "kcovdf_api.h"

#: The Debian package that brings each tool.
PACKAGES = {"clang": "clang-19", "clang++": "clang-19", "opt": "llvm-19", "llc": "llvm-19",
            "llvm-link": "llvm-19", "llvm-as": "llvm-19", "llvm-config": "llvm-19"}
INSTALL = "apt-get install -y clang-19 llvm-19 llvm-19-dev"


class ToolchainError(KcovdfError):
    """A tool of LLVM 19 is missing or a build of kcovdf's native parts failed; the message says why."""

    slug = "toolchain"


@functools.cache
def tool(name: str) -> str:
    """The path of LLVM 19's ``name`` (``clang``, ``opt``, ...); ToolchainError naming the package."""
    found = shutil.which(f"{name}-19") or shutil.which(name, path="/usr/lib/llvm-19/bin")
    if not found:
        raise ToolchainError(f"{name}-19 not found (on PATH or in /usr/lib/llvm-19/bin): install "
                             f"Debian's {PACKAGES[name]} package ({INSTALL})")
    return found


def cache_dir() -> Path:
    """The private (0700) directory of kcovdf's native builds."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    d = base / "kcovdf" / "native"
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(d, 0o700)
    return d


def run(cmd: list[str], what: str) -> subprocess.CompletedProcess[str]:
    """Run a build command; ToolchainError with its output when it fails."""
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise ToolchainError(f"{what} failed (exit {done.returncode}): {' '.join(cmd)}\n"
                             f"{done.stderr.strip()}")
    return done


@functools.cache
def _version(compiler: str) -> str:
    return run([compiler, "--version"], f"{compiler} --version").stdout


def _built(source: Path, suffix: str, compiler: str, flags: list[str]) -> Path:
    """The cached build of ``source`` by ``compiler flags source -o OUT``, built now if missing."""
    key = hashlib.sha256(source.read_bytes() + API_HEADER.read_bytes() + _version(compiler).encode()
                         + "\0".join(flags).encode()).hexdigest()[:16]
    out = cache_dir() / f"{source.stem}-{key}{suffix}"
    if out.exists():
        return out
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=suffix)
    os.close(fd)
    try:
        run([compiler, *flags, str(source), "-o", tmp], f"building {source.name}")
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def plugin() -> Path:
    """The pass plugin (``opt-19 -load-pass-plugin=...``), built on first use."""
    config = tool("llvm-config")
    cxxflags = run([config, "--cxxflags"], "llvm-config-19 --cxxflags").stdout.split()
    ldflags = run([config, "--ldflags"], "llvm-config-19 --ldflags").stdout.split()
    include = run([config, "--includedir"], "llvm-config-19 --includedir").stdout.strip()
    if not Path(include, "llvm", "Passes", "PassPlugin.h").exists():
        raise ToolchainError(f"LLVM 19's headers are missing ({include}/llvm/Passes/PassPlugin.h): "
                             f"install Debian's llvm-19-dev package ({INSTALL})")
    return _built(PASS_SOURCE, ".so", tool("clang++"),
                  ["-shared", "-fPIC", "-O2", *cxxflags, *ldflags, "-lLLVM-19"])


def runtime_bitcode() -> Path:
    """The runtime as LLVM bitcode, linked into every instrumented object by ``kcovdf cc``."""
    return _built(RUNTIME_SOURCE, ".bc", tool("clang"),
                  ["-O2", "-fPIC", "-std=gnu11", "-Wall", "-emit-llvm", "-c"])


def device_shim() -> Path:
    """kcovdf's user-space kcov_dataflow device for programs without Python (LD_PRELOAD it)."""
    return _built(DEVICE_SOURCE, ".so", tool("clang"),
                  ["-O2", "-fPIC", "-shared", "-std=gnu11", "-Wall", "-ldl", "-lpthread"])
