"""The record writers of both cores: framing, drops, re-entrancy, threads, errno, the type table, fork."""

from __future__ import annotations

import errno
import gc
import itertools
import json
import mmap
import os
import signal
import struct
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from conftest import R, Rec, parse_records
from kcovdf import abi, tracefile
from kcovdf.runtime.encode import encode_value

# Every test runs on each core (conftest's recorder fixture); R is the one in use.
pytestmark = pytest.mark.usefixtures("recorder")

PC = 0xFEEDFACE12345678


def new_mapping(words: int) -> mmap.mmap:
    """An anonymous MAP_SHARED mapping laid out as a .kdf file."""
    m = mmap.mmap(-1, tracefile.FILE_HEADER_SIZE + 8 * words)
    m[:tracefile.FILE_HEADER_SIZE] = tracefile.pack_header(words, os.getpid(), 0)
    return m


def u64(m: mmap.mmap, offset: int) -> int:
    return struct.unpack_from("<Q", m, offset)[0]


def count(m: mmap.mmap) -> int:
    return u64(m, tracefile.FILE_HEADER_SIZE)


def records(m: mmap.mmap) -> list[Rec]:
    """Every record of the buffer; fails on any word that is not a whole record."""
    buf = memoryview(m)[tracefile.FILE_HEADER_SIZE:].cast("Q")
    try:
        return parse_records(buf)
    finally:
        buf.release()


@contextmanager
def enabled(words: int = 4096) -> Iterator[mmap.mmap]:
    """The calling thread enabled on a fresh mapping for the duration."""
    m = new_mapping(words)
    R.enable(m, -1)
    try:
        yield m
    finally:
        if R.active() and u64(m, tracefile.HDR_OWNER) == threading.get_native_id():
            R.disable(m)


@contextmanager
def table() -> Iterator[tuple[int, str]]:
    """A registered O_APPEND table file: (fd, path)."""
    fd, path = tempfile.mkstemp(prefix="kcovdf-table-")
    os.close(fd)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    R.add_table(fd)
    try:
        yield fd, path
    finally:
        R.remove_table(fd)
        os.close(fd)
        os.unlink(path)


def _record_starts(words: list[int]) -> list[int]:
    """Index of each record's header in a buffer's words (words[0] = count)."""
    starts, i = [], 1
    while i <= words[0]:
        starts.append(i)
        i += 3 + abi.split_type_seq(words[i])[1]
    return starts


def assert_record(rec: Rec, rtype: int, seq: int, pc: int, arg_idx: int, value: object,
                  call_id: int) -> None:
    words = encode_value(value).words
    assert (rec.type, rec.seq, rec.pc, rec.arg_idx, rec.size) == (rtype, seq, pc, arg_idx, 8)
    assert len(rec.values) == len(words)
    assert rec.ptr == call_id  # format 2: meta's pointer is the call id
    assert list(rec.values) == words


# --- framing ---------------------------------------------------------------------------

def test_entry_ret_exc_yld_write_exact_words() -> None:
    arg = {"k": [1, 2]}
    err = KeyError("missing")
    with enabled() as m:
        assert R.entry(PC, 7, "héllo", arg) is None
        assert R.ret(PC, 2**70) == 2**70
        try:
            raise err
        except KeyError:
            R.exc(PC)  # the exception being handled, no name needed
        other = ValueError(3)
        R.exc(PC, other)
        token = object()
        assert R.yld(PC, token) is token
        recs = records(m)
    assert len(recs) == 7
    call = recs[0].ptr
    assert call > 0
    # the entry starts a call of this frame and ret() ends it; the later exits of this
    # frame belong to no known call: orphans, call id 0
    expected = [(abi.TYPE_ENTRY, 0, 7, call), (abi.TYPE_ENTRY, 1, "héllo", call),
                (abi.TYPE_ENTRY, 2, arg, call), (abi.TYPE_RETURN, abi.ARG_RETURN, 2**70, call),
                (abi.TYPE_RETURN, abi.ARG_EXCEPTION, err, 0),
                (abi.TYPE_RETURN, abi.ARG_EXCEPTION, other, 0),
                (abi.TYPE_RETURN, abi.ARG_YIELD, token, 0)]
    for seq, (rec, (rtype, idx, value, call_id)) in enumerate(zip(recs, expected, strict=True), start=1):
        assert_record(rec, rtype, seq, PC, idx, value, call_id)


