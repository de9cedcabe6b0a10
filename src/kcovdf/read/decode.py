"""Decoder: the only door to buffer bytes. Buffers and trace files become a records table.

``load(source)`` reads a .kdf file, a trace directory, a raw kernel buffer dump or a
live buffer and returns a ``Trace``; ``scan(words)`` finds the records of one bare
buffer. The C scanner (``_core/scan.c``, the kernel documentation's parsing loop)
finds the records and fills every column in the same pass; pyarrow wraps its output
without copying, so no Python code runs per record (numpy's gather from the record
offsets is the scanner's reference twin, and the fallback without the extension).

The table writes as little as it can: ``kind`` is a dictionary of int8 codes, and
``values`` is a list-view (an offset and a size per record). Where the buffer cannot
change after decoding (words read from a file, read-only memory) the list-view's child
is the buffer itself, so value words are never copied; a writable buffer's value words
are copied (see ``_may_change``). Note: pyarrow's cast from list_view to list ignores
the sizes when lists leave gaps (pyarrow 26), so rebuild a list column from
``flatten()`` and the sizes instead of casting.

Nothing is lost silently: words that are not records, a truncated last record, a
counter larger than the buffer, a truncated file and bad table lines are all
reported in ``Trace.skipped`` / ``Trace.notes``; missing tables in ``Trace.missing``.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import InitVar, dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa

from kcovdf import abi, symbols, tracefile
from kcovdf.errors import CorruptBufferError
from kcovdf.read import sources, walk
from kcovdf.runtime import core
from kcovdf.runtime.encode import TypeEntry

log = logging.getLogger(__name__)

#: Record kinds by the scanner's code: 0xE entry; 0xF return, exception, yield (by arg_idx);
#: 0xD events of format 2: resume, suspend, or "event" for an event number this kcovdf does not know.
KINDS = ("entry", "return", "exception", "yield", "resume", "suspend", "event")

#: Why words were skipped, by the reason code of the scanner.
SKIP_REASONS = {
    0: "not a valid record header",
    1: "truncated record (runs past the end of the buffer)",
    2: "words left at the end, fewer than a record",
}

SCHEMA = pa.schema([
    ("task", pa.int32()),
    ("seq", pa.uint32()),
    ("kind", pa.dictionary(pa.int8(), pa.string())),
    ("pc", pa.uint64()),
    ("arg_idx", pa.uint8()),
    ("size", pa.uint8()),
    ("ptr", pa.uint64()),
    ("values", pa.list_view(pa.uint64())),
])


try:
    from kcovdf._core._scan import scan as _c_scan
except ImportError as exc:  # not built: the Python twin below serves
    log.info("decode: C scanner unavailable (%s); using the Python scanner", exc)
    _c_scan = None


def _scanner() -> Any:
    """The C scanner while the C core is in use (kcovdf.runtime.core chooses), else None."""
    # The C loop is the fast path; the Python loop below is its reference twin.
    return _c_scan if core.name == "c" else None


class Task(NamedTuple):
    """One traced task (thread or process): one buffer."""

    index: int
    pid: int
    tid: int
    name: str
    source: str
    encoding: str = "kcovdf"     # "kcovdf" value encoding, or "kernel": one raw word per scalar
    words: int = 0               # words captured (buf[0], clamped to the buffer)
    drops: int | None = None     # records dropped on a full buffer; None when unknown (no header)
    format: int = 1              # record format (tracefile.FORMAT_VERSION); 2: meta's ptr is the call id
    segments: int = 1            # buffers of its stream read (whole and ring modes: one per segment)


class Skip(NamedTuple):
    """Words of one buffer that decoded to no record (offsets count buf[0] as word 0)."""

    offset: int
    count: int
    reason: str


class Skipped(NamedTuple):
    """A Skip of one task of a trace."""

    task: int
    offset: int
    count: int
    reason: str


class Scan(NamedTuple):
    """Where the records of a buffer start, what was skipped, and the words captured."""

    offsets: np.ndarray     # int64 word offsets of complete records
    skipped: list[Skip]
    count: int              # buf[0], clamped to the buffer


@dataclass
class Trace:
    """A decoded trace: one records table over all tasks, and its tables."""

    records: pa.Table
    tasks: list[Task]
    types: dict[int, TypeEntry] = field(default_factory=dict)
    symbols: dict[int, symbols.Symbol] = field(default_factory=dict)
    words: int = 0
    drops: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    info: list[dict[str, Any]] = field(default_factory=list)
    #: The resolver every tool names pcs with: ``symbols``, then the kernel symbols given to load().
    names: symbols.Symbolizer = field(init=False, repr=False, compare=False)
    kernel: InitVar[symbols.KernelSymbols | None] = None

    def __post_init__(self, kernel: symbols.KernelSymbols | None) -> None:
        self.names = symbols.Symbolizer(self.symbols, kernel)

    def __len__(self) -> int:
        return self.records.num_rows


def _scan_py(words: np.ndarray, start: int, stop: int) -> tuple[list[int], list[tuple[int, int, int]]]:
    """Reference twin of scan.c (kcovdf.read.walk) over a numpy buffer."""
    return walk.records(words[:stop].tolist(), start, stop)


def _as_words(words: Any) -> np.ndarray:
    if isinstance(words, np.ndarray) and words.dtype == sources.WORD and words.ndim == 1:
        return words
    return sources.from_buffer(words).words


def scan(words: Any) -> Scan:
    """Find the records of a bare buffer (``buf[0]`` first, u64 words, any buffer object).

    A counter larger than the buffer is clamped to it and reported; a truncated last
    record is reported, not decoded.
    """
    return _scan(_as_words(words), columns=False)[0]


class _Columns(NamedTuple):
    task: np.ndarray
    seq: np.ndarray
    pc: np.ndarray
    arg_idx: np.ndarray
    size: np.ndarray
    ptr: np.ndarray
    kind: np.ndarray            # int8 codes, indexes of KINDS
    voff: np.ndarray            # where each record's value words start in ``values``
    vsize: np.ndarray           # how many value words each record has
    values: np.ndarray          # uint64: the scanned buffer itself, or the value words copied


def _scan(w: np.ndarray, columns: bool, *, task: int = 0,
          copy_values: bool = True) -> tuple[Scan, _Columns | None]:
    """Scan, and with ``columns`` also the records' columns (Scan.offsets is then not needed).

    Without ``copy_values`` the columns' value lists point into ``w`` (``values`` is ``w``
    up to the last captured word): the caller must know ``w`` will not change.
    """
    if len(w) == 0:
        return Scan(np.zeros(0, np.int64), [], 0), _gather(w, np.zeros(0, np.int64), task, copy_values)
    claimed, avail = int(w[0]), len(w) - 1
    count = min(claimed, avail)
    # The buffer is the list child only where its words are native (little-endian) u64.
    copy_values = copy_values or not _NATIVE_LE
    cols = None
    c_scan = _scanner()
    if c_scan is not None:
        got = c_scan(w, 1, 1 + count, columns, task, copy_values, len(w) > _INT32_MAX)
        offsets = np.frombuffer(got[0], dtype=np.int64)
        raw_skips = np.frombuffer(got[1], dtype=np.int64).reshape(-1, 3).tolist()
        if columns:
            cols = _c_columns(got[2], None if copy_values else w[:1 + count])
    else:
        off_list, raw_skips = _scan_py(w, 1, 1 + count)
        offsets = np.array(off_list, dtype=np.int64)
        if columns:
            cols = _gather(w[:1 + count], offsets, task, copy_values)
    skipped = [Skip(o, c, SKIP_REASONS[r]) for o, c, r in raw_skips]
    if claimed > avail:
        skipped.append(Skip(avail + 1, claimed - avail,
                            f"counter says {claimed} words were written, the buffer holds {avail}"))
    return Scan(offsets, skipped, count), cols


_INT32_MAX = 2**31 - 1
_NATIVE_LE = sys.byteorder == "little"


def _c_columns(raw: tuple[bytearray, ...], words: np.ndarray | None) -> _Columns:
    """Zero-copy views of the columns scan.c filled; ``words`` is the list child when not copied."""
    task, seq, kind, pc, arg, size, ptr, voff, vsize, vals = raw
    n = len(seq) // 4
    wide = np.int64 if n and len(voff) // n == 8 else np.int32
    return _Columns(
        np.frombuffer(task, np.int32), np.frombuffer(seq, np.uint32), np.frombuffer(pc, np.uint64),
        np.frombuffer(arg, np.uint8), np.frombuffer(size, np.uint8), np.frombuffer(ptr, np.uint64),
        np.frombuffer(kind, np.int8),
        np.frombuffer(voff, wide), np.frombuffer(vsize, wide),
        np.frombuffer(vals, np.uint64) if words is None else words)


def _gather(w: np.ndarray, offsets: np.ndarray, task: int = 0, copy_values: bool = True) -> _Columns:
    """Reference twin of scan.c's columns: numpy gathers from the record offsets."""
    head = w[offsets]
    pc = w[offsets + 1]
    meta = w[offsets + 2]
    nvals = ((head >> np.uint64(24)) & np.uint64(0xF)).astype(np.int64)
    nvals[nvals == 0] = 1
    arg_idx = (meta >> np.uint64(56)).astype(np.uint8)
    rtype = (head >> np.uint64(28)) & np.uint64(0xF)
    ret = rtype == abi.TYPE_RETURN
    kind = ret.astype(np.int8)
    kind[ret & (arg_idx == abi.ARG_EXCEPTION)] = 2
    kind[ret & (arg_idx == abi.ARG_YIELD)] = 3
    event = rtype == abi.TYPE_EVENT
    kind[event] = 6
    kind[event & (arg_idx == abi.EVENT_RESUME)] = 4
    kind[event & (arg_idx == abi.EVENT_SUSPEND)] = 5
    off_type = np.int64 if len(w) > _INT32_MAX else np.int32
    if copy_values:
        voff = np.zeros(len(offsets) + 1, dtype=np.int64)
        np.cumsum(nvals, out=voff[1:])
        # Value word j of record r sits at offsets[r] + 3 + j: one flat index array.
        idx = np.arange(voff[-1], dtype=np.int64)
        idx += np.repeat(offsets + 3 - voff[:-1], nvals)
        starts, values = voff[:-1], w[idx]
    else:
        starts, values = offsets + 3, w
    return _Columns(
        task=np.full(len(offsets), task, dtype=np.int32),
        seq=(head & np.uint64(abi.SEQ_MASK)).astype(np.uint32),
        pc=pc, arg_idx=arg_idx,
        size=((meta >> np.uint64(48)) & np.uint64(0xFF)).astype(np.uint8),
        ptr=meta & np.uint64(abi.PTR_MASK), kind=kind,
        voff=starts.astype(off_type), vsize=nvals.astype(off_type), values=values)


