"""Native records: C code called through ctypes writes into the calling thread's task buffer."""

from __future__ import annotations

import ctypes
import json
import mmap
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import kcovdf
from kcovdf import abi
from kcovdf.native import cc, selftest
from kcovdf.read import decode
from kcovdf.runtime.device import Device

pytestmark = pytest.mark.c_core(reason="native code records through the C core's task state")


def _records(path: Path, seq: bool = False) -> list[tuple[int, ...]]:
    """(type, pc, arg_idx, values) of every record of a .kdf file (``seq``: their sequence numbers)."""
    data = path.read_bytes()
    size = int.from_bytes(data[16:24], "little")
    words = memoryview(data)[4096:4096 + 8 * size].cast("Q")
    out: list = []
    i, n = 1, words[0]
    while i <= n:
        rtype, nv, number = abi.split_type_seq(words[i])
        values = list(words[i + 3:i + 3 + nv])
        out.append(number if seq else (rtype, words[i + 1], words[i + 2] >> 56, values))
        i += 3 + nv
    return out


def test_eight_args_c_view(eight_args_c: ctypes.CDLL, tmp_path: Path) -> None:
    path = tmp_path / "t.kdf"
    selftest.record(path, lambda: selftest.call_all(eight_args_c))
    lines = selftest.view_lines(path)
    for want in selftest.expected("eight_args_c"):
        assert want in lines
    assert len(lines) == 18


def test_pc_is_the_function_address(eight_args_c: ctypes.CDLL, tmp_path: Path) -> None:
    path = tmp_path / "t.kdf"
    with Device(file=path) as dev:
        dev.init_trace(1 << 12)
        dev.enable()
        eight_args_c.df_func2(ctypes.c_uint64(1), ctypes.c_uint64(2))
        dev.disable()
    addr = ctypes.cast(eight_args_c.df_func2, ctypes.c_void_p).value
    recs = _records(path)
    assert [(r[0], r[1], r[2]) for r in recs] == [(0xE, addr, 0), (0xE, addr, 1), (0xF, addr, 0)]
    assert [r[3][2] for r in recs] == [1, 2, 3]
    trace = decode.load(path)
    assert trace.names.name(addr) == "eight_args_c.df_func2"


def test_unreadable_struct_pointers_give_fault(eight_args_c: ctypes.CDLL, tmp_path: Path) -> None:
    probe = eight_args_c.df_struct_probe
    probe.argtypes = [ctypes.c_void_p]
    area = mmap.mmap(-1, mmap.PAGESIZE)
    unmapped = ctypes.addressof(ctypes.c_char.from_buffer(area))
    area.close()  # the page is gone: a read there would crash
    path = tmp_path / "t.kdf"
    with Device(file=path) as dev:
        dev.init_trace(1 << 12)
        dev.enable()
        for p in (None, (1 << 64) - 14, unmapped, 8):   # NULL, ERR_PTR(-EFAULT), unmapped, first page
            probe(p)
        dev.disable()
    entries = [r for r in _records(path) if r[0] == 0xE]
    assert len(entries) == 4
    for r in entries:
        assert r[3][2:] == [abi.FAULT, abi.FAULT]
        assert [(r[3][1] >> (4 * j)) & 0xF for j in range(2)] == [abi.Kind.FAULT] * 2
    assert "eight_args_c.df_struct_probe(p=pair(a=FAULT, b=FAULT))" in selftest.view_lines(path)