def test_seq_restarts_at_enable_and_pc_is_masked_to_u64() -> None:
    with enabled() as m:
        R.entry(2**64 + 5, 1)
        R.entry(-1, 2)
    with enabled() as m2:
        R.ret(3, None)
    first, second = records(m)
    assert (first.seq, first.pc, second.seq, second.pc) == (1, 5, 2, 2**64 - 1)
    assert records(m2)[0].seq == 1


def test_redacted_has_the_redacted_form_and_no_address() -> None:
    with enabled() as m:
        R.entry(PC, R.REDACTED, "kept")
    secret, kept = records(m)
    assert list(secret.values) == encode_value(None, redacted=True).words
    assert secret.values[2] == abi.REDACTED
    assert secret.ptr == kept.ptr > 0  # the call id: no address of the withheld object
    assert list(kept.values) == encode_value("kept").words


def test_positions_above_0xfc_are_not_recorded() -> None:
    args = list(range(300))
    with enabled(words=300 * 8) as m:
        R.entry(PC, *args)
    recs = records(m)
    assert [r.arg_idx for r in recs] == list(range(abi.ARG_MAX_PARAM + 1))


def test_nothing_recorded_when_not_enabled() -> None:
    m = new_mapping(64)
    assert R.active() == 0
    R.entry(PC, 1, 2)
    assert R.ret(PC, "v") == "v"
    assert R.yld(PC, 4) == 4
    R.exc(PC, ValueError())
    assert count(m) == 0


@pytest.mark.c_core(reason="the C functions parse their own arguments; "
                           "the twin's argument errors are Python's")
def test_bad_arguments_name_the_call() -> None:
    with enabled():
        with pytest.raises(TypeError, match=r"entry\(\): pc must be an int, not str"):
            R.entry("pc", 1)
        with pytest.raises(TypeError, match=r"ret\(\) takes 2 arguments"):
            R.ret(PC)  # type: ignore[call-arg]
        with pytest.raises(TypeError, match=r"exc\(\) takes 1 or 2 arguments"):
            R.exc()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"entry\(\) missing its pc"):
        R.entry()  # type: ignore[call-arg]


# --- full buffer ------------------------------------------------------------------------

def test_full_buffer_drops_whole_records_and_counts_them() -> None:
    size = 20  # 19 record words: three 6-word int records fit, the 4th does not
    with enabled(words=size) as m:
        for i in range(10):
            R.entry(PC, i)
        assert count(m) == 18 and u64(m, tracefile.HDR_DROPS) == 7
        R.entry(PC, "x" * 500)  # 3 + 15 words: too big for the one free word
        assert count(m) == 18 and u64(m, tracefile.HDR_DROPS) == 8
        recs = records(m)
        assert [r.values[2] for r in recs] == [0, 1, 2]
        struct.pack_into("<Q", m, tracefile.FILE_HEADER_SIZE, 0)  # the reader resets buf[0]
        R.entry(PC, 99)
        (after,) = records(m)
    assert after.values[2] == 99 and after.seq == 12  # dropped records used their seq
    assert u64(m, tracefile.HDR_DROPS) == 8


