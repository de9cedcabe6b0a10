"""Trace inputs: find and read .kdf files, trace directories, raw buffer dumps and table lines.

Every reader returns ``Source`` objects (one buffer each, with what came with it);
``kcovdf.read.decode`` turns them into records. Nothing here interprets record words.
Problems that lose data but leave the rest readable (a truncated file, a bad
table line, a task file of a trace directory that cannot be read, a file there that
is not part of a trace) become notes; input that is not a trace at all raises
``CorruptBufferError`` naming the file and what was expected. File names, the
header and run.json are kcovdf.tracefile's.
"""

from __future__ import annotations

import gzip
import io
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from kcovdf import abi, tracefile
from kcovdf.errors import CorruptBufferError

#: Buffer words as read from disk or memory: little-endian u64 (docs/abi.md §1).
WORD = np.dtype("<u8")

EXPECTED = ("a kcovdf trace: a .kdf file (magic KCOVDF\\0\\1), a trace directory "
            f"({tracefile.RUN_INFO} + {tracefile.TASK_FILE_PATTERN} files) or a raw buffer dump "
            "(little-endian u64 words, buf[0] = number of words written)")


@dataclass
class Source:
    """One buffer and what came with it: header fields, table lines, problems met reading it."""

    name: str
    kind: str                       # "kdf", "raw" (bare dump file) or "buffer" (memory)
    words: np.ndarray               # the buffer as u64 words, buf[0] first
    header: tracefile.Header | None   # .kdf header fields; None without a header
    table: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    pid: int = 0
    tid: int = 0
    drops: int | None = None        # records dropped on a full buffer; None when unknown
    stream: str = ""                # in a trace directory: the task's first file name, shared by its segments
    segment: int = 0                # this buffer's index in that task's stream