def test_python_and_native_calls_form_one_stream(eight_args_c: ctypes.CDLL, tmp_path: Path) -> None:
    f2 = eight_args_c.df_func2
    f2.restype = ctypes.c_uint64

    @kcovdf.instrument_func
    def outer(x: int) -> int:
        return f2(ctypes.c_uint64(x), ctypes.c_uint64(0x22)) + inner(x)

    @kcovdf.instrument_func
    def inner(y: int) -> int:
        return y

    path = tmp_path / "t.kdf"
    with Device(file=path) as dev:
        dev.init_trace(1 << 14)
        dev.enable()
        outer(0x11)
        dev.disable()
    lines = [ln for ln in subprocess.run([sys.executable, "-m", "kcovdf", "view", str(path)],
                                         capture_output=True, text=True, check=True).stdout.splitlines()
             if ln and not ln.startswith("#")]
    name = f"{__name__}.test_python_and_native_calls_form_one_stream.<locals>"
    assert lines == [
        f"{name}.outer(x=17)",
        "  eight_args_c.df_func2(a1=0x11, a2=0x22)",
        "  0x33 = eight_args_c.df_func2()",
        f"  {name}.inner(y=17)",
        f"  17 = {name}.inner()",
        f"68 = {name}.outer()",
    ]
    assert _records(path, seq=True) == list(range(1, 8))   # one task, one sequence, in order


def test_nothing_is_recorded_while_no_thread_records(eight_args_c: ctypes.CDLL, tmp_path: Path) -> None:
    path = tmp_path / "t.kdf"
    with Device(file=path) as dev:
        dev.init_trace(1 << 12)
        eight_args_c.df_func1(ctypes.c_uint64(5))       # no thread enabled
        dev.enable()
        done = threading.Thread(target=eight_args_c.df_func1, args=(ctypes.c_uint64(6),))
        done.start()                                    # another thread: not this task
        done.join()
        dev.disable()
    assert _records(path) == []


def test_a_full_buffer_drops_whole_records_and_counts_them(eight_args_c: ctypes.CDLL, tmp_path: Path) -> None:
    path = tmp_path / "t.kdf"
    with Device(file=path) as dev:
        dev.init_trace(20)   # 19 words: three records of 6 words fit
        dev.enable()
        eight_args_c.df_func2(ctypes.c_uint64(1), ctypes.c_uint64(2))
        eight_args_c.df_func2(ctypes.c_uint64(1), ctypes.c_uint64(2))
        dev.disable()
        assert dev.drops == 3
    assert len(_records(path)) == 3


def test_a_library_loaded_before_kcovdf_and_a_second_library(tmp_path: Path, llvm: None) -> None:
    (tmp_path / "other.c").write_text("int other_add(int a, int b) { return a + b; }\n")
    assert cc.build(["-O1", "-shared", "-fPIC", str(tmp_path / "other.c"),
                     "-o", str(tmp_path / "libother.so")]) == 0
    script = f"""
import ctypes
first = ctypes.CDLL({str(selftest.library("eight_args_c"))!r})   # before the recorder is loaded
from kcovdf.runtime.device import Device
with Device(file={str(tmp_path / "t.kdf")!r}) as dev:
    dev.init_trace(1 << 12)
    dev.enable()
    second = ctypes.CDLL({str(tmp_path / "libother.so")!r})         # while recording
    first.df_func1(ctypes.c_uint64(0x11))
    second.other_add(-3, 4)
    dev.disable()
"""
    subprocess.run([sys.executable, "-c", script], check=True)
    lines = selftest.view_lines(tmp_path / "t.kdf")
    assert lines == ["eight_args_c.df_func1(a1=0x11)", "0x33 = eight_args_c.df_func1()",
                     "other.other_add(a=-3, b=4)", "1 = other.other_add()"]


def test_sql_and_export_name_native_functions(eight_args_c: ctypes.CDLL, tmp_path: Path) -> None:
    path = tmp_path / "t.kdf"
    selftest.record(path, lambda: selftest.call_all(eight_args_c))
    sql = subprocess.run([sys.executable, "-m", "kcovdf", "sql", "--json", str(path),
                          "SELECT function, count(*) AS n FROM calls GROUP BY 1 ORDER BY 1"],
                         capture_output=True, text=True, check=True).stdout
    rows = json.loads(sql)
    assert [r["function"] for r in rows] == [f"eight_args_c.df_func{n}" for n in range(1, 9)] + \
        ["eight_args_c.df_func_struct"]
    out = tmp_path / "r.jsonl"
    subprocess.run([sys.executable, "-m", "kcovdf", "export", str(path), "-f", "jsonl", "-o", str(out)],
                   check=True, capture_output=True)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    struct = next(r for r in records
                  if r["function"] == "eight_args_c.df_func_struct" and r["kind"] == "entry")
    assert struct["param"] == "p" and struct["rendered"] == "pair(a=0x11, b=0x22)"