def test_entry_records_are_the_same_reserved_together_or_one_by_one() -> None:
    """entry() reserves all its records at once when they fit; the words, seqs and drops
    are those of one reservation per record (the hook forces that path)."""
    args = (1, "two", [3], None, 2**70)
    sizes = [3 + len(encode_value(a).words) for a in args]  # 6, 8, 7, 6, 7: 34 words

    def run(words: int, hooked: bool) -> tuple[list[int], int]:
        with enabled(words=words) as m:
            if hooked:
                R.set_record_hook(lambda: None)
            try:
                R.entry(PC, *args)
                R.entry(PC, *args[:2])
            finally:
                R.set_record_hook(None)
            buf = memoryview(m)[tracefile.FILE_HEADER_SIZE:].cast("Q")
            try:
                words = list(buf)
            finally:
                buf.release()
            # each run has call ids of its own: number them from 1 to compare the words
            ids: dict[int, int] = {}
            for rec_at in _record_starts(words):
                meta = words[rec_at + 2]
                ptr = meta & abi.PTR_MASK
                words[rec_at + 2] = meta - ptr + ids.setdefault(ptr, len(ids) + 1)
            return words, u64(m, tracefile.HDR_DROPS)

    # everything fits; the first call fits, the second only in part; the first only in part
    for words in (64, 40, 20):
        batched, per_record = run(words, False), run(words, True)
        assert batched == per_record
        free, kept, drops = words - 1, [], 0
        for seq, (idx, size) in enumerate([*enumerate(sizes), *enumerate(sizes[:2])], start=1):
            if size <= free:
                free -= size
                kept.append((seq, idx))
            else:
                drops += 1  # a record that does not fit whole is dropped, and counts
        recs = parse_records(batched[0])
        assert [(r.seq, r.arg_idx) for r in recs] == kept and batched[1] == drops
        assert [list(r.values) for r in recs] == [encode_value(args[i]).words for _, i in kept]


def test_count_beyond_the_buffer_drops_instead_of_writing_past_it() -> None:
    with enabled(words=16) as m:
        struct.pack_into("<Q", m, tracefile.FILE_HEADER_SIZE, 1000)  # a corrupt buf[0]
        R.entry(PC, 1)
        assert count(m) == 1000 and u64(m, tracefile.HDR_DROPS) == 1


# --- re-entrancy -------------------------------------------------------------------------

class Noisy:
    """Garbage in a cycle whose finalizer records (as instrumented code would)."""

    ran = 0

    def __init__(self) -> None:
        self.me = self

    def __del__(self) -> None:
        Noisy.ran += 1
        R.entry(0xDE1, "finalizer")


def test_finalizers_never_record_inside_a_call() -> None:
    class Fresh:  # instances whose __dict__ the encoder must create: allocation mid-record
        pass

    old = gc.get_threshold()
    gc.set_threshold(1, 1, 1)
    Noisy.ran = 0
    try:
        with enabled(words=1 << 18) as m:
            for _ in range(300):
                Noisy()
                R.entry(PC, Fresh(), [Fresh()], Fresh(), {"a": Fresh()})
            gc.collect()
            recs = records(m)
    finally:
        gc.set_threshold(*old)
    assert Noisy.ran > 0
    assert [r.seq for r in recs] == list(range(1, len(recs) + 1))
    calls = [r for r in recs if r.pc == PC]
    finals = [r for r in recs if r.pc == 0xDE1]
    assert len(calls) == 4 * 300 and len(finals) == Noisy.ran
    # a finalizer record never splits the four records of one entry() call
    pos = [r.pc for r in recs]
    for i, rec in enumerate(recs):
        if rec.pc == PC and rec.arg_idx == 0:
            assert pos[i:i + 4] == [PC] * 4 and [r.arg_idx for r in recs[i:i + 4]] == [0, 1, 2, 3]


def test_signal_handler_during_long_records_never_splits_them() -> None:
    fired, outside = [], []

    def handler(signum: int, frame: object) -> None:
        fired.append(signum)
        if not R.in_record():
            outside.append(signum)  # then its entry is recorded
        R.entry(0x516, len(fired))

    big = {f"k{i}": list(range(50)) for i in range(2000)}
    blob = "é" * 200_000
    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, 0.0005, 0.0005)
    try:
        with enabled(words=1 << 20) as m:
            # a handler run outside a record writes one; most land inside one (nothing written),
            # so go on until some did (the twin spends nearly all its time inside records)
            for calls in itertools.count(1):
                R.entry(PC, big, blob)
                if calls >= 300 and (outside or calls >= 20_000):
                    break
            recs = records(m)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        signal.signal(signal.SIGALRM, old)
    assert fired, "the timer never fired"
    assert len([r for r in recs if r.pc == 0x516]) >= 1
    assert [r.seq for r in recs] == list(range(1, len(recs) + 1))
    main = [i for i, r in enumerate(recs) if r.pc == PC]
    assert len(main) == 2 * calls
    for i in main[::2]:
        assert (recs[i].arg_idx, recs[i + 1].arg_idx, recs[i + 1].pc) == (0, 1, PC)