def from_buffer(buf: Any, table_lines: list[dict[str, Any]] | None = None,
                name: str = "<buffer>", drops: int | None = None) -> Source:
    """A live buffer (``Device.mmap()``, bytes, a numpy array): no copy is made.

    ``drops`` is the device's drop counter when known.
    """
    try:
        view = memoryview(buf)
    except TypeError:
        raise CorruptBufferError(f"{name}: expected a buffer of u64 words, got {type(buf).__name__}") \
            from None
    nbytes = view.nbytes
    if not view.c_contiguous:
        raise CorruptBufferError(f"{name}: expected a contiguous buffer of u64 words")
    flat = view.cast("B") if view.format != "B" or view.ndim != 1 else view
    words = np.frombuffer(flat, dtype=WORD, count=nbytes // 8)
    notes = []
    if nbytes % 8:
        notes.append(f"{name}: {nbytes % 8} trailing bytes are not a whole word (ignored)")
    return Source(name, "buffer", words, None, list(table_lines or []), notes, drops=drops)


def _read_words(f: Any, offset: int, count: int) -> np.ndarray:
    # A copy, not a mapping: a file truncated under a mapping would kill us with SIGBUS.
    out = np.empty(count, dtype=WORD)
    f.seek(offset)
    got = f.readinto(memoryview(out).cast("B"))
    return out[: got // 8]


def _open(name: str) -> tuple[Any, int, str | None]:
    """(a binary file, its size, what went wrong inflating it): a .kdf.gz is inflated whole."""
    if tracefile.is_compressed(name):
        data, problem = tracefile.read_task_file_checked(name)
        return io.BytesIO(data), len(data), problem
    f = open(name, "rb")
    return f, os.fstat(f.fileno()).st_size, None


def read_kdf(path: str | os.PathLike[str]) -> Source:
    """A ``.kdf`` trace file: header page, buffer, table (docs/abi.md §3)."""
    name = os.fspath(path)
    opened, size, problem = _open(name)
    with opened as f:
        head = tracefile.read_header(f.read(tracefile.FILE_HEADER_SIZE), name)
        nwords = head.words
        avail = max(0, (size - tracefile.FILE_HEADER_SIZE) // 8)
        notes = [f"{name}: {problem}"] if problem else []
        if nwords > avail:
            notes.append(f"{name}: file truncated: header says {nwords} buffer words, "
                         f"the file holds {avail}")
            nwords = avail
        words = _read_words(f, tracefile.FILE_HEADER_SIZE, nwords)
        f.seek(tracefile.FILE_HEADER_SIZE + 8 * nwords)
        table, table_notes = tracefile.parse(f.read(), name)
    src = Source(name, "kdf", words, head, table, notes + table_notes, pid=head.pid, drops=head.drops)
    task = tracefile.parse_task_name(Path(name).name)
    if task is not None:
        src.pid, src.tid = task.pid, task.tid
    return src


def read_raw(path: str | os.PathLike[str]) -> Source:
    """A raw dump of a kernel buffer: bare little-endian u64 words, ``buf[0]`` first."""
    name = os.fspath(path)
    opened, size, problem = _open(name)
    with opened as f:
        words = _read_words(f, 0, size // 8)
    if size < 8 or not _looks_like_buffer(words):
        raise CorruptBufferError(f"{name}: not a trace: expected {EXPECTED}")
    notes = [f"{name}: {size % 8} trailing bytes are not a whole word (ignored)"] if size % 8 else []
    return Source(name, "raw", words, None, [], notes)


def _looks_like_buffer(words: np.ndarray) -> bool:
    # buf[0] counts the words after it; a corrupt counter is still accepted when the
    # first word after it is a record header, as a real kernel buffer would have.
    if int(words[0]) <= len(words) - 1:
        return True
    return len(words) > 1 and abi.split_type_seq(int(words[1])) is not None


def read_directory(path: str | os.PathLike[str]) -> tuple[list[Source], list[str]]:
    """A trace directory written by ``kcovdf run``: its task buffers, and notes on the directory.

    Every entry is accounted for: a task file that cannot be read, and any entry that is
    neither run.json nor a task file, is named in a note; the other task files are read.
    """
    notes, found = iter_directory(path)
    return list(found), notes


def iter_directory(path: str | os.PathLike[str]) -> tuple[list[str], Iterator[Source]]:
    """``read_directory`` one task file at a time: (notes, the sources as they are read).

    The notes on the directory are there at once; a note on a task file that cannot be
    read is added to the same list when the iteration reaches it.
    """
    root = Path(path)
    found = tracefile.list_dir(root)
    info = tracefile.read_run_info(root)
    notes = []
    if info is None:
        if not found.tasks:
            raise CorruptBufferError(f"{root}: not a trace directory: expected {tracefile.RUN_INFO} "
                                     f"and {tracefile.TASK_FILE_PATTERN} files")
        notes.append(f"{root}: {tracefile.RUN_INFO} missing")
    for name in found.unknown:
        why = "not a task file name" if tracefile.looks_like_task_file(name) else "not part of a trace"
        notes.append(f"{root / name}: {why} (expected {tracefile.RUN_INFO} and "
                     f"{tracefile.TASK_FILE_PATTERN}); not read")
    if not found.tasks:
        notes.append(f"{root}: no {tracefile.TASK_FILE_PATTERN} files (no task was traced)")
    notes += _missing_segments(root, found.tasks, (info or {}).get("mode"))
    return notes, _read_tasks(root, found.tasks, notes)


def _read_tasks(root: Path, files: list[tracefile.TaskFile], notes: list[str]) -> Iterator[Source]:
    for task in files:
        try:
            try:
                src = read_kdf(root / task.name)
            except FileNotFoundError:
                if task.compressed:
                    raise
                # compressed by the sealer since the listing: the same file under its .gz name
                task = task._replace(compressed=True)
                src = read_kdf(root / task.name)
        except CorruptBufferError as exc:
            notes.append(f"{exc}; task file skipped")
            continue
        except OSError as exc:
            notes.append(f"{root / task.name}: cannot read ({exc.strerror}); task file skipped")
            continue
        src.stream, src.segment = task.task.name, task.segment
        yield src


def _missing_segments(root: Path, files: list[tracefile.TaskFile], mode: str | None) -> list[str]:
    """Notes naming the segments missing from the middle of a task's stream (docs/abi.md §3.2).

    In the ring mode a task's oldest segments are recycled: a stream may start later.
    """
    have: dict[tracefile.TaskFile, list[int]] = {}
    for f in files:
        have.setdefault(f.task, []).append(f.segment)
    notes = []
    for task, segments in have.items():
        first = segments[0] if mode == "ring" else 0
        gone = sorted(set(range(first, segments[-1])) - set(segments))
        if gone:
            names = ", ".join(task._replace(segment=k).name for k in gone)
            notes.append(f"{root}: task {task.name}: segment file(s) missing: {names} "
                         "(the records around them still decode)")
        if mode == "ring" and first > 0:
            notes.append(f"{root}: task {task.name}: its first {first} segment(s) were recycled "
                         "(ring mode keeps the last calls)")
    return notes


class Survey(NamedTuple):
    """What a trace directory holds, read from its task files' headers and record counts."""

    words: int              # words captured (buf[0] of every buffer, clamped to it)
    records: int
    tasks: int
    idle: int               # tasks that recorded nothing
    drops: int


def survey(path: str | os.PathLike[str]) -> Survey:
    """Words, records, tasks and drops of a trace directory, without decoding its records.

    Counts come from the files' headers, and from the record scanner for a buffer whose
    header does not hold its count (the sealer counts the segments it compresses). A file
    that cannot be read counts nothing (decoding it names the problem).
    """
    from kcovdf.runtime.tasks import count_file

    root = Path(path)
    words = records = drops = 0
    per_task: dict[tracefile.TaskFile, int] = {}
    for task in tracefile.list_dir(root).tasks:
        name = os.fspath(root / task.name)
        try:
            r, d = count_file(name)
            words += _captured(name)
        except OSError:
            r, d = 0, 0
        records, drops = records + r, drops + d
        per_task[task.task] = per_task.get(task.task, 0) + r
    return Survey(words, records, len(per_task), sum(1 for r in per_task.values() if not r), drops)


def _captured(name: str) -> int:
    """buf[0] of a task file, clamped to its buffer (0 for a file too short to hold one)."""
    size = tracefile.FILE_HEADER_SIZE + 8
    if tracefile.is_compressed(name):
        try:
            with gzip.open(name, "rb") as f:
                page = f.read(size)
        except (EOFError, zlib.error):
            return 0
    else:
        with open(name, "rb") as f:
            page = f.read(size)
    if len(page) < size:
        return 0
    try:
        head = tracefile.read_header(page[:tracefile.FILE_HEADER_SIZE], name)
    except CorruptBufferError:
        return 0
    return min(int.from_bytes(page[-8:], "little"), max(0, head.words - 1))


def open_trace(path: str | os.PathLike[str]) -> tuple[list[Source], list[str]]:
    """Every buffer of a trace directory, a .kdf file or a raw kernel buffer dump, and notes."""
    notes, found = iter_trace(path)
    return list(found), notes


def iter_trace(path: str | os.PathLike[str]) -> tuple[list[str], Iterator[Source]]:
    """``open_trace`` one buffer at a time: (notes, the sources as they are read).

    Input that is not a trace at all raises CorruptBufferError here, before the iteration.
    """
    p = Path(path)
    if not p.exists():
        raise CorruptBufferError(f"{p}: no such file or directory (expected {EXPECTED})")
    if p.is_dir():
        return iter_directory(p)
    if tracefile.is_compressed(p.name):
        return [], iter([read_kdf(p)])
    with open(p, "rb") as f:
        start = f.read(len(tracefile.FILE_MAGIC))
    if tracefile.is_kdf_start(start):
        return [], iter([read_kdf(p)])  # a wrong magic version byte gets its message there
    return [], iter([read_raw(p)])
