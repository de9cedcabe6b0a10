"""Python twin of the C recorder: per-thread state and the record writers (docs/core.md §1).

Same API, same records, same errors as ``kcovdf._core._recorder``; slower, and
only atomic against other twin writers (a ``threading.Lock`` inside the
process, ``fcntl.lockf`` on the table file across processes sharing it after
fork), where the C core uses a compare-and-swap on ``buf[0]``.

Ownership: ``_lock`` (plus the lockf) protects the header words ``owner`` and
``drops`` and ``buf[0]``; ``_table_lock`` protects ``_tables``,
``_remembered`` and ``_types_seen``; everything else is per thread.
"""

from __future__ import annotations

import atexit
import errno
import fcntl
import inspect
import os
import struct
import sys
import threading
import types
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from kcovdf import abi, tracefile
from kcovdf.runtime import encode as _encode
from kcovdf.runtime.encode import TypeEntry, encode_value

T = TypeVar("T")

_U64 = struct.Struct("<Q")
_COUNT = tracefile.FILE_HEADER_SIZE  # byte offset of buf[0] in the mapping
_MASK64 = (1 << 64) - 1


class _Redacted:
    """The sentinel passed in place of a withheld value."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "kcovdf.runtime.twin.REDACTED"


REDACTED = _Redacted()


class _Task:
    """One enabled thread: where it writes and its sequence counter.

    Dropped when the thread disables, or when the thread ends while enabled:
    then, as the kernel does at task exit, the device's owner word is cleared
    so that another task can enable it.
    """

    __slots__ = ("view", "mapping", "lock_fd", "words", "tid", "pid", "seq", "live", "calls", "__weakref__")

    def __init__(self, mapping: Any, view: memoryview, lock_fd: int, words: int) -> None:
        self.mapping = mapping
        self.view = view
        self.lock_fd = lock_fd
        self.words = words
        self.tid = threading.get_native_id()
        self.pid = os.getpid()
        self.seq = 0
        self.live = True
        self.calls: list[list[Any]] = []  # the shadow stack (see _sync)

    def release(self, clear_owner: bool) -> None:
        """Stop writing; clear the owner word if it still names this task."""
        if not self.live:
            return
        self.live = False
        self.calls = []
        if clear_owner:
            with _locked(self.lock_fd):
                if _U64.unpack_from(self.view, tracefile.HDR_OWNER)[0] == self.tid:
                    _U64.pack_into(self.view, tracefile.HDR_OWNER, 0)
        self.view.release()
        if self.lock_fd >= 0:
            os.close(self.lock_fd)

    def __del__(self) -> None:
        # The thread ended while enabled (its threading.local was cleared).
        # A task inherited through fork belongs to the parent: leave its owner word alone.
        if self.live and self.pid == os.getpid():
            self.release(clear_owner=True)
            if _exit_hook is not None:
                _exit_hook()  # what it raises is reported as unraisable, as for any finalizer


class _Local(threading.local):
    task: _Task | None = None   # set while this thread is enabled
    busy: bool = False          # re-entrancy guard: a record is being made on this thread


_tls = _Local()
_tasks: weakref.WeakSet[_Task] = weakref.WeakSet()
_lock = threading.Lock()
_table_lock = threading.Lock()
_tables: list[int] = []
_remembered: list[bytes] = []
_types_seen: set[int] = set()


@contextmanager
def _locked(lock_fd: int) -> Iterator[None]:
    # The thread lock first: lockf locks belong to the process, so they
    # exclude other processes only. Without a table (lock_fd < 0) there is no lockf.
    with _lock:
        if lock_fd < 0:
            yield
            return
        fcntl.lockf(lock_fd, fcntl.LOCK_EX, 1, 0, os.SEEK_SET)
        try:
            yield
        finally:
            fcntl.lockf(lock_fd, fcntl.LOCK_UN, 1, 0, os.SEEK_SET)


# --- the hot path -------------------------------------------------------------

_hook: Callable[[], object] | None = None  # test seam: see set_record_hook
_full_hook: Callable[[], object] | None = None  # see set_full_hook
_exit_hook: Callable[[], object] | None = None  # see set_exit_hook


def _checked_hook(call: str, hook: Callable[[], object] | None) -> Callable[[], object] | None:
    if hook is not None and not callable(hook):
        raise TypeError(f"{call}(): expected a callable or None, not {type(hook).__name__}")
    return hook


def set_exit_hook(hook: Callable[[], object] | None) -> None:
    """Call ``hook()`` after a thread that ended while enabled is released (None: stop).

    The twin calls it from the ending thread's finalizer, as the task is released.
    """
    global _exit_hook
    _exit_hook = _checked_hook("set_exit_hook", hook)


def set_record_hook(hook: Callable[[], object] | None) -> None:
    """Test seam: call ``hook()`` in the middle of every record, with the guard held (None: stop).

    It stands for the kernel's interrupt arriving mid-record: writers it calls on this
    thread record nothing, and what it raises is dropped (it cannot fail the record).
    The twin calls it once the value is encoded, before the record is reserved and
    written (its lock is not re-entrant); the C core, after reserving the words.
    """
    global _hook
    _hook = _checked_hook("set_record_hook", hook)


def set_full_hook(hook: Callable[[], object] | None) -> None:
    """Call ``hook()`` when a record does not fit the calling thread's buffer (None: stop).

    It runs with the guard held, so nothing it does is recorded, and may move the
    thread to a fresh buffer with ``resegment``; the record then goes there. Otherwise,
    or when it raises, the record is dropped and counted as without a hook.
    """
    global _full_hook
    _full_hook = _checked_hook("set_full_hook", hook)


def _call_hook(hook: Callable[[], object]) -> None:
    try:
        hook()
    except BaseException:  # an interrupt cannot fail the record it interrupts
        pass


def _append(task: _Task, rtype: int, pc: int, arg_idx: int, call_id: int, vals: list[int]) -> None:
    """Reserve and write one record of value words ``vals``, or count a drop."""
    task.seq = (task.seq + 1) & abi.SEQ_MASK
    hook = _hook
    if hook is not None:
        _call_hook(hook)
        if not task.live:  # the hook disabled this thread: its buffer is gone
            return
    record = (abi.type_seq(rtype, len(vals), task.seq), pc & _MASK64,
              abi.meta(arg_idx, abi.PY_VALUE_SIZE, call_id & abi.PTR_MASK), *vals)
    need = len(record)
    asked = False
    while True:
        with _locked(task.lock_fd):
            count = _U64.unpack_from(task.view, _COUNT)[0]
            if count + need <= task.words - 1:
                # Words first, count last: a reader (or a crash) never sees a counted half record.
                struct.pack_into(f"<{need}Q", task.view, _COUNT + 8 * (1 + count), *record)
                _U64.pack_into(task.view, _COUNT, count + need)
                return
            if asked or _full_hook is None:
                drops = _U64.unpack_from(task.view, tracefile.HDR_DROPS)[0]
                _U64.pack_into(task.view, tracefile.HDR_DROPS, (drops + 1) & _MASK64)
                return
        # The slow path: the full hook may move this thread to a fresh buffer (resegment), once;
        # outside the lock, which resegment takes.
        asked = True
        _call_hook(_full_hook)
        if not task.live:  # the hook disabled this thread
            return


def _write(task: _Task, rtype: int, pc: int, arg_idx: int, call_id: int, value: object) -> None:
    enc = encode_value(value, redacted=value is REDACTED)
    _register_types(enc.types)
    _append(task, rtype, pc, arg_idx, call_id, enc.words)


# --- calls: the shadow stack (docs/core.md §1.1) ------------------------------------
#
# Each enabled thread keeps the calls running on it, innermost last, as [frame, call id,
# pc, generator-like, held value]. The frame is id() of the instrumented function's frame
# object (never a reference: holding a frame would keep its locals alive). Generator-like
# calls that left a stack without finishing wait in _suspended until they run again.

_GENERATOR_LIKE = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ITERABLE_COROUTINE \
    | inspect.CO_ASYNC_GENERATOR
_FRAME, _ID, _PC, _GEN, _HELD = range(5)
_NOTHING = object()  # no held value
# frame id -> (call id, pc, held value): a held return waits with its call (`return` in
# `async with` suspends in __aexit__)
_suspended: dict[int, tuple[int, int, object]] = {}
_next_id = 0


def _new_id() -> int:
    global _next_id
    with _table_lock:
        _next_id += 1
        return _next_id


def _event(task: _Task, event: int, call: list[Any], word: int) -> None:
    _append(task, abi.TYPE_EVENT, call[_PC], event, call[_ID], [word])


def _sync(task: _Task, frame: types.FrameType, self_too: bool) -> None:
    """Make the thread's stack hold exactly the recorded calls on ``frame``'s chain.

    Calls above the innermost one still on the chain are stale: a generator-like one is
    suspended (SUSPEND, then _suspended), a plain one lost its exit. Then each suspended
    call found on the chain runs again (RESUME), outermost first. ``self_too``: ``frame``
    itself may be one of them (any hook but entry).
    """
    stack = task.calls
    start = frame if self_too else frame.f_back
    while stack:
        top = stack[-1][_FRAME]
        f = start
        while f is not None and id(f) != top:
            f = f.f_back
        if f is not None:
            break
        call = stack.pop()
        if call[_GEN]:
            _event(task, abi.EVENT_SUSPEND, call, 0)
            _suspended[call[_FRAME]] = (call[_ID], call[_PC], call[_HELD])
    if not _suspended:
        return
    top = stack[-1][_FRAME] if stack else None
    chain = []
    f = start
    while f is not None and id(f) != top:
        chain.append(f)
        f = f.f_back
    for f in reversed(chain):
        found = _suspended.pop(id(f), None) if f.f_code.co_flags & _GENERATOR_LIKE else None
        if found is not None:
            call = [id(f), found[0], found[1], True, found[2]]
            _event(task, abi.EVENT_RESUME, call, stack[-1][_ID] if stack else 0)
            stack.append(call)


def _current(task: _Task, frame: types.FrameType) -> list[Any] | None:
    """The call of ``frame`` on top of the thread's stack, after _sync if needed; None: unknown."""
    stack = task.calls
    if not (stack and stack[-1][_FRAME] == id(frame)):
        _sync(task, frame, True)
        if not (stack and stack[-1][_FRAME] == id(frame)):
            return None
    return stack[-1]


