"""The native selftests of the kernel series (eight_args_c, eight_args_rust, rust_ffi_contract),
as ``kcovdf selftest`` cases.

``library(name)`` builds a selftest library from ``selftests/<name>.c`` with ``kcovdf cc``
into the private cache (keyed by the sources of the library, the pass and the runtime);
``eight_args_c`` calls it through ctypes while a Device records and checks what view shows.
A case returns "SKIP why" (a TAP directive) when the toolchain or the C core is missing.
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from kcovdf.native import cc, lower, rustc, toolchain

T = TypeVar("T")

SOURCES = Path(__file__).resolve().parent / "selftests"


def library(name: str) -> Path:
    """The instrumented shared library of selftests/<name>.c (kcovdf cc) or .rs (kcovdf rustc),
    built on first use."""
    src = next(p for p in (SOURCES / f"{name}.c", SOURCES / f"{name}.rs") if p.exists())
    sources = (src, toolchain.PASS_SOURCE, toolchain.RUNTIME_SOURCE, toolchain.API_HEADER,
               Path(lower.__file__))
    key = hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()[:16]
    out = toolchain.cache_dir() / f"selftest-{key}" / f"lib{name}.so"   # the module name: its stem
    if not out.exists():
        out.parent.mkdir(mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".so")
        os.close(fd)
        try:
            if src.suffix == ".c":
                status = cc.build(["-O2", "-shared", "-fPIC", str(src), "-o", tmp])
            else:
                status = rustc.main(argparse.Namespace(rustc_args=[
                    "--crate-type=cdylib", "--edition=2021", "-C", "opt-level=2", str(src), "-o", tmp]))
            if status != 0:
                raise toolchain.ToolchainError(f"kcovdf could not build {src}")
            os.replace(tmp, out)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return out


class Pair(ctypes.Structure):
    """struct pair of eight_args_c.c."""

    _fields_ = [("a", ctypes.c_uint64), ("b", ctypes.c_uint64)]


def call_all(lib: ctypes.CDLL) -> None:
    """df_func1..8 with 0x11, 0x22, ... (df_func1 returns 0x33), then df_func_struct(&{0x11, 0x22})."""
    for n in range(1, 9):
        f = getattr(lib, f"df_func{n}")
        f.restype = ctypes.c_uint64
        f.argtypes = [ctypes.c_uint64] * n
        f(*[0x11 * (k + 1) for k in range(n)])
    lib.df_func_struct.restype = ctypes.c_uint64
    lib.df_func_struct(ctypes.byref(Pair(0x11, 0x22)))


def record(path: str | os.PathLike[str], run: Callable[[], T]) -> T:
    """``run()`` while a Device writes the calling thread's records into the file ``path``;
    what it returned. AssertionError when records were dropped."""
    from kcovdf.runtime.device import Device

    with Device(file=path) as dev:
        dev.init_trace(1 << 14)
        dev.enable()
        result = run()
        dev.disable()
        assert dev.drops == 0, f"{dev.drops} drops"
    return result


def expected(module: str) -> list[str]:
    """What kcovdf view prints for call_all's first, second and last calls into ``module``."""
    return [f"{module}.df_func1(a1=0x11)", f"0x33 = {module}.df_func1()",
            f"{module}.df_func2(a1=0x11, a2=0x22)", f"0x33 = {module}.df_func2()",
            f"{module}.df_func8(a1=0x11, a2=0x22, a3=0x33, a4=0x44, a5=0x55, a6=0x66, a7=0x77, a8=0x88)",
            f"{module}.df_func_struct(p={'pair' if module.endswith('_c') else 'Pair'}(a=0x11, b=0x22))",
            f"0x33 = {module}.df_func_struct()"]


def view_lines(path: str | os.PathLike[str]) -> list[str]:
    """The call lines ``kcovdf view`` prints for a trace (headers left out)."""
    import contextlib
    import io

    from kcovdf import cli

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = cli.main(["view", str(path)])
    assert status == 0, f"kcovdf view exited {status}"
    return [ln.strip() for ln in out.getvalue().splitlines() if ln.strip() and not ln.startswith("#")]


def _recording(name: str) -> tuple[ctypes.CDLL | None, str | None]:
    """The loaded selftest library, or (None, a SKIP directive) without the C core or the toolchain."""
    from kcovdf.runtime import core

    if core.name != "c":
        return None, "SKIP native code records through the C core only (this is the Python twin)"
    try:
        return ctypes.CDLL(str(library(name))), None
    except toolchain.ToolchainError as exc:
        return None, f"SKIP {str(exc).splitlines()[0]}"


def _eight_args(name: str) -> str | None:
    lib, skip = _recording(name)
    if lib is None:
        return skip
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.kdf"
        record(path, lambda: call_all(lib))
        lines = view_lines(path)
    assert len(lines) == 18, f"{len(lines)} lines, expected 18 (9 calls): {lines}"
    for want in expected(name):
        assert want in lines, f"missing {want!r} in {lines}"
    return None


def eight_args_c() -> str | None:
    """The kernel's eight_args_c: 1 to 8 u64 arguments and a struct, recorded and viewed."""
    return _eight_args("eight_args_c")


def eight_args_rust() -> str | None:
    """The kernel's eight_args_rust: the same in Rust, with a #[repr(C)] pair."""
    return _eight_args("eight_args_rust")


def contract_traces(lib: ctypes.CDLL, train: Path, broken: Path) -> None:
    """rust_ffi_contract's two traces: training with the working df_fill, then one broken call."""
    lib.df_ffi_caller.argtypes = [ctypes.c_size_t]
    lib.df_ffi_caller.restype = ctypes.c_int
    lib.df_break_fill.argtypes = [ctypes.c_bool]
    for path, sizes in ((train, [k % 9 for k in range(64)]), (broken, [4])):
        lib.df_break_fill(path == broken)
        results = record(path, lambda sizes=sizes: [lib.df_ffi_caller(n) for n in sizes])
    lib.df_break_fill(False)
    assert results == [-14], results   # the caller caught the broken contract: -EFAULT


def rust_ffi_contract() -> str | None:
    """The kernel's rust_ffi_contract: df_fill says success with a NULL buffer, its caller returns
    -EFAULT, and kcovdf contracts check flags that return from the trace alone."""
    import contextlib
    import io

    from kcovdf import cli

    lib, skip = _recording("rust_ffi_contract")
    if lib is None:
        return skip
    with tempfile.TemporaryDirectory() as tmp:
        train, broken, model = Path(tmp) / "train.kdf", Path(tmp) / "broken.kdf", Path(tmp) / "c.toml"
        contract_traces(lib, train, broken)
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            assert cli.main(["contracts", "infer", str(train), "-o", str(model)]) == 0
            status = cli.main(["contracts", "check", str(broken), "--contracts", str(model)])
    assert status == 1, f"contracts check exited {status}: {out.getvalue()}"
    report = out.getvalue()
    assert "VIOLATION [post] rust_ffi_contract:df_ffi_caller" in report and "ret=-14" in report, report
    return None


CASES = [("eight_args_c", eight_args_c), ("eight_args_rust", eight_args_rust),
         ("rust_ffi_contract", rust_ffi_contract)]
