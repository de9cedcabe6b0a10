"""The table reader: complete lines, truncated last line, and names no encoder can write."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from kcovdf import tracefile


def test_truncated_last_line_is_a_note_not_an_error() -> None:
    good = json.dumps({"t": "task", "pid": 1, "tid": 2, "name": "main"}).encode()
    lines, notes = tracefile.parse(good + b"\n" + good[:10], "x.kdf")
    assert lines == [{"t": "task", "pid": 1, "tid": 2, "name": "main"}]
    assert notes == ["x.kdf: table: last line truncated (10 bytes ignored)"]


def test_garbage_line_in_the_middle_is_named() -> None:
    lines, notes = tracefile.parse(b'{"t":"info"}\nnot json\n{"t":"info"}\n', "y.kdf")
    assert len(lines) == 2
    assert notes == ["y.kdf: table line 2: not a JSON object (skipped)"]


def test_lone_surrogates_become_replacement_chars_and_pairs_survive() -> None:
    raw = b'{"t":"type","class":"m.A\\ud800","fields":["\\ud83d\\ude00"]}\n'
    [line], notes = tracefile.parse(raw, "z")
    assert notes == []
    assert line["class"] == "m.A\ufffd"
    assert line["fields"] == ["\U0001f600"]


def test_class_named_with_a_lone_surrogate_exports_to_parquet(tmp_path) -> None:
    # In a child: the type line of this class is remembered for the whole process.
    script = textwrap.dedent(f"""
        import kcovdf
        from kcovdf.runtime import core
        from kcovdf.read import decode
        from pathlib import Path
        from kcovdf.tools.export.parquet import ParquetExporter
        C = type("Odd", (), {{}})
        C.__qualname__ = "Odd\\ud800"
        with kcovdf.Device(file={str(tmp_path / "t.kdf")!r}) as dev:
            dev.init_trace(1 << 12)
            dev.enable()
            core.entry(7, C())
            dev.disable()
        tr = decode.load({str(tmp_path / "t.kdf")!r})
        names = sorted(t.cls for t in tr.types.values())
        assert any(n.endswith("Odd\\ufffd") for n in names), names
        ParquetExporter().write(tr, Path({str(tmp_path / "out")!r}))
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_every_writer_puts_a_lone_surrogate_in_a_readable_line() -> None:
    # sym lines used to be written with surrogatepass: bytes that are not UTF-8, so the
    # reader skipped the line and the function lost its name
    from kcovdf.symbols import Symbol, SymbolTable, pc_of

    out: list[bytes] = []
    syms = SymbolTable(lambda line, remember: out.append(line))
    sym = Symbol(pc_of("m", "f\ud800", 1), "m", "f\ud800", "/m.py", 1, (("x", "POSITIONAL_OR_KEYWORD"),))
    syms.register([sym])
    assert out and out[0] == tracefile.line(sym.to_json())
    out[0].decode("utf-8")  # valid UTF-8
    [parsed], notes = tracefile.parse(out[0] + b"\n", "t")
    assert notes == [] and parsed["qualname"] == "f\ufffd"
    assert tracefile.line({"name": "é"}) == '{"name":"é"}'.encode()
