"""The recorder API (docs/core.md §1) on the C core and the Python twin: records, types, guard."""

from __future__ import annotations

import collections
import dataclasses
import errno
import gc
import json
import mmap
import os
import struct
import threading

import pytest

from conftest import device_records
from kcovdf import abi, tracefile
from kcovdf.runtime import core, twin
from kcovdf.runtime.device import Device
from kcovdf.runtime.encode import encode_value

PC = 0x1234_5678_9ABC_DEF0


@pytest.fixture
def dev(recorder: core.Recorder):
    with Device() as d:
        d.init_trace(1 << 15)
        yield d


@dataclasses.dataclass
class Point:
    x: int
    y: str


def test_entry_writes_one_record_per_argument(dev: Device) -> None:
    p, s = Point(1, "a"), "héllo"
    dev.enable()
    core.entry(PC, 7, s, p)
    dev.disable()
    recs = device_records(dev)
    assert [(r.type, r.arg_idx, r.seq, r.pc, r.size) for r in recs] == \
        [(abi.TYPE_ENTRY, i, i + 1, PC, 8) for i in range(3)]
    assert recs[0].ptr > 0 and {r.ptr for r in recs} == {recs[0].ptr}  # one call id
    for r, value in zip(recs, (7, s, p), strict=True):
        assert r.values == encode_value(value).words


def test_ret_exc_yld_returndevice_records(dev: Device) -> None:
    err = KeyError("k")
    dev.enable()
    assert core.ret(PC, [1, 2]) == [1, 2]
    assert core.yld(PC, 3.5) == 3.5
    core.exc(PC, err)
    try:
        raise ValueError("handled")
    except ValueError as handled:
        core.exc(PC)
        expected_handled = handled
    dev.disable()
    recs = device_records(dev)
    assert [(r.type, r.arg_idx) for r in recs] == [
        (abi.TYPE_RETURN, abi.ARG_RETURN), (abi.TYPE_RETURN, abi.ARG_YIELD),
        (abi.TYPE_RETURN, abi.ARG_EXCEPTION), (abi.TYPE_RETURN, abi.ARG_EXCEPTION)]
    assert recs[2].values == encode_value(err).words
    assert recs[3].values == encode_value(expected_handled).words
    assert [r.ptr for r in recs] == [0] * 4  # exits of no recorded call: orphans


def test_redacted_sentinel(dev: Device) -> None:
    dev.enable()
    core.entry(PC, core.REDACTED)
    dev.disable()
    (r,) = device_records(dev)
    assert r.ptr > 0  # the call id, not the address of anything
    assert r.values == encode_value(None, redacted=True).words
    assert r.values[-1] == abi.REDACTED


def test_nothing_recorded_when_disabled(dev: Device) -> None:
    core.entry(PC, 1)
    assert core.ret(PC, 2) == 2
    dev.enable()
    dev.disable()
    core.entry(PC, 3)
    assert device_records(dev) == []


def test_positions_above_0xfc_are_not_recorded(dev: Device) -> None:
    dev.enable()
    core.entry(PC, *range(abi.ARG_MAX_PARAM + 3))
    dev.disable()
    recs = device_records(dev)
    assert [r.arg_idx for r in recs] == list(range(abi.ARG_MAX_PARAM + 1))


def test_seq_restarts_at_one_on_enable(dev: Device) -> None:
    dev.enable()
    core.entry(PC, 1, 2)
    dev.disable()
    dev.enable()
    core.entry(PC, 3)
    dev.disable()
    assert [r.seq for r in device_records(dev)] == [1, 2, 1]


@pytest.mark.parametrize("value", [0, -1, 1 << 70, 2.5, None, True, "x" * 100, b"\x00\xff",
                                   [1, "a"], {"k": 1}, frozenset({1}), Point(3, "p"), ValueError(1)])
def test_encode_matches_reference(recorder: core.Recorder, value: object) -> None:
    assert core.encode(value) == encode_value(value).words
    assert core.encode(value, redacted=True) == encode_value(value, redacted=True).words


