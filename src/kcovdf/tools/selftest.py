"""``kcovdf selftest``: the kernel series' user_ioctl cases and kcovdf's own, as TAP.

The nine user_ioctl cases run against kcovdf.Device exactly as the kernel's
selftest runs them against /sys/kernel/debug/kcov_dataflow; the cases after
them check what kcovdf promises beyond the kernel (shared buffers across
fork, counted drops, FAULT, the re-entrancy guard, threads); the native cases
(kcovdf.native.selftest) build the series' C selftest library with kcovdf cc.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import gc
import os
import sys
import threading
import traceback
from collections.abc import Callable
from typing import TextIO

from kcovdf import abi
from kcovdf.native import selftest as native_selftest
from kcovdf.runtime import core
from kcovdf.runtime.device import Device

WORDS = 4096
PC = 0x5E1F7E57


def _expect_errno(err: int, call: Callable[..., object], *args: object) -> None:
    try:
        call(*args)
    except OSError as e:
        assert e.errno == err, f"{call.__name__}(): errno {e.errno}, expected {errno.errorcode[err]}"
        return
    raise AssertionError(f"{call.__name__}(): succeeded, expected {errno.errorcode[err]}")


def _headers(buf: memoryview) -> list[tuple[int, int, int, int, list[int]]]:
    """(type, seq, pc, arg_idx, values) of every record; fails on a torn one."""
    out, i, n = [], 1, buf[0]
    while i <= n:
        head = abi.split_type_seq(buf[i])
        assert head is not None and i + 2 + head[1] <= n, f"torn record at word {i}"
        rtype, nvals, seq = head
        out.append((rtype, seq, buf[i + 1], abi.split_meta(buf[i + 2])[0], list(buf[i + 3:i + 3 + nvals])))
        i += 3 + nvals
    return out


# --- the kernel's user_ioctl cases -------------------------------------------------------

def init_track() -> None:
    with Device() as dev:
        dev.init_trace(WORDS)
        assert dev.words == WORDS


def init_track_too_small() -> None:
    with Device() as dev:
        _expect_errno(errno.EINVAL, dev.init_trace, 1)


def init_track_double() -> None:
    with Device() as dev:
        dev.init_trace(WORDS)
        _expect_errno(errno.EBUSY, dev.init_trace, WORDS)


def mmap_before_init() -> None:
    with Device() as dev:
        _expect_errno(errno.EINVAL, dev.mmap)


def enable_disable() -> None:
    with Device() as dev:
        dev.init_trace(WORDS)
        buf = dev.mmap()
        dev.enable()
        dev.disable()
        buf.release()


def enable_without_mmap() -> None:
    with Device() as dev:
        dev.init_trace(WORDS)
        dev.enable()
        dev.disable()


def disable_without_enable() -> None:
    with Device() as dev:
        dev.init_trace(WORDS)
        _expect_errno(errno.EINVAL, dev.disable)


def double_enable() -> None:
    with Device() as first, Device() as second:
        first.init_trace(WORDS)
        second.init_trace(WORDS)
        first.enable()
        _expect_errno(errno.EBUSY, second.enable)
        first.disable()


def _add(a: int, b: int) -> int:
    core.entry(PC, a, b)
    return core.ret(PC, a + b)


def records_captured() -> None:
    with Device() as dev:
        dev.init_trace(WORDS)
        buf = dev.mmap()
        dev.enable()
        buf[0] = 0  # reset, as the kernel's example does
        _add(0x11, 0x22)
        dev.disable()
        assert buf[0] > 0, "no words written"
        rtype = (buf[1] >> 28) & 0xF
        assert rtype in (abi.TYPE_ENTRY, abi.TYPE_RETURN), f"first header has type {rtype:#x}"
        recs = _headers(buf)
        assert [(r[0], r[3]) for r in recs] == [(0xE, 0), (0xE, 1), (0xF, 0)], recs
        buf.release()


# --- beyond the kernel ----------------------------------------------------------------------

def fork_shared_buffer() -> None:
    with Device() as dev:
        dev.init_trace(WORDS)
        dev.enable()
        core.entry(PC, "parent")
        up_r, up_w = os.pipe()
        down_r, down_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                os.close(up_r)
                os.close(down_w)
                try:
                    dev.enable()
                except OSError as e:
                    if e.errno == errno.EBUSY:
                        os.write(up_w, b"b")
                if os.read(down_r, 1) == b"g":
                    dev.enable()
                    core.entry(PC + 1, "child")
                    dev.disable()
                    status = 0
            finally:
                os._exit(status)
        os.close(up_w)  # so that a dead child reads as EOF, never a hang
        os.close(down_r)
        try:
            busy = os.read(up_r, 1) == b"b"
            dev.disable()
            os.write(down_w, b"g")
            child_status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        finally:
            os.close(up_r)
            os.close(down_w)
        assert busy, "the child's enable() was not refused with EBUSY while the parent was enabled"
        assert child_status == 0, f"child exit status {child_status}"
        buf = dev.mmap()
        pcs = [r[2] for r in _headers(buf)]
        buf.release()
        assert pcs == [PC, PC + 1], [hex(p) for p in pcs]


def full_buffer_drops() -> None:
    per_record = 3 + len(core.encode(1))
    with Device() as dev:
        dev.init_trace(1 + 4 * per_record)
        dev.enable()
        core.entry(PC, *range(10))
        dev.disable()
        buf = dev.mmap()
        n, recs = buf[0], _headers(buf)
        buf.release()
        assert n == 4 * per_record and len(recs) == 4, (n, len(recs))
        assert dev.drops == 6, f"drops = {dev.drops}"


@dataclasses.dataclass
class _Sensor:
    name: str
    reading: int


_getter_calls: list[object] = []


def _get_reading(self: _Sensor) -> int:
    _getter_calls.append(self)
    return self._reading  # type: ignore[attr-defined, no-any-return]


def _set_reading(self: _Sensor, value: int) -> None:
    self._reading = value  # type: ignore[attr-defined]


_Sensor.reading = property(_get_reading, _set_reading)  # type: ignore[assignment]


def fault_on_unreadable_field() -> None:
    sensor = _Sensor("t1", 21)
    with Device() as dev:
        dev.init_trace(WORDS)
        dev.enable()
        core.entry(PC, sensor)
        dev.disable()
        buf = dev.mmap()
        ((_, _, _, _, values),) = _headers(buf)
        buf.release()
    _, form, kinds = abi.split_layout(values[1], len(values) - 2)
    assert form == abi.Form.OBJECT, form
    assert kinds[1] == abi.Kind.FAULT and values[3] == abi.FAULT, (kinds, [hex(v) for v in values])
    assert not _getter_calls, "the property was called"


class _Wide:
    """An object with many fields: encoding it allocates a lot in the twin."""

    def __init__(self) -> None:
        for k in range(abi.MAX_FIELDS):
            setattr(self, f"f{k}", (k, str(k)))


def _interrupted_records() -> None:
    """Writers called by the record hook (an interrupt in the middle of a record) record nothing."""
    runs: list[tuple[int, int]] = []  # per hook run: buf[0] when it started, after its writers

    def interrupt() -> None:
        at = buf[0]
        core.entry(PC + 1, "nested", 2)
        core.ret(PC + 1, "nested")
        try:
            raise ValueError("nested")
        except ValueError:
            core.exc(PC + 1)
        core.yld(PC + 1, 3)
        runs.append((at, buf[0]))
        raise RuntimeError("escapes the hook")  # dropped: the interrupted record still lands

    outer = KeyError("outer")
    set_hook = core.set_record_hook
    with Device() as dev:
        dev.init_trace(WORDS)
        buf = dev.mmap()
        dev.enable()
        set_hook(interrupt)
        try:
            _add(0x11, 0x22)
            try:
                raise outer
            except KeyError:
                core.exc(PC)
        finally:
            set_hook(None)
            dev.disable()
        recs = _headers(buf)  # every record whole
        buf.release()
    assert len(runs) == 4, f"the hook ran {len(runs)} times for 4 records"
    assert all(after == at for at, after in runs), f"writers inside the hook added words: {runs}"
    assert [r[:4] for r in recs] == [(0xE, 1, PC, 0), (0xE, 2, PC, 1), (0xF, 3, PC, 0),
                                     (0xF, 4, PC, abi.ARG_EXCEPTION)], recs
    assert [r[4] for r in recs] == [core.encode(v) for v in (0x11, 0x22, 0x33, outer)]


def reentrancy_guard() -> None:
    """Nothing is recorded from inside a record: an interrupt (the record hook), finalizers."""
    _interrupted_records()
    inside_runs: list[bool] = []  # per finalizer run inside a record: did it add words?
    # The twin's encoder allocates while it makes a record (core.in_record() is then
    # true), so collections run finalizers there; the C core runs no collection there.

    class Finalized:
        def __init__(self) -> None:
            self.cycle = self

        def __del__(self) -> None:
            inside = core.in_record()
            before = buf[0]
            core.entry(PC + 1, "finalizer")
            if inside:
                inside_runs.append(buf[0] != before)

    old = gc.get_threshold()
    with Device() as dev:
        dev.init_trace(1 << 16)
        buf = dev.mmap()
        dev.enable()
        wide = _Wide()
        try:
            # Collections come every 50 allocations; the twin's encoder makes most of
            # them, so most collections (and their finalizers) run inside a record.
            gc.set_threshold(50)
            for i in range(300):
                Finalized()
                core.entry(PC, wide, {str(k): k for k in range(6)}, i)
        finally:
            gc.set_threshold(*old)
            dev.disable()
        gc.collect()
        _headers(buf)  # every record whole
        buf.release()
    assert not any(inside_runs), f"{sum(inside_runs)} finalizer(s) recorded during a record"
    assert inside_runs or core.name == "c", "no finalizer ran during a record of the twin"


def threads_own_devices() -> None:
    devices = [Device(), Device()]
    errors: list[str] = []

    def work(k: int) -> None:
        try:
            devices[k].enable()
            for i in range(100):
                core.entry(PC + k, i)
            devices[k].disable()
        except Exception as e:  # reported by the main thread
            errors.append(f"thread {k}: {e!r}")

    try:
        for d in devices:
            d.init_trace(WORDS)
        threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        for k, d in enumerate(devices):
            buf = d.mmap()
            recs = _headers(buf)
            buf.release()
            assert {r[2] for r in recs} == {PC + k}, f"device {k} holds other pcs"
            assert [r[1] for r in recs] == list(range(1, 101)), f"device {k}: sequence broken"
    finally:
        for d in devices:
            d.close()


#: (name, case): a case raises on failure; a returned string is a TAP directive ("SKIP why").
CASES: list[tuple[str, Callable[[], str | None]]] = [
    (f.__name__, f) for f in (  # type: ignore[misc]
        init_track, init_track_too_small, init_track_double, mmap_before_init, enable_disable,
        enable_without_mmap, disable_without_enable, double_enable, records_captured,
        fork_shared_buffer, full_buffer_drops, fault_on_unreadable_field, reentrancy_guard,
        threads_own_devices,
    )
] + native_selftest.CASES


def run(cases: list[tuple[str, Callable[[], str | None]]], out: TextIO, title: str = "") -> int:
    """Run ``cases`` printing TAP to ``out`` (``title`` as a comment); return the number that failed."""
    print("TAP version 13", file=out)
    print(f"1..{len(cases)}", file=out)
    if title:
        print(f"# {title}", file=out)
    failed = 0
    for n, (name, case) in enumerate(cases, 1):
        try:
            directive = case()
        except Exception:
            failed += 1
            print(f"not ok {n} - {name}", file=out)
            for line in traceback.format_exc().rstrip().splitlines():
                print(f"# {line}", file=out)
        else:
            print(f"ok {n} - {name}" + (f" # {directive}" if directive else ""), file=out)
        out.flush()
    return failed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``kcovdf selftest``."""
    parser.add_argument("--core", choices=("c", "py"),
                        help="recorder to test: the C core or the Python twin (default: KCOVDF_CORE, else c)")


def main(args: argparse.Namespace) -> int:
    """Run every case; exit status 1 if any failed, 2 if the requested core cannot be loaded."""
    before = core.name
    if args.core:
        try:
            core.use(args.core)
        except ImportError as e:
            print(f"Bail out! --core {args.core}: {e}", flush=True)
            return 2
    try:
        title = f"kcovdf selftest, {core.name} core, pid {os.getpid()}"
        return 1 if run(CASES, sys.stdout, title) else 0
    finally:
        core.use(before)
