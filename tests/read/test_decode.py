"""kcovdf.read.decode and kcovdf.read.sources: every input kind, every damaged buffer, fuzzed."""

from __future__ import annotations

import dataclasses
import json
import os
import threading

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tracegen as tg
from kcovdf import abi, tracefile
from kcovdf.errors import CorruptBufferError
from kcovdf.read import decode
from kcovdf.runtime import core, tasks
from kcovdf.runtime.encode import encode_value


@dataclasses.dataclass
class Point:
    x: int
    y: int


Point.__module__ = "app"


def sample() -> tg.TraceBuilder:
    b = tg.TraceBuilder()
    f = b.func("app", "f", 3, ("a", "p"))
    g = b.func("app", "g", 9, ("s",))
    b.call(f, 1, Point(1, 2)).call(g, "héllo").ret(g, 3).exc(f, ValueError("bad"))
    b.yld(g, 7)
    return b


def test_kdf_file_columns_types_symbols(tmp_path):
    b = sample()
    p = tg.write_kdf(tmp_path / "t.kdf", b.buffer(100), b.table_lines((7, 8, "Main")), drops=3)
    t = decode.load(p)
    assert t.records.schema.equals(decode.SCHEMA)
    rows = t.records.to_pylist()
    assert [r["kind"] for r in rows] == ["entry", "entry", "entry", "return", "exception", "yield"]
    assert [r["seq"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert [r["arg_idx"] for r in rows] == [0, 1, 0, 0, abi.ARG_EXCEPTION, abi.ARG_YIELD]
    assert rows[0]["values"] == encode_value(1).words
    assert rows[1]["values"] == encode_value(Point(1, 2)).words
    assert rows[0]["pc"] == tg.pc_of("app", "f", 3)
    assert all(r["size"] == 8 and r["task"] == 0 for r in rows)
    assert t.tasks == [decode.Task(0, 7, 8, "Main", str(p), "kcovdf", len(b.words), 3)]
    assert t.words == len(b.words) and t.drops == 3
    assert t.skipped == [] and t.missing == [] and t.notes == []
    assert t.types[abi.shape_id("app.Point", ("x", "y"))].fields == ("x", "y")
    assert t.symbols[tg.pc_of("app", "g", 9)].params == (("s", "POSITIONAL_OR_KEYWORD"),)


def test_trace_directory_gives_one_task_per_file(tmp_path):
    a, b = sample(), tg.TraceBuilder()
    h = b.func("app", "h", 1, ("n",))
    b.call(h, 5).ret(h, 6)
    d = tg.write_dir(tmp_path / "run", {(10, 10, "MainThread"): a, (10, 12, "worker"): b})
    t = decode.load(d)
    assert [(x.pid, x.tid, x.name) for x in t.tasks] == [(10, 10, "MainThread"), (10, 12, "worker")]
    tasks = t.records.column("task").to_pylist()
    assert tasks == [0] * 6 + [1] * 2
    assert t.records.column("seq").to_pylist()[6:] == [1, 2]
    assert t.words == len(a.words) + len(b.words)


def test_trace_directory_errors(tmp_path):
    with pytest.raises(CorruptBufferError, match="not a trace directory"):
        decode.load(tmp_path)
    (tmp_path / "run.json").write_text(json.dumps({"format": 99}))
    with pytest.raises(CorruptBufferError, match=r"run.json: format version 99 is not supported"):
        decode.load(tmp_path)


def test_two_tasks_with_one_pid_and_tid_are_both_decoded(recorder, tmp_path):
    # A thread id reused by a later thread (or a pid by exec): the writer names the second
    # file task-<pid>-<tid>-1.kdf, the run summary counts it, so the reader must read it too.
    d = tg.trace_dir(tmp_path / "run")
    ts = tasks.Tasks(str(d), 4096, follow_threads=False, follow_forks=False)
    ts.start()
    try:
        core.entry(0x100, "first")
        ts.disable_current()
        ts.enable_current()  # the same thread again: a second task with the same pid and tid
        core.entry(0x200, "second")
    finally:
        ts.stop()
    me, tid = os.getpid(), threading.get_native_id()
    assert sorted(os.listdir(d)) == ["run.json", f"task-{me}-{tid}-1.kdf", f"task-{me}-{tid}.kdf"]
    t = decode.load(d)
    summary = tasks.summarize(str(d))
    assert summary.tasks == len(t.tasks) == 2 and summary.records == len(t) == 2
    assert [(x.pid, x.tid, x.source) for x in t.tasks] == [
        (me, tid, str(d / f"task-{me}-{tid}.kdf")), (me, tid, str(d / f"task-{me}-{tid}-1.kdf"))]
    assert t.records.column("pc").to_pylist() == [0x100, 0x200]  # in the order they were written
    assert t.notes == []


def test_every_entry_of_a_trace_directory_is_read_or_named_in_a_note(tmp_path):
    d = tg.write_dir(tmp_path / "run", {(10, 10, "MainThread"): sample()})
    (d / "task-10-11.kdf").write_bytes(b"")           # created, but its buffer never initialised
    (d / "task-10-12.kdf").write_bytes(b"garbage" * 100)
    tg.write_kdf(d / "task-10-13.kdf", sample().buffer(), version=7)
    (d / "task-10-x.kdf").write_bytes(b"")             # meant as a task file, but not a name of one
    (d / "task-10-10-0.kdf").write_bytes(b"")          # suffixes start at 1
    (d / "notes.txt").write_text("mine")
    (d / "sub").mkdir()
    t = decode.load(d)
    assert [(x.pid, x.tid) for x in t.tasks] == [(10, 10)] and len(t) == 6
    expected = f"(expected run.json and {tracefile.TASK_FILE_PATTERN}); not read"
    assert t.notes == [
        f"{d}/notes.txt: not part of a trace {expected}",
        f"{d}/sub: not part of a trace {expected}",
        f"{d}/task-10-10-0.kdf: not a task file name {expected}",
        f"{d}/task-10-x.kdf: not a task file name {expected}",
        f"{d}/task-10-11.kdf: empty file (no .kdf header); task file skipped",
        f"{d}/task-10-12.kdf: not a .kdf trace file: expected magic b'KCOVDF\\x00\\x01' at offset 0; "
        "task file skipped",
        f"{d}/task-10-13.kdf: format version 7 is not supported (this kcovdf reads versions 1 and 2); "
        "task file skipped"]


def test_a_directory_of_task_files_without_run_json_is_read_with_a_note(tmp_path):
    d = tg.write_dir(tmp_path / "run", {(10, 10, "MainThread"): sample()})
    (d / "run.json").unlink()
    t = decode.load(d)
    assert len(t.tasks) == 1 and t.notes == [f"{d}: run.json missing"]


def test_live_device_is_read_with_its_table_and_drops(recorder):
    from kcovdf import Device
    from kcovdf.runtime import core

    dev = Device()
    dev.init_trace(64)
    dev.enable()
    try:
        for i in range(20):  # more than 64 words: the last records are dropped
            core.entry(tg.pc_of("m", "f", 1), i)
        t = decode.load(dev)
    finally:
        dev.disable()
        dev.close()
    assert t.records.column("seq").to_pylist() == list(range(1, len(t) + 1))
    assert t.tasks[0].drops == 20 - len(t) > 0
    assert t.types[abi.class_id("builtins.int")].cls == "builtins.int"


def test_live_buffer_with_table_lines_and_bytes():
    b = sample()
    buf = np.array(b.buffer(64), dtype=np.uint64)
    t = decode.load(memoryview(buf), table_lines=b.table_lines())
    assert len(t) == 6 and t.tasks[0].encoding == "kcovdf" and t.tasks[0].drops is None
    assert decode.load(tg.words_bytes(b.buffer())).records.equals(t.records)


def test_raw_kernel_dump_is_kernel_encoded(tmp_path):
    words = tg.record(abi.TYPE_ENTRY, 1, 0xFFFFFFFFC0001000, 0, [0x11], size=8) + \
        tg.record(abi.TYPE_ENTRY, 2, 0xFFFFFFFFC0001000, 1, [0x22], size=4) + \
        tg.record(abi.TYPE_RETURN, 3, 0xFFFFFFFFC0001000, 0, [0x33, abi.FAULT], size=16)
    p = tmp_path / "dump.bin"
    p.write_bytes(tg.words_bytes([len(words)] + words + [0] * 8))
    t = decode.load(p)
    assert t.tasks[0].encoding == "kernel" and t.tasks[0].drops is None
    assert t.records.column("values").to_pylist() == [[0x11], [0x22], [0x33, abi.FAULT]]
    assert t.records.column("size").to_pylist() == [8, 4, 16]
    assert any("raw buffer" in m for m in t.missing)


def test_kcovdf_buffer_dumped_raw_is_recognised(tmp_path):
    p = tmp_path / "dump.bin"
    p.write_bytes(tg.words_bytes(sample().buffer()))
    assert decode.load(p).tasks[0].encoding == "kcovdf"
    assert decode.load(p, encoding="kernel").tasks[0].encoding == "kernel"


def test_not_a_trace_names_the_file(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("hello, this is text and not a buffer!!\n")
    with pytest.raises(CorruptBufferError, match=r"notes.txt: not a trace: expected a kcovdf trace"):
        decode.load(p)
    with pytest.raises(CorruptBufferError, match="no such file"):
        decode.load(tmp_path / "absent.kdf")


def test_unknown_format_version_is_refused(tmp_path):
    p = tg.write_kdf(tmp_path / "v7.kdf", sample().buffer(), version=7)
    with pytest.raises(CorruptBufferError, match=r"v7.kdf: format version 7 is not supported"):
        decode.load(p)


def test_wrong_magic_is_refused(tmp_path):
    p = tg.write_kdf(tmp_path / "m.kdf", sample().buffer())
    data = bytearray(p.read_bytes())
    data[7] = 9
    p.write_bytes(bytes(data))
    with pytest.raises(CorruptBufferError, match="expected magic"):
        decode.load(p)


def test_truncated_file_decodes_what_is_there(tmp_path):
    b = sample()
    p = tg.write_kdf(tmp_path / "t.kdf", b.buffer(200), b.table_lines())
    data = p.read_bytes()[:tracefile.FILE_HEADER_SIZE + 8 * 20 + 3]
    p.write_bytes(data)
    t = decode.load(p)
    assert any("file truncated: header says 200 buffer words, the file holds 20" in n for n in t.notes)
    # buf[0] claims all records, the 19 words after it hold the first three records only
    assert t.records.column("seq").to_pylist() == [1, 2]
    assert t.skipped[-1].reason.startswith("counter says")
    assert any("no type table" in m for m in t.missing)


def test_table_with_truncated_last_line_and_bad_line(tmp_path):
    b = sample()
    lines = b.table_lines()
    p = tg.write_kdf(tmp_path / "t.kdf", b.buffer(), lines,
                     table_tail=b"not json\n" + b'{"t": "type", "id": "0x1', )
    t = decode.load(p)
    assert len(t.types) == len(b.types) and len(t.symbols) == 2
    assert any("last line truncated" in n for n in t.notes)
    assert any("not a JSON object" in n for n in t.notes)


def test_missing_tables_still_decode_records(tmp_path):
    p = tg.write_kdf(tmp_path / "bare.kdf", sample().buffer())
    t = decode.load(p)
    assert len(t) == 6
    assert sorted(m.split(": ", 1)[1] for m in t.missing) == [
        "no symbol table (functions shown by pc)", "no type table (class and field names unknown)"]


def test_bad_table_entries_are_noted_not_fatal(tmp_path):
    lines = [{"t": "type", "id": "zz", "class": "x"}, {"t": "sym", "pc": "0x1"}]
    t = decode.load(tg.write_kdf(tmp_path / "t.kdf", sample().buffer(), lines))
    assert len(t) == 6 and len([n for n in t.notes if "bad" in n]) == 2


def test_sym_collision_is_reported(tmp_path):
    b = sample()
    pc = tg.pc_of("app", "f", 3)
    other = dict(b.syms[pc], qualname="other", line=99)
    t = decode.load(tg.write_kdf(tmp_path / "t.kdf", b.buffer(), b.table_lines() + [other]))
    assert t.symbols[pc].qualname == "f"
    assert any("names both app.f" in n and "app.other" in n for n in t.notes)


def test_several_task_lines_in_one_buffer_are_noted(tmp_path):
    b = sample()
    lines = b.table_lines((1, 1, "parent")) + [{"t": "task", "pid": 2, "tid": 2, "name": "child"}]
    t = decode.load(tg.write_kdf(tmp_path / "t.kdf", b.buffer(), lines))
    assert t.tasks[0].pid == 1 and any("several tasks" in n for n in t.notes)


# --- scan: damaged buffers ------------------------------------------------------------

def one(seq: int, nvals: int = 1) -> list[int]:
    return tg.record(abi.TYPE_ENTRY, seq, 0xABCDEF0123456789, 0, list(range(1, nvals + 1)))


def test_last_single_value_record_at_the_very_end_is_found():
    # The documentation's loop (i + 3 < n) would stop one word early and lose it.
    words = one(1, 2) + one(2, 1)
    sc = decode.scan(np.array([len(words)] + words, dtype=np.uint64))
    assert sc.offsets.tolist() == [1, 6] and sc.skipped == []


def test_counter_larger_than_buffer_is_clamped_and_reported():
    words = one(1) + one(2)
    sc = decode.scan(np.array([1000] + words, dtype=np.uint64))
    assert sc.offsets.tolist() == [1, 5] and sc.count == 8
    assert sc.skipped == [decode.Skip(9, 992, "counter says 1000 words were written, the buffer holds 8")]


def test_truncated_last_record_is_reported_not_decoded():
    words = one(1) + one(2, 5)
    buf = np.array([len(words) - 2] + words, dtype=np.uint64)
    sc = decode.scan(buf)
    assert sc.offsets.tolist() == [1]
    assert sc.skipped == [decode.Skip(5, 6, decode.SKIP_REASONS[1])]


def test_garbage_between_records_is_skipped_one_word_at_a_time():
    garbage = [0, 1 << 40, 0xC0000000, 0xFFFFFFFF_F0000000]
    words = one(1) + garbage + one(2)
    sc = decode.scan(np.array([len(words)] + words, dtype=np.uint64))
    assert sc.offsets.tolist() == [1, 9]
    assert sc.skipped == [decode.Skip(5, 4, decode.SKIP_REASONS[0])]


def test_format_2_event_records_and_arg_none_entries_are_decoded(tmp_path):
    b = tg.TraceBuilder()
    f = b.func("app", "f", 3)
    b.call(f, cid=4).suspend(f, 4).resume(f, 4, by=9).word(abi.TYPE_EVENT, f, 7, 0, 4).ret(f, 1, cid=4)
    words = [len(b.words)] + b.words
    # a .kdf says format 2; a live buffer is of this kcovdf's writers' format (tracefile.FORMAT_VERSION)
    for t, fmt in ((decode.load(tg.write_kdf(tmp_path / "t.kdf", b.buffer(), b.table_lines(), version=2)), 2),
                   (decode.load(np.array(words, dtype=np.uint64), table_lines=b.table_lines()),
                    tracefile.FORMAT_VERSION)):
        rows = t.records.to_pylist()
        assert [r["kind"] for r in rows] == ["entry", "suspend", "resume", "event", "return"]
        assert [r["arg_idx"] for r in rows] == [abi.ARG_NONE, abi.EVENT_SUSPEND, abi.EVENT_RESUME, 7, 0]
        assert [r["ptr"] for r in rows] == [4] * 5
        assert [r["values"] for r in rows[:4]] == [[0], [0], [9], [0]]
        assert [x.format for x in t.tasks] == [fmt] and t.skipped == []
    # the Python scanner and numpy's gather read them the same way
    assert decode._scan_py(np.array(words, dtype=np.uint64), 1, len(words))[0] == \
        decode.scan(np.array(words, dtype=np.uint64)).offsets.tolist()


def test_record_format_of_each_input():
    b = sample()
    assert decode.load(np.array(b.buffer(), dtype=np.uint64), table_lines=b.table_lines()).tasks[0].format \
        == tracefile.FORMAT_VERSION  # a live buffer of this kcovdf's writers
    assert decode.load(np.array(b.buffer(), dtype=np.uint64)).tasks[0].format == 1  # bare: the kernel's


def test_formats_1_and_2_are_read(tmp_path):
    for version in (1, 2):
        t = decode.load(tg.write_kdf(tmp_path / f"v{version}.kdf", sample().buffer(), version=version))
        assert [x.format for x in t.tasks] == [version] and len(t) == 6
        d = tg.trace_dir(tmp_path / f"run{version}")
        tracefile.write_run_info(str(d), {"argv": []})
        assert tracefile.read_run_info(d)["format"] == tracefile.FORMAT_VERSION
        (d / tracefile.RUN_INFO).write_text(json.dumps({"format": version}))
        assert tracefile.read_run_info(d) == {"format": version}


def test_zero_count_means_zero_value_words_read_as_one():
    words = [abi.type_seq(abi.TYPE_RETURN, 0, 1), 5, abi.meta(0, 8, 0), 42]
    t = decode.load(np.array([len(words)] + words, dtype=np.uint64))
    assert t.records.column("values").to_pylist() == [[42]]


def test_zeroed_and_empty_buffers():
    assert len(decode.load(np.zeros(1000, dtype=np.uint64))) == 0
    assert decode.scan(b"").count == 0
    sc = decode.scan(np.array([5, 0, 0, 0, 0, 0], dtype=np.uint64))
    assert sc.offsets.size == 0
    assert sc.skipped == [decode.Skip(1, 2, decode.SKIP_REASONS[0]),
                          decode.Skip(3, 3, decode.SKIP_REASONS[2])]


def test_records_from_several_writers_interleaved():
    # the fork pattern: two tasks' records share one buffer, each with its own seq
    words = one(1) + one(1) + one(2, 3) + one(2)
    t = decode.load(np.array([len(words)] + words, dtype=np.uint64))
    assert t.records.column("seq").to_pylist() == [1, 1, 2, 2]


@pytest.mark.c_core(reason="scan.c is built as its own extension, kcovdf._core._scan")
def test_c_scanner_is_its_own_extension():
    from kcovdf._core import _recorder, _scan

    assert callable(_scan.scan), "scan.c is not built as kcovdf._core._scan"
    assert not hasattr(_recorder, "scan"), "the recorder ships the reader's scanner"


# --- fuzzing --------------------------------------------------------------------------

def _covers(sc: decode.Scan, words: np.ndarray) -> None:
    """Every captured word is in exactly one decoded record or one skipped run."""
    spans = []
    for off in sc.offsets.tolist():
        nvals = (int(words[off]) >> 24) & 0xF or 1
        spans.append((off, 3 + nvals))
    spans += [(s.offset, s.count) for s in sc.skipped if not s.reason.startswith("counter")]
    spans.sort()
    pos = 1
    for off, n in spans:
        assert off == pos
        pos += n
    assert pos == 1 + sc.count


u64 = st.integers(0, 2**64 - 1)
header_like = st.builds(lambda t, n, s: abi.type_seq(t, n, s), st.sampled_from([0xE, 0xF, 0xD, 0xC, 0]),
                        st.integers(0, 15), st.integers(0, abi.SEQ_MASK))
# meta words whose arg_idx selects every kind: entries, returns, exceptions, yields, events
meta_like = st.builds(lambda a, p: abi.meta(a, 8, p), st.sampled_from([0, 1, 2, 3, 0xFD, 0xFE, 0xFF]),
                      st.integers(0, abi.PTR_MASK))


@pytest.mark.c_core(reason="scan.c against the Python scanner, which KCOVDF_CORE=py decodes with")
@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(u64, header_like, meta_like, st.just(0)), max_size=200), st.integers(0, 300))
def test_fuzz_random_words_c_and_python_agree(words, count):
    buf = np.array([count] + words, dtype=np.uint64)
    sc = decode.scan(buf)
    _covers(sc, buf)
    offsets, skipped = decode._scan_py(buf, 1, 1 + sc.count)
    assert sc.offsets.tolist() == offsets
    assert [(s.offset, s.count) for s in sc.skipped if not s.reason.startswith("counter")] == \
        [(o, c) for o, c, _ in skipped]
    # the columns scan.c fills in its pass equal numpy's gather from the offsets, with the
    # value words copied or pointing into the buffer
    for copy_values in (True, False):
        _, cols = decode._scan(buf, columns=True, task=3, copy_values=copy_values)
        twin = decode._gather(buf[:1 + sc.count], np.array(offsets, dtype=np.int64), 3, copy_values)
        for name in decode._Columns._fields:
            assert getattr(cols, name).tolist() == getattr(twin, name).tolist(), name
            assert getattr(cols, name).dtype == getattr(twin, name).dtype, name
        assert decode._table(cols).equals(decode._table(twin))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600))
