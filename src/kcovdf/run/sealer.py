"""The sealer: compresses a trace's task files once their writers are done with them.

A whole run writes hundreds of MB of segments (docs/run.md, Recording modes); gzip at
level 1 shrinks them about sevenfold. The work must not slow the traced program, nor be
seen by it, so it runs in a process of its own, started by ``kcovdf run`` before the
program and detached from it (forked twice: it is nobody's child the program could wait
for, and it holds none of the program's standard streams):

    RUNNING --"done" from kcovdf run, or kcovdf run gone--> FINISHING --backlog done--> ended

While RUNNING it compresses every SEALED segment (the writer moved on: docs/abi.md §3.2);
when FINISHING, also every task file no task is enabled on (its owner word is 0), then it
says "ok" back and ends. kcovdf run waits for that "ok" a moment only (``EXIT_WAIT``): a
large backlog is finished in the background, after the run has returned, so the run
costs the program no more than its recording (the tools read a trace meanwhile: a file
and its .gz are one file to them). The sealer holds an exclusive flock on the trace
directory while it lives: ``wait()`` waits for it, and a new run into the same directory
waits for it before emptying the directory. ``task-….kdf`` becomes
``task-….kdf.gz`` (0600, written aside and renamed), then the original is removed; a
reader that finds both reads the original.
Files of a ring are never compressed: the ring removes its own old segments.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import os
import select
import signal
import struct
import sys
import time

from kcovdf import tracefile
from kcovdf.errors import CorruptBufferError
from kcovdf.runtime import tasks

#: How often the RUNNING sealer looks for sealed segments.
POLL_SECONDS = 0.05
#: How long ``kcovdf run`` waits at exit for the sealer to finish; what is left it finishes
#: in the background.
EXIT_WAIT = 0.05
#: Below this many records a trace reads in about a second: it gets no index.
INDEX_MIN_RECORDS = 1 << 20
#: How long a new run into a directory waits for the sealer of the one before.
PREVIOUS_WAIT = 300.0


class Sealer:
    """kcovdf run's end of a sealer: ``finish()`` at exit waits until it has compressed the backlog."""

    def __init__(self, done_fd: int, ack_fd: int) -> None:
        self._done_fd = done_fd
        self._ack_fd = ack_fd

    def finish(self, timeout: float = EXIT_WAIT) -> bool:
        """Tell the sealer the run is over and wait for it up to ``timeout``; False if it is
        still at work then (it finishes in the background)."""
        try:
            os.write(self._done_fd, b"done\n")
            ready, _, _ = select.select([self._ack_fd], [], [], timeout)
            return bool(ready) and os.read(self._ack_fd, 16).startswith(b"ok")
        except OSError:
            return False
        finally:
            for fd in (self._done_fd, self._ack_fd):
                with contextlib.suppress(OSError):
                    os.close(fd)


def start(trace_dir: str) -> Sealer | None:
    """Start the detached sealer of ``trace_dir`` (kcovdf run, before the program starts and while
    this process has a single thread); None if it cannot be started (the trace then stays uncompressed)."""
    try:
        done_r, done_w = os.pipe()
        ack_r, ack_w = os.pipe()
    except OSError:
        return None
    parent = os.getpid()
    try:
        pid = os.fork()
    except OSError:
        for fd in (done_r, done_w, ack_r, ack_w):
            os.close(fd)
        return None
    if pid == 0:  # the first child: start the sealer and leave at once, so that init adopts it
        try:
            os.setsid()
            # taken before the parent goes on, so that wait() never finds it free too early
            lock = _lock(trace_dir, blocking=True)
            if os.fork() == 0:
                _detach(keep=(done_r, ack_w, lock))
                signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # kcovdf run may not wait for "ok"
                run(trace_dir, parent, done_r, ack_w)
        finally:
            os._exit(0)
    os.close(done_r)
    os.close(ack_w)
    os.waitpid(pid, 0)
    for fd in (done_w, ack_r):
        os.set_inheritable(fd, False)
    return Sealer(done_w, ack_r)


