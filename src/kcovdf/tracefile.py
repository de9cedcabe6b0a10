"""kcovdf's own container: the .kdf file, the trace directory, and private atomic writes.

The one module that writers (Device, the recorder's twin, ``kcovdf run``) and readers
(``kcovdf.read``, the run summary) both use, so that a name or an offset is defined once.
Standard library only: the runtime path writes with it.

A ``.kdf`` file (docs/abi.md §3)::

    header page (FILE_HEADER_SIZE bytes) | buffer: words * 8 bytes | table: JSON lines to EOF

A trace directory (docs/run.md, "Trace layout")::

    run.json                      run info: format version, argv, config, ...
    task-<pid>-<tid>.kdf          one per task
    task-<pid>-<tid>-<n>.kdf      a later task whose name was taken (n = 1, 2, ...)
    task-<pid>-<tid>[-<n>].s<k>.kdf   segment k of that task (whole and ring modes)

Task files are read in the order (pid, tid, n): a pid and tid that recur (a pid
reused after exec, a thread id reused by a later thread) keep their order of creation.
Every file holding captured values is created 0600 and every directory 0700.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import json
import os
import re
import struct
import zlib
from collections.abc import Iterator
from typing import Any, BinaryIO, NamedTuple

from kcovdf.errors import CorruptBufferError

#: Version of the .kdf layout and of the record words in it that kcovdf's writers produce
#: (header field and run.json "format"). Bump when either changes meaning (docs/abi.md).
#: Version 1: meta's pointer is an object address; calls pair by stack. The writers stay at
#: 1 until they record call ids (issue 9's writer side); the readers already read 2.
FORMAT_VERSION = 2
#: The versions readers accept. Version 2: meta's pointer is the call id, an entry for every
#: call, 0xD event records (docs/abi.md §1.1).
READ_VERSIONS = (1, 2)

#: Mode of every file that can hold captured values, and of the directories holding them.
FILE_MODE = 0o600
DIR_MODE = 0o700

# --- the .kdf header page ----------------------------------------------------------
FILE_MAGIC = b"KCOVDF\x00\x01"
FILE_HEADER_SIZE = 4096
# byte offsets of the u32/u64 header fields (the C core's abi.h mirrors them)
HDR_VERSION = 8
HDR_HEADER_SIZE = 12
HDR_WORDS = 16
HDR_DROPS = 24
HDR_OWNER = 32
HDR_PID = 40
HDR_CREATED_NS = 48
HDR_FLAGS = 56
HDR_SEGMENT = 64
HDR_RECORDS = 72
#: HDR_FLAGS bit: the writer moved on to the task's next segment; this one is complete.
FLAG_SEALED = 1
_HEADER = struct.Struct("<8sIIQQQQQQQQ")
#: Bytes of the header page that hold fields; the rest of the page is zero.
HEADER_FIELDS_SIZE = _HEADER.size

try:  # json's C encoder, called directly: a program recording the json module must not see kcovdf's lines
    from _json import encode_basestring as _c_str
    from _json import encode_basestring_ascii as _c_ascii
    from _json import make_encoder as _c_make_encoder
except ImportError:
    _c_make_encoder = None


def _unserializable(obj: object) -> object:
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def _dumps(obj: dict[str, Any], ascii: bool) -> str:
    """``json.dumps(obj, separators=(",", ":"), ensure_ascii=ascii)``, through no Python function of json."""
    if _c_make_encoder is None:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=ascii)
    encode = _c_make_encoder({}, _unserializable, _c_ascii if ascii else _c_str, None, ":", ",", False, False,
                             True)
    return "".join(encode(obj, 0))


class Header(NamedTuple):
    """The fields of a .kdf header page (docs/abi.md §3)."""

    magic: bytes
    version: int
    header_size: int
    words: int          # buffer words, buf[0] included
    drops: int          # whole records dropped because the buffer was full
    owner: int          # native thread id of the task enabled on the buffer, 0 if none
    pid: int            # the creating process
    created_ns: int
    flags: int
    segment: int = 0    # index of this buffer in its task's stream of segments (docs/abi.md §3.2)
    records: int = 0    # records in the buffer, counted when the file was compressed; 0: not counted

    @property
    def table_offset(self) -> int:
        """Byte offset of the table: right after the buffer."""
        return FILE_HEADER_SIZE + 8 * self.words


def pack_header(words: int, pid: int, created_ns: int, segment: int = 0) -> bytes:
    """The header page of a new .kdf file: zero drops, no owner."""
    head = _HEADER.pack(FILE_MAGIC, FORMAT_VERSION, FILE_HEADER_SIZE, words, 0, 0, pid, created_ns, 0,
                        segment, 0)
    return head.ljust(FILE_HEADER_SIZE, b"\0")


def unpack_header(page: bytes) -> Header:
    """The fields of a header page, unchecked (``read_header`` checks them)."""
    return Header(*_HEADER.unpack_from(page, 0))


def read_header(page: bytes, name: str) -> Header:
    """The fields of the first bytes of a .kdf file; CorruptBufferError naming ``name`` and the problem."""
    if not page:
        raise CorruptBufferError(f"{name}: empty file (no .kdf header)")
    if len(page) < HEADER_FIELDS_SIZE or page[:len(FILE_MAGIC)] != FILE_MAGIC:
        raise CorruptBufferError(f"{name}: not a .kdf trace file: expected magic {FILE_MAGIC!r} "
                                 "at offset 0")
    head = unpack_header(page)
    if head.version not in READ_VERSIONS:
        raise CorruptBufferError(f"{name}: format version {head.version} is not supported "
                                 f"(this kcovdf reads versions {_versions()})")
    if head.header_size != FILE_HEADER_SIZE:
        raise CorruptBufferError(f"{name}: header size {head.header_size}, expected {FILE_HEADER_SIZE}")
    return head


def _versions() -> str:
    return " and ".join(map(str, READ_VERSIONS))


def is_kdf_start(data: bytes) -> bool:
    """Whether ``data`` starts like a .kdf file (its magic, whatever its version byte)."""
    return data[:len(FILE_MAGIC) - 2] == FILE_MAGIC[:-2]


# --- the table -----------------------------------------------------------------------
def line(obj: dict[str, Any]) -> bytes:
    """One table line, without its newline: compact UTF-8 JSON.

    A lone surrogate in a name (legal in a Python str) cannot be UTF-8: such a line is
    written with \\u escapes instead, valid and lossless. The C core writes type lines
    byte for byte the same way.
    """
    try:
        return _dumps(obj, False).encode("utf-8")
    except UnicodeEncodeError:
        return _dumps(obj, True).encode("ascii")


def _clean(value: Any) -> Any:
    # A class or function name may hold a lone surrogate (legal in a Python str, escaped
    # as "\udXXX" in JSON); it cannot be written as UTF-8 by pyarrow, rich or a file, so
    # each one becomes U+FFFD while proper surrogate pairs become their character.
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return value
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    return value


def parse(data: bytes, name: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Table lines (JSON objects) of ``data``, and notes naming the lines that were skipped.

    The last line of a table that is still being appended to may be cut short; it is
    ignored with a note, as is any other line that is not a JSON object.
    """
    lines: list[dict[str, Any]] = []
    notes: list[str] = []
    raw = data.split(b"\n")
    for number, text in enumerate(raw, 1):
        if not text.strip(b"\0 \t\r"):
            continue
        try:
            obj = json.loads(text)
        except (ValueError, UnicodeDecodeError):
            obj = None
        if isinstance(obj, dict):
            lines.append(_clean(obj))
        elif number == len(raw):
            notes.append(f"{name}: table: last line truncated ({len(text)} bytes ignored)")
        else:
            notes.append(f"{name}: table line {number}: not a JSON object (skipped)")
    return lines, notes