def test_fuzz_random_bytes_as_file_and_buffer(tmp_path_factory, data):
    p = tmp_path_factory.mktemp("fz") / "blob.bin"
    p.write_bytes(data)
    try:
        t = decode.load(p)
    except CorruptBufferError as exc:
        assert "blob.bin" in str(exc)
    else:
        assert len(t) <= len(data) // 32
    decode.load(data)
    kdf = p.with_suffix(".kdf")
    kdf.write_bytes(tracefile.pack_header(len(data) // 8, 1, 1) + data)
    decode.load(kdf)


_VALUES = st.one_of(st.integers(-1000, 1000), st.text(max_size=5), st.none(), st.booleans(),
                    st.lists(st.integers(0, 99), max_size=4), st.floats(allow_nan=False))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([abi.TYPE_ENTRY, abi.TYPE_RETURN]), _VALUES),
                min_size=1, max_size=30),
       st.data())
def test_fuzz_corruption_keeps_every_record_outside_the_damage(records, data):
    words: list[int] = []
    starts = []
    for seq, (rtype, value) in enumerate(records, 1):
        starts.append(1 + len(words))
        words += tg.record(rtype, seq, tg.pc_of("m", "f", seq), 0, encode_value(value).words)
    buf = np.array([len(words)] + words, dtype=np.uint64)
    lo = data.draw(st.integers(1, len(buf) - 1))
    hi = data.draw(st.integers(lo, min(len(buf), lo + 20)))
    # damage: words that are not headers (zeroed memory, or junk with high bits set)
    junk = data.draw(st.lists(st.one_of(st.just(0), st.integers(2**32, 2**64 - 1)),
                              min_size=hi - lo, max_size=hi - lo))
    buf[lo:hi] = junk
    sc = decode.scan(buf)
    _covers(sc, buf)
    found = set(sc.offsets.tolist())
    ends = starts[1:] + [1 + len(words)]
    intact = [s for s, e in zip(starts, ends, strict=True) if e <= lo or s >= hi]
    assert set(intact) <= found