def test_kcovdf_run_segments_a_native_stream_without_loss(tmp_path: Path, llvm: None) -> None:
    # a small buffer: the native path meets the full hook (with the GIL taken) many times
    (tmp_path / "many.py").write_text(f"""
import ctypes
lib = ctypes.CDLL({str(selftest.library("eight_args_c"))!r})
for i in range(3000):
    lib.df_func2(ctypes.c_uint64(i), ctypes.c_uint64(1))
""")
    done = subprocess.run([sys.executable, "-m", "kcovdf", "run", "-b", "4096", "-o", "trace", "many.py"],
                          cwd=tmp_path, capture_output=True, text=True, check=True)
    assert "0 drops" in done.stderr
    assert len(list((tmp_path / "trace").glob("task-*.s*.kdf*"))) >= 5   # later segments
    sql = subprocess.run([sys.executable, "-m", "kcovdf", "sql", "--json", str(tmp_path / "trace"),
                          "SELECT count(*) AS n FROM calls WHERE function = 'eight_args_c.df_func2'"],
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(sql) == [{"n": 3000}]


STRUCTS = r"""
#include <stdint.h>
struct big { uint64_t a, b, c, d; int32_t e; double f; };
struct flags { unsigned lo : 3; int hi : 5; };
__attribute__((noinline)) struct big make_big(uint64_t x)
{ struct big r = {x, x + 1, x + 2, x + 3, -5, 2.5}; return r; }
__attribute__((noinline)) uint64_t take_big(struct big v) { return v.a + v.d; }
__attribute__((noinline)) void nothing(void) {}
__attribute__((noinline)) int use_bits(struct flags *f) { return f->lo + f->hi; }
"""


class Big(ctypes.Structure):
    _fields_ = [("a", ctypes.c_uint64), ("b", ctypes.c_uint64), ("c", ctypes.c_uint64),
                ("d", ctypes.c_uint64), ("e", ctypes.c_int32), ("f", ctypes.c_double)]


class Flags(ctypes.Structure):
    _fields_ = [("lo", ctypes.c_uint, 3), ("hi", ctypes.c_int, 5)]


def test_sret_byval_bitfields_and_void(tmp_path: Path, llvm: None) -> None:
    (tmp_path / "structs.c").write_text(STRUCTS)
    assert cc.build(["-O2", "-shared", "-fPIC", str(tmp_path / "structs.c"),
                     "-o", str(tmp_path / "libstructs.so")]) == 0
    lib = ctypes.CDLL(str(tmp_path / "libstructs.so"))
    lib.make_big.restype = Big
    lib.take_big.argtypes = [Big]
    path = tmp_path / "t.kdf"
    with Device(file=path) as dev:
        dev.init_trace(1 << 14)
        dev.enable()
        big = lib.make_big(ctypes.c_uint64(7))          # returned through a hidden sret pointer
        lib.take_big(big)                               # passed in memory (byval)
        lib.nothing()
        lib.use_bits(ctypes.byref(Flags(5, -3)))
        dev.disable()
    assert selftest.view_lines(path) == [
        "structs.make_big(x=0x7)", "big(a=0x7, b=0x8, c=0x9, d=0xa, e=-5, f=2.5) = structs.make_big()",
        "structs.take_big(v=big(a=0x7, b=0x8, c=0x9, d=0xa, e=-5, f=2.5))", "0x11 = structs.take_big()",
        "structs.nothing()", "void = structs.nothing()",
        "structs.use_bits(f=flags(lo=0x5, hi=-3))", "2 = structs.use_bits()"]