@pytest.mark.c_core(reason="the C core calls the record hook once the record's words are reserved; "
                           "the twin, before it reserves them (docs/core.md §1)")
def test_record_hook_interrupts_mid_record_and_writers_inside_record_nothing() -> None:
    runs: list[tuple[int, int]] = []  # per hook run: buf[0] when it started, after its writers

    def interrupt() -> None:
        at = count(m)
        R.entry(0xBAD, 1, "nested")
        assert R.ret(0xBAD, "r") == "r"
        try:
            raise ValueError("nested")
        except ValueError:
            R.exc(0xBAD)
        assert R.yld(0xBAD, 2) == 2
        runs.append((at, count(m)))
        raise RuntimeError("dropped: an interrupt cannot fail the record it interrupts")

    arg, err = {"k": [1, 2]}, KeyError("outer")
    with enabled() as m:
        R.set_record_hook(interrupt)
        try:
            assert R.entry(PC, 7, "two", arg) is None
            assert R.ret(PC, arg) is arg
            try:
                raise err
            except KeyError:
                R.exc(PC)  # the outer exception, not the one the hook raised and caught
            assert sys.exc_info()[1] is None
        finally:
            R.set_record_hook(None)
        R.entry(PC, 8)  # the hook is gone: the next record is made as usual
        recs = records(m)
    call = recs[0].ptr
    expected = [(abi.TYPE_ENTRY, 0, 7, call), (abi.TYPE_ENTRY, 1, "two", call),
                (abi.TYPE_ENTRY, 2, arg, call), (abi.TYPE_RETURN, abi.ARG_RETURN, arg, call),
                (abi.TYPE_RETURN, abi.ARG_EXCEPTION, err, 0), (abi.TYPE_ENTRY, 0, 8, recs[-1].ptr)]
    assert recs[-1].ptr > call
    for seq, (rec, (rtype, idx, value, call_id)) in enumerate(zip(recs, expected, strict=True), start=1):
        assert_record(rec, rtype, seq, PC, idx, value, call_id)
    # the hook ran once per record, after its words were reserved: buf[0] already counted them
    ends = [sum(3 + len(r.values) for r in recs[:i + 1]) for i in range(5)]
    assert runs == [(end, end) for end in ends]


@pytest.mark.c_core(reason="the C core calls the record hook once the record's header is written; "
                           "the twin, before it reserves the record (docs/core.md §1)")
def test_record_hook_that_disables_stops_the_call_without_writing_through_the_old_buffer() -> None:
    def interrupt() -> None:
        R.disable(m)

    with enabled() as m:
        R.set_record_hook(interrupt)
        try:
            R.entry(PC, 1, 2, 3)
        finally:
            R.set_record_hook(None)
        assert R.active() == 0 and u64(m, tracefile.HDR_OWNER) == 0
        R.entry(PC, 4)  # disabled: nothing
    # the first record was reserved and its header written; its values never were
    n = 3 + len(encode_value(1).words)
    assert count(m) == n
    assert u64(m, tracefile.FILE_HEADER_SIZE + 8) == abi.type_seq(abi.TYPE_ENTRY, n - 3, 1)


def test_record_hook_must_be_callable_or_none() -> None:
    with pytest.raises(TypeError, match=r"set_record_hook\(\): expected a callable or None, not int"):
        R.set_record_hook(3)  # type: ignore[arg-type]
    R.set_record_hook(None)


# --- threads and the errno contract ---------------------------------------------------------

def test_two_threads_have_their_own_buffer_and_seq() -> None:
    maps = {name: new_mapping(4096) for name in ("a", "b")}
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def work(name: str) -> None:
        try:
            R.enable(maps[name], -1)
            barrier.wait()
            for i in range(200):
                R.entry(ord(name), i)
            barrier.wait()
            R.disable(maps[name])
        except BaseException as e:  # reported to the main thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in maps]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for name, m in maps.items():
        recs = records(m)
        assert [r.seq for r in recs] == list(range(1, 201))
        assert {r.pc for r in recs} == {ord(name)}
        assert [r.values[2] for r in recs] == list(range(200))
        assert u64(m, tracefile.HDR_OWNER) == 0