def _looks_kcovdf(cols: _Columns) -> bool:
    """Whether records carry kcovdf's value encoding rather than the kernel's raw words."""
    n = min(len(cols.seq), 256)
    # format 2's events and ARG_NONE entries hold one bare word, not an encoded value
    valued = (cols.kind[:n] < 4) & ~((cols.kind[:n] == 0) & (cols.arg_idx[:n] == abi.ARG_NONE))
    if not valued.any():
        return False
    starts = cols.voff[:n].astype(np.int64)[valued]
    nvals = cols.vsize[:n].astype(np.int64)[valued]
    if np.any(cols.size[:n] != abi.PY_VALUE_SIZE) or np.any(nvals < 2):
        return False
    lay = cols.values[starts + 1]
    if np.any(((lay >> np.uint64(52)) & np.uint64(0xF)) > max(abi.Form)):
        return False
    # kind nibbles beyond the record's field words are zero in a layout word
    used = (np.uint64(1) << ((nvals - 2) * 4).astype(np.uint64)) - np.uint64(1)
    return not np.any(lay & ~used & np.uint64((1 << 52) - 1))


_KIND_DICT = pa.array(KINDS, pa.string())


def _table(cols: _Columns) -> pa.Table:
    """The records table of one buffer; every column wraps the scanner's output without a copy."""
    wide = cols.voff.dtype == np.int64
    values = (pa.LargeListViewArray if wide else pa.ListViewArray).from_arrays(
        pa.array(cols.voff), pa.array(cols.vsize), pa.array(cols.values))
    # safe=False skips pyarrow's range check of every index (5 ms per 6M records): the
    # scanner and its twin only write the codes of KINDS.
    kinds = pa.DictionaryArray.from_arrays(pa.array(cols.kind), _KIND_DICT, safe=False)
    arrays = [pa.array(cols.task), pa.array(cols.seq), kinds, pa.array(cols.pc),
              pa.array(cols.arg_idx), pa.array(cols.size), pa.array(cols.ptr), values]
    if wide:
        return pa.Table.from_arrays(arrays, names=SCHEMA.names)
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


