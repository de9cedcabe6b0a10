"""Fork: the child starts disabled, gets EBUSY until the parent disables, and both share one buffer."""

from __future__ import annotations

import errno
import os
import threading

import pytest

from conftest import parse_records
from kcovdf.runtime import core
from kcovdf.runtime.device import Device, State
from kcovdf.runtime.encode import encode_value

PARENT, CHILD = 0xA, 0xB


def _child(dev: Device, to_parent: int, from_parent: int) -> int:
    """The child's side; returns its exit status (each failure has its own)."""
    if core.active() != 0 or dev.state is not State.ENABLED:
        return 10  # the child must start disabled, the parent still owning the device
    core.entry(CHILD, "not recorded: the child is not enabled")
    try:
        dev.enable()
        return 11
    except OSError as e:
        if e.errno != errno.EBUSY:
            return 12
    os.write(to_parent, b"b")
    if os.read(from_parent, 1) != b"g":  # the parent has disabled
        return 13
    dev.enable()
    for i in range(50):
        core.entry(CHILD, i, "child")
    dev.disable()
    return 0


def test_child_shares_the_buffer_after_the_parent_disables(recorder: core.Recorder) -> None:
    with Device() as dev:
        dev.init_trace(1 << 14)
        dev.enable()
        core.entry(PARENT, "before fork")
        up_r, up_w = os.pipe()
        down_r, down_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            status = 99
            try:
                os.close(up_r)
                os.close(down_w)
                status = _child(dev, up_w, down_r)
            finally:
                os._exit(status)
        os.close(up_w)  # so that a dead child reads as EOF, never a hang
        os.close(down_r)
        try:
            assert os.read(up_r, 1) == b"b"  # the child was refused with EBUSY
            core.entry(PARENT, "while the child waits")
            dev.disable()
            os.write(down_w, b"g")
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
            dev.enable()  # the child disabled: free again
            core.entry(PARENT, "after the child")
            dev.disable()
        finally:
            os.close(up_r)
            os.close(down_w)
        buf = dev.mmap()
        recs = parse_records(buf)
        buf.release()
    parent = [r for r in recs if r.pc == PARENT]
    child = [r for r in recs if r.pc == CHILD]
    assert [r.values for r in parent] == [encode_value(s).words for s in
                                          ("before fork", "while the child waits", "after the child")]
    assert [r.values for r in child[::2]] == [encode_value(i).words for i in range(50)]
    assert [r.seq for r in child] == list(range(1, 101))  # the child's own sequence
    assert len(recs) == len(parent) + len(child)


# Forking from a thread is the point here; 3.12+ warns about it in multi-threaded processes.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_fork_from_a_thread_leaves_other_threads_enabled(recorder: core.Recorder) -> None:
    """Only the parent's threads stay enabled; the child (one thread) starts with none."""
    with Device() as dev, Device() as other:
        dev.init_trace(256)
        other.init_trace(256)
        dev.enable()
        result: list[int] = []

        def fork_here() -> None:
            pid = os.fork()
            if pid == 0:
                ok = core.active() == 0 and other.state is State.INIT
                if ok:
                    other.enable()  # a fresh device works in the child
                    other.disable()
                os._exit(0 if ok else 1)
            result.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))

        t = threading.Thread(target=fork_here)
        t.start()
        t.join()
        assert result == [0]
        assert core.active() == 1
        dev.disable()
