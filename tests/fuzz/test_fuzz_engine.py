"""The engine in process: determinism, the Atheris-style API, feedback that finds blind spots."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from fuzzkit import BRANCHY

from kcovdf.fuzz.engine import Engine, _fuzz
from kcovdf.fuzz.harness import instrument
from kcovdf.fuzz.options import Options
from kcovdf.instrument.hook import uninstall


def _target(tmp_path: Path, name: str, source: str) -> Callable[[bytes], object]:
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    sys.path.insert(0, str(tmp_path))
    hook = instrument([name])
    try:
        module = __import__(name)
    finally:
        uninstall(hook)
        sys.path.remove(str(tmp_path))
    return module.TestOneInput


#: The engine's two paths: the C loop (kcovdf._core._fuzz) and its Python twin.
PATHS = ["c", "py"] if _fuzz is not None else ["py"]


def _inputs(target: Callable[[bytes], object], path: str = "c",
            **flags: object) -> tuple[int, list[bytes], str]:
    out = io.StringIO()
    engine = Engine(target, Options(calltree=0, **flags), out)  # type: ignore[arg-type]
    if path == "py":
        engine.fb = None
    engine.log_inputs = []
    status = engine.fuzz()
    return status, engine.log_inputs, out.getvalue()


@pytest.mark.parametrize("path", PATHS)
def test_a_fixed_seed_gives_the_same_inputs_in_the_same_order(tmp_path: Path, path: str) -> None:
    target = _target(tmp_path, f"fz_branchy_{path}", BRANCHY)
    first = _inputs(target, path, runs=3000, seed=11)
    second = _inputs(target, path, runs=3000, seed=11)
    other = _inputs(target, path, runs=3000, seed=12)
    assert first[0] == 0 and len(first[1]) == 3000
    assert first[1] == second[1]
    assert first[1] != other[1]


@pytest.mark.parametrize("name, source", [
    ("fz_member", """
        def TestOneInput(data):
            if data.decode("latin-1") in ("zebra-crossing", "yak"):
                raise LookupError("member")
    """),
    ("fz_table", """
        TABLE = {"q9-key": 1, "other": 2}
        def TestOneInput(data):
            if TABLE.get(data.decode("latin-1")) == 1:
                raise LookupError("table")
    """),
    ("fz_match", """
        def TestOneInput(data):
            match data.decode("latin-1"):
                case "engage!":
                    raise LookupError("match")
    """),
    ("fz_big", """
        def TestOneInput(data):
            if int.from_bytes(data[:10], "little") == 0xABCDEF0123456789FEDC:
                raise LookupError("big")
    """),
    ("fz_flow", """
        import zlib
        HANDLES = {}
        def make(payload: bytes) -> int:
            HANDLES[zlib.crc32(payload) & 0xFFFF] = payload
            return zlib.crc32(payload) & 0xFFFF
        def use(handle: int) -> None:
            if handle in HANDLES:
                raise LookupError("flow")
        def TestOneInput(data):
            HANDLES.clear()
            make(data[2:])
            use(int.from_bytes(data[:2], "little"))
    """),
])
@pytest.mark.parametrize("path", PATHS)
def test_blind_spots_of_atheris_are_found_within_a_fixed_number_of_runs(tmp_path: Path, name: str,
                                                                        source: str, path: str) -> None:
    target = _target(tmp_path, f"{name}_{path}", source)
    status, inputs, out = _inputs(target, path, runs=20000, seed=3, artifact_prefix=f"{tmp_path}/")
    assert status == 77, out
    assert "uncaught LookupError" in out


def test_setup_and_fuzz_run_an_atheris_harness_with_an_import_change(tmp_path: Path) -> None:
    (tmp_path / "lib_word.py").write_text("def check(w):\n    if w == 'hey!':\n        raise KeyError(w)\n")
    (tmp_path / "main_harness.py").write_text(textwrap.dedent("""
        import sys
        import kcovdf.fuzz as atheris

        with atheris.instrument_imports():
            import lib_word

        def TestOneInput(data):
            fdp = atheris.FuzzedDataProvider(data)
            lib_word.check(fdp.ConsumeUnicodeNoSurrogates(8))

        if __name__ == "__main__":
            atheris.Setup(sys.argv, TestOneInput)
            atheris.Fuzz()
    """))
    proc = subprocess.run([sys.executable, "main_harness.py", "-runs=20000", "-seed=4"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 77, proc.stderr
    assert "KeyError: 'hey!'" in proc.stderr
    assert "lib_word.check(w='hey!')" in proc.stderr