def test_large_value_column_roundtrip():
    b = tg.TraceBuilder()
    pc = b.func("m", "f", 1, ("x",))
    for i in range(2000):
        b.call(pc, [i, str(i)])
    t = decode.load(np.array(b.buffer(), dtype=np.uint64), table_lines=b.table_lines())
    vals = t.records.column("values")
    assert isinstance(vals.type, pa.ListViewType)
    assert vals[1999].as_py() == encode_value([1999, "1999"]).words


def test_values_share_only_memory_that_cannot_change(tmp_path):
    base = np.array(sample().buffer(100), dtype=np.uint64)
    buf = base.copy()
    want = decode.load(buf).records
    # a writable buffer may be reused or reset by enable(): its value words are copied
    child = want.column("values").chunk(0).values
    assert len(child) == sum(len(v) for v in want.column("values").to_pylist())
    buf[1:] = 0
    assert want.column("values").to_pylist()[0] == encode_value(1).words
    # read-only memory and words read from a file are the list child themselves
    ro = base.copy()
    ro.setflags(write=False)
    shared = decode.load(ro).records
    assert shared.equals(want)
    assert np.shares_memory(shared.column("values").chunk(0).values.to_numpy(), ro)
    p = tmp_path / "dump.bin"
    p.write_bytes(base.tobytes())
    assert decode.load(p).records.equals(want)
    assert decode.load(base.tobytes()).records.equals(want)


def test_records_table_is_usable_by_duckdb_and_parquet(tmp_path):
    import duckdb
    import pyarrow.parquet as pq

    a = tg.TraceBuilder()
    h = a.func("app", "h", 1, ("n",))
    a.call(h, 5).ret(h, "six")
    d = tg.write_dir(tmp_path / "run", {(1, 1, "main"): sample(), (1, 2, "w"): a})
    rec = decode.load(d).records
    rows = rec.to_pylist()
    got = duckdb.connect().execute(
        "SELECT task, kind, values FROM rec WHERE kind <> 'entry' ORDER BY task, seq").fetchall()
    assert got == [(r["task"], r["kind"], r["values"]) for r in rows if r["kind"] != "entry"]
    pq.write_table(rec, tmp_path / "r.parquet")
    assert pq.read_table(tmp_path / "r.parquet").to_pylist() == rows


def test_a_format_2_buffer_dumped_raw_is_recognised_as_kcovdf(tmp_path):
    b = tg.zip_generators()
    p = tmp_path / "dump.bin"
    p.write_bytes(tg.words_bytes(b.buffer()))
    assert decode.load(p).tasks[0].encoding == "kcovdf"
