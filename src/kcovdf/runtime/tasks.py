"""Tasks of a traced program: one file device per thread and per process, in one trace directory.

The kernel records per task; kcovdf's task is a thread, and a process after fork
(docs/run.md). ``Tasks`` gives every thread it follows its own ``Device`` backed by
``task-<pid>-<tid>.kdf`` in the trace directory (``-<n>`` appended when the name
is taken; kcovdf.tracefile names them), so records survive the program crashing,
calling ``os._exit`` or being killed:

- the thread that calls ``start()`` is enabled at once;
- a ``threading.Thread`` started afterwards enables its own device when its
  ``run()`` begins and disables and closes it when ``run()`` ends;
- a forked child starts disabled (as in the kernel), forgets the parent's devices
  without touching them, and enables a fresh device for its one thread.

``summarize(trace_dir)`` counts records, drops and tasks of a whole trace directory
using only the standard library (the runtime path must not need the tools extra).
"""

from __future__ import annotations

import functools
import mmap
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kcovdf import abi, tracefile
from kcovdf.errors import CorruptBufferError
from kcovdf.read import walk

#: Default buffer size per task, in u64 words (8 MiB per task file).
DEFAULT_WORDS = 1 << 20

_original_start: Callable[[threading.Thread], None] | None = None


class Tasks:
    """The devices of the tasks of this process that record into one trace directory."""

    def __init__(self, trace_dir: str, words: int = DEFAULT_WORDS, *,
                 follow_threads: bool = True, follow_forks: bool = True) -> None:
        self.trace_dir = trace_dir
        self.words = words
        self.follow_threads = follow_threads
        self.follow_forks = follow_forks
        # The lock protects _devices (tid -> Device) and _running.
        self._lock = threading.Lock()
        self._devices: dict[int, Any] = {}
        self._running = False
        # Devices inherited across fork belong to the parent: kept referenced so that
        # no finalizer of ours ever closes or disables them in the child.
        self._inherited: list[Any] = []
        self._fork_handler_registered = False

    # --- lifecycle --------------------------------------------------------------
    def start(self) -> None:
        """Enable the calling thread and follow new threads and forks from now on."""
        with self._lock:
            self._running = True
        if self.follow_threads:
            _follow_threads(self)
        if self.follow_forks and not self._fork_handler_registered:
            # os.register_at_fork cannot be undone, so the handler checks _running.
            os.register_at_fork(after_in_child=self._after_fork_child)
            self._fork_handler_registered = True
        self.enable_current()

    def stop(self) -> None:
        """Stop following; disable and close the calling thread's device.

        Devices of threads still running (daemon threads) stay enabled: their
        files are complete up to the moment the process ends.
        """
        with self._lock:
            self._running = False
        if self.follow_threads:
            _unfollow_threads(self)
        self.disable_current()

    # --- one task -----------------------------------------------------------------
    def enable_current(self) -> Any | None:
        """Open, map and enable a file device for the calling thread; None if that fails.

        Failing to trace a thread (the thread already enabled its own device, the
        disk is full) must never change what the program does, so it is only skipped.
        """
        from kcovdf.runtime.device import Device

        tid = threading.get_native_id()
        with self._lock:
            if not self._running or tid in self._devices:
                return None
        try:
            dev = Device(file=self._task_path(os.getpid(), tid))
        except FileExistsError:
            dev = Device(file=self._task_path(os.getpid(), tid))  # lost a race for the name once
        except OSError:
            return None
        try:
            dev.init_trace(self.words)
            dev.mmap()
            dev.enable()
        except OSError:
            _close_quietly(dev)
            return None
        with self._lock:
            self._devices[tid] = dev
        return dev

    def disable_current(self) -> None:
        """Disable and close the calling thread's device, if it has one."""
        with self._lock:
            dev = self._devices.pop(threading.get_native_id(), None)
        if dev is None:
            return
        try:
            dev.disable()
        except OSError:
            pass  # the program disabled it itself; closing is still right
        _close_quietly(dev)

    def _task_path(self, pid: int, tid: int) -> str:
        """A file name no other task of this trace uses (a pid can recur across exec, a tid too)."""
        return tracefile.free_task_path(self.trace_dir, pid, tid)

    def _after_fork_child(self) -> None:
        with self._lock:
            if not self._running:
                return
            inherited = list(self._devices.values())
            self._inherited.extend(inherited)
            self._devices.clear()
        from kcovdf.runtime import core

        for dev in inherited:
            # Type and symbol lines of the child belong in the child's file only.
            if dev.table_fd is not None:
                core.remove_table(dev.table_fd)
        self.enable_current()

    def traced_run(self, run: Callable[[], Any]) -> Callable[[], Any]:
        """Wrap a thread's bound ``run`` so the thread records while it runs."""

        @functools.wraps(run)
        def run_as_task() -> Any:
            self.enable_current()
            try:
                return run()
            finally:
                self.disable_current()

        run_as_task.__kcovdf_task__ = True  # type: ignore[attr-defined]
        return run_as_task


