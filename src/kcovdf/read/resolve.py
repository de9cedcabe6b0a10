"""Symbol-resolved records: the one table that every export, the SQL views and the report read.

``RECORD_COLUMNS`` is the one list of record columns that every output shares, by name and
meaning: ``view --json``, JSONL, Parquet's records.parquet and the SQL ``records`` view
(docs/exports.md). ``records_and_calls`` gives that table with the call pairing joined.

Each record of a decoded trace gets its task's pid/tid, its function's name, its parameter's
name and its value rendered as text and as a structured (JSON-able) value. Names come from
the trace's one resolver, ``Trace.names`` (kcovdf.symbols.Symbolizer: the trace's own
symbols, then the kernel symbols of ``--kallsyms``/``--ko``), the same one ``kcovdf view``
uses. Values are read by ``kcovdf.read.values``; this module only joins them with the
trace's tables.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from kcovdf import abi
from kcovdf.read import calls, render
from kcovdf.read.decode import Trace

#: Columns added to the decoder's records table, in this order.
SCHEMA = pa.schema([
    ("task", pa.int32()), ("pid", pa.int64()), ("tid", pa.int64()), ("thread", pa.string()),
    ("seq", pa.uint32()), ("kind", pa.string()), ("pc", pa.uint64()),
    ("module", pa.string()), ("function", pa.string()),
    ("arg_idx", pa.uint8()), ("param", pa.string()),
    ("size", pa.uint8()), ("ptr", pa.uint64()), ("values", pa.list_(pa.uint64())),
    ("class", pa.string()), ("number", pa.float64()), ("rendered", pa.string()), ("value", pa.string()),
])

#: Columns ``records_and_calls`` adds: the record's call (index in the calls table) and the
#: depth it is drawn at in its task's call tree.
PAIRING = pa.schema([("call", pa.int64()), ("depth", pa.int32())])

#: The record columns of every output, in this order (docs/exports.md, "Columns").
RECORD_COLUMNS: tuple[str, ...] = tuple(SCHEMA.names + PAIRING.names)


def function_name(trace: Trace, pc: int) -> str:
    """The display name of a pc (``module.qualname``, a kernel symbol), or the pc in hex."""
    return trace.names.name(pc)


def param_name(trace: Trace, pc: int, kind: str, arg_idx: int) -> str | None:
    """The parameter an entry record holds; ``None`` for return-side records."""
    if kind != "entry" or arg_idx == abi.ARG_NONE:
        return None
    sym = trace.names.lookup(pc)
    name = sym.param(arg_idx) if sym else None
    return name or f"arg{arg_idx}"


class Resolver:
    """Names and values of a trace's records, column by column, for any batch of them.

    Every method takes numpy (or Arrow) columns of raw records and returns Arrow arrays:
    task columns spread with ``take``, names looked up once per pc or (pc, parameter),
    values rendered by ``kcovdf.read.render``. ``resolve`` applies them to a whole trace;
    ``kcovdf sql`` calls them per chunk, for the rows and columns a query reads.
    """

    def __init__(self, trace: Trace) -> None:
        self.trace = trace
        self.encodings = [t.encoding for t in trace.tasks]
        self._task_cols = {
            "pid": pa.array([t.pid for t in trace.tasks], pa.int64()),
            "tid": pa.array([t.tid for t in trace.tasks], pa.int64()),
            "thread": pa.array([t.name for t in trace.tasks], pa.string()),
        }
        self._names: dict[int, tuple[str | None, str]] = {}
        self._params: dict[tuple[int, int], str | None] = {}

    def task_column(self, name: str, task: Any) -> pa.Array:
        """pid, tid or thread of every record's task."""
        return self._task_cols[name].take(pa.array(_np(task)))

    def names(self, pc: Any) -> tuple[pa.Array, pa.Array]:
        """(module, function) of every record's pc."""
        pcs, at = np.unique(_np(pc), return_inverse=True)
        got = [self._name(int(p)) for p in pcs]
        take = pa.array(at.reshape(-1))
        return (pa.array([g[0] for g in got], pa.string()).take(take),
                pa.array([g[1] for g in got], pa.string()).take(take))

    def _name(self, pc: int) -> tuple[str | None, str]:
        got = self._names.get(pc)
        if got is None:
            sym = self.trace.names.lookup(pc)
            got = self._names[pc] = (sym.module if sym else None, function_name(self.trace, pc))
        return got

    def params(self, pc: Any, kind: Any, arg_idx: Any) -> pa.Array:
        """The parameter name of every entry record (None for the others)."""
        pc_np, idx = _np(pc), _np(arg_idx).astype(np.int64)
        entry = _kind_codes(kind) == 0
        pcs, pc_at = np.unique(pc_np, return_inverse=True)
        key = np.where(entry, pc_at.reshape(-1).astype(np.int64) * 256 + idx, -1)
        keys, key_at = np.unique(key, return_inverse=True)
        names = [None if k < 0 else self._param(int(pcs[k // 256]), int(k % 256)) for k in keys.tolist()]
        return pa.array(names, pa.string()).take(pa.array(key_at.reshape(-1)))

    def _param(self, pc: int, arg_idx: int) -> str | None:
        key = (pc, arg_idx)
        if key not in self._params:
            self._params[key] = param_name(self.trace, pc, "entry", arg_idx)
        return self._params[key]

    def values(self, task: Any, kind: Any, arg_idx: Any, words: Any,
               want: Sequence[int] = render.ALL) -> list[pa.Array]:
        """class, number, rendered and value (``kcovdf.read.render.SCHEMA``) of every record,
        or those of them at the indexes ``want``."""
        return render.columns(_np(task).astype(np.int64), _kind_codes(kind), _np(arg_idx), words,
                              self.encodings, self.trace.types, want)


#: The resolved columns that are cheap, column by column: the task's, the names, the class
#: and number of the value (``rendered`` and ``value`` are the costly ones).
NAMED = pa.schema([SCHEMA.field(name) for name in
                   ("pid", "tid", "thread", "module", "function", "param", "class", "number")])


def named_columns(res: Resolver, records: pa.Table, class_number: Sequence[pa.Array] | None = None,
                  want: Collection[str] | None = None) -> list[pa.Array]:
    """The ``NAMED`` columns of a batch of records (``class_number``: its class and number
    columns when they were rendered already). With ``want``, the columns not in it are nulls
    (class and number cost a rendering of the values)."""
    want = set(NAMED.names if want is None else want)
    task, kinds, pc, arg_idx = (records.column(c).combine_chunks()
                                for c in ("task", "kind", "pc", "arg_idx"))
    out: dict[str, pa.Array] = {name: res.task_column(name, task)
                                for name in ("pid", "tid", "thread") if name in want}
    if want & {"module", "function"}:
        out["module"], out["function"] = res.names(pc)
    if "param" in want:
        out["param"] = res.params(pc, kinds, arg_idx)
    if want & {"class", "number"}:
        out["class"], out["number"] = class_number if class_number is not None else \
            res.values(task, kinds, arg_idx, records.column("values"), (0, 1))
    return [out[f.name] if f.name in out else pa.nulls(len(task), f.type) for f in NAMED]


def resolve(trace: Trace, records: pa.Table | None = None) -> pa.Table:
    """The records of ``trace`` (or the batch ``records`` of it) with names and values
    resolved (columns: ``SCHEMA``)."""
    rec = trace.records if records is None else records
    res = Resolver(trace)
    task, kinds, arg_idx = (rec.column(c).combine_chunks() for c in ("task", "kind", "arg_idx"))
    words = _as_list(rec.column("values"))
    # the four value columns in one pass over the templates
    cls, num, rendered, value = res.values(task, kinds, arg_idx, words)
    named = dict(zip(NAMED.names, named_columns(res, rec, (cls, num)), strict=True))
    columns = {name: rec.column(name).combine_chunks() for name in ("task", "seq", "pc", "arg_idx",
                                                                     "size", "ptr")}
    columns.update(named, kind=kind_names(kinds), values=words, rendered=rendered, value=value)
    return pa.table([columns[name] for name in SCHEMA.names], schema=SCHEMA)


def _np(column: Any) -> np.ndarray:
    if isinstance(column, np.ndarray):
        return column
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    return column.to_numpy(zero_copy_only=False)


def kind_names(kind: pa.Array) -> pa.Array:
    """A kind column as strings (the decoder's is dictionary-encoded)."""
    return kind.cast(pa.string()) if pa.types.is_dictionary(kind.type) else kind


def _kind_codes(kind: Any) -> np.ndarray:
    """Codes of ``KINDS`` for a kind column (kcovdf.read.calls), or the codes themselves."""
    return kind if isinstance(kind, np.ndarray) else calls.kind_codes(kind)


def _as_list(column: pa.ChunkedArray) -> pa.Array:
    """The value words as one list<uint64> array, built from the (list-view) chunks' words.

    pyarrow's cast from list_view ignores the sizes when the lists leave gaps, so the list
    is rebuilt from ``flatten()`` and the sizes (kcovdf.read.decode).
    """
    parts = []
    for chunk in column.chunks:
        if pa.types.is_list(chunk.type):
            parts.append(chunk)
            continue
        sizes = chunk.sizes.to_numpy().astype(np.int64)
        offsets = np.zeros(len(sizes) + 1, np.int64)
        np.cumsum(sizes, out=offsets[1:])
        if offsets[-1] > np.iinfo(np.int32).max:
            raise OverflowError("more than 2**31 value words in one task: read it in parts")
        parts.append(pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), chunk.flatten()))
    if not parts:
        return pa.array([], pa.list_(pa.uint64()))
    return parts[0] if len(parts) == 1 else pa.concat_arrays(parts)


def pairing(trace: Trace) -> tuple[pa.Table, pa.Array, pa.Array, pa.Table]:
    """(the decoder's records, the call and depth of every record, the calls table).

    The calls table is ``kcovdf.read.calls.SCHEMA`` with the function's display name
    inserted after ``pc``.
    """
    records = trace.records
    ids, depths, table = calls.pair_arrays(records, trace.tasks)
    return (records, pa.array(ids, pa.int64(), mask=ids < 0), pa.array(depths, pa.int32()),
            with_function(trace, table))


class Pairing:
    """The pairing of a trace read in batches (``kcovdf.read.decode.batches``): its tasks are
    declared as they appear, its records fed in order to one ``kcovdf.read.calls`` pairer."""

    def __init__(self) -> None:
        self.pairer = calls.pairer()
        self._declared = 0

    def feed(self, trace: Trace, records: pa.Table) -> tuple[np.ndarray, np.ndarray]:
        """(call index, -1 for none; depth) of every record of one more batch of ``trace``."""
        for task in trace.tasks[self._declared:]:
            self.pairer.task(task.index, task.format, task.pid)
        self._declared = len(trace.tasks)
        return calls.feed_table(self.pairer, records)


class Resolved:
    """Resolved records one batch at a time, paired as they come: ``RECORD_COLUMNS`` per batch.

    The pairer forgets each call once it finishes: ``finished`` (when given) receives them,
    with function names, batch by batch; ``calls()`` at the end gives those still open. Memory
    holds one batch and the open calls.
    """

    def __init__(self, batches: Iterator[tuple[Trace, pa.Table]],
                 finished: Callable[[pa.Table], None] | None = None) -> None:
        self._batches = batches
        self._pairing = Pairing()
        self._finished = finished
        self.trace: Trace | None = None

    def __iter__(self) -> Iterator[pa.Table]:
        for t, table in self._batches:
            self.trace = t
            ids, depths = self._pairing.feed(t, table)
            drained = self._pairing.pairer.drain_calls()
            if self._finished is not None and drained.num_rows:
                self._finished(with_function(t, drained))
            records = resolve(t, table)
            records = records.append_column(PAIRING.field("call"), pa.array(ids, pa.int64(), mask=ids < 0))
            yield records.append_column(PAIRING.field("depth"), pa.array(depths, pa.int32()))

    def calls(self) -> pa.Table:
        """The calls still open once every batch is read (with function names)."""
        assert self.trace is not None
        return with_function(self.trace, self._pairing.pairer.calls())


def with_function(trace: Trace, table: pa.Table) -> pa.Table:
    """A calls table (``kcovdf.read.calls.SCHEMA``) with the function's display name after pc."""
    _, names = Resolver(trace).names(table.column("pc"))
    return table.add_column(table.schema.get_field_index("pc") + 1, "function", names)


def records_and_calls(trace: Trace) -> tuple[pa.Table, pa.Table]:
    """(the resolved records with their call and depth: ``RECORD_COLUMNS``, the calls table)."""
    _, ids, depths, table = pairing(trace)
    records = resolve(trace)
    records = records.append_column(PAIRING.field("call"), ids)
    return records.append_column(PAIRING.field("depth"), depths), table


def json_record(row: dict[str, Any]) -> dict[str, Any]:
    """One row of the resolved records as JSON: the columns of ``RECORD_COLUMNS`` in order,
    64-bit words (pc, ptr, values) as hex strings, ``value`` as a nested object."""
    out = {name: row[name] for name in RECORD_COLUMNS}
    out["pc"], out["ptr"] = f"{row['pc']:#x}", f"{row['ptr']:#x}"
    out["values"] = [f"{w:#x}" for w in row["values"]]
    out["value"] = json.loads(row["value"]) if isinstance(row["value"], str) else row["value"]
    return out


def tasks_table(trace: Trace) -> pa.Table:
    """One row per task: its index (the ``task`` column of records), pid, tid, name, source,
    value encoding, words, drops and record format (1 or 2: how its calls are paired)."""
    return pa.table({
        "task": pa.array([t.index for t in trace.tasks], pa.int32()),
        "pid": pa.array([t.pid for t in trace.tasks], pa.int64()),
        "tid": pa.array([t.tid for t in trace.tasks], pa.int64()),
        "name": pa.array([t.name for t in trace.tasks], pa.string()),
        "source": pa.array([str(t.source) for t in trace.tasks], pa.string()),
        "encoding": pa.array([t.encoding for t in trace.tasks], pa.string()),
        "words": pa.array([t.words for t in trace.tasks], pa.int64()),
        "drops": pa.array([t.drops for t in trace.tasks], pa.int64()),
        "format": pa.array([t.format for t in trace.tasks], pa.int32()),
    })


def types_table(trace: Trace) -> pa.Table:
    """The type table: shape or class id, class name, recorded field names; for a named value
    (a class, function, method or module) what it is and its qualified name."""
    entries = list(trace.types.values())
    return pa.table({
        "id": pa.array([e.id for e in entries], pa.uint64()),
        "class": pa.array([e.cls for e in entries], pa.string()),
        "fields": pa.array([list(e.fields) for e in entries], pa.list_(pa.string())),
        "named": pa.array([e.named or None for e in entries], pa.string()),
        "name": pa.array([e.name or None for e in entries], pa.string()),
    })


def symbols_table(trace: Trace) -> pa.Table:
    """The symbols naming the trace: pc, module, qualname, function (display name), file, line, parameters.

    The trace's own symbols, then a row for each pc of its records that only the kernel
    symbols name (qualname is then the kernel symbol, file empty, line 0).
    """
    syms = list(trace.symbols.values())
    pcs = set(trace.records.column("pc").to_pylist()) - trace.symbols.keys()
    syms += sorted(s for s in map(trace.names.lookup, pcs) if s is not None)
    return pa.table({
        "pc": pa.array([s.pc for s in syms], pa.uint64()),
        "module": pa.array([s.module for s in syms], pa.string()),
        "qualname": pa.array([s.qualname for s in syms], pa.string()),
        "function": pa.array([s.display for s in syms], pa.string()),
        "file": pa.array([s.file for s in syms], pa.string()),
        "line": pa.array([s.line for s in syms], pa.int32()),
        "params": pa.array([[p[0] for p in s.params] for s in syms], pa.list_(pa.string())),
        "param_kinds": pa.array([[p[1] for p in s.params] for s in syms], pa.list_(pa.string())),
    })


#: The small tables of a trace, by name: what the SQL views and the calls index hold beside
#: the records and calls.
SMALL_TABLES = ("tasks", "symbols", "types")


def small_tables(trace: Trace) -> dict[str, pa.Table]:
    """The tasks, symbols and types tables of a trace (``SMALL_TABLES``)."""
    return {"tasks": tasks_table(trace), "symbols": symbols_table(trace), "types": types_table(trace)}


def stats(trace: Trace) -> dict[str, Any]:
    """Trace-wide counters and messages: words, drops, skipped words, what is missing, notes."""
    return {"words": trace.words, "drops": trace.drops,
            "skipped_words": sum(s.count for s in trace.skipped),
            "missing": list(trace.missing), "notes": list(trace.notes)}
