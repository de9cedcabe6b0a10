"""kcovdf llvm-pass: placement, skips, struct tables, options and bad input, on real clang-19 IR."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from kcovdf.abi import fnv1a64
from kcovdf.native import ir_pass
from native.irtools import compile_ir, verify

pytestmark = pytest.mark.usefixtures("llvm")

SOURCE = r"""
#include <stdint.h>
#include <stdarg.h>
typedef struct pair { uint64_t a; uint64_t b; } pair_t;
struct flags { unsigned lo : 3; int hi : 5; double d; char name[4]; };
__attribute__((noinline)) uint64_t two(uint64_t a, uint64_t b) { return a + b; }
__attribute__((noinline)) int branchy(int x) { if (x > 3) return x * 2; return -x; }
__attribute__((noinline)) uint64_t by_ptr(const pair_t *p) { return p->a; }
__attribute__((noinline)) pair_t make(uint64_t a) { pair_t p = {a, a + 1}; return p; }
__attribute__((noinline)) void sink(struct flags *f) { f->lo = 1; }
__attribute__((noinline)) int none(void) { return 7; }
int vsum(int n, ...) { va_list ap; va_start(ap, n); int s = va_arg(ap, int); va_end(ap); return s + n; }
__attribute__((naked)) void bare(void) { __asm__("ret"); }
"""


def _functions(ll: str) -> dict[str, str]:
    """Body of each defined function, by name."""
    return {m.group(1): m.group(0) for m in re.finditer(r"^define [^@]*@(\w+)\(.*?^}", ll, re.M | re.S)}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ir_pass.Result]:
    d = tmp_path_factory.mktemp("pass")
    (d / "m.c").write_text(SOURCE)
    ll = compile_ir(d / "m.c")
    out = d / "m_inst.ll"
    return out, ir_pass.instrument(ll, out)


def test_output_is_valid_for_llvm_19(built: tuple[Path, ir_pass.Result]) -> None:
    verify(built[0])
    assert built[0].stat().st_mode & 0o777 == 0o600


def test_one_trace_args_per_parameter_and_trace_ret_before_every_return(built) -> None:
    funcs = _functions(built[0].read_text())
    two = funcs["two"]
    assert re.findall(r"trace_args\(i64 ptrtoint \(ptr @two to i64\), i32 (\d)", two) == ["0", "1"]
    rets = funcs["branchy"].count("\n  ret ")
    assert funcs["branchy"].count("@__sanitizer_cov_trace_ret(") == rets >= 1
    # every callback sits behind the guard: a load of the runtime's recording count
    assert two.count("load ptr, ptr @__kcovdf_active") == 1   # read once, at entry


def test_skipped_functions_are_named(built) -> None:
    text = built[0].read_text()
    funcs = _functions(text)
    for name in ("vsum", "bare"):
        assert "__sanitizer_cov" not in funcs[name], name
    messages = "\n".join(built[1].messages)
    assert "function 'vsum' left uninstrumented: variadic" in messages
    assert "function 'bare' left uninstrumented: naked" in messages
    assert "m.c:" in messages  # with the file and line of the function


def test_struct_pointer_and_struct_return_get_tables_with_the_type_hash(built) -> None:
    text = built[0].read_text()
    funcs = _functions(text)
    shape = fnv1a64(b"native.pair\0a\0b")
    signed = shape - (1 << 64) if shape >> 63 else shape
    call = re.search(r"trace_args\(i64 ptrtoint \(ptr @by_ptr to i64\), i32 0, i32 16, ptr %0, "
                     r"ptr (@__kcovdf_desc[.\d]*), i32 2\)", funcs["by_ptr"])
    assert call, funcs["by_ptr"]
    table = re.search(re.escape(call.group(1)) + r" = .*\[i64 (-?\d+), i64 (-?\d+), i64 (\d+)", text)
    assert int(table.group(1)) == signed and int(table.group(3)) == 1  # indirect: read nofault
    assert re.search(r"trace_ret\(.*@make.*i32 16, ptr %kcovdf.ret, ptr @__kcovdf_desc[.\d]*, i32 2\)",
                     funcs["make"])
    # the type table of the module names the fields
    assert '\\22class\\22:\\22native.pair\\22,\\22fields\\22:[\\22a\\22,\\22b\\22]' in text


def test_bitfields_floats_and_arrays_get_their_kinds(built) -> None:
    text = built[0].read_text()
    shape = fnv1a64(b"native.flags\0lo\0hi\0d\0name")
    signed = shape - (1 << 64) if shape >> 63 else shape
    row = re.search(rf"\[i64 {signed}, i64 (-?\d+), i64 1, i64 (\d+), i64 (\d+), i64 (\d+), i64 (\d+)\]",
                    text)
    assert row, "no table for struct flags"
    lay, lo, hi, d, name = (int(x) & ((1 << 64) - 1) for x in row.groups())
    assert lay >> 56 == 4 and (lay >> 52) & 0xF == 6          # 4 fields, OBJECT
    assert [(lay >> (4 * j)) & 0xF for j in range(4)] == [1, 1, 4, 1]   # INT, INT, FLOAT, INT
    assert lo >> 26 & 1 and (lo >> 12) & 127 == 3                  # a 3-bit bitfield
    assert hi >> 27 & 1 and (hi >> 20) & 63 == 3 and (hi >> 12) & 127 == 5  # signed, at bit 3
    assert d >> 32 == 8 and d & 0xFFF == 8
    assert name >> 32 == 16 and name & 0xFFF == 4


def test_function_without_parameters_gets_an_arg_none_entry(built) -> None:
    none = _functions(built[0].read_text())["none"]
    assert "trace_args(i64 ptrtoint (ptr @none to i64), i32 253, i32 0, ptr null" in none


def test_module_registers_its_functions(built) -> None:
    text = built[0].read_text()
    assert "@llvm.global_ctors" in text and "call void @__kcovdf_register(ptr @__kcovdf_module)" in text
    assert "\\22qualname\\22:\\22two\\22" in text and "[\\22a\\22,\\22NATIVE\\22]" in text


def _run_pass(tmp_path: Path, src: str, *options: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    (tmp_path / "x.c").write_text(src)
    ll = compile_ir(tmp_path / "x.c")
    out = tmp_path / "x_inst.ll"
    done = subprocess.run([sys.executable, "-m", "kcovdf", "llvm-pass", str(ll), "-o", str(out), *options],
                          capture_output=True, text=True)
    return done, out


def test_options_args_ret_allow_deny(tmp_path: Path) -> None:
    src = "int f(int a) { return a; }\nint g(int a) { return a; }\n"
    done, out = _run_pass(tmp_path, src, "--no-ret")
    assert done.returncode == 0, done.stderr
    funcs = _functions(out.read_text())
    assert "trace_args" in funcs["f"] and "trace_ret" not in funcs["f"]
    done, out = _run_pass(tmp_path, src, "--no-args")
    funcs = _functions(out.read_text())
    assert "trace_args" not in funcs["f"] and "trace_ret" in funcs["f"]
    done, out = _run_pass(tmp_path, src, "--allow", "f*")
    funcs = _functions(out.read_text())
    assert "trace_args" in funcs["f"] and "__sanitizer" not in funcs["g"]
    done, out = _run_pass(tmp_path, src, "--allow", "*", "--deny", "g")
    funcs = _functions(out.read_text())
    assert "trace_args" in funcs["f"] and "__sanitizer" not in funcs["g"]
    verify(out)


def test_kernel_abi_is_the_kernels_placement(tmp_path: Path) -> None:
    src = "void v(int a) { (void)a; }\nint n(void) { return 1; }\n"
    done, out = _run_pass(tmp_path, src, "--kernel-abi")
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    funcs = _functions(text)
    assert "trace_args" in funcs["v"] and "trace_ret" not in funcs["v"]   # void: no return callback
    assert "trace_args" not in funcs["n"] and "trace_ret" in funcs["n"]   # no parameter: no entry
    assert "__kcovdf_active" not in text and "global_ctors" not in text
    verify(out)


def test_ir_that_does_not_parse_is_named_with_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.ll"
    bad.write_text("define i32 @f(i32 %a) {\n  ret i32 %a\n}\ndefine i32 @g(i32 %a) {\n"
                   "  %x = frobnicate i32 %a\n  ret i32 %x\n}\n")
    out = tmp_path / "out.ll"
    done = subprocess.run([sys.executable, "-m", "kcovdf", "llvm-pass", str(bad), "-o", str(out)],
                          capture_output=True, text=True)
    assert done.returncode == 1
    assert f"{bad}:5:" in done.stderr and "error: expected instruction opcode" in done.stderr
    assert not out.exists()


def test_a_construct_the_pass_does_not_handle_leaves_the_function_alone(tmp_path: Path) -> None:
    src = ("int h(int);\n"
           "int tail(int a) { __attribute__((musttail)) return h(a); }\n"
           "int plain(int a) { return h(a) + 1; }\n")
    done, out = _run_pass(tmp_path, src)
    assert done.returncode == 0, done.stderr
    assert "function 'tail' left uninstrumented: a musttail call" in done.stderr
    assert re.search(r"x\.c:2: function 'tail'", done.stderr)
    funcs = _functions(out.read_text())
    assert "__sanitizer" not in funcs["tail"] and "trace_args" in funcs["plain"]
    verify(out)


def test_missing_debug_info_is_told(tmp_path: Path) -> None:
    (tmp_path / "x.c").write_text("int f(int a) { return a; }\n")
    ll = compile_ir(tmp_path / "x.c", "-O1")             # no -g: no DISubprogram
    result = ir_pass.instrument(ll, tmp_path / "o.ll")
    assert any("without debug info" in m and "-g" in m for m in result.messages)
    assert "__sanitizer" not in (tmp_path / "o.ll").read_text()
    ll = compile_ir(tmp_path / "x.c", "-O1", "-gline-tables-only")
    result = ir_pass.instrument(ll, tmp_path / "o2.ll")
    assert any("no debug types" in m for m in result.messages)
    assert "trace_args" in (tmp_path / "o2.ll").read_text()
    verify(tmp_path / "o2.ll")


def test_missing_input_is_named(tmp_path: Path) -> None:
    with pytest.raises(ir_pass.PassError, match="no such file"):
        ir_pass.instrument(tmp_path / "nope.ll", tmp_path / "out.ll")
