"""kcovdf cc: -c, executables and a C extension built with CC="kcovdf cc", in one trace with Python."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kcovdf.native import cc

ROOT = Path(__file__).resolve().parents[2]
KCOVDF = [sys.executable, "-m", "kcovdf"]

pytestmark = pytest.mark.usefixtures("llvm")


def test_compile_only_then_link_an_executable(tmp_path: Path) -> None:
    (tmp_path / "lib.c").write_text("#include <stdint.h>\nstruct p { int a, b; };\n"
                                    "int sum(struct p *q) { return q->a + q->b; }\n")
    (tmp_path / "main.c").write_text('#include <stdio.h>\nstruct p { int a, b; };\nint sum(struct p *);\n'
                                     'int main(void) { struct p q = {2, 40}; printf("%d\\n", sum(&q)); '
                                     'return 0; }\n')
    subprocess.run([*KCOVDF, "cc", "-O2", "-c", "lib.c", "-o", "lib.o"], cwd=tmp_path, check=True)
    subprocess.run([*KCOVDF, "cc", "-O2", "main.c", "lib.o", "-o", "prog"], cwd=tmp_path, check=True)
    # without a recorder the program runs as it would without kcovdf
    assert subprocess.run(["./prog"], cwd=tmp_path, capture_output=True, text=True).stdout == "42\n"
    symbols = subprocess.run(["nm", str(tmp_path / "prog")], capture_output=True, text=True,
                             check=True).stdout
    assert " t __sanitizer_cov_trace_args" in symbols   # the runtime: local, one copy


def test_compile_errors_are_clang_s(tmp_path: Path) -> None:
    (tmp_path / "bad.c").write_text("int f( {\n")
    done = subprocess.run([*KCOVDF, "cc", "-c", "bad.c"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 1
    assert "bad.c:1:" in done.stderr and "kcovdf cc: clang-19 could not compile bad.c" in done.stderr


def test_split_keeps_link_arguments_in_order() -> None:
    flags, link, sources, out, modes = cc.split(["-O2", "-Iinc", "a.c", "-lm", "b.o", "-o", "x",
                                                 "-Wl,-z,now", "-MMD", "-MF", "a.d"])
    assert sources == ["a.c"] and out == "x" and not modes
    assert flags == ["-O2", "-Iinc", "-MMD", "-MF", "a.d"]
    assert link == ["-O2", "-Iinc", None, "-lm", "b.o", "-Wl,-z,now"]


@pytest.mark.c_core(reason="the mixed trace records through the C core")
def test_c_extension_built_with_cc_kcovdf_cc_in_one_trace_with_python(tmp_path: Path) -> None:
    target = tmp_path / "site"
    ext = shutil.copytree(ROOT / "examples" / "native" / "ext", tmp_path / "ext")  # a fresh build dir
    env = dict(os.environ, CC=f"{sys.executable} -m kcovdf cc")
    # build isolation would hide kcovdf from the compiler it runs (docs/native.md)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "--no-cache-dir", "--target", str(target), str(ext)],
                   env=env, check=True, capture_output=True)
    script = f"""
import sys
sys.path.insert(0, {str(target)!r})
import kcovdf, demo_ext
from kcovdf.runtime.device import Device

@kcovdf.instrument_func
def on_distance(d):
    return d * 10

@kcovdf.instrument_func
def measure(x, y):
    return demo_ext.apply(on_distance, x, y)

with Device(file={str(tmp_path / "t.kdf")!r}) as dev:
    dev.init_trace(1 << 16)
    dev.enable()
    assert measure(3, -4) == 70
    dev.disable()
"""
    (tmp_path / "mixed.py").write_text(script)   # a file: instrument_func needs the source
    subprocess.run([sys.executable, "mixed.py"], check=True, cwd=tmp_path)
    view = subprocess.run([*KCOVDF, "view", str(tmp_path / "t.kdf")], capture_output=True, text=True,
                          check=True).stdout
    lines = [ln for ln in view.splitlines() if ln and not ln.startswith("#")]
    assert lines[0] == "__main__.measure(x=3, y=-4)"
    assert lines[1].startswith("  demo_ext.apply(self=_object(ob_refcnt=")  # C, under Python
    assert lines[2].startswith("    demo_ext.manhattan(arg0=0x3, ")          # C under C
    assert lines[3] == "    7 = demo_ext.manhattan()"
    # Python under C
    assert lines[4:6] == ["    __main__.on_distance(d=7)", "    70 = __main__.on_distance()"]
    assert lines[6].endswith("= demo_ext.apply()") and lines[6].startswith("  _object(")
    assert lines[7] == "70 = __main__.measure()"


def test_dependency_files_name_the_object(tmp_path: Path) -> None:
    (tmp_path / "h.h").write_text("#define ONE 1\n")
    (tmp_path / "d.c").write_text('#include "h.h"\nint f(int a) { return a + ONE; }\n')
    subprocess.run([*KCOVDF, "cc", "-MD", "-c", "d.c", "-o", "d.o"], cwd=tmp_path, check=True)
    assert (tmp_path / "d.d").read_text().split() == ["d.o:", "d.c", "h.h"]


def test_a_missing_tool_is_named_with_its_package(monkeypatch: pytest.MonkeyPatch) -> None:
    from kcovdf.native import toolchain

    monkeypatch.setattr(toolchain.shutil, "which", lambda *a, **k: None)
    toolchain.tool.cache_clear()
    try:
        want = r"opt-19 not found.*Debian's llvm-19 package \(apt-get install -y clang-19 llvm-19 "
        with pytest.raises(toolchain.ToolchainError, match=want):
            toolchain.tool("opt")
        assert cc.main(cc.argparse.Namespace(cc_args=["-c", "x.c"])) == 1   # kcovdf cc: says why
    finally:
        toolchain.tool.cache_clear()