# --- the trace directory ---------------------------------------------------------------
RUN_INFO = "run.json"
#: The calls index of a finished trace (kcovdf.read.index): not a task file, not read as one.
INDEX_DIR = "index"
_TASK_PREFIX, _TASK_SUFFIX = "task-", ".kdf"
_NUMBER = r"(0|[1-9][0-9]*)"
_TASK_NAME = re.compile(rf"task-{_NUMBER}-{_NUMBER}(?:-([1-9][0-9]*))?(?:\.s([1-9][0-9]*))?\.kdf(\.gz)?")
#: The task file names, as the messages to users spell them.
TASK_FILE_PATTERN = "task-<pid>-<tid>[-<n>][.s<k>].kdf[.gz]"
#: Suffix of a task file compressed once written (gzip: ``zcat`` gives the .kdf back).
COMPRESSED_SUFFIX = ".gz"


class TaskFile(NamedTuple):
    """The name of one task file: its task and, when the name was taken, its suffix ``n``.

    Tuples sort in the order readers read task files (the module docstring).
    """

    pid: int
    tid: int
    n: int = 0          # 0 for task-<pid>-<tid>.kdf, else the -<n> suffix
    segment: int = 0    # 0 for the task's first buffer, k for its .s<k> segment
    compressed: bool = False  # the .kdf.gz of a file written out (kcovdf.run.sealer)

    @property
    def name(self) -> str:
        """The file name."""
        suffix = f"-{self.n}" if self.n else ""
        seg = f".s{self.segment}" if self.segment else ""
        gz = COMPRESSED_SUFFIX if self.compressed else ""
        return f"{_TASK_PREFIX}{self.pid}-{self.tid}{suffix}{seg}{_TASK_SUFFIX}{gz}"

    @property
    def task(self) -> TaskFile:
        """The task this file is a segment of (its first segment's name, uncompressed)."""
        return self._replace(segment=0, compressed=False)