def _lock(trace_dir: str, blocking: bool) -> int:
    """An fd holding the exclusive lock of ``trace_dir``'s sealer (a flock on the directory
    itself: no file of its own); -1 when it is taken."""
    fd = os.open(trace_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        return -1
    return fd


def wait(trace_dir: str | os.PathLike[str], timeout: float | None = None) -> bool:
    """Wait until no sealer works on ``trace_dir`` (its files are then as they stay); False
    if one still does after ``timeout`` seconds (default ``PREVIOUS_WAIT``)."""
    trace_dir = os.fspath(trace_dir)
    deadline = time.monotonic() + (PREVIOUS_WAIT if timeout is None else timeout)
    while True:
        try:
            fd = _lock(trace_dir, blocking=False)
        except OSError:
            return True  # the directory is gone, or not ours to lock: nobody seals it
        if fd >= 0:
            os.close(fd)
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_SECONDS)


def _detach(keep: tuple[int, ...]) -> None:
    """Let go of every descriptor but ``keep``: a pipe to ``| head`` must close when the program ends."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    low = 3
    for fd in sorted(keep):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 1 << 16)


def run(trace_dir: str, parent: int, done_fd: int, ack_fd: int) -> None:
    """The sealer's loop (the state diagram above)."""
    finishing = False
    while True:
        ready, _, _ = select.select([done_fd], [], [], POLL_SECONDS)
        if ready:
            finishing = True  # "done", or EOF: kcovdf run is gone
        if not _alive(parent):
            finishing = True
        seal_dir(trace_dir, finishing)
        if finishing:
            break
    with contextlib.suppress(OSError):
        os.write(ack_fd, b"ok\n")
    index_dir(trace_dir)


def index_dir(trace_dir: str) -> None:
    """Make the calls index of a large finished trace (kcovdf.read.index), under the lock,
    at low priority: the tools read the trace meanwhile, without it. Not for a ring, whose
    files are recycled; nothing is lost without one (the tools decode the records)."""
    try:
        info = tracefile.read_run_info(trace_dir) or {}
        if info.get("mode") == "ring":
            return
        if tasks.summarize(trace_dir).records < INDEX_MIN_RECORDS:
            return
        from kcovdf.read import index  # numpy and pyarrow: in this process only, and only now

        os.nice(10)
        index.build(trace_dir)
    except Exception:  # noqa: BLE001 - an index is an optimization: the trace is whole without it
        return


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def seal_dir(trace_dir: str, finishing: bool) -> int:
    """Compress the task files of ``trace_dir`` that are done with: SEALED segments, and when
    ``finishing`` every file no task is enabled on. Returns how many were compressed."""
    try:
        found = tracefile.list_dir(trace_dir).tasks
    except OSError:
        return 0
    done = 0
    for task in found:
        if task.compressed:
            continue
        path = os.path.join(trace_dir, task.name)
        if _done_with(path, finishing) and compress(path):
            done += 1
    return done


def _done_with(path: str, finishing: bool) -> bool:
    try:
        with open(path, "rb") as f:
            page = f.read(tracefile.FILE_HEADER_SIZE)
        head = tracefile.read_header(page, path)
    except (OSError, CorruptBufferError):
        return False
    if head.owner:
        return False  # a task writes it, or was killed while it did: left as it is
    return finishing or bool(head.flags & tracefile.FLAG_SEALED)


def compress(path: str) -> bool:
    """``path`` -> ``path.gz`` (0600, complete or not at all), then ``path`` removed."""
    try:
        with open(path, "rb") as f:
            data = bytearray(f.read())
        # the owner may have come back between the check and the read (a task enabled again)
        if struct.unpack_from("<Q", data, tracefile.HDR_OWNER)[0]:
            return False
        # the summary reads the count from the header, without inflating the file
        struct.pack_into("<Q", data, tracefile.HDR_RECORDS, tasks.count_kdf_bytes(data))
        with tracefile.private_file(path + tracefile.COMPRESSED_SUFFIX) as out:
            out.write(gzip.compress(data, compresslevel=1, mtime=0))
        os.unlink(path)
    except (OSError, struct.error):
        return False
    return True


if __name__ == "__main__":  # by hand: python -m kcovdf.run.sealer TRACE_DIR compresses what is done with
    t = time.perf_counter()
    n = seal_dir(sys.argv[1], finishing=True)
    print(f"{n} task files compressed in {time.perf_counter() - t:.1f} s")
