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
from typing import Any

import numpy as np
import pyarrow as pa

from kcovdf import abi
from kcovdf.read import calls, values
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


def class_name(value: dict[str, Any]) -> str | None:
    """The class named by a structured value (``kcovdf.read.values.structured``)."""
    return value.get("class")


def number(value: dict[str, Any]) -> float | None:
    """The numeric value of an int, float or bool scalar, else ``None`` (for histograms and SQL)."""
    if value.get("form") != "scalar":
        return None
    v = value.get("value")
    if isinstance(v, dict) and "float" in v:
        return float(v["float"])  # nan and infinities, which JSON cannot hold as numbers
    return float(v) if isinstance(v, (int, float)) else None


def resolve(trace: Trace) -> pa.Table:
    """The records of ``trace`` with names and values resolved (columns: ``SCHEMA``).

    Column by column: the task and name columns are looked up once per task, pc or
    (pc, parameter) and spread with ``take``; a value is read and rendered once per
    distinct (task encoding, record kind, value words), as loops and repeated arguments
    repeat them.
    """
    rec = trace.records
    n = rec.num_rows
    tasks = trace.tasks
    task = rec.column("task").combine_chunks()
    task_np = task.to_numpy(zero_copy_only=False).astype(np.int64) if n else np.zeros(0, np.int64)

    def per_task(values: list[Any], kind: pa.DataType) -> pa.Array:
        return pa.array(values, kind).take(pa.array(task_np)) if n else pa.array([], kind)

    kinds = rec.column("kind").combine_chunks()
    kind_text = kinds.cast(pa.string()) if pa.types.is_dictionary(kinds.type) else kinds
    pc = rec.column("pc").combine_chunks()
    pcs, pc_at = np.unique(pc.to_numpy(zero_copy_only=False), return_inverse=True) if n else ([], [])
    syms = [trace.names.lookup(int(p)) for p in pcs]
    module = pa.array([s.module if s else None for s in syms], pa.string()).take(pa.array(pc_at)) \
        if n else pa.array([], pa.string())
    function = pa.array([function_name(trace, int(p)) for p in pcs], pa.string()).take(pa.array(pc_at)) \
        if n else pa.array([], pa.string())
    arg_idx = rec.column("arg_idx").combine_chunks()
    params = _params(trace, pcs, pc_at, kind_text, arg_idx) if n else pa.array([], pa.string())
    words = rec.column("values").to_pylist()
    value_cols = _values(trace, task_np.tolist(), kind_text.to_pylist(), arg_idx.to_pylist(), words)
    return pa.table({
        "task": task, "pid": per_task([t.pid for t in tasks], pa.int64()),
        "tid": per_task([t.tid for t in tasks], pa.int64()),
        "thread": per_task([t.name for t in tasks], pa.string()),
        "seq": rec.column("seq").combine_chunks(), "kind": kind_text, "pc": pc, "module": module,
        "function": function, "arg_idx": arg_idx, "param": params,
        "size": rec.column("size").combine_chunks(), "ptr": rec.column("ptr").combine_chunks(),
        "values": pa.array(words, pa.list_(pa.uint64())), **value_cols,
    }, schema=SCHEMA)


def _params(trace: Trace, pcs: Any, pc_at: Any, kinds: pa.Array, arg_idx: pa.Array) -> pa.Array:
    """The parameter name of every entry record (None for the others), once per (pc, position)."""
    idx = arg_idx.to_numpy(zero_copy_only=False).astype(np.int64)
    key = np.asarray(pc_at, dtype=np.int64) * 256 + idx
    entry = np.asarray(kinds.to_numpy(zero_copy_only=False) == "entry")
    keys, key_at = np.unique(np.where(entry, key, -1), return_inverse=True)
    names = [None if k < 0 else param_name(trace, int(pcs[k // 256]), "entry", int(k % 256)) for k in keys]
    return pa.array(names, pa.string()).take(pa.array(key_at))


_SEEN_MAX = 1 << 16


def _values(trace: Trace, task: list[int], kinds: list[str], arg_idx: list[int],
            words: list[list[int]]) -> dict[str, pa.Array]:
    """class, number, rendered and value of every record, each distinct record value read once."""
    encodings = [t.encoding for t in trace.tasks]
    seen: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    cols: tuple[list[Any], ...] = ([], [], [], [])
    for t, k, a, w in zip(task, kinds, arg_idx, words, strict=True):
        key = (encodings[t], k, a, *w)
        got = seen.get(key)
        if got is None:
            if len(seen) >= _SEEN_MAX:
                seen.clear()  # bounded: a trace of distinct values must not hold them all twice
            value = values.of_record(k, a, w, trace.types, encodings[t])
            got = seen[key] = (class_name(value), number(value), values.text(value), json.dumps(value))
        for col, v in zip(cols, got, strict=True):
            col.append(v)
    return {name: pa.array(col, SCHEMA.field(name).type)
            for name, col in zip(("class", "number", "rendered", "value"), cols, strict=True)}


def records_and_calls(trace: Trace) -> tuple[pa.Table, pa.Table]:
    """(the resolved records with their call and depth: ``RECORD_COLUMNS``, the calls table).

    The calls table is ``kcovdf.read.calls.SCHEMA`` with the function's display name
    inserted after ``pc``.
    """
    records = resolve(trace)
    ids, depths, found = calls.pair_table(records, trace.tasks)
    records = records.append_column(PAIRING.field("call"), pa.array(ids, pa.int64()))
    records = records.append_column(PAIRING.field("depth"), pa.array(depths, pa.int32()))
    table = calls.calls_table(found)
    names = [function_name(trace, pc) for pc in table.column("pc").to_pylist()]
    table = table.add_column(table.schema.get_field_index("pc") + 1, "function",
                             pa.array(names, pa.string()))
    return records, table


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


def stats(trace: Trace) -> dict[str, Any]:
    """Trace-wide counters and messages: words, drops, skipped words, what is missing, notes."""
    return {"words": trace.words, "drops": trace.drops,
            "skipped_words": sum(s.count for s in trace.skipped),
            "missing": list(trace.missing), "notes": list(trace.notes)}