def _read_tables(src: sources.Source, out: Trace, symtab: symbols.SymbolTable,
                 has_records: bool) -> dict[str, Any] | None:
    task_line = None
    kinds = set()
    for line in src.table:
        t = line.get("t")
        kinds.add(t)
        try:
            if t == "type":
                tid = int(line["id"], 16)
                out.types.setdefault(tid, TypeEntry(tid, str(line["class"]),
                                                    tuple(str(f) for f in line.get("fields") or ()),
                                                    str(line.get("named") or ""),
                                                    str(line.get("name") or "")))
            elif t == "sym":
                symtab.add(symbols.Symbol.from_json(line))
            elif t == "task":
                if task_line is None:
                    task_line = line
                elif (line.get("pid"), line.get("tid")) != (task_line.get("pid"), task_line.get("tid")):
                    out.notes.append(f"{src.name}: several tasks wrote this buffer "
                                     f"(also pid {line.get('pid')} tid {line.get('tid')})")
            elif t == "info":
                out.info.append(line)
        except (KeyError, TypeError, ValueError) as exc:
            out.notes.append(f"{src.name}: bad {t} line skipped ({exc})")
    # A task that recorded nothing (an idle pool worker, say) needs no table to be read.
    if "type" not in kinds and has_records:
        out.missing.append(f"{src.name}: no type table (class and field names unknown)")
    if "sym" not in kinds and has_records:
        out.missing.append(f"{src.name}: no symbol table (functions shown by pc)")
    return task_line