# --- following threads ------------------------------------------------------------
# threading.Thread.start is patched (not run, which subclasses override): it gives
# the thread object an instance attribute ``run`` wrapping its own run method. The
# wrapper enables the device inside the new thread, after threading registered it,
# so the task line names the thread correctly. Only one Tasks follows threads.
_following: Tasks | None = None


def _follow_threads(tasks: Tasks) -> None:
    global _following, _original_start
    _following = tasks
    if _original_start is None:
        _original_start = threading.Thread.start
        threading.Thread.start = _start_traced  # type: ignore[method-assign]


def _unfollow_threads(tasks: Tasks) -> None:
    global _following, _original_start
    if _following is tasks:
        _following = None
    if _original_start is not None:
        threading.Thread.start = _original_start  # type: ignore[method-assign]
        _original_start = None


def _start_traced(thread: threading.Thread) -> None:
    tasks = _following
    run = thread.run
    if tasks is not None and not getattr(run, "__kcovdf_task__", False):
        thread.run = _run_once(thread, tasks.traced_run(run))  # type: ignore[method-assign]
    assert _original_start is not None
    _original_start(thread)


def _run_once(thread: threading.Thread, run: Callable[[], Any]) -> Callable[[], Any]:
    """Run, then drop the instance attribute again (it would keep a cycle alive)."""

    @functools.wraps(run)
    def run_and_restore() -> Any:
        try:
            return run()
        finally:
            thread.__dict__.pop("run", None)

    return run_and_restore


def _close_quietly(dev: Any) -> None:
    try:
        dev.close()
    except OSError:
        pass


# --- summary ------------------------------------------------------------------------
@dataclass
class Summary:
    """What one trace directory holds."""

    records: int
    drops: int
    tasks: int


def count_file(path: str) -> tuple[int, int]:
    """(records, drops) of one .kdf task file; (0, 0) for a file that is not one."""
    with open(path, "rb") as f:
        try:
            head = tracefile.read_header(f.read(tracefile.FILE_HEADER_SIZE), path)
        except CorruptBufferError:
            return 0, 0
        end = head.table_offset
        if head.words < abi.MIN_WORDS or os.fstat(f.fileno()).st_size < end:
            return 0, head.drops
        with mmap.mmap(f.fileno(), end, access=mmap.ACCESS_READ) as m:
            buf = memoryview(m)[tracefile.FILE_HEADER_SIZE:].cast("Q")
            try:
                return _count_records(buf), head.drops
            finally:
                buf.release()


def _count_records(buf: memoryview) -> int:
    """Records in a buffer, found the way the reference parser finds them."""
    end = min(buf[0], len(buf) - 1) + 1  # one past the last word written
    return len(walk.records(buf, 1, end)[0])


def summarize(trace_dir: str) -> Summary:
    """Records, drops and task files of a trace directory."""
    records = drops = 0
    found = tracefile.list_dir(trace_dir).tasks
    for task in found:
        r, d = count_file(os.path.join(trace_dir, task.name))
        records, drops = records + r, drops + d
    return Summary(records, drops, len(found))
