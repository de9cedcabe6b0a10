"""Observations: one value per call and variable, the input of inference and checking.

A call's variables are its parameters by name (their values at entry: a record holds no
exit state of an argument), ``ret`` (the return value) and ``exc`` (the raised exception),
each decomposed: ``x.field`` for the named fields of an object, ``len(x)`` for the recorded
length of a string, bytes or container. A value is three columns: ``num`` (an int, float or
bool as a float; NaN when it is none of these), ``text`` (a string recorded whole) and
``cls`` (its class; None when the call has no such variable).

DuckDB extracts them from the records' JSON values in one statement, so nothing here walks
records one by one in Python. (json_extract functions, not ``->>``: its precedence differs
between DuckDB 1.x and 2.x.)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from kcovdf.read import decode
from kcovdf.tools.sql import Database

#: Forms whose ``length`` is a ``len()``.
_SIZED = ("str", "bytes", "seq", "map", "set")

_OBSERVATIONS = f"""
CREATE TEMP TABLE _obs AS
WITH r AS (
    SELECT call, class AS cls, number AS num,
           CASE kind WHEN 'entry' THEN ltrim(param, '*') WHEN 'return' THEN 'ret' ELSE 'exc' END AS var,
           CAST(value AS JSON) AS v
    FROM records
    WHERE call IS NOT NULL
      AND (kind IN ('return', 'exception') OR (kind = 'entry' AND param IS NOT NULL))),
parts AS (
    SELECT call, var, cls, num, v, json_extract_string(v, '$.form') AS form,
           json_array_length(json_extract(v, '$.words')) AS nwords
    FROM r),
top AS (
    SELECT call, var, form, v,
           coalesce(cls, CASE WHEN form = 'raw' THEN
                               CASE WHEN nwords = 1 THEN 'u64' ELSE 'struct' END END) AS cls,
           -- a kernel record's one raw word is its value (signed, as the kernel's u64 casts)
           coalesce(num, CASE WHEN form = 'raw' AND nwords = 1
                              THEN _signed(json_extract_string(v, '$.words[0]')) END) AS num,
           CASE WHEN form = 'str' AND json_extract_string(v, '$.truncated') = 'false'
                THEN json_extract_string(v, '$.value') END AS text,
           TRY_CAST(json_extract_string(v, '$.length') AS DOUBLE) AS len, nwords
    FROM parts),
fields AS (
    SELECT call, var || '.' || json_extract_string(f, '$[0]') AS var, json_extract(f, '$[1]') AS fv
    FROM (SELECT call, var, unnest(CAST(json_extract(v, '$.fields') AS JSON[])) AS f
          FROM top WHERE form = 'object')),
-- a kernel struct: one raw word per field, named field0, field1, ...
raw_fields AS (
    SELECT call, var || '.field' || (i - 1) AS var, _signed(w) AS num
    FROM (SELECT call, var, unnest(CAST(json_extract(v, '$.words') AS VARCHAR[])) AS w,
                 generate_subscripts(CAST(json_extract(v, '$.words') AS VARCHAR[]), 1) AS i
          FROM top WHERE form = 'raw' AND nwords > 1))