def load(source: Any, *, table_lines: list[dict[str, Any]] | None = None,
         encoding: str | None = None, kernel: symbols.KernelSymbols | None = None) -> Trace:
    """Decode a trace: a path (.kdf file, trace directory, raw kernel dump), a Device or a buffer.

    A ``kcovdf.Device`` is read live (its mapped buffer, table lines and drops).
    ``table_lines`` go with a bare live buffer (``Device.mmap()``). ``encoding`` forces
    "kcovdf" or "kernel" value words; by default .kdf files are kcovdf, and bare
    buffers are recognised by their layout words. ``kernel`` symbols name the pcs the
    trace's own symbols do not (``Trace.names``).
    Raises CorruptBufferError for input that is not a trace at all.
    """
    _check_encoding(encoding)
    if isinstance(source, (str, os.PathLike)):
        found, notes = sources.open_trace(source)
    elif callable(getattr(source, "table_lines", None)) and callable(getattr(source, "mmap", None)):
        found = [sources.from_buffer(source.mmap(), source.table_lines(), repr(source), source.drops)]
        notes = []
    else:
        found, notes = [sources.from_buffer(source, table_lines)], []
    return decode_sources(found, notes=notes, encoding=encoding, kernel=kernel)


def decode_sources(found: Iterable[sources.Source], *, notes: list[str] | None = None,
                   encoding: str | None = None, kernel: symbols.KernelSymbols | None = None) -> Trace:
    """Decode buffers already read by ``kcovdf.read.sources`` into one Trace."""
    dec = Decoder(notes, encoding=encoding, kernel=kernel)
    tables = [dec.add(src) for src in found]
    return dec.finish(tables)


def stream(source: str | os.PathLike[str], *, encoding: str | None = None,
           kernel: symbols.KernelSymbols | None = None) -> Iterator[tuple[Trace, pa.Table]]:
    """Decode a trace file or directory one buffer (task segment) at a time.

    Yields (the trace so far, the records of one buffer): the trace's tasks, tables,
    notes and counters cover the buffers yielded so far, its ``records`` stay empty, and
    only one buffer's words are held at a time. Raises CorruptBufferError at once for
    input that is not a trace.
    """
    _check_encoding(encoding)
    notes, found = sources.iter_trace(source)
    dec = Decoder(notes, encoding=encoding, kernel=kernel)
    for src in found:
        yield dec.trace, dec.add(src)
    dec.finish([])


def batches(source: Any, *, encoding: str | None = None,
            kernel: symbols.KernelSymbols | None = None) -> Iterator[tuple[Trace, pa.Table]]:
    """``stream`` for a trace directory; for any other source (one buffer) its whole decode,
    as one batch. Errors are raised when the iteration starts."""
    if isinstance(source, (str, os.PathLike)) and os.path.isdir(source):
        yield from stream(source, encoding=encoding, kernel=kernel)
        return
    t = load(source, encoding=encoding, kernel=kernel)
    yield t, t.records


