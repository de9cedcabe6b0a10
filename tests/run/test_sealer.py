"""The sealer: a trace's files compressed once written, by a process the program never sees."""

from __future__ import annotations

import gzip
import os
import signal
import stat
import struct
import time

import pytest
from test_modes import KILL, LOOP, calls_then, entries_of_f
from test_run import run_kcovdf, run_python, split_summary, write

from kcovdf import tracefile
from kcovdf.read import decode
from kcovdf.run import sealer
from kcovdf.runtime import tasks


def test_a_whole_run_is_compressed_and_reads_the_same(tmp_path):
    write(tmp_path / "loop.py", LOOP)
    r = run_kcovdf(tmp_path, "loop.py", "30000")
    assert r.returncode == 0, r.stderr
    _, summary = split_summary(r.stderr)
    trace = tmp_path / "kcovdf-trace"
    files = sorted(p.name for p in trace.iterdir() if p.name != "run.json")
    assert len(files) > 2 and all(tracefile.is_compressed(f) for f in files)
    for f in files:
        assert stat.S_IMODE((trace / f).stat().st_mode) == 0o600
    # zcat gives the .kdf back; the sealer counted its records for the summary
    data = gzip.decompress((trace / files[0]).read_bytes())
    head = tracefile.read_header(data[:tracefile.FILE_HEADER_SIZE], files[0])
    assert head.records > 0
    t = decode.load(str(trace))
    assert not t.notes and entries_of_f(t) == list(range(30000))
    assert int(summary.group(1)) == len(t)
    on_disk = sum((trace / f).stat().st_size for f in files)
    assert on_disk < 16 * len(t)  # bytes per record


def test_the_program_never_sees_the_sealer(tmp_path):
    write(tmp_path / "waits.py", calls_then(30000, "try:\n    os.wait()\nexcept ChildProcessError:\n"
                                                    "    print('no child')"))
    plain = run_python(tmp_path, "waits.py")
    traced = run_kcovdf(tmp_path, "waits.py")
    assert traced.returncode == plain.returncode == 0
    assert traced.stdout == plain.stdout == "no child\n"


def test_a_ring_is_left_uncompressed(tmp_path):
    write(tmp_path / "loop.py", LOOP)
    assert run_kcovdf(tmp_path, "--mode", "ring", "--ring-size", "1M", "loop.py", "30000").returncode == 0
    names = [p.name for p in (tmp_path / "kcovdf-trace").glob("task-*")]
    assert names and not any(tracefile.is_compressed(n) for n in names)


def test_after_sigkill_the_sealer_finishes_what_is_done_with(tmp_path):
    write(tmp_path / "spin.py", calls_then(60000, KILL))
    r = run_kcovdf(tmp_path, "spin.py")
    assert r.returncode == -signal.SIGKILL
    trace = tmp_path / "kcovdf-trace"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the sealer notices its parent is gone
        plain = [p for p in trace.glob("task-*.kdf")]
        if len(plain) == 1:
            break
        time.sleep(0.1)
    (live,) = trace.glob("task-*.kdf")  # the segment the killed task was writing: still its owner's
    assert struct.unpack_from("<Q", live.read_bytes(), tracefile.HDR_OWNER)[0] != 0
    assert list(trace.glob("task-*.kdf.gz"))
    kept = entries_of_f(decode.load(str(trace)))
    assert kept == list(range(len(kept))) and kept[-1] > 59000


def _kdf(path, owner=0, flags=0, records=3):
    words = 64
    page = bytearray(tracefile.pack_header(words, 1, 0))
    struct.pack_into("<Q", page, tracefile.HDR_OWNER, owner)
    struct.pack_into("<Q", page, tracefile.HDR_FLAGS, flags)
    buf = [0] * words
    pos = 1
    for seq in range(1, records + 1):
        buf[pos:pos + 4] = [(0xE << 28) | (1 << 24) | seq, 0x1234, 0, seq]
        pos += 4
    buf[0] = pos - 1
    path.write_bytes(bytes(page) + struct.pack(f"<{words}Q", *buf))
    os.chmod(path, 0o600)