def test_enable_errors() -> None:
    m, other = new_mapping(64), new_mapping(64)
    with enabled() as mine:
        with pytest.raises(OSError, match=r"enable\(\): this thread is already enabled") as e:
            R.enable(other, -1)
        assert e.value.errno == errno.EBUSY
        assert u64(mine, tracefile.HDR_OWNER) == threading.get_native_id()
        assert R.active() == 1
    struct.pack_into("<Q", m, tracefile.HDR_OWNER, 12345)  # another task owns it
    with pytest.raises(OSError, match=r"enable\(\): device already enabled by task 12345") as e:
        R.enable(m, -1)
    assert e.value.errno == errno.EBUSY and R.active() == 0
    with pytest.raises(TypeError, match=r"enable\(\): mapping must be writable"):
        R.enable(bytes(8192), -1)
    with pytest.raises(TypeError, match=r"enable\(\): mapping must be a writable buffer"):
        R.enable(42, -1)
    with pytest.raises(ValueError, match=r"does not start with a kcovdf header page"):
        R.enable(bytearray(8192), -1)
    short = bytearray(tracefile.pack_header(1000, 0, 0)) + bytearray(64)
    with pytest.raises(ValueError, match=r"header says 1000 words, mapping holds 8"):
        R.enable(short, -1)
    assert R.active() == 0


def test_disable_errors() -> None:
    m = new_mapping(64)
    with pytest.raises(OSError, match=r"disable\(\): this thread is not enabled") as e:
        R.disable(m)
    assert e.value.errno == errno.EINVAL
    R.enable(m, -1)
    try:
        with pytest.raises(OSError) as e:
            R.disable(new_mapping(64))  # another mapping
        assert e.value.errno == errno.EINVAL
        seen: list[int] = []

        def other_thread() -> None:
            try:
                R.disable(m)
            except OSError as err:
                seen.append(err.errno)  # type: ignore[arg-type]

        t = threading.Thread(target=other_thread)
        t.start()
        t.join()
        assert seen == [errno.EINVAL]
        me = threading.get_native_id()
        struct.pack_into("<Q", m, tracefile.HDR_OWNER, me + 1)  # the owner word was taken over
        with pytest.raises(OSError, match=rf"device owned by task {me + 1}, not {me}") as e:
            R.disable(m)
        assert e.value.errno == errno.EINVAL
        struct.pack_into("<Q", m, tracefile.HDR_OWNER, me)
    finally:
        R.disable(m)
    assert u64(m, tracefile.HDR_OWNER) == 0 and R.active() == 0
    m.close()  # the export was released: the mmap can close


def test_thread_ending_while_enabled_leaves_no_state() -> None:
    m = new_mapping(256)
    tids: list[int] = []

    def run() -> None:
        R.enable(m, -1)
        tids.append(threading.get_native_id())
        R.entry(PC, 1)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    assert tids and u64(m, tracefile.HDR_OWNER) == 0 and R.active() == 0
    assert len(records(m)) == 1
    R.enable(m, -1)  # free for the next task
    R.disable(m)
    m.close()


# --- the type table ---------------------------------------------------------------------------

def expected_line(tid: int, cls: str, fields: list[str], named: str = "", name: str = "") -> bytes:
    obj = {"t": "type", "id": f"0x{tid:016x}", "class": cls, "fields": fields}
    if named:
        obj.update(named=named, name=name)
    try:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
    except UnicodeEncodeError:
        return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


