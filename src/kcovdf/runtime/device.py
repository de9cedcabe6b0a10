"""``kcovdf.Device``: the control interface of /sys/kernel/debug/kcov_dataflow, in user space.

A device is a descriptor with at most one buffer, used like the kernel's:

    OPEN --init_trace(words)--> INIT --enable()--> ENABLED --disable()--> INIT
      |                          |                    |
      +--------------------------+------close()-------+--> CLOSED

mmap() is legal in INIT and ENABLED and changes no state (enabling without
mmap is legal, as in the kernel). ENABLED is read from the header's owner
word, which lives in the shared buffer: after fork the child sees the
parent's owner and gets EBUSY from enable() until the parent disables.

The buffer is a .kdf layout (docs/abi.md §3): header page, the words, then
the table, appended through a second O_WRONLY|O_APPEND descriptor that is
registered with the recorder (core.add_table). It lives in a memfd
(Device()) or in a file (Device(file=...)), whose MAP_SHARED pages survive
the death of the writing process.

Ownership: one task per device, one device per task. Only the enabling task
may disable. close() by the enabled task disables first; a task of another
thread stays enabled on the (still mapped) buffer until it disables or ends,
as a kcov task keeps its reference past the close of the fd.

Device.kernel() drives the real kernel device through ioctl and mmap; the
OS calls go through a KernelOps object so that tests can fake the kernel.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import enum
import errno
import fcntl
import mmap as _mmap
import os
import struct
import threading
import time
import weakref
from typing import Any

from kcovdf import abi, tracefile
from kcovdf.errors import CorruptBufferError
from kcovdf.runtime import core

_U64 = struct.Struct("<Q")


class State(enum.Enum):
    """Where a device is in its life (the comment at the top of this module draws it)."""

    OPEN = "OPEN"        # descriptor open, no buffer yet
    INIT = "INIT"        # buffer allocated by init_trace(), no task enabled
    ENABLED = "ENABLED"  # a task (maybe in another process after fork) writes into the buffer
    CLOSED = "CLOSED"    # close() ran; every other call fails with EBADF


class KernelOps:
    """The OS calls behind Device.kernel(); tests pass a fake with the same methods."""

    def open(self, path: str) -> int:
        """Open the device read-write."""
        return os.open(path, os.O_RDWR | os.O_CLOEXEC)

    def ioctl(self, fd: int, request: int, arg: int) -> int:
        """One ioctl with an integer argument."""
        return fcntl.ioctl(fd, request, arg)

    def mmap(self, fd: int, length: int, offset: int) -> memoryview:
        """Map ``length`` bytes of the device shared, read-write, as a byte view.

        Python's mmap module refuses debugfs files (they report size 0), so
        this calls libc's mmap; the mapping is unmapped once no view of it is left.
        """
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                              ctypes.c_int, ctypes.c_long]
        libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        addr = libc.mmap(None, length, _mmap.PROT_READ | _mmap.PROT_WRITE, _mmap.MAP_SHARED,
                         fd, offset)
        if addr in (None, ctypes.c_void_p(-1).value):
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        area = (ctypes.c_char * length).from_address(addr)
        weakref.finalize(area, libc.munmap, addr, length)
        return memoryview(area).cast("B")

    def close(self, fd: int) -> None:
        """Close the descriptor."""
        os.close(fd)


def _check_int(call: str, what: str, value: object) -> int:
    if type(value) is bool or not isinstance(value, int):
        raise TypeError(f"{call}(): {what} must be an int, not {type(value).__name__}")
    return int(value)


class Device:
    """A KCOV-Dataflow device: init_trace(words), mmap(), enable(), disable(), close()."""

    def __init__(self, file: str | os.PathLike[str] | None = None, *, overwrite: bool = False,
                 task_line: bool = True) -> None:
        """Open a device whose buffer lives in a memfd, or in ``file`` (created 0600).

        An existing ``file`` raises FileExistsError unless ``overwrite``.
        ``task_line``: write a {"t":"task"} table line at the first enable()
        of each task.
        """
        if file is None:
            self._setup(os.memfd_create("kcovdf", os.MFD_CLOEXEC), None, None, task_line)
            return
        path = os.fspath(file)
        try:
            fd = tracefile.create_private(path, overwrite=overwrite)
        except FileExistsError:
            raise FileExistsError(errno.EEXIST, f"Device(file=): {path} exists (pass overwrite=True)",
                                  path) from None
        self._setup(fd, path, None, task_line)

    def _setup(self, fd: int, path: str | None, kernel: KernelOps | None, task_line: bool) -> None:
        self.fd = fd
        self.path = path
        self.table_fd: int | None = None
        self.words: int | None = None
        self._kernel = kernel
        self._task_line = task_line
        self._tasks_named: set[tuple[int, int]] = set()
        self._map: _mmap.mmap | None = None
        self._kernel_enabled = False
        self._closed = False

    @classmethod
    def kernel(cls, ops: KernelOps | None = None) -> Device:
        """Open the real kernel device, abi.KERNEL_DEVICE_PATH."""
        ops = ops or KernelOps()
        try:
            fd = ops.open(abi.KERNEL_DEVICE_PATH)
        except FileNotFoundError as e:
            raise FileNotFoundError(
                errno.ENOENT,
                f"{abi.KERNEL_DEVICE_PATH} does not exist: it needs a kernel built with "
                "CONFIG_KCOV_DATAFLOW (CONFIG_KCOV_DATAFLOW_ARGS/_RET) and debugfs mounted "
                "(mount -t debugfs none /sys/kernel/debug)", abi.KERNEL_DEVICE_PATH) from e
        dev = cls.__new__(cls)
        dev._setup(fd, abi.KERNEL_DEVICE_PATH, ops, False)
        return dev

    # --- state ------------------------------------------------------------------

    @property
    def state(self) -> State:
        """The current state; ENABLED when any task (of any process) is enabled."""
        if self._closed:
            return State.CLOSED
        if self.words is None:
            return State.OPEN
        if self._kernel is not None:
            return State.ENABLED if self._kernel_enabled else State.INIT
        return State.ENABLED if self._owner() else State.INIT

    def _owner(self) -> int:
        assert self._map is not None
        return _U64.unpack_from(self._map, tracefile.HDR_OWNER)[0]

    def _error(self, err: int, call: str, why: str) -> OSError:
        return OSError(err, f"{call}(): {why} (state {self.state.name})")

    def _need_buffer(self, call: str) -> None:
        if self._closed:
            raise self._error(errno.EBADF, call, "device is closed")
        if self.words is None:
            raise self._error(errno.EINVAL, call, "no buffer, call init_trace() first")

    def _kernel_call(self, call: str, request: int, arg: int) -> None:
        assert self._kernel is not None
        try:
            self._kernel.ioctl(self.fd, request, arg)
        except OSError as e:
            raise self._error(e.errno, call, os.strerror(e.errno)) from e

    # --- the control interface ---------------------------------------------------

    def init_trace(self, words: int, *, segment: int = 0, replay: bool = True) -> None:
        """KCOV_DF_INIT_TRACE: allocate a buffer of ``words`` u64 words (buf[0] included).

        Beyond the kernel, for ``kcovdf run``'s segmented tasks: ``segment`` goes in the
        header, and without ``replay`` the table starts with the lines met from now on.
        """
        words = _check_int("init_trace", "words", words)
        if self._closed:
            raise self._error(errno.EBADF, "init_trace", "device is closed")
        if self._kernel is not None:
            self._kernel_call("init_trace", abi.KCOV_DF_INIT_TRACE, words)
            self.words = words
            return
        if self.words is not None:
            raise self._error(errno.EBUSY, "init_trace", "buffer already allocated")
        if not abi.MIN_WORDS <= words <= abi.MAX_WORDS:
            raise self._error(errno.EINVAL, "init_trace",
                              f"size {words} words is outside {abi.MIN_WORDS}..{abi.MAX_WORDS}")
        size = tracefile.FILE_HEADER_SIZE + 8 * words
        try:
            # Reserve the blocks now: a sparse file would SIGBUS a writer when the disk fills.
            os.posix_fallocate(self.fd, 0, size)
            os.pwrite(self.fd, tracefile.pack_header(words, os.getpid(), time.time_ns(), segment), 0)
            self._map = _mmap.mmap(self.fd, size, _mmap.MAP_SHARED,
                                   _mmap.PROT_READ | _mmap.PROT_WRITE)
        except OSError as e:
            raise self._error(errno.ENOMEM, "init_trace",
                              f"cannot allocate {words} words: {e.strerror}") from e
        table_fd = os.open(f"/proc/self/fd/{self.fd}", os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        try:
            core.add_table(table_fd, replay=replay)  # replays the types and symbols seen so far
        except OSError as e:
            os.close(table_fd)
            self._map.close()
            self._map = None
            raise self._error(e.errno, "init_trace", f"cannot write the table: {e.strerror}") from e
        self.table_fd = table_fd
        self.words = words

    def mmap(self, length: int | None = None, offset: int = 0) -> memoryview:
        """The buffer as u64 words (buf[0] is the count); ``length`` must be words*8, ``offset`` 0."""
        if length is not None:
            length = _check_int("mmap", "length", length)
        offset = _check_int("mmap", "offset", offset)
        self._need_buffer("mmap")
        assert self.words is not None
        size = 8 * self.words
        length = size if length is None else length
        if self._kernel is not None:
            try:
                return self._kernel.mmap(self.fd, length, offset).cast("Q")
            except OSError as e:
                raise self._error(e.errno, "mmap", os.strerror(e.errno)) from e
        if offset != 0:
            raise self._error(errno.EINVAL, "mmap", f"offset must be 0, not {offset}")
        if length != size:
            raise self._error(errno.EINVAL, "mmap", f"length must be words*8 = {size}, not {length}")
        assert self._map is not None
        return memoryview(self._map)[tracefile.FILE_HEADER_SIZE:tracefile.FILE_HEADER_SIZE + size].cast("Q")

    def enable(self) -> None:
        """KCOV_DF_ENABLE: record the calling thread into this buffer; its seq restarts at 0."""
        self._need_buffer("enable")
        if self._kernel is not None:
            self._kernel_call("enable", abi.KCOV_DF_ENABLE, 0)
            self._kernel_enabled = True
            return
        try:
            core.enable(self._map, self.table_fd)
        except OSError as e:
            owner = self._owner()
            why = f"device already enabled by task {owner}" if owner else \
                "this task is already enabled on another device"
            raise self._error(e.errno, "enable", why) from None
        try:
            self._name_task()
        except OSError as e:
            core.disable(self._map)  # an enable() that raises must leave the task disabled
            raise self._error(e.errno, "enable", f"cannot write the task line: {e.strerror}") from e
        core.activity_changed()

    def _name_task(self) -> None:
        task = (os.getpid(), threading.get_native_id())
        if not self._task_line or task in self._tasks_named:
            return
        self._tasks_named.add(task)
        line = {"t": "task", "pid": task[0], "tid": task[1], "name": threading.current_thread().name}
        assert self.table_fd is not None
        os.write(self.table_fd, tracefile.line(line) + b"\n")

    def disable(self) -> None:
        """KCOV_DF_DISABLE: stop recording; EINVAL unless the caller is the task that enabled."""
        self._need_buffer("disable")
        if self._kernel is not None:
            self._kernel_call("disable", abi.KCOV_DF_DISABLE, 0)
            self._kernel_enabled = False
            return
        try:
            core.disable(self._map)
        except OSError as e:
            owner = self._owner()
            why = f"enabled by task {owner}, not by the calling task {threading.get_native_id()}" \
                if owner else "not enabled"
            raise self._error(e.errno, "disable", why) from None
        core.activity_changed()

    def close(self) -> None:
        """Release the device (disabling the calling task first if it is the one enabled)."""
        if self._closed:
            return
        self._closed = True
        if self._kernel is not None:
            self._kernel.close(self.fd)
            self.fd = -1
            return
        if self._map is not None and self._owner() == threading.get_native_id():
            core.disable(self._map)
            core.activity_changed()
        if self.table_fd is not None:
            core.remove_table(self.table_fd)
            os.close(self.table_fd)
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:
                pass  # views or an enabled thread still use it: unmapped when they let go
        os.close(self.fd)
        self.fd = -1

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = "kernel" if self._kernel else self.path or "memfd"
        return f"<kcovdf.Device {where} state={self.state.name} words={self.words}>"

    # --- beyond the kernel ----------------------------------------------------------

    @property
    def drops(self) -> int | None:
        """Whole records dropped because the buffer was full (None for the kernel, which drops silently)."""
        if self._kernel is not None:
            return None
        self._need_buffer("drops")
        return _U64.unpack_from(self._map, tracefile.HDR_DROPS)[0]  # type: ignore[arg-type]

    def _read_from(self, pos: int) -> bytes:
        return tracefile.read_from(self.fd, pos)

    def table_lines(self) -> list[dict[str, Any]]:
        """The table of this device so far, one dict per complete line."""
        if self._kernel is not None:
            return []
        self._need_buffer("table_lines")
        assert self.words is not None
        raw = self._read_from(tracefile.FILE_HEADER_SIZE + 8 * self.words)
        # the last piece is unterminated while the table is being appended to
        lines, notes = tracefile.parse(raw[:raw.rfind(b"\n") + 1], self.path or "memfd")
        if notes:
            raise CorruptBufferError("; ".join(notes))
        return lines

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        """Write a .kdf copy of the device (header, buffer, table) to ``path``, created 0600."""
        self._need_buffer("save")
        path = os.fspath(path)
        if self._kernel is not None:
            assert self.words is not None
            view = self.mmap()
            data = tracefile.pack_header(self.words, os.getpid(), time.time_ns()) + view.tobytes()
        else:
            data = self._read_from(0)
        if not overwrite and os.path.lexists(path):
            raise FileExistsError(errno.EEXIST, f"save(): {path} exists (pass overwrite=True)", path)
        with tracefile.private_file(path, overwrite=overwrite) as f:
            f.write(data)