def _guarded(work: Callable[..., None], *args: object) -> None:
    """Run ``work(task, frame, *args)`` with the re-entrancy guard taken, ``frame`` being the
    instrumented function's (the caller of the public writer that called this); nothing
    when this thread is not enabled or is inside a record already."""
    tls = _tls
    task = tls.task
    if task is None or tls.busy:
        return
    tls.busy = True
    try:
        work(task, sys._getframe(2), *args)
    finally:
        tls.busy = False


def _finish(task: _Task, call: list[Any] | None, pc: int, arg_idx: int, value: object) -> None:
    """The exit record of ``call`` (None: an orphan, call id 0), and its pop."""
    if call is None:
        _write(task, abi.TYPE_RETURN, pc, arg_idx, 0, value)
        return
    task.calls.pop()
    _write(task, abi.TYPE_RETURN, pc, arg_idx, call[_ID], value)


def _entry(task: _Task, frame: types.FrameType, pc: int, args: tuple[object, ...]) -> None:
    stack = task.calls
    if not (stack and frame.f_back is not None and stack[-1][_FRAME] == id(frame.f_back)):
        _sync(task, frame, False)
    gen = bool(frame.f_code.co_flags & _GENERATOR_LIKE)
    if gen and _suspended:
        _suspended.pop(id(frame), None)  # a stale mapping of a frame address used again
    call_id = _new_id()
    stack.append([id(frame), call_id, pc, gen, _NOTHING])
    if not args:
        _append(task, abi.TYPE_ENTRY, pc, abi.ARG_NONE, call_id, [0])
    for arg_idx, value in enumerate(args[:abi.ARG_MAX_PARAM + 1]):
        if _tls.task is not task:  # a record hook disabled this thread
            break
        _write(task, abi.TYPE_ENTRY, pc, arg_idx, call_id, value)