def test_seal_dir_compresses_only_what_no_task_writes(tmp_path):
    _kdf(tmp_path / "task-1-1.kdf", flags=tracefile.FLAG_SEALED)
    _kdf(tmp_path / "task-1-1.s1.kdf", owner=1)                          # being written
    _kdf(tmp_path / "task-1-2.kdf")                                      # ended, not sealed
    assert sealer.seal_dir(str(tmp_path), finishing=False) == 1
    assert (tmp_path / "task-1-1.kdf.gz").exists() and not (tmp_path / "task-1-1.kdf").exists()
    assert sealer.seal_dir(str(tmp_path), finishing=True) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["task-1-1.kdf.gz", "task-1-1.s1.kdf",
                                                          "task-1-2.kdf.gz"]
    head = tracefile.read_compressed_header(tmp_path / "task-1-2.kdf.gz")
    assert head.records == 3


def test_a_file_and_its_gz_are_read_once_and_a_damaged_gz_is_named(tmp_path):
    (tmp_path / "run.json").write_text('{"format": 2}')
    _kdf(tmp_path / "task-1-1.kdf", flags=tracefile.FLAG_SEALED)
    (tmp_path / "task-1-1.kdf.gz").write_bytes(gzip.compress((tmp_path / "task-1-1.kdf").read_bytes()))
    _kdf(tmp_path / "task-1-2.kdf")
    (tmp_path / "task-1-2.kdf").rename(tmp_path / "keep")
    (tmp_path / "task-1-2.kdf.gz").write_bytes(gzip.compress((tmp_path / "keep").read_bytes())[:40])
    (tmp_path / "keep").unlink()
    listed = tracefile.list_dir(tmp_path).tasks
    assert [t.name for t in listed] == ["task-1-1.kdf", "task-1-2.kdf.gz"]
    t = decode.load(str(tmp_path))
    assert len(t) == 3
    assert any("task-1-2.kdf.gz" in n and "cut short: no .kdf header left" in n for n in t.notes)


def test_a_compressed_file_cut_short_decodes_what_is_left(tmp_path):
    write(tmp_path / "loop.py", LOOP)
    assert run_kcovdf(tmp_path, "loop.py", "30000").returncode == 0
    trace = tmp_path / "kcovdf-trace"
    (third,) = trace.glob("task-*.s2.kdf.gz")
    data = third.read_bytes()
    third.write_bytes(data[:len(data) // 2])  # a copy or a disk cut it
    t = decode.load(str(trace))
    assert any(third.name in n and "compressed data cut short" in n for n in t.notes)
    kept = entries_of_f(t)
    assert kept[-1] == 29999 and 0 < len(kept) < 30000


def test_a_file_compressed_between_listing_and_reading_is_read_from_its_gz(tmp_path, monkeypatch):
    (tmp_path / "run.json").write_text('{"format": 2}')
    _kdf(tmp_path / "task-1-1.kdf", flags=tracefile.FLAG_SEALED)
    listing = tracefile.list_dir(tmp_path)
    assert sealer.seal_dir(str(tmp_path), finishing=False) == 1  # the sealer runs meanwhile
    monkeypatch.setattr(tracefile, "list_dir", lambda path: listing)
    t = decode.load(str(tmp_path))
    assert len(t) == 3 and not any("cannot read" in n for n in t.notes)
    # and the exit summary counts it (the sealer may lag behind the end of the run)
    assert tasks.summarize(str(tmp_path)).records == 3


def test_a_run_waits_for_the_sealer_of_the_run_before_and_tools_skip_its_temporaries(tmp_path, monkeypatch):
    from kcovdf.errors import RunError
    from kcovdf.run import command

    trace = tmp_path / "trace"
    trace.mkdir()
    (trace / "run.json").write_text('{"format": 2}')
    _kdf(trace / "task-1-1.kdf")
    held = sealer._lock(str(trace), blocking=True)  # a sealer still at work on it
    try:
        assert sealer._lock(str(trace), blocking=False) == -1
        assert sealer.wait(trace, timeout=0.2) is False
        monkeypatch.setattr(sealer, "PREVIOUS_WAIT", 0.2)
        with pytest.raises(RunError, match="still compressing"):
            command.prepare_trace_dir(str(trace))
        assert (trace / "task-1-1.kdf").exists()  # nothing of it was removed
        # its .gz on the way, under a temporary name: not a file of the trace
        (trace / ".task-1-1.kdf.gz.77.0a1b2c3d.tmp").write_bytes(b"partial")
        assert tracefile.list_dir(trace).unknown == []
        assert not decode.load(str(trace)).notes
    finally:
        os.close(held)
    assert sealer.wait(trace, timeout=0.2) is True
    assert command.prepare_trace_dir(str(trace)) == str(trace)