# Odd class names (quotes, control characters, a lone surrogate) go into a child
# process: the remembered table lines are process-wide and replayed into every
# later table, which other tests then read.
TYPE_LINES_SCRIPT = """
import importlib, json, os, sys
from kcovdf.runtime.encode import encode_value
R = importlib.import_module(sys.argv[2])
import mmap
from kcovdf import abi, tracefile

class Weird:
    pass

Weird.__qualname__ = 'W\u00e9"ird\\\\\\n\\x7f\\U0001f600'

class Sur:
    pass

Sur.__qualname__ = "Sur\\udc80"
w, s = Weird(), Sur()
w.__dict__.update({"a": 1, "\u00fc": Sur(), 'q"': 2})
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)
R.add_table(fd)
m = mmap.mmap(-1, tracefile.FILE_HEADER_SIZE + 8 * 4096)
m[:tracefile.FILE_HEADER_SIZE] = tracefile.pack_header(4096, os.getpid(), 0)
R.enable(m, -1)
def odd():
    pass

odd.__qualname__ = "odd\\udc81"
# named values: a class with the odd name, functions, a module, nested and at the top
named = [Weird, odd, json, [Sur, json.dumps], {"k": len}]
for _ in range(3):
    R.entry(1, w, s, [Weird()], 5, *named)
    R.ret(1, s)
R.disable(m)
entries = {e for v in (w, s, [Weird()], 5, *named) for e in encode_value(v).types}
print(json.dumps([[e.id, e.cls.encode("utf-8", "surrogatepass").hex(), list(e.fields), e.named,
                   e.name.encode("utf-8", "surrogatepass").hex()] for e in entries]))
"""


def test_type_lines_once_per_id_exact_bytes(tmp_path) -> None:
    path = tmp_path / "table.jsonl"
    path.write_bytes(b"")
    out = subprocess.run([sys.executable, "-c", TYPE_LINES_SCRIPT, str(path), R.__name__], check=True,
                         capture_output=True, text=True, timeout=60).stdout
    lines = path.read_bytes().splitlines(keepends=True)
    ids = [json.loads(line)["id"] for line in lines]
    assert len(ids) == len(set(ids))
    expected = {expected_line(tid, bytes.fromhex(cls).decode("utf-8", "surrogatepass"), fields,
                              named, bytes.fromhex(name).decode("utf-8", "surrogatepass"))
                for tid, cls, fields, named, name in json.loads(out)}
    assert expected == set(lines)
    assert any(b"\\udc80" in line for line in lines)  # ensure_ascii for the surrogate name
    assert any(b'"named":"function","name":"__main__.odd\\udc81"' in line for line in lines)
    assert sum(b'"named":' in line for line in lines) == 6


# Shapes first met by encode() (which emits nothing) and then recorded: the cached
# shape ids (per-class layout cache, per-class last shape) still get their table line.
ENCODE_FIRST_SCRIPT = """
import collections, dataclasses, importlib, json, mmap, os, sys
from kcovdf.runtime.encode import encode_value
R = importlib.import_module(sys.argv[2])
from kcovdf import abi, tracefile

@dataclasses.dataclass
class DC:
    a: int
    b: str = "b"

class Plain:
    pass

class Slots:
    __slots__ = ("s", "t")

NT = collections.namedtuple("NT", "p q")
plain, slots = Plain(), Slots()
plain.k = 1
slots.s = 2
values = [DC(1), plain, slots, NT(1, 2), 7, "text"]
for v in values:
    R.encode(v)
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)
R.add_table(fd)
m = mmap.mmap(-1, tracefile.FILE_HEADER_SIZE + 8 * 4096)
m[:tracefile.FILE_HEADER_SIZE] = tracefile.pack_header(4096, os.getpid(), 0)
R.enable(m, -1)
for _ in range(2):
    R.entry(1, *values)
R.disable(m)
entries = {e for v in values for e in encode_value(v).types}
print(json.dumps([[e.id, e.cls, list(e.fields)] for e in entries]))
"""


def test_shapes_first_met_by_encode_still_get_their_table_line(tmp_path) -> None:
    path = tmp_path / "table.jsonl"
    path.write_bytes(b"")
    out = subprocess.run([sys.executable, "-c", ENCODE_FIRST_SCRIPT, str(path), R.__name__], check=True,
                         capture_output=True, text=True, timeout=60).stdout
    lines = path.read_bytes().splitlines(keepends=True)
    assert len(lines) == len(set(lines))
    assert set(lines) == {expected_line(tid, cls, fields) for tid, cls, fields in json.loads(out)}