def entry(pc: int, *args: object) -> None:
    """Start a call: one entry record per argument (arg_idx = its 0-based position), or one
    ARG_NONE record without arguments; all carry the new call id."""
    _guarded(_entry, pc, args)


def _exit(task: _Task, frame: types.FrameType, pc: int, arg_idx: int, value: object) -> None:
    _finish(task, _current(task, frame), pc, arg_idx, value)


def ret(pc: int, value: T) -> T:
    """The return record (arg_idx 0) of the calling frame's call; returns ``value``."""
    _guarded(_exit, pc, abi.ARG_RETURN, value)
    return value


_HANDLED = object()


def exc(pc: int, exc: object = _HANDLED) -> None:
    """The exception record (arg_idx 0xFF) of the calling frame's call, for ``exc``, by
    default the exception being handled."""
    _guarded(_exit, pc, abi.ARG_EXCEPTION, sys.exc_info()[1] if exc is _HANDLED else exc)


def _yld(task: _Task, frame: types.FrameType, pc: int, value: object) -> None:
    call = _current(task, frame)
    _write(task, abi.TYPE_RETURN, pc, abi.ARG_YIELD, call[_ID] if call else 0, value)
    if call is not None and task.calls and task.calls[-1] is call:
        task.calls.pop()
        _suspended[call[_FRAME]] = (call[_ID], call[_PC], call[_HELD])