SELECT call, var, cls, num, text FROM top
UNION ALL
SELECT call, 'len(' || var || ')', 'builtins.int', len, NULL FROM top
WHERE len IS NOT NULL AND form IN {_SIZED}
UNION ALL
SELECT call, var,
       CASE json_type(fv) WHEN 'BIGINT' THEN 'builtins.int' WHEN 'UBIGINT' THEN 'builtins.int'
            WHEN 'DOUBLE' THEN 'builtins.float' WHEN 'VARCHAR' THEN 'builtins.str'
            WHEN 'BOOLEAN' THEN 'builtins.bool' WHEN 'NULL' THEN 'builtins.NoneType'
            ELSE coalesce(json_extract_string(fv, '$.class'),
                          CASE WHEN json_extract_string(fv, '$.float') IS NOT NULL THEN 'builtins.float'
                               WHEN json_extract_string(fv, '$.str') IS NOT NULL THEN 'builtins.str'
                               ELSE 'object' END) END,
       CASE json_type(fv) WHEN 'BOOLEAN' THEN CASE WHEN fv::VARCHAR = 'true' THEN 1.0 ELSE 0.0 END
            WHEN 'BIGINT' THEN TRY_CAST(fv::VARCHAR AS DOUBLE)
            WHEN 'UBIGINT' THEN TRY_CAST(fv::VARCHAR AS DOUBLE)
            WHEN 'DOUBLE' THEN TRY_CAST(fv::VARCHAR AS DOUBLE) END,
       CASE json_type(fv) WHEN 'VARCHAR' THEN json_extract_string(fv, '$') END
FROM fields
UNION ALL
SELECT call, var, CASE WHEN num IS NULL THEN 'FAULT' ELSE 'u64' END, num, NULL FROM raw_fields
"""

#: A kernel word (hex text, or FAULT) as a signed number; NULL for FAULT.
_SIGNED = """
CREATE TEMP MACRO _signed(w) AS CASE WHEN TRY_CAST(w AS UBIGINT) IS NULL THEN NULL
    WHEN TRY_CAST(w AS UBIGINT) >= 9223372036854775808
    THEN CAST(TRY_CAST(w AS UBIGINT) AS DOUBLE) - 18446744073709551616.0
    ELSE CAST(TRY_CAST(w AS UBIGINT) AS DOUBLE) END
"""

#: One row per call: its function (``module:qualname``), its ordinal among that function's
#: calls (tasks in trace order, then call order), its task, entry seq, parent and exit.
_CALLS = """
CREATE TEMP TABLE _fn AS
WITH names AS (SELECT pc, any_value(module) AS module, any_value(qualname) AS qualname
               FROM symbols GROUP BY pc)
SELECT c.call, c.task, c.entry_seq, c.parent, c.exit, c.function AS display,
       CASE WHEN n.qualname IS NOT NULL AND coalesce(n.module, '') <> ''
            THEN n.module || ':' || n.qualname ELSE c.function END AS function,
       row_number() OVER (PARTITION BY c.pc ORDER BY c.task, c.call) - 1 AS ordinal
FROM calls c LEFT JOIN names n ON n.pc = c.pc
"""


#: What the two statements above read, as one statement: the database fills only these
#: columns (kcovdf.tools.sql.Database plans it).
_READS = """
SELECT r.call, r.class, r.number, r.kind, r.param, r.arg_idx, r.value,
       c.call, c.task, c.entry_seq, c.parent, c.exit, c.function, c.pc
