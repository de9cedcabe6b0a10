"""Tasks of a traced program: one file device per thread and per process, in one trace directory.

The kernel records per task; kcovdf's task is a thread, and a process after fork
(docs/run.md). ``Tasks`` gives every thread it follows its own ``Device`` backed by
``task-<pid>-<tid>.kdf`` in the trace directory (``-<n>`` appended when the name
is taken; kcovdf.tracefile names them), so records survive the program crashing,
calling ``os._exit`` or being killed:

    NEW --start()--> FOLLOWING --stop()--> STOPPED
                         ^                    |
                         +------start()-------+

In FOLLOWING:

- the thread that called ``start()`` is enabled at once;
- a ``threading.Thread`` started afterwards enables its own device when its
  ``run()`` begins, once threading has registered (and so named) it, and disables
  and closes it when ``run()`` returns or raises;
- a thread started through ``_thread`` (``start_new_thread``, its alias
  ``start_new``, and ``start_joinable_thread`` on 3.13) does the same around its
  function, named "<function> (_thread)", without being registered with threading;
- a forked child starts disabled (as in the kernel), forgets the parent's devices
  without touching them, and enables a fresh device for its one thread.

A thread is followed once: the device belongs to the wrapper that enabled it, and
threading's own threads, which it starts through ``_thread``, are left to the
``Thread.start`` wrapper. Only one ``Tasks`` follows the threads of a process at a
time. ``stop()`` unpatches the thread starts and disables the calling thread;
threads still running keep their devices until they end.

``Patches`` makes and undoes those wrappers (kcovdf.run.bootstrap wraps the calls
that start programs with it too). ``summarize(trace_dir)`` counts records, drops and
tasks of a whole trace directory using only the standard library (the runtime path
must not need the tools extra).
"""

from __future__ import annotations

import _thread
import contextlib
import enum
import functools
import mmap
import os
import shutil
import struct
import sys
import threading
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kcovdf import abi, tracefile
from kcovdf.errors import CorruptBufferError
from kcovdf.read import walk

#: Default buffer size per task, in u64 words (8 MiB per task file); in the whole and
#: ring modes the size of a task's largest segment.
DEFAULT_WORDS = 1 << 20
#: A task's first segment in the whole and ring modes: each next one doubles, up to the
#: buffer size, so a task that writes little costs little on disk.
FIRST_SEGMENT_WORDS = 1 << 16
#: The recording modes (docs/run.md, "Recording modes").
MODES = ("whole", "ring", "once")
#: Default of the ring mode: the last 64 MiB of each task are kept.
DEFAULT_RING_BYTES = 64 << 20


def default_budget(trace_dir: str) -> int:
    """The whole mode's disk budget when none is given: half the free space of the trace's disk."""
    try:
        return shutil.disk_usage(trace_dir).free // 2
    except OSError:
        return 1 << 30


class _Stream:
    """One task's segments: the device it writes now, and the files it wrote before.

    The first segment is the task's file (``task-<pid>-<tid>[-<n>].kdf``); segment k is
    ``... .s<k>.kdf`` beside it (tracefile.TaskFile).
    """

    __slots__ = ("task", "device", "segment", "words", "name", "sealed")

    def __init__(self, task: tracefile.TaskFile, device: Any, words: int, name: str | None) -> None:
        self.task = task
        self.device = device
        self.segment = 0
        self.words = words          # of the current segment
        self.name = name            # the task line's name, when the task names itself
        self.sealed: list[tuple[str, int]] = []   # (path, bytes) of the segments before, oldest first


class State(enum.Enum):
    """Where a Tasks is in its life (the diagram at the top of this module)."""

    NEW = "NEW"              # created; no device, thread starts untouched
    FOLLOWING = "FOLLOWING"  # the starting thread records; new threads and forked children get devices
    STOPPED = "STOPPED"      # thread starts restored; threads still running keep their devices