def yld(pc: int, value: T) -> T:
    """A yield record (arg_idx 0xFE); the call leaves this thread's stack. Returns ``value``."""
    _guarded(_yld, pc, value)
    return value


def _resumed(task: _Task, frame: types.FrameType) -> None:
    if not (task.calls and task.calls[-1][_FRAME] == id(frame)):
        _sync(task, frame, True)


def resumed(pc: int, value: T) -> T:
    """The calling frame runs again after a yield or await; returns ``value``.

    Nothing is written when its call never left the top of this thread's stack.
    """
    _guarded(_resumed)
    return value


def _hold(task: _Task, frame: types.FrameType, value: object) -> None:
    call = _current(task, frame)
    if call is not None:
        call[_HELD] = value


def hold(pc: int, value: T) -> T:
    """Keep ``value`` as the pending return of the calling frame's call (see done()); returns it."""
    _guarded(_hold, value)
    return value


def _done(task: _Task, frame: types.FrameType, pc: int) -> None:
    stack = task.calls
    if stack and stack[-1][_FRAME] != id(frame) and any(c[_FRAME] == id(frame) for c in stack):
        _sync(task, frame, True)
    if stack and stack[-1][_FRAME] == id(frame) and stack[-1][_HELD] is not _NOTHING:
        call = stack[-1]
        value, call[_HELD] = call[_HELD], _NOTHING
        _finish(task, call, pc, abi.ARG_RETURN, value)


def done(pc: int) -> None:
    """Write the held return of the calling frame's call, now that it really ends (no-op
    when it has none: it raised, or its exit is written already)."""
    _guarded(_done, pc)


# --- start / stop ---------------------------------------------------------------

