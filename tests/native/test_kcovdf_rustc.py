"""Rust: rustc's IR lowered to LLVM 19, kcovdf rustc, cargo's RUSTC_WRAPPER, and the series' Rust cases."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kcovdf.native import ir_pass, lower, selftest
from kcovdf.runtime.device import Device
from native.irtools import verify

pytestmark = pytest.mark.usefixtures("llvm")

#: A crate that uses std (formatting, Vec, String): its IR holds what rustc's LLVM writes.
CRATE = r"""
#[repr(C)]
pub struct Pair { pub a: u64, pub b: u64 }
#[no_mangle] #[inline(never)]
pub extern "C" fn sum(p: *const Pair) -> u64 { if p.is_null() { 0 } else { unsafe { (*p).a + (*p).b } } }
pub fn names(v: &[String]) -> String { v.iter().map(|s| format!("{s}!")).collect::<Vec<_>>().join(",") }
#[no_mangle] pub extern "C" fn count(n: usize) -> usize { names(&vec!["a".to_string(); n]).len() }
"""


@pytest.fixture(scope="module")
def rustc() -> str:
    found = shutil.which("rustc")
    if not found:
        pytest.fail("the Rust tests need rustc (and cargo): install Rust")
    return found


@pytest.fixture(scope="module")
def crate_ir(rustc: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("crate")
    (d / "lib.rs").write_text(CRATE)
    subprocess.run([rustc, "--crate-type=cdylib", "--edition=2021", "-C", "opt-level=2", "-g",
                    "-C", "codegen-units=1", "--emit=llvm-ir", "-o", str(d / "lib.ll"), str(d / "lib.rs")],
                   check=True)
    return d / "lib.ll"


def test_rustc_ir_is_not_llvm_19_ir_until_lowered(crate_ir: Path, tmp_path: Path) -> None:
    from kcovdf.native import toolchain

    raw = subprocess.run([toolchain.tool("llvm-as"), str(crate_ir), "-o", "/dev/null"],
                         capture_output=True, text=True)
    assert raw.returncode != 0   # the reason this module exists
    out = tmp_path / "lib19.ll"
    applied = lower.lower(crate_ir, out)
    assert "captures(none) is nocapture" in applied
    verify(out)
    inst = tmp_path / "inst.ll"
    ir_pass.instrument(out, inst)
    verify(inst)
    text = inst.read_text()
    assert "call void @__sanitizer_cov_trace_args(i64 ptrtoint (ptr @sum to i64), i32 0, i32 16" in text


def test_a_construct_no_rule_lowers_is_named_with_its_line(crate_ir: Path, tmp_path: Path) -> None:
    lines = crate_ir.read_text().splitlines()
    at = next(i for i, ln in enumerate(lines) if ln.startswith("define "))
    lines[at] = lines[at].replace("define ", "define frobnicate_linkage ", 1)
    bad = tmp_path / "bad.ll"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(lower.LoweringError, match=rf"bad.ll:{at + 1}:\d+: LLVM 19 cannot read"):
        lower.lower(bad, tmp_path / "out.ll")


@pytest.mark.c_core(reason="native code records through the C core")
def test_eight_args_rust(tmp_path: Path, rustc: str) -> None:
    lib = ctypes.CDLL(str(selftest.library("eight_args_rust")))
    path = tmp_path / "t.kdf"
    selftest.record(path, lambda: selftest.call_all(lib))
    lines = selftest.view_lines(path)
    assert len(lines) == 18
    for want in selftest.expected("eight_args_rust"):
        assert want in lines


@pytest.mark.c_core(reason="native code records through the C core")
def test_rust_ffi_contract_is_flagged_from_the_trace(tmp_path: Path, rustc: str) -> None:
    lib = ctypes.CDLL(str(selftest.library("rust_ffi_contract")))
    train, broken, model = tmp_path / "train.kdf", tmp_path / "broken.kdf", tmp_path / "c.toml"
    selftest.contract_traces(lib, train, broken)
    lines = selftest.view_lines(broken)
    assert lines == ["rust_ffi_contract.df_ffi_caller(n=0x4)", lines[1],
                     "0 = rust_ffi_contract.df_fill()", "-14 = rust_ffi_contract.df_ffi_caller()"]
    assert lines[1].startswith("rust_ffi_contract.df_fill(out=0x") and lines[1].endswith(", n=0x4)")
    kcovdf = [sys.executable, "-m", "kcovdf", "contracts"]
    subprocess.run([*kcovdf, "infer", str(train), "-o", str(model)], check=True, capture_output=True)
    done = subprocess.run([*kcovdf, "check", str(broken), "--contracts", str(model)],
                          capture_output=True, text=True)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "VIOLATION [post] rust_ffi_contract:df_ffi_caller" in done.stdout and "[ret=-14]" in done.stdout


@pytest.mark.c_core(reason="native code records through the C core")
def test_cargo_with_rustc_wrapper(tmp_path: Path, rustc: str) -> None:
    if not shutil.which("cargo"):
        pytest.fail("the Rust tests need cargo: install Rust")
    crate = tmp_path / "demo"
    (crate / "src").mkdir(parents=True)
    (crate / "Cargo.toml").write_text('[package]\nname = "demo"\nversion = "0.1.0"\nedition = "2021"\n\n'
                                      '[lib]\ncrate-type = ["cdylib"]\n')
    (crate / "src" / "lib.rs").write_text(
        '#[no_mangle]\n#[inline(never)]\npub extern "C" fn triple(x: i64) -> i64 { helper(x) * 3 }\n'
        '#[inline(never)]\nfn helper(x: i64) -> i64 { std::hint::black_box(x) }\n')
    wrapper = Path(sys.executable).with_name("kcovdf-rustc")
    env = dict(os.environ, RUSTC_WRAPPER=str(wrapper), CARGO_TARGET_DIR=str(tmp_path / "target"),
               CARGO_NET_OFFLINE="true")
    subprocess.run(["cargo", "build", "--release", "-q"], cwd=crate, env=env, check=True)
    lib = ctypes.CDLL(str(tmp_path / "target" / "release" / "libdemo.so"))
    lib.triple.argtypes, lib.triple.restype = [ctypes.c_int64], ctypes.c_int64
    path = tmp_path / "t.kdf"
    with Device(file=path) as dev:
        dev.init_trace(1 << 12)
        dev.enable()
        assert lib.triple(-5) == -15
        dev.disable()
    assert selftest.view_lines(path) == ["demo.triple(x=-5)", "demo.helper(x=-5)", "-5 = demo.helper()",
                                         "-15 = demo.triple()"]