class Decoder:
    """Decodes buffers one after another into one trace: its tasks, tables and counters grow.

    A buffer of a task already met (its next segment in a trace directory) joins that
    task: one stream, its records after the ones before.
    """

    def __init__(self, notes: list[str] | None = None, *, encoding: str | None = None,
                 kernel: symbols.KernelSymbols | None = None) -> None:
        self.symtab = symbols.SymbolTable()
        self.encoding = encoding
        # the same list object: sources.iter_trace adds to it while its sources are read
        self.notes = notes if notes is not None else []
        self.trace = Trace(records=SCHEMA.empty_table(), tasks=[], symbols=self.symtab.symbols,
                           notes=self.notes, kernel=kernel)
        self._streams: dict[str, int] = {}  # a task's first file name -> its index
        self._kernel = kernel

    def add(self, src: sources.Source) -> pa.Table:
        """Decode one buffer: its records table (the trace's tasks and tables take its lines)."""
        out = self.trace
        out.notes.extend(src.notes)
        index = self._streams.get(src.stream, len(out.tasks)) if src.stream else len(out.tasks)
        sc, cols = _scan(src.words, columns=True, task=index, copy_values=_may_change(src))
        assert cols is not None
        has_records = len(cols.task) > 0
        # a later segment's table holds only the lines new since: missing ones are in the stream's
        task_line = _read_tables(src, out, self.symtab, has_records and not src.segment) \
            if src.kind != "raw" or src.table else None
        enc = self.encoding or ("kcovdf" if src.kind == "kdf" or src.table or _looks_kcovdf(cols)
                                else "kernel")
        if src.kind == "raw" and not src.table:
            hint = " (use --kallsyms/--ko)" if enc == "kernel" and self._kernel is None else ""
            out.missing.append(f"{src.name}: raw buffer: no header (drops unknown), no type or "
                               f"symbol table{hint}")
        drops = src.drops
        tl = task_line or {}
        if index < len(out.tasks):
            t = out.tasks[index]
            out.tasks[index] = t._replace(words=t.words + sc.count, segments=t.segments + 1,
                                          drops=None if t.drops is None or drops is None else t.drops + drops)
        else:
            if src.stream:
                self._streams[src.stream] = index
            out.tasks.append(Task(index, _int(tl.get("pid"), src.pid), _int(tl.get("tid"), src.tid),
                                  str(tl.get("name") or ""), src.name, enc, sc.count, drops,
                                  _format(src, enc)))
        out.words += sc.count
        out.drops += drops or 0
        where = f"{os.path.basename(src.name)}: " if src.segment else ""
        out.skipped.extend(Skipped(index, s.offset, s.count, where + s.reason) for s in sc.skipped)
        return _table(cols)

    def finish(self, tables: list[pa.Table]) -> Trace:
        """The trace, its records the given tables in order; notes on symbol collisions added."""
        out = self.trace
        out.notes.extend(self.symtab.describe_collisions())
        if tables:
            out.records = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
        return out


def _check_encoding(encoding: str | None) -> None:
    if encoding not in (None, "kcovdf", "kernel"):
        raise ValueError(f"encoding must be 'kcovdf' or 'kernel', not {encoding!r}")


def _format(src: sources.Source, encoding: str) -> int:
    """The record format of a source: its header's version; a live kcovdf buffer is the writer's.

    Kernel-encoded buffers and raw dumps without a table keep the kernel's meaning of
    meta's pointer (format 1).
    """
    if src.header is not None:
        return src.header.version
    if encoding == "kcovdf" and src.kind == "buffer" and src.table:
        return tracefile.FORMAT_VERSION
    return 1


def _may_change(src: sources.Source) -> bool:
    """Whether a source's words may still be written after decoding (then its values are copied).

    Words read from a file are the decoder's own copy, and read-only memory (bytes, a
    read-only array) is taken not to change: the values column then shares their memory.
    A writable buffer (a live Device mapping, a writable array) may be reset by enable()
    or reused by its owner, so its value words are copied.
    """
    return src.kind == "buffer" and bool(src.words.flags.writeable)


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def describe_skipped(t: Trace) -> list[str]:
    """One human line per skipped run of a trace."""
    return [f"task {s.task}: words {s.offset}..{s.offset + s.count - 1} ({s.count} words): {s.reason}"
            for s in t.skipped]


__all__ = ["KINDS", "SCHEMA", "CorruptBufferError", "Decoder", "Scan", "Skip", "Skipped", "Task",
           "Trace", "batches", "decode_sources", "describe_skipped", "load", "scan", "stream"]