def enable(mapping: Any, table_fd: int) -> None:
    """Bind the calling thread to the buffer of ``mapping`` (a .kdf layout); EBUSY if taken.

    ``table_fd`` (the device's table file) is the lock that makes twin writers in
    processes sharing the mapping atomic; a negative one, as the C core accepts, means
    none: twin writers are then atomic within this process only.
    """
    if _tls.task is not None:
        raise OSError(errno.EBUSY, "enable(): this thread is already enabled on a device")
    view = _byte_view(mapping, "enable")
    try:
        words = _check_mapping(view)
        lock_fd = os.dup(table_fd) if table_fd >= 0 else -1
    except BaseException:
        view.release()
        raise
    task = _Task(mapping, view, lock_fd, words)
    with _locked(lock_fd):
        owner = _U64.unpack_from(view, tracefile.HDR_OWNER)[0]
        if owner == 0:
            _U64.pack_into(view, tracefile.HDR_OWNER, task.tid)
    if owner != 0:
        task.release(clear_owner=False)
        raise OSError(errno.EBUSY, f"enable(): device already enabled by task {owner}")
    _tasks.add(task)
    _tls.task = task


def _byte_view(mapping: Any, call: str) -> memoryview:
    try:
        return memoryview(mapping).cast("B")
    except TypeError:
        raise TypeError(f"{call}(): mapping must be a writable buffer (an mmap), not "
                        f"{type(mapping).__name__}") from None


def _check_mapping(view: memoryview, call: str = "enable") -> int:
    if view.readonly:
        raise TypeError(f"{call}(): mapping must be writable")
    if view.nbytes < tracefile.FILE_HEADER_SIZE or bytes(view[:8]) != tracefile.FILE_MAGIC:
        raise ValueError(f"{call}(): mapping does not start with a kcovdf header page")
    words = _U64.unpack_from(view, tracefile.HDR_WORDS)[0]
    if words < abi.MIN_WORDS or tracefile.FILE_HEADER_SIZE + 8 * words > view.nbytes:
        raise ValueError(f"{call}(): header says {words} words, mapping holds "
                         f"{(view.nbytes - tracefile.FILE_HEADER_SIZE) // 8}")
    return words


def resegment(mapping: Any) -> None:
    """Move the enabled calling thread to the buffer of ``mapping``, as one task: its
    sequence and calls go on, the old buffer's owner word goes back to 0 (docs/abi.md §3.2)."""
    task = _tls.task
    if task is None or not task.live:
        raise OSError(errno.EINVAL, "resegment(): this thread is not enabled on a device")
    if task.mapping is mapping:
        raise OSError(errno.EINVAL, "resegment(): the thread is already on this mapping")
    view = _byte_view(mapping, "resegment")
    try:
        words = _check_mapping(view, "resegment")
        with _locked(task.lock_fd):  # the old lock file stands for the new one: same task
            owner = _U64.unpack_from(view, tracefile.HDR_OWNER)[0]
            if owner == 0:
                _U64.pack_into(view, tracefile.HDR_OWNER, task.tid)
        if owner != 0:
            raise OSError(errno.EBUSY, f"resegment(): device already enabled by task {owner}")
    except BaseException:
        view.release()
        raise
    with _locked(task.lock_fd):
        if _U64.unpack_from(task.view, tracefile.HDR_OWNER)[0] == task.tid:
            _U64.pack_into(task.view, tracefile.HDR_OWNER, 0)
    task.view.release()
    task.mapping, task.view, task.words = mapping, view, words


def disable(mapping: Any) -> None:
    """Unbind the calling thread from ``mapping``; EINVAL unless it is the enabled owner."""
    task = _tls.task
    if task is None or task.mapping is not mapping:
        raise OSError(errno.EINVAL, "disable(): this thread is not enabled on this device")
    owner = _U64.unpack_from(task.view, tracefile.HDR_OWNER)[0]
    if owner != task.tid:
        raise OSError(errno.EINVAL, f"disable(): device owned by task {owner}, not {task.tid}")
    _tls.task = None
    task.release(clear_owner=True)
    if not active():
        _suspended.clear()


@atexit.register
def _forget_tasks() -> None:
    # Module globals are torn down before the thread states that hold the tasks,
    # so a task released that late would fail; the end of the process releases all.
    for task in list(_tasks):
        task.live = False