def test_type_lines_exact_bytes_once_per_process(dev: Device) -> None:
    class Fresh:  # a class no other test records: its type line is new
        def __init__(self) -> None:
            self.a = 1

    obj = Fresh()
    dev.enable()
    core.entry(PC, obj, obj)
    dev.disable()
    enc = encode_value(obj)
    expected = {e.id: json.dumps({"t": "type", "id": f"0x{e.id:016x}", "class": e.cls,
                                  "fields": list(e.fields)}, separators=(",", ":"),
                                 ensure_ascii=False).encode() for e in enc.types}
    with open(f"/proc/self/fd/{dev.fd}", "rb") as f:
        table = f.read()[tracefile.FILE_HEADER_SIZE + 8 * (1 << 15):].split(b"\n")
    for line in expected.values():
        assert table.count(line) == 1, line


def test_cached_layouts_record_their_type_lines_once(dev: Device) -> None:
    """Fresh classes of each cached layout (dict, slots, namedtuple), recorded again and
    again: the full walk, then the layout cache (first through the general encoder, then
    straight to it), with builtin and other values."""
    class FreshDict:
        def __init__(self) -> None:
            self.a, self.b = 1, "b"

    class FreshSlots:
        __slots__ = ("a", "b")

        def __init__(self) -> None:
            self.a, self.b = 1, "b"

    FreshNT = collections.namedtuple("FreshNT", "a b")
    values = [FreshDict(), FreshSlots(), FreshNT(1, "b"), FreshSlots(), FreshNT([1], "b")]
    dev.enable()
    for _ in range(3):
        core.entry(PC, *values)
    dev.disable()
    recs = device_records(dev)
    assert [r.values for r in recs] == [encode_value(v).words for v in values] * 3
    with open(f"/proc/self/fd/{dev.fd}", "rb") as f:
        table = f.read()[tracefile.FILE_HEADER_SIZE + 8 * (1 << 15):].split(b"\n")
    for value in values:
        for e in encode_value(value).types:
            line = json.dumps({"t": "type", "id": f"0x{e.id:016x}", "class": e.cls,
                               "fields": list(e.fields)}, separators=(",", ":"), ensure_ascii=False)
            assert table.count(line.encode()) == 1, line


def test_add_table_replays_remembered_lines(recorder: core.Recorder, tmp_path) -> None:
    line = b'{"t":"info","key":"replay-test","value":1}'
    # a file, not a pipe: the replay holds every line the session remembered, past a pipe's buffer
    path = tmp_path / "table"
    w = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        core.emit(line)
        core.emit(b'{"t":"info","key":"not-remembered"}', remember=False)
        core.add_table(w)
        core.emit(b'{"t":"info","key":"after"}', remember=False)
        core.remove_table(w)
        core.emit(b'{"t":"info","key":"removed"}', remember=False)
    finally:
        os.close(w)
    lines = path.read_bytes().split(b"\n")
    assert line in lines
    assert b'{"t":"info","key":"after"}' in lines
    assert b'{"t":"info","key":"not-remembered"}' not in lines
    assert b'{"t":"info","key":"removed"}' not in lines


def test_emit_rejects_a_newline(recorder: core.Recorder) -> None:
    with pytest.raises(ValueError, match="newline"):
        core.emit(b'{"a":1}\n{"b":2}')


def _mapping(words: int) -> mmap.mmap:
    m = mmap.mmap(-1, tracefile.FILE_HEADER_SIZE + 8 * words)
    m[:tracefile.FILE_HEADER_SIZE] = tracefile.pack_header(words, os.getpid(), 0)
    return m