FROM records r, calls c
"""


@dataclass
class Variable:
    """One variable of one function, aligned with its calls (``Function.calls``)."""

    num: np.ndarray   #: float64, NaN where not a number or not observed
    text: np.ndarray  #: object: the string, or None
    cls: np.ndarray   #: object: the class name, None where the call has no such variable

    @classmethod
    def empty(cls, n: int) -> Variable:
        """A variable none of ``n`` calls has."""
        return cls(np.full(n, np.nan), np.full(n, None, object), np.full(n, None, object))

    @property
    def seen(self) -> np.ndarray:
        """Where the call has this variable."""
        return self.cls != None  # noqa: E711 - elementwise over an object array


@dataclass
class Function:
    """The calls of one function and their variables."""

    name: str                 #: ``module:qualname``
    calls: np.ndarray         #: int64 call indexes
    ordinal: np.ndarray       #: int64: the call's index among this function's calls
    exit: np.ndarray          #: object: 'return', 'exception' or None
    variables: dict[str, Variable] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.calls)


@dataclass
class Observations:
    """The observations of one or more traces: per function, and the calls table to name
    callers and positions."""

    functions: dict[str, Function]
    calls: pa.Table           #: call, task, entry_seq, parent, exit, display, function, ordinal
    drops: int                #: records the traces lost (their check proves less)
    files: dict[str, tuple[str, int]] = field(default_factory=dict)  #: function -> (file, line)

    def __iter__(self) -> Iterator[Function]:
        return iter(self.functions.values())


def observe(trace: str, include: tuple[str, ...] = (), kernel: Any = None) -> Observations:
    """The observations of the trace at ``trace`` (a directory, .kdf or kernel dump).

    ``include``: keep the functions of these modules (and their submodules) only."""
    with Database(decode.batches(trace, kernel=kernel), _READS) as db:
        con = db.con
        con.execute(_CALLS)
        con.execute(_SIGNED)
        con.execute(_OBSERVATIONS)
        where = ""
        if include:  # a module and its submodules: "mod:qualname", "mod.sub:qualname"
            con.execute("CREATE TEMP TABLE _include AS SELECT unnest(?::VARCHAR[]) AS prefix",
                        [[f"{m}{sep}" for m in include for sep in (":", ".")]])
            where = "WHERE EXISTS (SELECT 1 FROM _include i WHERE starts_with(f.function, i.prefix))"
        calls = con.sql(f"SELECT * FROM _fn f {where} ORDER BY f.function, f.ordinal").to_arrow_table()
        obs = con.sql(f"""SELECT f.function, o.call, o.var, o.cls, o.num, o.text FROM _obs o
                          JOIN _fn f ON f.call = o.call {where}
                          ORDER BY f.function, o.var, o.call""").to_arrow_table()
        drops = con.sql("SELECT coalesce(sum(drops), 0) FROM tasks").fetchall()[0][0]
        files = {row[0]: (row[1], row[2]) for row in con.sql(
            "SELECT module || ':' || qualname, file, line FROM symbols WHERE coalesce(module, '') <> ''"
        ).fetchall()}
    return Observations(_functions(calls, obs), calls, int(drops), files)


def _groups(keys: np.ndarray) -> Iterator[tuple[Any, int, int]]:
    """(key, start, end) of each run of equal keys in a sorted object array."""
    if not len(keys):
        return
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    ends = np.r_[starts[1:], len(keys)]
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        yield keys[s], s, e


def _functions(calls: pa.Table, obs: pa.Table) -> dict[str, Function]:
    fn_names = calls.column("function").to_numpy(zero_copy_only=False)
    call_ids = calls.column("call").to_numpy()
    ordinals = calls.column("ordinal").to_numpy()
    exits = calls.column("exit").to_numpy(zero_copy_only=False)
    out: dict[str, Function] = {}
    for name, s, e in _groups(fn_names):
        out[name] = Function(name, call_ids[s:e], ordinals[s:e].astype(np.int64), exits[s:e])
    o_fn = obs.column("function").to_numpy(zero_copy_only=False)
    o_call = obs.column("call").to_numpy()
    o_var = obs.column("var").to_numpy(zero_copy_only=False)
    o_cls = obs.column("cls").to_numpy(zero_copy_only=False)
    o_num = obs.column("num").to_numpy(zero_copy_only=False).astype(np.float64)
    o_text = obs.column("text").to_numpy(zero_copy_only=False)
    for name, s, e in _groups(o_fn):
        fn = out[name]
        order = np.argsort(fn.calls, kind="stable")
        sorted_calls = fn.calls[order]
        var = o_var[s:e]
        for vname, vs, ve in _groups(var):
            rows = np.arange(s + vs, s + ve)
            at = order[np.searchsorted(sorted_calls, o_call[rows])]
            n = len(fn)
            v = Variable.empty(n)
            v.num[at], v.text[at], v.cls[at] = o_num[rows], o_text[rows], o_cls[rows]
            fn.variables[str(vname)] = v
    return out