def active() -> int:
    """Number of threads of this process currently enabled."""
    pid = os.getpid()
    return sum(1 for t in list(_tasks) if t.live and t.pid == pid)


def in_record() -> bool:
    """Whether a record is being made on the calling thread (the re-entrancy guard is held)."""
    return _tls.busy


def after_fork_child() -> None:
    """In a fork child: start disabled, with fresh locks (another thread may have held them)."""
    global _lock, _table_lock
    _lock = threading.Lock()
    _table_lock = threading.Lock()
    # The inherited task belongs to the parent: let go of it, leaving the owner word alone.
    task, _tls.task = _tls.task, None
    if task is not None:
        task.release(clear_owner=False)
    _tls.busy = False
    _suspended.clear()


# --- values and the table ---------------------------------------------------------

def encode(obj: object, redacted: bool = False) -> list[int]:
    """The value words of ``obj`` (shape, layout, fields)."""
    return encode_value(obj, redacted=redacted).words


def set_redact(patterns: Sequence[str]) -> None:
    """Withhold, at every depth, the values whose names match ``patterns`` (the reference
    encoder's, which the twin uses)."""
    _encode.set_redact(patterns)


def set_code(func: types.FunctionType, code: types.CodeType) -> None:
    """``func.__code__ = code``, for the Switch's patching (the C core's also keeps 3.13's
    call sites specializable; here the plain setter serves)."""
    if type(func) is not types.FunctionType or type(code) is not types.CodeType:
        raise TypeError("set_code() takes a function and a code object")
    func.__code__ = code


def _type_line(entry: TypeEntry) -> bytes:
    line = {"t": "type", "id": f"0x{entry.id:016x}", "class": entry.cls, "fields": list(entry.fields)}
    if entry.named:
        line.update(named=entry.named, name=entry.name)
    return tracefile.line(line)


def _register_types(entries: list[TypeEntry]) -> None:
    with _table_lock:
        new = [e for e in entries if e.id not in _types_seen]
        _types_seen.update(e.id for e in new)
    for e in new:
        try:
            emit(_type_line(e))
        except OSError:
            # A table that cannot be written (disk full) must not change what
            # the traced program does; the record itself still lands.
            pass


def _fd_arg(call: str, fd: object) -> int:
    if not isinstance(fd, int):
        raise TypeError(f"{call}(): fd must be an int, not {type(fd).__name__}")
    if not 0 <= fd <= 2**31 - 1:
        raise ValueError(f"{call}(): fd must be a file descriptor >= 0, not {fd}")
    return fd


def add_table(fd: int, replay: bool = True) -> None:
    """Register a table fd (O_WRONLY|O_APPEND) and (``replay``) write every remembered line into it."""
    fd = _fd_arg("add_table", fd)
    with _table_lock:
        if fd in _tables:
            return
        try:
            fcntl.fcntl(fd, fcntl.F_GETFL)
        except OSError as e:
            raise OSError(e.errno, f"add_table(): fd {fd} is not open") from None
        for line in _remembered if replay else ():
            os.write(fd, line + b"\n")
        _tables.append(fd)


def remove_table(fd: int) -> None:
    """Forget a table fd (no error if it was not registered)."""
    fd = _fd_arg("remove_table", fd)
    with _table_lock:
        if fd in _tables:
            _tables.remove(fd)


def emit(line: bytes, remember: bool = True) -> None:
    """Append ``line`` plus a newline to every table fd in one write each; keep it for replay."""
    data = bytes(line)
    if b"\n" in data:
        raise ValueError("emit(): a table line must not contain a newline")
    data += b"\n"
    failed: OSError | None = None
    with _table_lock:
        if remember:
            _remembered.append(data[:-1])
        for fd in _tables:
            try:
                os.write(fd, data)
            except OSError as e:
                failed = failed or e
    if failed is not None:
        raise failed