def test_emit_remembers_and_replays_on_add_table() -> None:
    line = b'{"t":"info","key":"core-test","value":1}'
    quiet = b'{"t":"info","key":"not-remembered","value":2}'
    with table() as (_, first):
        R.emit(line)
        R.emit(quiet, remember=False)
        with pytest.raises(ValueError, match=r"emit\(\): a table line must not contain a newline"):
            R.emit(b"a\nb")
        with table() as (_, second):
            replayed = open(second, "rb").read()
        assert open(first, "rb").read().endswith(line + b"\n" + quiet + b"\n")
    assert line + b"\n" in replayed and quiet not in replayed
    assert all(json.loads(x) for x in replayed.splitlines())


def test_add_table_twice_does_not_replay_twice_and_bad_fd_is_named() -> None:
    R.emit(b'{"t":"info","key":"twice","value":0}')
    with table() as (fd, path):
        before = open(path, "rb").read()
        R.add_table(fd)
        assert open(path, "rb").read() == before and before.count(b'"twice"') == 1
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    with pytest.raises(OSError, match=rf"add_table\(\): fd {w} is not open") as e:
        R.add_table(w)
    assert e.value.errno == errno.EBADF
    with pytest.raises(ValueError, match=r"remove_table\(\): fd must be a file descriptor"):
        R.remove_table(-3)


# --- fork ------------------------------------------------------------------------------------------

def _wait_child(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


N_FORK = 20000  # long enough for both processes to write at once on most runs

# Run without kcovdf.runtime.core, whose at-fork hook would disable the child: the core's
# module alone, as a program using it directly does, so that parent and child both write.
# The table fd is the twin's lock across the two processes (the C core needs none).
FORK_SCRIPT = """
import importlib, mmap, os, sys
R = importlib.import_module(sys.argv[3])
n = int(sys.argv[2])
with open(sys.argv[1], "r+b") as f:
    m = mmap.mmap(f.fileno(), 0)
R.enable(m, os.open(sys.argv[1] + ".table", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600))
go_r, go_w = os.pipe()
pid = os.fork()
if pid == 0:
    os.read(go_r, 1)
    for i in range(n):
        R.entry(0xC41D, i, "child")
    os._exit(0)
os.write(go_w, b"x")
for i in range(n):
    R.entry(0x9A7E, i, "parent")
_, status = os.waitpid(pid, 0)
R.disable(m)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def test_parent_and_child_share_one_mapping_without_tearing(tmp_path) -> None:
    path = tmp_path / "shared.kdf"
    words = 1 << 20
    path.write_bytes(tracefile.pack_header(words, os.getpid(), 0) + bytes(8 * words))
    subprocess.run([sys.executable, "-c", FORK_SCRIPT, str(path), str(N_FORK), R.__name__], check=True,
                   timeout=120)
    with open(path, "r+b") as f:
        m = mmap.mmap(f.fileno(), 0)
    recs = records(m)
    assert u64(m, tracefile.HDR_DROPS) == 0 and u64(m, tracefile.HDR_OWNER) == 0
    for pc, name in ((0xC41D, "child"), (0x9A7E, "parent")):
        mine = [r for r in recs if r.pc == pc]
        assert [r.values[2] for r in mine if r.arg_idx == 0] == list(range(N_FORK))
        assert all(list(r.values) == encode_value(name).words for r in mine if r.arg_idx == 1)
    assert len(recs) == 4 * N_FORK


def test_after_fork_child_starts_disabled_and_leaves_the_parent_owner() -> None:
    m = new_mapping(1024)
    R.enable(m, -1)
    try:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                R.after_fork_child()
                before = count(m)
                R.entry(PC, 1)
                try:
                    R.enable(m, -1)
                except OSError as e:
                    busy = e.errno == errno.EBUSY
                else:
                    busy = False
                if R.active() == 0 and count(m) == before and busy:
                    code = 0
            finally:
                os._exit(code)
        assert _wait_child(pid) == 0
        assert u64(m, tracefile.HDR_OWNER) == threading.get_native_id()
        assert R.active() == 1
    finally:
        R.disable(m)