def parse_task_name(name: str) -> TaskFile | None:
    """The TaskFile a file name spells, or None when it is not one (``task-<pid>-<tid>[-<n>].kdf``)."""
    m = _TASK_NAME.fullmatch(name)
    if m is None:
        return None
    return TaskFile(int(m[1]), int(m[2]), int(m[3] or 0), int(m[4] or 0), bool(m[5]))


def looks_like_task_file(name: str) -> bool:
    """Whether a name is meant as a task file (``task-*.kdf``), well-formed or not."""
    return name.startswith(_TASK_PREFIX) and name.endswith((_TASK_SUFFIX, _TASK_SUFFIX + COMPRESSED_SUFFIX))


def free_task_path(trace_dir: str, pid: int, tid: int) -> str:
    """The path of the first task file name of (pid, tid) that ``trace_dir`` does not hold yet.

    The caller creates it exclusively (``create_private``) and asks again when it lost a race.
    """
    n = 0
    while True:
        path = os.path.join(trace_dir, TaskFile(pid, tid, n).name)
        if not os.path.lexists(path):
            return path
        n += 1


class Listing(NamedTuple):
    """What a trace directory holds, by name."""

    run_info: bool                  # run.json is present
    tasks: list[TaskFile]           # in reading order
    unknown: list[str]              # every other entry, sorted (task-like names that do not parse included)


def is_transient(name: str) -> bool:
    """Whether a directory entry is a task file being written under its temporary name
    (``private_file``: the sealer's .gz before its rename); not part of the trace yet."""
    return name.startswith("." + _TASK_PREFIX) and name.endswith(".tmp")


def list_dir(path: str | os.PathLike[str]) -> Listing:
    """The entries of a trace directory, sorted into run info, task files and the rest."""
    run_info = False
    found: list[TaskFile] = []
    unknown: list[str] = []
    for name in os.listdir(path):
        task = parse_task_name(name)
        if task is not None:
            found.append(task)
        elif name == RUN_INFO:
            run_info = True
        elif name != INDEX_DIR and not is_transient(name):
            unknown.append(name)
    # a file and its .gz both there: the sealer was stopped between the two; they hold the same
    plain = {t for t in found if not t.compressed}
    found = [t for t in found if not (t.compressed and t._replace(compressed=False) in plain)]
    return Listing(run_info, sorted(found), sorted(unknown))


def read_from(fd: int, pos: int) -> bytes:
    """The bytes of file ``fd`` from ``pos`` to its end, in pieces (a table may be large)."""
    size = os.fstat(fd).st_size
    chunks = []
    while pos < size:
        chunk = os.pread(fd, min(size - pos, 1 << 20), pos)
        if not chunk:
            break
        chunks.append(chunk)
        pos += len(chunk)
    return b"".join(chunks)


def is_compressed(name: str) -> bool:
    """Whether a file name is that of a written-out, compressed task file (``.kdf.gz``)."""
    return name.endswith(_TASK_SUFFIX + COMPRESSED_SUFFIX)