def test_recorder_errnos_on_bare_mappings(recorder: core.Recorder, tmp_path) -> None:
    one, two = _mapping(64), _mapping(64)
    table = os.open(tmp_path / "table", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        core.enable(one, table)
        try:
            assert struct.unpack_from("<Q", one, tracefile.HDR_OWNER)[0] == threading.get_native_id()
            for mapping in (one, two):  # this thread is already enabled
                with pytest.raises(OSError) as e:
                    core.enable(mapping, table)
                assert e.value.errno == errno.EBUSY
            with pytest.raises(OSError) as e:
                core.disable(two)
            assert e.value.errno == errno.EINVAL
            assert core.active() == 1
        finally:
            core.disable(one)
        assert core.active() == 0
        assert struct.unpack_from("<Q", one, tracefile.HDR_OWNER)[0] == 0
        with pytest.raises(OSError) as e:
            core.disable(one)
        assert e.value.errno == errno.EINVAL
        struct.pack_into("<Q", two, tracefile.HDR_OWNER, 4242)  # owned by some other task
        with pytest.raises(OSError) as e:
            core.enable(two, table)
        assert e.value.errno == errno.EBUSY
        assert core.active() == 0
    finally:
        os.close(table)


def test_threads_write_whole_records_to_their_own_devices(recorder: core.Recorder) -> None:
    n_threads, n_calls = 4, 200
    devices = [Device() for _ in range(n_threads)]
    start = threading.Barrier(n_threads)
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            devices[k].enable()
            start.wait()
            for i in range(n_calls):
                core.entry(PC + k, i, "s" * i)
            devices[k].disable()
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    for d in devices:
        d.init_trace(n_calls * 2 * 20)
    threads = [threading.Thread(target=work, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        for k, d in enumerate(devices):
            recs = device_records(d)
            assert len(recs) == 2 * n_calls
            assert {r.pc for r in recs} == {PC + k}
            assert [r.seq for r in recs] == list(range(1, 2 * n_calls + 1))
            assert [r.values for r in recs[::2]] == [encode_value(i).words for i in range(n_calls)]
    finally:
        for d in devices:
            d.close()


def test_gc_finalizers_during_recording_leave_records_whole(dev: Device) -> None:
    """Finalizers that record, run by the collector at any point, never tear or nest records."""
    ran = []

    class Cyclic:
        def __init__(self) -> None:
            self.me = self

        def __del__(self) -> None:
            ran.append(1)
            core.entry(PC + 1, "finalizer")

    old = gc.get_threshold()
    dev.enable()
    try:
        gc.set_threshold(1)
        for i in range(200):
            Cyclic()
            core.entry(PC, Point(i, "x"), [i, i])
    finally:
        gc.set_threshold(*old)
        dev.disable()
    recs = device_records(dev)
    assert ran
    assert [r.values for r in recs if r.pc == PC][::2] == \
        [encode_value(Point(i, "x")).words for i in range(200)]
    assert all(r.values == encode_value("finalizer").words for r in recs if r.pc == PC + 1)


def test_twin_guard_drops_records_made_during_a_record(monkeypatch: pytest.MonkeyPatch) -> None:
    """A __del__ run while the twin makes a record records nothing (the re-entrancy guard)."""
    ran = []

    class Noisy:
        def __del__(self) -> None:
            ran.append(twin.in_record())
            twin.entry(PC + 1, "inner")
            twin.ret(PC + 1, "inner")

    real = twin.encode_value
    pending = [Noisy()]

    def encode_then_finalize(obj: object, redacted: bool = False):
        if pending:
            pending.pop()  # the last reference: __del__ runs here, inside the record
        return real(obj, redacted=redacted)

    before = core.name
    core.use("py")
    monkeypatch.setattr(twin, "encode_value", encode_then_finalize)
    try:
        with Device() as d:
            d.init_trace(256)
            d.enable()
            twin.entry(PC, 1)
            d.disable()
            recs = device_records(d)
    finally:
        core.use(before)
    assert ran == [True]
    assert [(r.pc, r.values) for r in recs] == [(PC, encode_value(1).words)]


def test_in_record_is_true_only_while_a_record_is_made(dev: Device) -> None:
    seen: list[bool] = []
    core.set_record_hook(lambda: seen.append(core.in_record()))
    try:
        assert not core.in_record()
        dev.enable()
        core.entry(PC, 1, "two")
        core.ret(PC, 3)
        dev.disable()
    finally:
        core.set_record_hook(None)
    assert seen == [True, True, True]
    assert not core.in_record()


def test_record_hook_must_be_callable_or_none(recorder: core.Recorder) -> None:
    with pytest.raises(TypeError, match=r"^set_record_hook\(\): expected a callable or None, not int$"):
        core.set_record_hook(3)  # type: ignore[arg-type]


def _answer() -> int:
    return 1


def _other_answer() -> int:
    return 2


def test_set_code_swaps_the_code_of_a_function(recorder: core.Recorder) -> None:
    original = _answer.__code__
    try:
        core.set_code(_answer, _other_answer.__code__)
        assert _answer() == 2 and _answer.__code__ is _other_answer.__code__
    finally:
        core.set_code(_answer, original)
    assert _answer() == 1


@pytest.mark.parametrize("args", [(len, _answer.__code__), (_answer, "code")])
def test_set_code_takes_a_function_and_a_code_object(recorder: core.Recorder, args: tuple) -> None:
    with pytest.raises(TypeError, match=r"^set_code\(\) takes a function and a code object$"):
        core.set_code(*args)
    with pytest.raises(TypeError):
        core.set_code(_answer)  # type: ignore[call-arg]
