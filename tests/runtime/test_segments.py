"""The full hook and resegment(): a task goes on in a fresh buffer when its buffer fills."""

from __future__ import annotations

import errno
import mmap
import threading

import pytest
from test_writer import PC, count, enabled, new_mapping, records, u64

from conftest import R
from kcovdf import abi, tracefile

pytestmark = pytest.mark.usefixtures("recorder")


class Segments:
    """A full hook that moves the thread to a fresh mapping of ``words``, up to ``limit`` times."""

    def __init__(self, words: int, limit: int = 1000) -> None:
        self.words = words
        self.limit = limit
        self.maps: list[mmap.mmap] = []

    def __call__(self) -> None:
        if len(self.maps) >= self.limit:
            return
        m = new_mapping(self.words)
        R.resegment(m)
        self.maps.append(m)

    def stop(self) -> None:
        """Disable the thread on the segment it is on (enabled() disables only the first)."""
        if self.maps and u64(self.maps[-1], tracefile.HDR_OWNER) == threading.get_native_id():
            R.disable(self.maps[-1])


@pytest.fixture
def full_hook():
    yield lambda hook: R.set_full_hook(hook)
    R.set_full_hook(None)


def test_a_full_buffer_goes_on_in_the_next_one_with_no_record_lost(full_hook) -> None:
    hook = Segments(64)
    full_hook(hook)
    with enabled(64) as first:
        for i in range(100):
            R.entry(PC, i, "x" * (i % 20))  # two records per call, reserved together
            R.ret(PC, i)
        hook.stop()
    maps = [first, *hook.maps]
    assert len(maps) > 10
    recs = [r for m in maps for r in records(m)]
    assert len(recs) == 300 and all(u64(m, tracefile.HDR_DROPS) == 0 for m in maps)
    # one task: its sequence goes on across segments, and each call's records share its id
    assert [r.seq for r in recs] == list(range(1, 301))
    calls = [r.ptr for r in recs]
    assert [calls[i] for i in range(0, 300, 3)] == [calls[i + 2] for i in range(0, 300, 3)]
    assert len(set(calls)) == 100
    # every segment was left with whole records, and only the last one has an owner
    for m in maps:
        assert count(m) <= 63
    assert [u64(m, tracefile.HDR_OWNER) for m in maps[:-1]] == [0] * (len(maps) - 1)


def test_without_a_new_buffer_the_record_is_dropped_and_counted(full_hook) -> None:
    hook = Segments(64, limit=1)
    full_hook(hook)
    with enabled(64) as first:
        for i in range(40):
            R.entry(PC, i)
        hook.stop()
    second = hook.maps[0]
    assert len(records(first)) + len(records(second)) + u64(second, tracefile.HDR_DROPS) == 40
    assert u64(second, tracefile.HDR_DROPS) > 0 and u64(first, tracefile.HDR_DROPS) == 0


@pytest.mark.parametrize("behaviour", ["raises", "records", "disables"])
def test_a_hook_that_fails_records_or_disables_loses_nothing_else(full_hook, behaviour) -> None:
    state: dict[str, object] = {}

    def hook() -> None:
        if behaviour == "raises":
            raise RuntimeError("no disk")
        if behaviour == "records":
            R.entry(PC, "inside the hook")  # the guard is held: nothing is written
            return
        R.disable(state["m"])

    full_hook(hook)
    with enabled(64) as m:
        state["m"] = m
        for i in range(40):
            R.entry(PC, i)
        recs = records(m)
    assert all(r.values != R.encode("inside the hook") for r in recs)
    if behaviour == "disables":
        assert not R.active() and u64(m, tracefile.HDR_OWNER) == 0
        assert u64(m, tracefile.HDR_DROPS) == 0  # the thread stopped: nothing more counted
    else:
        assert len(recs) + u64(m, tracefile.HDR_DROPS) == 40


def test_resegment_errors_name_the_problem() -> None:
    m = new_mapping(64)
    with pytest.raises(OSError) as e:
        R.resegment(m)
    assert e.value.errno == errno.EINVAL and "not enabled" in str(e.value)
    with enabled(64) as first:
        with pytest.raises(OSError) as e:
            R.resegment(first)
        assert e.value.errno == errno.EINVAL and "already on this mapping" in str(e.value)
        taken = new_mapping(64)
        taken[tracefile.HDR_OWNER:tracefile.HDR_OWNER + 8] = (12345).to_bytes(8, "little")
        with pytest.raises(OSError) as e:
            R.resegment(taken)
        assert e.value.errno == errno.EBUSY
        with pytest.raises(ValueError, match="kcovdf header page"):
            R.resegment(mmap.mmap(-1, 8192))
        with pytest.raises(TypeError, match="resegment"):
            R.resegment(b"not writable")
        # still enabled on the first buffer, which keeps recording
        R.entry(PC, 1)
        assert len(records(first)) == 1
        assert u64(first, tracefile.HDR_OWNER) == threading.get_native_id()


def test_the_full_hook_must_be_callable_or_none() -> None:
    with pytest.raises(TypeError, match="set_full_hook"):
        R.set_full_hook(42)


def test_add_table_without_replay_writes_only_new_lines(tmp_path) -> None:
    import os

    R.emit(b'{"t":"info","k":"before"}')
    path = tmp_path / "t.jsonl"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        R.add_table(fd, replay=False)
        R.emit(b'{"t":"info","k":"after"}', remember=False)
    finally:
        R.remove_table(fd)
        os.close(fd)
    assert path.read_bytes() == b'{"t":"info","k":"after"}\n'


def test_batch_entries_at_a_segment_boundary_stay_whole(full_hook) -> None:
    hook = Segments(abi.MIN_WORDS + 40)
    full_hook(hook)
    with enabled(abi.MIN_WORDS + 40) as first:
        for _ in range(30):
            R.entry(PC, 1, 2, 3, 4, 5)  # one reservation for the five records when they fit
        hook.stop()
    recs = [r for m in [first, *hook.maps] for r in records(m)]
    assert [r.arg_idx for r in recs] == [0, 1, 2, 3, 4] * 30
    assert [r.seq for r in recs] == list(range(1, 151))