def read_compressed_header(path: str | os.PathLike[str]) -> Header:
    """The header of a .kdf.gz, decompressing its first page only; CorruptBufferError when damaged."""
    name = os.fspath(path)
    try:
        with gzip.open(name, "rb") as f:
            page = f.read(FILE_HEADER_SIZE)
    except (OSError, EOFError, zlib.error) as exc:
        raise CorruptBufferError(f"{name}: damaged compressed task file ({exc})") from None
    return read_header(page, name)


def read_task_file(path: str | os.PathLike[str]) -> bytes:
    """The bytes of a task file, decompressed when it is a .kdf.gz. A compressed file cut short
    or damaged gives the bytes before the damage (readers then see a truncated file);
    CorruptBufferError when not even its header page is left."""
    return read_task_file_checked(path)[0]


def read_task_file_checked(path: str | os.PathLike[str]) -> tuple[bytes, str | None]:
    """``read_task_file``, with what went wrong decompressing it (None: nothing)."""
    name = os.fspath(path)
    with open(name, "rb") as f:
        data = f.read()
    if not is_compressed(name):
        return data, None
    # in pieces, so that what inflates before any damage is kept
    inflate = zlib.decompressobj(wbits=31)  # gzip
    pieces: list[bytes] = []
    problem: str | None = None
    for i in range(0, len(data), 1 << 12):
        try:
            pieces.append(inflate.decompress(data[i:i + (1 << 12)]))
        except zlib.error as exc:
            problem = f"damaged compressed task file ({exc})"
            break
    else:
        problem = None if inflate.eof else "compressed data cut short"
    out = b"".join(pieces)
    if len(out) < FILE_HEADER_SIZE:
        raise CorruptBufferError(f"{name}: {problem or 'empty file'}: no .kdf header left")
    return out, problem


def write_run_info(trace_dir: str, info: dict[str, Any]) -> None:
    """Write run.json (private, atomic) holding ``info`` and the format version."""
    data = json.dumps({"format": FORMAT_VERSION, **info}).encode() + b"\n"
    with private_file(os.path.join(trace_dir, RUN_INFO)) as f:
        f.write(data)


def read_run_info(trace_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The run info of a trace directory, None without run.json; CorruptBufferError when unreadable."""
    path = os.path.join(trace_dir, RUN_INFO)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CorruptBufferError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        info = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorruptBufferError(f"{path}: not valid JSON ({exc})") from None
    fmt = info.get("format") if isinstance(info, dict) else None
    if fmt not in READ_VERSIONS or isinstance(fmt, bool):
        raise CorruptBufferError(f"{path}: format version {fmt!r} is not supported "
                                 f"(this kcovdf reads versions {_versions()})")
    return info


# --- private files -------------------------------------------------------------------------
def create_private(path: str, *, overwrite: bool = False, flags: int = os.O_RDWR) -> int:
    """A descriptor on ``path`` created with mode exactly 0600; FileExistsError unless ``overwrite``.

    The mode is set again after creation because O_CREAT's mode is masked by the umask.
    """
    extra = os.O_TRUNC if overwrite else os.O_EXCL
    fd = os.open(path, flags | os.O_CREAT | os.O_CLOEXEC | extra, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def private_dir(path: str | os.PathLike[str]) -> None:
    """Create ``path`` (and its parents) if needed; the directory itself ends up mode 0700."""
    os.makedirs(path, mode=DIR_MODE, exist_ok=True)
    os.chmod(path, DIR_MODE)  # makedirs honours the umask, and an existing directory keeps its mode


@contextlib.contextmanager
def private_file(path: str | os.PathLike[str], *, overwrite: bool = True) -> Iterator[BinaryIO]:
    """A binary file for writing that appears at ``path`` complete, mode 0600, or not at all.

    It is written under a temporary name beside ``path`` and renamed into place when the
    block ends without an exception; on an exception the temporary file is removed.
    Without ``overwrite`` an existing ``path`` is never replaced: FileExistsError, even
    when the file appeared during the write.
    """
    target = os.fspath(path)
    head, tail = os.path.split(target)
    tmp = os.path.join(head, f".{tail}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = create_private(tmp, flags=os.O_WRONLY)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
        if overwrite:
            os.replace(tmp, target)
        else:
            try:
                os.link(tmp, target)  # fails when target exists: never clobber
            except FileExistsError:
                raise FileExistsError(errno.EEXIST, f"{target} exists", target) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
