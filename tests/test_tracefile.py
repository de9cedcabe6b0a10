"""kcovdf.tracefile: table lines, task file names, the header, run.json and private atomic writes."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap

import pytest

from kcovdf import tracefile
from kcovdf.errors import CorruptBufferError


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


# --- task file names ------------------------------------------------------------------

def test_task_file_names_round_trip_and_sort_in_reading_order() -> None:
    names = ["task-7-9-2.kdf", "task-7-9.kdf", "task-10-1.kdf", "task-7-9-1.kdf", "task-7-10.kdf"]
    parsed = sorted(tracefile.parse_task_name(n) for n in names)
    assert [t.name for t in parsed] == ["task-7-9.kdf", "task-7-9-1.kdf", "task-7-9-2.kdf",
                                        "task-7-10.kdf", "task-10-1.kdf"]
    assert tracefile.parse_task_name("task-7-9-1.kdf") == tracefile.TaskFile(7, 9, 1)
    for odd in ("task-7-9-0.kdf", "task-07-9.kdf", "task-7.kdf", "task-7-9.kdf.tmp", "task-a-9.kdf",
                "task-7-9-1-2.kdf", "run.json", "TASK-7-9.kdf"):
        assert tracefile.parse_task_name(odd) is None, odd


def test_free_task_path_skips_every_name_taken(tmp_path) -> None:
    assert tracefile.free_task_path(str(tmp_path), 3, 4) == str(tmp_path / "task-3-4.kdf")
    for name in ("task-3-4.kdf", "task-3-4-1.kdf"):
        (tmp_path / name).write_bytes(b"")
    assert tracefile.free_task_path(str(tmp_path), 3, 4) == str(tmp_path / "task-3-4-2.kdf")


def test_listing_sorts_every_entry(tmp_path) -> None:
    for name in ("run.json", "task-2-2.kdf", "task-1-5-1.kdf", "task-1-5.kdf", "task-x.kdf", "a.txt"):
        (tmp_path / name).write_bytes(b"")
    found = tracefile.list_dir(tmp_path)
    assert found.run_info
    assert [t.name for t in found.tasks] == ["task-1-5.kdf", "task-1-5-1.kdf", "task-2-2.kdf"]
    assert found.unknown == ["a.txt", "task-x.kdf"]


# --- header and run info ---------------------------------------------------------------

def test_header_round_trip_and_checks() -> None:
    page = tracefile.pack_header(64, pid=12, created_ns=34)
    assert len(page) == tracefile.FILE_HEADER_SIZE
    head = tracefile.read_header(page, "t.kdf")
    assert head == tracefile.Header(tracefile.FILE_MAGIC, tracefile.FORMAT_VERSION,
                                    tracefile.FILE_HEADER_SIZE, 64, 0, 0, 12, 34, 0)
    assert head.table_offset == tracefile.FILE_HEADER_SIZE + 64 * 8
    for offset, field in ((tracefile.HDR_WORDS, "words"), (tracefile.HDR_DROPS, "drops"),
                          (tracefile.HDR_OWNER, "owner"), (tracefile.HDR_PID, "pid"),
                          (tracefile.HDR_CREATED_NS, "created_ns"), (tracefile.HDR_FLAGS, "flags")):
        changed = bytearray(page)
        changed[offset:offset + 8] = (99).to_bytes(8, "little")
        assert getattr(tracefile.unpack_header(bytes(changed)), field) == 99, field
    with pytest.raises(CorruptBufferError, match="t.kdf: empty file"):
        tracefile.read_header(b"", "t.kdf")
    with pytest.raises(CorruptBufferError, match="t.kdf: not a .kdf trace file"):
        tracefile.read_header(page[:40], "t.kdf")
    bad = bytearray(page)
    bad[tracefile.HDR_HEADER_SIZE:tracefile.HDR_HEADER_SIZE + 4] = (512).to_bytes(4, "little")
    with pytest.raises(CorruptBufferError, match="t.kdf: header size 512, expected 4096"):
        tracefile.read_header(bytes(bad), "t.kdf")


def test_run_info_round_trip_and_errors(tmp_path) -> None:
    assert tracefile.read_run_info(tmp_path) is None
    tracefile.write_run_info(str(tmp_path), {"argv": ["p.py"]})
    assert tracefile.read_run_info(tmp_path) == {"format": tracefile.FORMAT_VERSION, "argv": ["p.py"]}
    assert stat.S_IMODE((tmp_path / "run.json").stat().st_mode) == 0o600
    (tmp_path / "run.json").write_text("{")
    with pytest.raises(CorruptBufferError, match="run.json: not valid JSON"):
        tracefile.read_run_info(tmp_path)
    (tmp_path / "run.json").write_text('{"format": 99}')
    with pytest.raises(CorruptBufferError, match="run.json: format version 99 is not supported"):
        tracefile.read_run_info(tmp_path)


# --- private files ----------------------------------------------------------------------

@pytest.mark.parametrize("umask", [0o022, 0o277, 0o000])
def test_private_files_and_directories_whatever_the_umask(tmp_path, umask: int) -> None:
    old = os.umask(umask)
    try:
        with tracefile.private_file(tmp_path / "a") as f:
            f.write(b"x")
        os.close(tracefile.create_private(str(tmp_path / "b")))
        tracefile.private_dir(tmp_path / "d")
    finally:
        os.umask(old)
    for name in ("a", "b"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o700


def test_private_file_appears_whole_or_not_at_all(tmp_path) -> None:
    out = tmp_path / "out"
    out.write_bytes(b"old")
    with pytest.raises(RuntimeError), tracefile.private_file(out) as f:
        f.write(b"half")
        raise RuntimeError("interrupted")
    assert out.read_bytes() == b"old" and os.listdir(tmp_path) == ["out"]
    with tracefile.private_file(out) as f:
        f.write(b"new")
    assert out.read_bytes() == b"new" and os.listdir(tmp_path) == ["out"]


def test_private_file_without_overwrite_never_clobbers(tmp_path) -> None:
    out = tmp_path / "out"
    with pytest.raises(FileExistsError, match="out exists"), \
            tracefile.private_file(out, overwrite=False) as f:
        f.write(b"mine")
        out.write_bytes(b"theirs")  # appeared while we wrote
    assert out.read_bytes() == b"theirs" and os.listdir(tmp_path) == ["out"]
    with pytest.raises(FileExistsError):
        os.close(tracefile.create_private(str(out)))
