"""``kcovdf.runtime.core`` is the one place that chooses the C core or its Python twin.

Nothing else reads ``KCOVDF_CORE`` or imports an implementation; the decoder's scanner
and the Switch's code patching follow the choice through ``core``.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

import kcovdf
from kcovdf.read import decode
from kcovdf.runtime import core

SRC = Path(kcovdf.__file__).parent
CHOOSER = SRC / "runtime" / "core.py"
IMPLEMENTATIONS = {"kcovdf._core._recorder", "kcovdf.runtime.twin"}


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if p != CHOOSER)


def test_only_core_reads_kcovdf_core() -> None:
    """No other module looks up the variable (a help text may name it)."""
    readers = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and node.args and \
                    isinstance(node.args[0], ast.Constant) and node.args[0].value == "KCOVDF_CORE":
                readers.append(f"{path.relative_to(SRC)}:{node.lineno}")
            if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and \
                    node.slice.value == "KCOVDF_CORE":
                readers.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert not readers, f"KCOVDF_CORE read outside runtime/core.py: {readers}"


def test_only_core_imports_an_implementation() -> None:
    importers = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            if IMPLEMENTATIONS & set(names):
                importers.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert not importers, f"a recorder implementation imported outside runtime/core.py: {importers}"


def test_both_implementations_provide_the_whole_api() -> None:
    for which in ("c", "py"):
        module = core.load(which)
        assert all(callable(getattr(module, name)) for name in core.API if name != "REDACTED")
        protocol = {n for n in vars(core.Recorder) if not n.startswith("_")} - {"REDACTED"}
        assert protocol <= set(core.API), protocol - set(core.API)


def test_the_c_extension_holds_the_api_and_its_test_seams_only() -> None:
    """No benchmark helper (the old ``_noop``) nor the reader's scanner in the recorder."""
    from kcovdf._core import _recorder

    seams = {"_encode_general", "_encode_cached", "_layout", "_frames"}
    public = {n for n in vars(_recorder) if not n.startswith("__")}
    assert public == set(core.API) | seams, public ^ (set(core.API) | seams)


def test_the_decoder_scans_with_the_core_in_use(recorder: core.Recorder) -> None:
    if core.name == "c":
        assert decode._scanner() is not None and decode._scanner() is decode._c_scan
    else:
        assert decode._scanner() is None  # read/walk.py, the twin


def test_the_switch_patches_code_through_core(recorder: core.Recorder, monkeypatch) -> None:
    from kcovdf.instrument import switch

    calls: list[tuple[object, object]] = []

    def spy(func: types.FunctionType, code: types.CodeType) -> None:
        calls.append((func, code))
        func.__code__ = code

    def f() -> int:
        return 1

    monkeypatch.setattr(core, "set_code", spy)
    assert switch.set_code(f, (lambda: 2).__code__)
    assert calls and calls[0][0] is f and f() == 2


@pytest.mark.parametrize("which", ["c", "py"])
def test_kcovdf_core_chooses_for_the_recorder_and_the_decoder(which: str) -> None:
    code = ("from kcovdf.runtime import core; from kcovdf.read import decode; "
            "print(core.name, decode._scanner() is not None)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "KCOVDF_CORE": which}).stdout.split()
    assert out == [which, str(which == "c")]
