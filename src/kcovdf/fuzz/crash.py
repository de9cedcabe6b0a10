"""Crashes: what is reported, what is saved, and the call tree of the crashing execution.

A crash is any exception escaping ``TestOneInput`` (``sys.exit`` and ``os._exit`` too), a
timeout or a memory limit. Its input is written to ``<artifact_prefix><kind>-<sha1>``,
mode 0600, and the report ends with what only kcovdf can show: the input is run once
more with the recorder on into ``<artifact>.kdf``, and ``kcovdf view`` prints that
execution's calls with their arguments and return values.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import traceback
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

from kcovdf import tracefile

#: Exit statuses, as libFuzzer's defaults: -error_exitcode, -timeout_exitcode; and one for oom.
EXIT_CRASH = 77
EXIT_TIMEOUT = 70
EXIT_OOM = 71
#: Lines of the call tree shown; the rest is in the .kdf file.
TREE_LINES = 60
_FUZZ_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


class HarnessExit(BaseException):
    """The harness called ``os._exit(status)``: reported as a crash (the fuzzer's os._exit raises it)."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class Timeout(BaseException):
    """An input ran longer than -timeout (raised in the main thread by the watchdog)."""


class OutOfMemory(BaseException):
    """The process went over -rss_limit_mb (raised in the main thread by the watchdog)."""


def kind_of(exc: BaseException) -> str:
    """The artifact kind: crash, timeout or oom."""
    if isinstance(exc, Timeout):
        return "timeout"
    if isinstance(exc, (OutOfMemory, MemoryError)):
        return "oom"
    return "crash"


def exit_status(kind: str) -> int:
    """The fuzzer's exit status for an artifact of ``kind``."""
    return {"timeout": EXIT_TIMEOUT, "oom": EXIT_OOM}.get(kind, EXIT_CRASH)


def cause(exc: BaseException) -> str:
    """One line naming what happened, sys.exit and os._exit included."""
    if isinstance(exc, SystemExit):
        return f"the harness called sys.exit({exc.code!r})"
    if isinstance(exc, HarnessExit):
        return f"the harness called os._exit({exc.status})"
    if isinstance(exc, Timeout):
        return str(exc) or "timeout"
    if isinstance(exc, OutOfMemory):
        return str(exc) or "out of memory"
    return f"uncaught {type(exc).__qualname__}: {exc}"


def location(exc: BaseException) -> tuple[str, str, int]:
    """(exception type, file, line) of where ``exc`` was raised: what -minimize_crash keeps."""
    tb = exc.__traceback__
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    if last is None:
        return type(exc).__qualname__, "", 0
    return type(exc).__qualname__, last.tb_frame.f_code.co_filename, last.tb_lineno


def _harness_frames(tb: TracebackType | None) -> TracebackType | None:
    """``tb`` from the first frame that is not the fuzzer's own (the harness's TestOneInput)."""
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_FUZZ_DIR):
        tb = tb.tb_next
    return tb


def artifact_path(prefix: str, kind: str, data: bytes, exact: str = "") -> str:
    """Where the input of a crash of ``kind`` goes."""
    return exact or f"{prefix}{kind}-{hashlib.sha1(data).hexdigest()}"


def save(path: str, data: bytes) -> None:
    """Write ``data`` to ``path``, mode 0600, complete or not at all."""
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    with tracefile.private_file(path) as f:
        f.write(data)


def report(out: TextIO, exc: BaseException, data: bytes, path: str | None, mutations: str = "") -> None:
    """The traceback and libFuzzer's crash lines."""
    kind = kind_of(exc)
    if kind == "timeout":
        print(f"==={os.getpid()}== ERROR: libFuzzer: timeout ({cause(exc)})", file=out)
    else:
        print("=== Uncaught Python exception: ===", file=out)
        out.write("".join(traceback.format_exception(type(exc), exc, _harness_frames(exc.__traceback__))))
        what = "out-of-memory" if kind == "oom" else "fuzz target raised"
        print(f"=={os.getpid()}== ERROR: libFuzzer: {what}: {cause(exc)}", file=out)
    if mutations:
        print(f"MS: {mutations}", file=out)
    if path is not None:
        print(f"artifact_prefix='{os.path.dirname(path) + os.sep if os.path.dirname(path) else './'}'; "
              f"Test unit written to {path}", file=out)
    if len(data) <= 1024:
        print(f"Base64: {base64.b64encode(data).decode()}", file=out)
    out.flush()


def call_tree(out: TextIO, target: Callable[[bytes], object], data: bytes, kdf: str,
              recording: Callable[[str], object]) -> None:
    """Run ``data`` once more with the recorder on into ``kdf`` and print its call tree.

    ``recording(path)`` is a context manager that records the calling thread into ``path``.
    """
    real_exit = os._exit

    def _exit(status: int) -> None:
        raise HarnessExit(status)
    os._exit = _exit  # type: ignore[assignment]
    try:
        with recording(kdf):  # type: ignore[attr-defined]
            try:
                target(data)
            except BaseException:  # noqa: BLE001 - the crash again: its records are what we want
                pass
    except OSError as exc:
        print(f"kcovdf: cannot record the crashing input again ({exc})", file=out)
        return
    finally:
        os._exit = real_exit
    proc = subprocess.run([sys.executable, "-m", "kcovdf", "view", kdf, "--color", "never"],
                          capture_output=True, text=True, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    print(f"\n=== kcovdf call tree of the crashing input (kcovdf view {kdf}) ===", file=out)
    if not [line for line in lines if not line.startswith("##")]:
        print("(no calls of instrumented code: name the modules to record with --include MOD)", file=out)
    elif len(lines) > TREE_LINES:
        print(f"... ({len(lines) - TREE_LINES} lines before these; kcovdf view {kdf} shows them all)",
              file=out)
        lines = lines[-TREE_LINES:]
    for line in lines:
        print(line, file=out)
    if proc.returncode not in (0, 1) and proc.stderr:
        print(proc.stderr.rstrip(), file=out)
    out.flush()