class Tasks:
    """The devices of the tasks of this process that record into one trace directory."""

    def __init__(self, trace_dir: str, words: int = DEFAULT_WORDS, *, mode: str = "whole",
                 max_bytes: int | None = None, ring_bytes: int = DEFAULT_RING_BYTES,
                 follow_threads: bool = True, follow_forks: bool = True) -> None:
        """``mode``: "whole" keeps everything up to ``max_bytes`` on disk (default: half the
        free space), "ring" the last ``ring_bytes`` of each task, "once" one buffer of
        ``words`` per task with drops when it is full (the kernel's behaviour)."""
        if mode not in MODES:
            raise ValueError(f"Tasks(): mode must be one of {', '.join(MODES)}, not {mode!r}")
        self.trace_dir = trace_dir
        # a ring keeps whole segments: a quarter of it each, so that at least three remain
        self.words = words if mode != "ring" else \
            max(abi.MIN_WORDS, min(words, (ring_bytes - tracefile.FILE_HEADER_SIZE) // 32))
        self.mode = mode
        self.max_bytes = default_budget(trace_dir) if max_bytes is None and mode == "whole" else max_bytes
        self.ring_bytes = ring_bytes
        self.follow_threads = follow_threads
        self.follow_forks = follow_forks
        self.budget_reached = False
        # The lock protects state and _devices (native tid -> the _Stream of that thread).
        self._lock = threading.Lock()
        self.state = State.NEW
        self._devices: dict[int, _Stream] = {}
        # Devices inherited across fork belong to the parent: kept referenced so that
        # no finalizer of ours ever closes or disables them in the child.
        self._inherited: list[Any] = []
        self._fork_handler_registered = False

    def __repr__(self) -> str:
        return f"<kcovdf Tasks {self.trace_dir} state={self.state.name}>"

    def _error(self, call: str, why: str) -> RuntimeError:
        return RuntimeError(f"Tasks.{call}(): {why} (state {self.state.name})")

    # --- lifecycle --------------------------------------------------------------
    def start(self) -> None:
        """Enable the calling thread and follow new threads and forks from now on.

        RuntimeError when already FOLLOWING, or when another Tasks follows the
        threads of this process.
        """
        with self._lock:
            if self.state is State.FOLLOWING:
                raise self._error("start", "already following")
            if self.follow_threads and _following is not None:
                raise self._error("start", f"{_following!r} already follows the threads of this process")
            self.state = State.FOLLOWING
        if self.follow_threads:
            _follow_threads(self)
        if self.follow_forks and not self._fork_handler_registered:
            # os.register_at_fork cannot be undone, so the handler checks the state.
            os.register_at_fork(after_in_child=self._after_fork_child)
            self._fork_handler_registered = True
        if self.mode != "once":
            from kcovdf.runtime import core

            core.set_full_hook(self._on_full)
        self.enable_current()

    def stop(self) -> None:
        """Stop following; disable and close the calling thread's device.

        Devices of threads still running (daemon threads) stay enabled: their
        files are complete up to the moment the process ends. A second stop() does
        nothing; stop() before start() raises RuntimeError.
        """
        with self._lock:
            if self.state is State.NEW:
                raise self._error("stop", "not started")
            if self.state is State.STOPPED:
                return
            self.state = State.STOPPED
        _unfollow_threads(self)
        self.disable_current()
        # threads still running keep moving to new segments until they end

    # --- one task -----------------------------------------------------------------
    def enable_current(self, name: str | None = None) -> Any | None:
        """Open, map and enable a file device for the calling thread; None if that fails.

        ``name`` goes in the task's table line instead of the threading name (a
        thread threading does not know gets one: asking threading would register a
        dummy thread the program could see). Failing to trace a thread (it already has
        a device, the disk is full, not FOLLOWING) must never change what the program
        does, so it is only skipped. Returns the thread's task, for ``release``.
        """
        tid = threading.get_native_id()
        with self._lock:
            if self.state is not State.FOLLOWING or tid in self._devices:
                return None
        words = self.words if self.mode == "once" else min(self.words, FIRST_SEGMENT_WORDS)
        try:
            path = self._task_path(os.getpid(), tid)
            try:
                dev = self._open(path, words, 0, name)
            except FileExistsError:
                # lost a race for the name once
                path = self._task_path(os.getpid(), tid)
                dev = self._open(path, words, 0, name)
        except OSError:
            return None
        try:
            dev.enable()
        except OSError:
            _close_quietly(dev)  # closing by the enabled thread disables first
            return None
        task = tracefile.parse_task_name(os.path.basename(path))
        assert task is not None
        stream = _Stream(task, dev, words, name)
        with self._lock:
            self._devices[tid] = stream
        return stream

    def _open(self, path: str, words: int, segment: int, name: str | None) -> Any:
        """A mapped file device of ``words`` for segment ``segment`` of the calling thread, with
        its task line when the thread names itself (``name``); the first segment replays the
        type and symbol lines seen so far, the later ones need not (readers merge a trace's
        tables) but in the ring mode, whose oldest segments go away."""
        from kcovdf.runtime.device import Device

        dev = Device(file=path, task_line=name is None)
        try:
            dev.init_trace(words, segment=segment, replay=segment == 0 or self.mode == "ring")
            dev.mmap()
            if name is not None:
                line = {"t": "task", "pid": os.getpid(), "tid": threading.get_native_id(), "name": name}
                os.write(dev.table_fd, tracefile.line(line) + b"\n")
        except BaseException:
            _close_quietly(dev)
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise
        return dev

    def _on_full(self) -> None:
        """The full hook (core.set_full_hook): the calling thread's buffer is full, inside a
        record with the guard held. Seal it and go on in the task's next segment, unless
        the whole mode's budget is spent (the record is then dropped and counted)."""
        tid = threading.get_native_id()
        with self._lock:
            stream = self._devices.get(tid)
        if stream is None or not stream.device.path:
            return
        old = stream.device
        words = min(2 * stream.words, self.words)
        if self.mode == "whole" and self.max_bytes is not None and \
                trace_bytes(self.trace_dir) + 8 * words > self.max_bytes:
            self._budget_reached()
            return
        segment = stream.segment + 1
        path = os.path.join(self.trace_dir, stream.task._replace(segment=segment).name)
        try:
            dev = self._open(path, words, segment, stream.name)
            from kcovdf.runtime import core

            core.resegment(dev._map)
        except OSError:
            self._budget_reached(disk=True)
            return
        stream.device, stream.segment, stream.words = dev, segment, words
        _seal(old)
        stream.sealed.append((old.path, tracefile.FILE_HEADER_SIZE + 8 * old.words))
        if self.mode == "ring":
            self._recycle(stream)

    def _recycle(self, stream: _Stream) -> None:
        """Ring mode: remove the task's oldest segments beyond ``ring_bytes``."""
        held = tracefile.FILE_HEADER_SIZE + 8 * stream.words + sum(n for _, n in stream.sealed)
        while stream.sealed and held > self.ring_bytes:
            path, n = stream.sealed.pop(0)
            with contextlib.suppress(OSError):
                os.unlink(path)
            held -= n

    def _budget_reached(self, disk: bool = False) -> None:
        if self.budget_reached:
            return
        self.budget_reached = True
        why = "the disk is full" if disk else \
            f"the trace reached its budget of {_mib(self.max_bytes or 0)} (--max-size)"
        _say_now(f"kcovdf: {why}: records are dropped and counted from here on; give a larger "
                 "--max-size, or record the last calls only with --mode ring")

    def disable_current(self) -> None:
        """Disable and close the calling thread's device, if it has one."""
        with self._lock:
            stream = self._devices.pop(threading.get_native_id(), None)
        if stream is not None:
            _finish_stream(stream)

    def release(self, task: Any) -> None:
        """Disable and close ``task``'s device if it is still the calling thread's (from enable_current)."""
        tid = threading.get_native_id()
        with self._lock:
            if self._devices.get(tid) is not task:
                return
            del self._devices[tid]
        _finish_stream(task)

    def _task_path(self, pid: int, tid: int) -> str:
        """A file name no other task of this trace uses (a pid can recur across exec, a tid too)."""
        return tracefile.free_task_path(self.trace_dir, pid, tid)

    def _after_fork_child(self) -> None:
        # Another thread may have held the lock at fork; in the child that thread is gone.
        self._lock = threading.Lock()
        with self._lock:
            if self.state is not State.FOLLOWING:
                return
            inherited = [stream.device for stream in self._devices.values()]
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
            dev = self.enable_current()
            try:
                return run()
            finally:
                if dev is not None:
                    self.release(dev)

        run_as_task.__kcovdf_task__ = True  # type: ignore[attr-defined]
        return run_as_task


def _finish_stream(stream: _Stream) -> None:
    """The task ends: disable and close its device, and size its last segment to what was written."""
    _disable_and_close(stream.device)
    if stream.device.path:
        with contextlib.suppress(OSError):
            compact(stream.device.path)


def _seal(dev: Any) -> None:
    """The writer moved on from ``dev``: mark its header SEALED and close it."""
    with contextlib.suppress(OSError, ValueError):
        flags = struct.unpack_from("<Q", dev._map, tracefile.HDR_FLAGS)[0]
        struct.pack_into("<Q", dev._map, tracefile.HDR_FLAGS, flags | tracefile.FLAG_SEALED)
    _close_quietly(dev)


def compact(path: str) -> None:
    """Size a .kdf file to what was written: the table moved down right after the last word
    written, the header's word count updated, the rest cut off.

    In place, and in an order a crash cannot turn into a wrong file: the table is written
    first into buffer words past ``buf[0]``, which no reader reads; then the header says
    the new size; then the file is cut (until then a reader sees the table twice, which
    changes nothing it reads).
    """
    fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    try:
        page = os.pread(fd, tracefile.FILE_HEADER_SIZE + 8, 0)
        head = tracefile.read_header(page, path)
        used = struct.unpack_from("<Q", page, tracefile.FILE_HEADER_SIZE)[0]
        words = max(abi.MIN_WORDS, min(used, head.words - 1) + 1)
        if words >= head.words:
            return
        table = tracefile.read_from(fd, head.table_offset)
        end = tracefile.FILE_HEADER_SIZE + 8 * words
        os.pwrite(fd, table, end)
        os.pwrite(fd, struct.pack("<Q", words), tracefile.HDR_WORDS)
        os.ftruncate(fd, end + len(table))
    finally:
        os.close(fd)


def _mib(n: int) -> str:
    return f"{n / (1 << 20):,.0f} MiB" if n >= 1 << 20 else f"{n:,} bytes"


def _say_now(message: str) -> None:
    # inside a record, with the guard held: a plain write, no Python-level stream
    with contextlib.suppress(OSError):
        os.write(2, message.encode() + b"\n")


def _disable_and_close(dev: Any) -> None:
    try:
        dev.disable()
    except OSError:
        pass  # the program disabled it itself; closing is still right
    _close_quietly(dev)


def _close_quietly(dev: Any) -> None:
    try:
        dev.close()
    except OSError:
        pass


# --- wrappers ------------------------------------------------------------------------
Arguments = tuple[tuple[Any, ...], dict[str, Any]]


class Patches:
    """Module and class attributes replaced by wrappers, and put back by ``undo()``.

    ``wrap(owner, name, before)`` replaces ``owner.name`` by a wrapper that calls
    ``before(args, kwargs)`` and then the original with the arguments ``before``
    returns. The wrapper is invisible in tracebacks of exceptions the original raises
    (on 3.11+; 3.10 shows one frame of it). ``undo()`` puts back an original only
    where the wrapper is still in place: a wrapper something patched over stays in
    their chain, and ``before`` must then let it pass through.
    """

    def __init__(self) -> None:
        self._done: list[tuple[Any, str, Any, Any]] = []   # (owner, name, original, wrapper)

    def __bool__(self) -> bool:
        return bool(self._done)

    def wrap(self, owner: Any, name: str, before: Callable[[tuple[Any, ...], dict[str, Any]], Arguments],
             failed: Callable[[tuple[Any, ...]], None] | None = None) -> None:
        """Wrap ``owner.name`` if it exists; ``failed(args)`` runs when the original raises."""
        original = getattr(owner, name, None)
        if original is None:
            return

        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            args, kwargs = before(args, kwargs)
            try:
                return original(*args, **kwargs)
            except BaseException as exc:
                if failed is not None:
                    failed(args)
                assert exc.__traceback__ is not None
                exc.__traceback__ = exc.__traceback__.tb_next  # this frame is kcovdf's
                raise

        setattr(owner, name, wrapper)
        self._done.append((owner, name, original, wrapper))

    def original(self, owner: Any, name: str) -> Any:
        """What ``owner.name`` was before wrap(); KeyError if it was not wrapped."""
        for o, n, original, _ in self._done:
            if o is owner and n == name:
                return original
        raise KeyError(name)

    def undo(self) -> None:
        """Put the originals back, unless something patched over a wrapper since."""
        for owner, name, original, wrapper in reversed(self._done):
            if getattr(owner, name, None) is wrapper:
                setattr(owner, name, original)
        self._done.clear()


# --- following threads ------------------------------------------------------------
# While a Tasks follows threads, these are wrappers:
# - threading.Thread.start (not run, which subclasses override): it gives the thread
#   object an instance attribute ``run`` wrapping its own run method, so the device is
#   enabled inside the new thread after threading registered it (its name is right);
# - _thread.start_new_thread, start_new and start_joinable_thread: they start the
#   thread on a _RawThread around its function. threading keeps its own reference to
#   the _thread function it uses, so its threads do not pass here, and a wrapper that
#   sees a Thread's bootstrap anyway (a program routing threading through _thread)
#   leaves it to the Thread.start wrapper.
# A wrapper reached after stop() (a module kept a reference) passes straight through.
_following: Tasks | None = None
_patches = Patches()


def _follow_threads(tasks: Tasks) -> None:
    global _following
    _following = tasks
    if _patches:
        return
    _patches.wrap(threading.Thread, "start", _before_thread_start, _thread_start_failed)
    _patches.wrap(_thread, "start_new_thread", _before_start_new_thread)
    _patches.wrap(_thread, "start_new", _before_start_new_thread)                  # the old alias
    _patches.wrap(_thread, "start_joinable_thread", _before_start_joinable_thread)  # 3.13


def _unfollow_threads(tasks: Tasks) -> None:
    global _following
    if _following is tasks:
        _following = None
        _patches.undo()


def _before_thread_start(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Arguments:
    tasks = _following
    if tasks is not None and len(args) == 1 and not kwargs and isinstance(args[0], threading.Thread):
        thread = args[0]
        run = thread.run
        if not getattr(run, "__kcovdf_task__", False):
            thread.run = _run_once(thread, tasks.traced_run(run))  # type: ignore[method-assign]
    return args, kwargs


def _thread_start_failed(args: tuple[Any, ...]) -> None:
    """Thread.start raised: the thread never ran, so leave no attribute on it."""
    if args and isinstance(args[0], threading.Thread):
        run = args[0].__dict__.get("run")
        if getattr(run, "__kcovdf_task__", False):
            del args[0].__dict__["run"]


def _run_once(thread: threading.Thread, run: Callable[[], Any]) -> Callable[[], Any]:
    """Run, then drop the instance attribute again (it would keep a cycle alive)."""

    @functools.wraps(run)
    def run_and_restore() -> Any:
        try:
            return run()
        finally:
            thread.__dict__.pop("run", None)

    return run_and_restore


def _before_start_new_thread(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Arguments:
    # start_new_thread(function, args[, kwargs]), positional only. Anything else goes to
    # the original unchanged, so it raises its own TypeError.
    tasks = _following
    if tasks is not None and not kwargs and 2 <= len(args) <= 3 and _followable(args[0]):
        args = (_RawThread(tasks, args[0]), *args[1:])
    return args, kwargs


def _before_start_joinable_thread(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Arguments:
    # start_joinable_thread(function, handle=None, daemon=True) on 3.13.
    tasks = _following
    if tasks is not None:
        if args and _followable(args[0]):
            args = (_RawThread(tasks, args[0]), *args[1:])
        elif not args and _followable(kwargs.get("function")):
            kwargs = {**kwargs, "function": _RawThread(tasks, kwargs["function"])}
    return args, kwargs


def _followable(function: Any) -> bool:
    """A thread function to wrap: callable, not wrapped yet, not a threading.Thread's bootstrap."""
    if not callable(function) or isinstance(function, _RawThread):
        return False
    return not (isinstance(function, types.MethodType) and isinstance(function.__self__, threading.Thread))


class _RawThread:
    """The function of a thread started through _thread, run as a task of its own.

    _thread's bootstrap ignores SystemExit and hands any other exception to
    sys.unraisablehook naming the function; so does this wrapper, without its own
    frame in the traceback, and returns None so the bootstrap has nothing to report.
    """

    __slots__ = ("tasks", "function")

    def __init__(self, tasks: Tasks, function: Callable[..., Any]) -> None:
        self.tasks = tasks
        self.function = function

    def __repr__(self) -> str:
        return repr(self.function)

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        dev = self.tasks.enable_current(_raw_thread_name(self.function))
        try:
            failure = _call(self.function, args, kwargs)
            if failure is not None:
                _report_unraisable(failure, self.function)
        finally:
            if dev is not None:
                self.tasks.release(dev)


def _raw_thread_name(function: Any) -> str:
    """"<name> (_thread)", as threading names a thread "Thread-<n> (<target name>)".

    The name is read without running the program's code (no __getattr__, no repr).
    """
    if isinstance(function, (types.FunctionType, types.BuiltinFunctionType, types.MethodType)):
        name = function.__name__
    else:
        name = type(function).__name__
    return f"{name} (_thread)"


def _call(function: Callable[..., Any], args: tuple[Any, ...],
          kwargs: dict[str, Any]) -> BaseException | None:
    """Call the thread's function; the exception _thread would report, or None."""
    try:
        function(*args, **kwargs)
    except SystemExit:
        return None
    except BaseException as exc:
        assert exc.__traceback__ is not None
        exc.__traceback__ = exc.__traceback__.tb_next  # this frame is kcovdf's, not the program's
        return exc
    return None


# sys.UnraisableHookArgs is not exported; it is a tuple subclass, so tuple knows it.
_UNRAISABLE_ARGS: Any = next((c for c in tuple.__subclasses__()
                              if c.__name__ == "UnraisableHookArgs" and c.__module__ == "builtins"), None)
# What CPython falls back on, whatever the program does to sys.__unraisablehook__.
_DEFAULT_UNRAISABLEHOOK = sys.__unraisablehook__


def _report_unraisable(exc: BaseException, function: Any) -> None:
    """Hand ``exc`` to sys.unraisablehook with the arguments _thread's bootstrap gives it."""
    if _UNRAISABLE_ARGS is None:
        raise exc  # the bootstrap reports it, naming this wrapper instead of the function
    if sys.version_info >= (3, 13):
        try:
            err_msg: str | None = f"Exception ignored in thread started by {function!r}"
        except Exception:
            err_msg = None
        obj = None
    else:
        err_msg, obj = "Exception ignored in thread started by", function
    hook = getattr(sys, "unraisablehook", None)
    args = _UNRAISABLE_ARGS((type(exc), exc, exc.__traceback__, err_msg, obj))
    if hook is None:
        _DEFAULT_UNRAISABLEHOOK(args)
        return
    try:
        hook(args)
    except BaseException as hook_exc:
        # As CPython does when the hook itself fails: the default hook reports that.
        tb = hook_exc.__traceback__.tb_next if hook_exc.__traceback__ is not None else None
        hook_exc.__traceback__ = tb
        _DEFAULT_UNRAISABLEHOOK(_UNRAISABLE_ARGS((type(hook_exc), hook_exc, tb,
                                                  "Exception ignored in sys.unraisablehook", hook)))


# --- summary ------------------------------------------------------------------------
@dataclass
class Summary:
    """What one trace directory holds."""

    records: int
    drops: int
    tasks: int
    bytes: int = 0          # on disk, task files and segments
    segments: int = 0       # task files and segments


def count_file(path: str) -> tuple[int, int]:
    """(records, drops) of one .kdf task file (or .kdf.gz); (0, 0) for a file that is not one."""
    if tracefile.is_compressed(path):
        try:
            head = tracefile.read_compressed_header(path)
            if head.records:  # counted when it was compressed
                return head.records, head.drops
            data = tracefile.read_task_file(path)
        except CorruptBufferError:
            return 0, 0
        return count_kdf_bytes(data), head.drops
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
                return count_records(buf), head.drops
            finally:
                buf.release()


def count_kdf_bytes(data: bytes | bytearray) -> int:
    """Records of a whole .kdf held in memory (a decompressed one), its buffer cut to what it holds."""
    words = min(struct.unpack_from("<Q", data, tracefile.HDR_WORDS)[0],
                (len(data) - tracefile.FILE_HEADER_SIZE) // 8)
    if words < abi.MIN_WORDS:
        return 0
    with memoryview(data) as view:
        buf = view[tracefile.FILE_HEADER_SIZE:tracefile.FILE_HEADER_SIZE + 8 * words].cast("Q")
        try:
            return count_records(buf)
        finally:
            buf.release()


def count_records(buf: memoryview) -> int:
    """Records in a buffer, found the way the reference parser finds them: by the C
    scanner while the C core is in use (a whole run has millions), else its Python twin."""
    end = min(buf[0], len(buf) - 1) + 1  # one past the last word written
    from kcovdf.runtime import core

    if core.name == "c":
        try:
            from kcovdf._core._scan import scan
        except ImportError:
            pass
        else:
            return len(scan(buf, 1, end)[0]) // 8
    return len(walk.records(buf, 1, end)[0])


def trace_bytes(trace_dir: str) -> int:
    """Bytes the files of a trace directory take on disk, its index's included."""
    total = 0
    with contextlib.suppress(OSError), os.scandir(trace_dir) as it:
        for entry in it:
            with contextlib.suppress(OSError):
                if entry.is_dir(follow_symlinks=False):
                    total += trace_bytes(entry.path)
                else:
                    total += entry.stat(follow_symlinks=False).st_blocks * 512
    return total


def summarize(trace_dir: str) -> Summary:
    """Records, drops, tasks and bytes on disk of a trace directory."""
    records = drops = 0
    found = tracefile.list_dir(trace_dir).tasks
    for task in found:
        try:
            r, d = count_file(os.path.join(trace_dir, task.name))
        except FileNotFoundError:
            # compressed by the sealer since the listing: the same file under its .gz name
            r, d = count_file(os.path.join(trace_dir, task._replace(compressed=True).name)) \
                if not task.compressed else (0, 0)
        records, drops = records + r, drops + d
    return Summary(records, drops, len({t.task for t in found}), trace_bytes(trace_dir), len(found))
