"""Cost of one record through the C core, against an empty C call and a pure-Python writer.

Run: python benchmarks/record_cost.py

All three are measured side by side in one run (best of several repeats, each a
batch of calls into a large buffer whose buf[0] is reset between batches; each call an
entry and a return, as instrumented code makes them, timed per record), and
the ratios are printed. Targets: the C core within 2x of an empty C call taking
the same arguments; at least 5x faster than the pure-Python writer.

The empty C call is benchmarks/_noop.c, compiled here for the running interpreter
(its headers from sysconfig, the compiler from $CC or sysconfig) into a temporary
directory, so that the shipped extension holds no benchmark code.
"""

from __future__ import annotations

import collections
import dataclasses
import importlib.util
import mmap
import os
import shlex
import struct
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from kcovdf import abi, tracefile
from kcovdf._core import _recorder
from kcovdf.runtime.encode import encode_value

BATCH = 20_000
REPEATS = 15
WORDS = 1 << 20
PC = 0x1234_5678_9ABC_DEF0


@dataclasses.dataclass
class Point5:
    x: int
    y: int
    name: str
    weight: float
    flag: bool


class Slots5:
    __slots__ = ("x", "y", "name", "weight", "flag")

    def __init__(self, x: int, y: int, name: str, weight: float, flag: bool) -> None:
        self.x, self.y, self.name, self.weight, self.flag = x, y, name, weight, flag


NT5 = collections.namedtuple("NT5", "x y name weight flag")

SUBJECTS = {"int": 123456, "str": "hello, world", "dataclass(5)": Point5(1, 2, "p", 0.5, True),
            "slots(5)": Slots5(1, 2, "p", 0.5, True), "namedtuple(5)": NT5(1, 2, "p", 0.5, True)}


def build_noop() -> Callable[..., None]:
    """benchmarks/_noop.c compiled for this interpreter, with the recorder's -O2, and imported."""
    source = Path(__file__).with_name("_noop.c")
    cc = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    with tempfile.TemporaryDirectory(prefix="kcovdf-noop-") as tmp:
        target = Path(tmp) / f"_kcovdf_noop{sysconfig.get_config_var('EXT_SUFFIX')}"
        cmd = [*cc, "-O2", "-fPIC", "-shared", f"-I{sysconfig.get_paths()['include']}",
               str(source), "-o", str(target)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"record_cost: cannot build {source.name} ({shlex.join(cmd)}):\n{done.stderr}")
        spec = importlib.util.spec_from_file_location("_kcovdf_noop", target)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # mapped now: the file may go
    return module.noop  # type: ignore[no-any-return]


def new_mapping() -> mmap.mmap:
    m = mmap.mmap(-1, tracefile.FILE_HEADER_SIZE + 8 * WORDS)
    m[:tracefile.FILE_HEADER_SIZE] = tracefile.pack_header(WORDS, os.getpid(), 0)
    return m


def python_writer(m: mmap.mmap) -> Callable[[int, object], None]:
    """A straightforward pure-Python record writer into the same buffer layout."""
    seq = [0]
    base = tracefile.FILE_HEADER_SIZE

    def entry(pc: int, value: object) -> None:
        words = encode_value(value).words
        seq[0] = (seq[0] + 1) & abi.SEQ_MASK
        count = struct.unpack_from("<Q", m, base)[0]
        need = 3 + len(words)
        if count + need > WORDS - 1:
            return
        struct.pack_into(f"<{need}Q", m, base + 8 * (1 + count),
                         abi.type_seq(abi.TYPE_ENTRY, len(words), seq[0]), pc,
                         abi.meta(0, abi.PY_VALUE_SIZE, id(value)), *words)
        struct.pack_into("<Q", m, base, count + need)

    return entry


def batch_ns(enter: Callable[[int, object], object], leave: Callable[[int, object], object],
             value: object, m: mmap.mmap, batch: int) -> float:
    """Time per record over one batch of calls, in ns; buf[0] is reset first, so the buffer never fills.

    Each call is a pair, as instrumented code makes it: ``enter(PC, value)`` then
    ``leave(PC, value)`` (the recorder's entry and ret: two records of one call id).
    """
    struct.pack_into("<Q", m, tracefile.FILE_HEADER_SIZE, 0)
    loop = range(batch)
    start = time.perf_counter_ns()
    for _ in loop:
        enter(PC, value)
        leave(PC, value)
    return (time.perf_counter_ns() - start) / (2 * batch)


def main() -> None:
    noop_call = build_noop()
    m_c, m_py = new_mapping(), new_mapping()
    writer = python_writer(m_py)
    print(f"kcovdf record cost, Python {sys.version.split()[0]}, batch {BATCH}, best of {REPEATS} "
          "(the empty call and the C core interleaved)")
    print(f"{'value':<14}{'empty C call':>14}{'C core':>10}{'Python':>10}{'C/empty':>10}{'Py/C':>8}")
    for label, value in SUBJECTS.items():
        noop = core = float("inf")
        _recorder.enable(m_c, -1)  # the empty call ignores it: both run in the same state, turn by turn
        try:
            for _ in range(REPEATS):
                noop = min(noop, batch_ns(noop_call, noop_call, value, m_c, BATCH))
                core = min(core, batch_ns(_recorder.entry, _recorder.ret, value, m_c, BATCH))
        finally:
            _recorder.disable(m_c)
        py = min(batch_ns(writer, writer, value, m_py, BATCH // 10) for _ in range(3))
        print(f"{label:<14}{noop:>11.1f} ns{core:>7.1f} ns{py:>7.0f} ns"
              f"{core / noop:>9.2f}x{py / core:>7.1f}x")
    print("targets: C/empty <= 2x, Py/C >= 5x")


if __name__ == "__main__":
    main()
