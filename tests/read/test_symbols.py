"""kcovdf.symbols: trace sym lines, kallsyms files and ELF symbol tables (built here with gcc)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from kcovdf import symbols
from kcovdf.errors import CorruptBufferError

C_SOURCE = """
#include <stdint.h>
uint64_t df_func1(uint64_t a) { return a + 1; }
uint64_t df_func2(uint64_t a, uint64_t b) { return a + b; }
int main(void) { return (int)df_func2(df_func1(1), 2); }
"""


@pytest.fixture(scope="module")
def c_file(tmp_path_factory):
    assert shutil.which("gcc"), "gcc is needed to build the test ELF files"
    d = tmp_path_factory.mktemp("elf")
    src = d / "eight_args_c.c"
    src.write_text(C_SOURCE)
    return src


def nm(path) -> dict[str, int]:
    """Function addresses by binutils nm: the oracle independent of pyelftools."""
    out = subprocess.run(["nm", "--defined-only", str(path)], check=True, capture_output=True,
                         text=True).stdout
    return {p[2]: int(p[0], 16) for p in (line.split() for line in out.splitlines())
            if len(p) == 3 and p[1] in "tT"}


def test_sym_line_symbol_display_and_params():
    line = {"t": "sym", "pc": "0x10", "module": "app.m", "qualname": "C.f", "file": "/a.py", "line": 3,
            "params": [["self", "POSITIONAL_OR_KEYWORD"], ["a", "VAR_POSITIONAL"], ["kw", "VAR_KEYWORD"]]}
    s = symbols.Symbol.from_json(line)
    assert s.pc == 0x10 and s.display == "app.m.C.f"
    assert [s.param(i) for i in range(4)] == ["self", "*a", "**kw", None]
    assert s.to_json() == line  # the writer's line and the reader's symbol are one type
    with pytest.raises(ValueError, match="bad sym line"):
        symbols.Symbol.from_json({"t": "sym", "pc": "zz", "qualname": "f"})


def test_symbol_table_detects_collisions():
    tab = symbols.SymbolTable()
    a = symbols.Symbol(1, "m", "f", "/m.py", 1)
    assert tab.add(a) and tab.add(a._replace())  # the same function again
    assert not tab.add(symbols.Symbol(1, "m", "g", "/m.py", 9))
    assert not tab.add(a._replace(file="/other/m.py"))  # a module imported from two files
    assert tab.symbols[1] is a
    assert "pc 0x0000000000000001 names both m.f (/m.py:1) and m.g (/m.py:9)" in tab.describe_collisions()[0]
    assert len(tab.collisions) == 2


def test_the_writer_registry_emits_each_symbol_once_and_refuses_collisions():
    emitted: list[bytes] = []
    tab = symbols.SymbolTable(lambda line, remember: emitted.append(line) if remember else None)
    f = symbols.Symbol(symbols.pc_of("m", "f", 1), "m", "f", "/m.py", 1, (("x", "POSITIONAL_OR_KEYWORD"),))
    clash = f._replace(file="/elsewhere/m.py")
    assert tab.register([f, f]) == [] and tab.collides(clash) and not tab.collides(f)
    assert tab.register([clash]) == [clash] and tab.get(f.pc) is f
    assert [json.loads(x) for x in emitted] == [f.to_json()]


def test_kallsyms_lookup(tmp_path):
    p = tmp_path / "kallsyms"
    p.write_text("ffffffff81000000 T _stext\n"
                 "ffffffff81000100 t helper\n"
                 "ffffffff81000200 D some_data\n"
                 "ffffffffc0001000 t df_func1\t[eight_args_c]\n"
                 "ffffffffc0001040 t df_func2\t[eight_args_c]\n"
                 "garbage line\n")
    ks = symbols.KernelSymbols()
    assert ks.add_kallsyms(p) == 4
    assert ks.lookup(0xFFFFFFFFC0001040).display == "df_func2 [eight_args_c]"
    assert ks.lookup(0xFFFFFFFFC0001044).display == "df_func2+0x4 [eight_args_c]"
    assert ks.lookup(0xFFFFFFFF81000210).display == "helper+0x110"  # data symbols are not code
    assert ks.lookup(0x1000) is None


def test_kallsyms_errors(tmp_path):
    p = tmp_path / "k"
    p.write_text("this is not kallsyms\n")
    with pytest.raises(CorruptBufferError, match="no kallsyms lines"):
        symbols.KernelSymbols().add_kallsyms(p)
    with pytest.raises(CorruptBufferError, match="cannot read kallsyms"):
        symbols.KernelSymbols().add_kallsyms(tmp_path / "absent")


def test_vmlinux_like_executable(c_file):
    exe = c_file.with_name("vmlinux")
    subprocess.run(["gcc", "-O1", "-no-pie", "-o", str(exe), str(c_file)], check=True)
    ks = symbols.KernelSymbols()
    assert ks.add_elf(exe) >= 3
    addrs = nm(exe)
    assert ks.lookup(addrs["df_func2"]).display == "df_func2"
    assert ks.lookup(addrs["df_func1"] + 1).display == "df_func1+0x1"
    size = int(subprocess.run(["nm", "-S", str(exe)], check=True, capture_output=True, text=True)
               .stdout.split(" T df_func1")[0].split()[-1], 16)
    after = ks.lookup(addrs["df_func1"] + size)  # the function's ELF size bounds it
    assert after is None or after.qualname != "df_func1"


def test_module_object_is_placed_relative_to_its_base(c_file, tmp_path):
    ko = tmp_path / "eight_args_c.ko"
    subprocess.run(["gcc", "-O1", "-c", "-o", str(ko), str(c_file)], check=True)
    rel = nm(ko)
    base = 0xFFFFFFFFC0002000
    ks = symbols.KernelSymbols()
    ks.add_elf(ko, base)
    assert ks.lookup(base + rel["df_func2"]).display == "df_func2 [eight_args_c]"
    # no base given: found through a kallsyms line naming one of the module's functions
    kall = tmp_path / "kallsyms"
    kall.write_text(f"{base + rel['df_func1']:x} t df_func1\t[eight_args_c]\n")
    ks2 = symbols.KernelSymbols()
    ks2.add_kallsyms(kall)
    ks2.add_elf(ko)
    assert ks2.lookup(base + rel["df_func2"]).display == "df_func2 [eight_args_c]"
    with pytest.raises(CorruptBufferError, match="cannot place module 'eight_args_c'"):
        symbols.KernelSymbols().add_elf(ko)


def test_not_an_elf(tmp_path):
    p = tmp_path / "x.ko"
    p.write_bytes(b"not an elf at all")
    with pytest.raises(CorruptBufferError, match="x.ko: not an ELF file"):
        symbols.KernelSymbols().add_elf(p, 0)


def test_symbolizer_prefers_the_trace_table(tmp_path):
    kall = tmp_path / "kallsyms"
    kall.write_text("0000000000001000 T kfunc\n")
    ks = symbols.KernelSymbols()
    ks.add_kallsyms(kall)
    table = {0x1000: symbols.Symbol(0x1000, "app", "f")}
    names = symbols.Symbolizer(table, ks)
    assert names.name(0x1000) == "app.f"
    assert names.name(0x1004) == "kfunc+0x4"
    assert names.name(0x10) == "0x10"
