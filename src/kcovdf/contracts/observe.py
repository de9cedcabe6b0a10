"""Observations: one value per call and variable, the input of inference and checking.

A call's variables are its parameters by name (their values at entry: a record holds no
exit state of an argument), ``ret`` (the return value) and ``exc`` (the raised exception),
each decomposed: ``x.field`` for the named fields of an object, ``len(x)`` for the recorded
length of a string, bytes or container. A value is three columns: ``num`` (an int, float or
bool as a float; NaN when it is none of these), ``text`` (a string recorded whole) and
``cls`` (its class; None when the call has no such variable). A kernel record's words are
unsigned: one word is ``u64`` (signed, as the kernel's casts), several are a ``struct``
whose fields are ``x.field0``, ``x.field1``, … (``FAULT`` where the kernel could not read).

The records stream by, batch by batch, through the call pairer; their value words are read
column-wise. Records whose values share a shape id, layout word and word count share the
variables they give and where each one's num, text and class come from (a *plan*), so the
words are gathered by numpy for the whole group. The values outside every plan (a long
non-ASCII str, a str field continued in CHUNK words, a malformed value) are read one
distinct value at a time by ``_value_rows``, the reference that every plan is checked
against on its group's first record.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kcovdf import abi
from kcovdf.abi import Form, Kind
from kcovdf.read import calls as calls_mod
from kcovdf.read import decode, render, values
from kcovdf.read.decode import Trace
from kcovdf.read.resolve import Pairing, function_name, param_name
from kcovdf.runtime.encode import TypeEntry

#: Forms whose ``length`` is a ``len()``.
_SIZED = ("str", "bytes", "seq", "map")
_INT, _FLOAT, _STR, _BOOL, _NONE = ("builtins.int", "builtins.float", "builtins.str",
                                    "builtins.bool", "builtins.NoneType")
_ENTRY, _RETURN, _EXCEPTION = (decode.KINDS.index(k) for k in ("entry", "return", "exception"))
_U64 = np.uint64
_MEMO_MAX = 1 << 16
#: The calls columns an observation keeps.
_CALL_COLUMNS = ("call", "task", "pc", "parent", "entry_seq", "exit")


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
    pairing = Pairing()
    rows = _Rows()
    finished: list[pa.Table] = []
    last: Trace | None = None
    for t, table in decode.batches(trace, kernel=kernel):
        last = t
        ids, _ = pairing.feed(t, table)
        drained = pairing.pairer.drain_calls()
        if drained.num_rows:
            finished.append(drained.select(_CALL_COLUMNS))
        rows.add(t, table, ids)
    finished.append(pairing.pairer.calls().select(_CALL_COLUMNS))
    if last is None:
        return Observations({}, _calls_table(None, finished[0], include)[0], 0)
    calls, fn_names = _calls_table(last, pa.concat_tables(finished), include)
    drops = sum(task.drops or 0 for task in last.tasks)  # None: a kernel dump does not say
    files = {f"{s.module}:{s.qualname}": (s.file, s.line) for s in last.symbols.values() if s.module}
    return Observations(_functions(calls, fn_names, rows), calls, int(drops), files)


class _Entry(NamedTuple):
    """One variable of a plan: its name around the record's own (``head`` + var + ``tail``),
    its class, and where its num, text and class come from (``source``; ``at``: the index of
    its word in the record's value words)."""

    head: str
    tail: str
    cls: str | None
    source: str          # const, int, bool, float, field_float, str7, text, obj, len, kword
    at: int = 0


def _value_rows(value: Mapping[str, Any]) -> list[tuple[str, str, str | None, float | None, str | None]]:
    """The variables of one structured value (``kcovdf.read.values``), as (head, tail, cls,
    num, text): the reference every plan is checked against."""
    form = value.get("form")
    cls = render.class_name(value)
    num = render.number(value)
    words = value.get("words") if form == "raw" else None
    if form == "raw" and words is not None:
        cls = cls or ("u64" if len(words) == 1 else "struct")
        if len(words) == 1:
            num = _signed_text(words[0])
    text = value.get("value") if form == "str" and value.get("truncated") is False else None
    out: list[tuple[str, str, str | None, float | None, str | None]] = [("", "", cls, num, text)]
    length = value.get("length")
    if form in _SIZED and isinstance(length, (int, float)) and not isinstance(length, bool):
        out.append(("len(", ")", _INT, float(length), None))
    if form == "object":
        for name, fv in value.get("fields", ()):
            if name is not None:
                out.append(("", f".{name}", *_field(fv)))
    if words is not None and len(words) > 1:
        for i, w in enumerate(words):
            n = _signed_text(w)
            out.append(("", f".field{i}", "FAULT" if n is None else "u64", n, None))
    return out


def _field(fv: Any) -> tuple[str, float | None, str | None]:
    """(cls, num, text) of one object field's JSON value."""
    if isinstance(fv, bool):
        return _BOOL, float(fv), None
    if isinstance(fv, int):
        return _INT, float(fv), None
    if isinstance(fv, float):
        return _FLOAT, fv, None
    if isinstance(fv, str):
        return _STR, None, fv
    if fv is None:
        return _NONE, None, None
    cls = fv.get("class") if isinstance(fv, dict) else None
    if cls is None:
        cls = _FLOAT if "float" in fv else _STR if "str" in fv else "object"
    return cls, None, None


def _signed_text(word: str) -> float | None:
    """A kernel word (hex text, or FAULT) as a signed number; None for FAULT."""
    if word == "FAULT":
        return None
    w = int(word, 16)
    return float(w - (1 << 64) if w >> 63 else w)


def _plan(form: int, kinds: list[int], entry: TypeEntry | None) -> list[_Entry] | None:
    """The plan of the kcovdf values of one shape and layout (their field kinds given), or
    None when they are read one by one."""
    cls = entry.cls if entry else None
    top = _Entry("", "", cls, "const")
    size = _Entry("len(", ")", _INT, "len", 2)
    if form == Form.SCALAR:
        if len(kinds) != 1:
            return None
        k = kinds[0]
        if k in (Kind.INT, Kind.BOOL, Kind.FLOAT):
            return [top._replace(source={Kind.INT: "int", Kind.BOOL: "bool", Kind.FLOAT: "float"}[k], at=2)]
        return [top] if k in (Kind.NONE, Kind.OBJ, Kind.INT_TRUNC, Kind.FAULT, Kind.REDACTED,
                              Kind.UNSET, Kind.LEN) else None
    if form == Form.STR:
        ok = kinds[:2] == [Kind.LEN, Kind.LEN] and all(k == Kind.CHUNK for k in kinds[2:])
        return [top._replace(source="text"), size] if ok else None
    if form == Form.BYTES:
        ok = kinds[:1] == [Kind.LEN] and all(k == Kind.CHUNK for k in kinds[1:])
        return [top, size] if ok else None
    if form in (Form.SEQ, Form.MAP):
        return [top, size] if kinds[:1] == [Kind.LEN] else None
    if form == Form.EXCEPTION:
        return [top] if kinds[:1] == [Kind.LEN] else None
    if form == Form.BIGINT:
        return [top] if kinds == [Kind.INT_TRUNC, Kind.INT] else None
    if form == Form.REDACTED or (form == Form.NAMED and not kinds):
        return [top]
    if form != Form.OBJECT or Kind.CHUNK in kinds:
        return None
    out = [top]
    names = entry.fields if entry and len(entry.fields) == len(kinds) else ()
    for j, (name, k) in enumerate(zip(names, kinds, strict=False)):
        tail, at = f".{name}", 2 + j
        if k == Kind.INT:
            out.append(_Entry("", tail, _INT, "int", at))
        elif k == Kind.BOOL:
            out.append(_Entry("", tail, _BOOL, "bool", at))
        elif k == Kind.FLOAT:
            out.append(_Entry("", tail, _FLOAT, "field_float", at))
        elif k == Kind.NONE:
            out.append(_Entry("", tail, _NONE, "const"))
        elif k == Kind.STR7:
            out.append(_Entry("", tail, _STR, "str7", at))
        elif k == Kind.OBJ:
            out.append(_Entry("", tail, None, "obj", at))
        else:  # a field JSON gives as a dict without a class: a big int, FAULT, bytes, ...
            out.append(_Entry("", tail, "object", "const"))
    return out


def _kernel_plan(nwords: int) -> list[_Entry]:
    """The plan of kernel records of ``nwords`` raw words."""
    if nwords == 1:
        return [_Entry("", "", "u64", "kword", 0)]
    return [_Entry("", "", "struct", "const")] + \
        [_Entry("", f".field{i}", "u64", "kword", i) for i in range(nwords)]


class _Rows:
    """The observation rows of a trace, added batch by batch: call, variable (a code of
    ``names``), class (a code of ``classes``), num and text."""

    def __init__(self) -> None:
        self.names: dict[str, int] = {}
        self.classes: dict[str | None, int] = {None: 0}
        self.parts: list[tuple[np.ndarray, ...]] = []
        self._base: dict[tuple[int, int, int], int] = {}  # (pc, kind, arg_idx) -> name code
        self._full: dict[tuple[int, str, str], int] = {}  # (base code, head, tail) -> code
        self._memo: dict[tuple[Any, ...], list[tuple[Any, ...]]] = {}
        self._base_names: list[str] = []
        self.rejected = 0  #: groups whose plan disagreed with the reference on their first record

    def add(self, trace: Trace, table: pa.Table, ids: np.ndarray) -> None:
        """The observations of one batch of records, ``ids`` their calls (-1: none)."""
        kind = calls_mod.kind_codes(table.column("kind"))
        arg_idx = table.column("arg_idx").to_numpy()
        keep = (ids >= 0) & ((kind == _RETURN) | (kind == _EXCEPTION)
                             | ((kind == _ENTRY) & (arg_idx != abi.ARG_NONE)))
        rows = np.flatnonzero(keep)
        if not len(rows):
            return
        pc = table.column("pc").to_numpy()[rows]
        base = self._bases(trace, pc, kind[rows], arg_idx[rows])
        call = ids[rows]
        off, size, child = render.word_lists(table.column("values"))
        off, size = off[rows], size[rows]
        kernel = np.array([t.encoding == "kernel" for t in trace.tasks], bool)
        kernel = kernel[table.column("task").to_numpy()[rows]]
        rest = np.ones(len(rows), bool)
        for members, plan, encoding in self._groups(trace, off, size, child, kernel):
            fast = self._apply(plan, encoding, members, call, base, off, size, child, trace.types)
            rest[members[fast]] = False
        for i in np.flatnonzero(rest).tolist():
            words = child[off[i]:off[i] + size[i]].tolist()
            self._slow(int(call[i]), int(base[i]), words, "kernel" if kernel[i] else "kcovdf", trace.types)

    def _bases(self, trace: Trace, pc: np.ndarray, kind: np.ndarray, arg_idx: np.ndarray) -> np.ndarray:
        """The code of each record's own variable: its parameter (``*`` stripped), ret or exc."""
        pcs = pa.array(pc).dictionary_encode()  # hashed, not sorted: one batch is large
        side = np.where(kind == _ENTRY, arg_idx.astype(np.int64), 256 + kind.astype(np.int64))
        keys = pa.array(pcs.indices.to_numpy().astype(np.int64) * 512 + side).dictionary_encode()
        pc_of = pcs.dictionary.to_numpy()
        codes = []
        for k in keys.dictionary.to_numpy().tolist():
            p, i = int(pc_of[k // 512]), k % 512
            got = self._base.get((p, i))
            if got is None:
                if i < 256:
                    name = (param_name(trace, p, "entry", i) or f"arg{i}").lstrip("*")
                else:
                    name = "ret" if i - 256 == _RETURN else "exc"
                got = self._base[(p, i)] = self._base_code(name)
            codes.append(got)
        return np.array(codes, np.int64)[keys.indices.to_numpy()]

    def _base_code(self, name: str) -> int:
        self._base_names.append(name)
        return len(self._base_names) - 1

    def _code(self, base: int, head: str, tail: str) -> int:
        key = (base, head, tail)
        got = self._full.get(key)
        if got is None:
            name = f"{head}{self._base_names[base]}{tail}"
            got = self._full[key] = self.names.setdefault(name, len(self.names))
        return got

    def _class(self, name: str | None) -> int:
        return self.classes.setdefault(name, len(self.classes))

    def _groups(self, trace: Trace, off: np.ndarray, size: np.ndarray, child: np.ndarray,
                kernel: np.ndarray) -> Iterator[tuple[np.ndarray, list[_Entry], str]]:
        """(members, plan, encoding) of each group of records with one plan."""
        for n in np.unique(size[kernel]).tolist() if kernel.any() else ():
            if n >= 1:
                yield np.flatnonzero(kernel & (size == n)), _kernel_plan(n), "kernel"
        ours = np.flatnonzero(~kernel & (size >= 2) & (size <= abi.MAX_VALUES))
        if not len(ours):
            return
        shape, lay, nw = child[off[ours]], child[off[ours] + 1], size[ours]
        with np.errstate(over="ignore"):
            key = shape ^ (lay * _U64(0x9E3779B97F4A7C15)) ^ (nw.astype(_U64) * _U64(0xC2B2AE3D27D4EB4F))
        codes = pa.array(key).dictionary_encode().indices.to_numpy()
        order = np.argsort(codes, kind="stable")
        for group in np.split(order, np.flatnonzero(np.diff(codes[order])) + 1):
            first = group[0]
            # a hash collision only loses speed: the others are read one by one
            group = group[(shape[group] == shape[first]) & (lay[group] == lay[first])
                          & (nw[group] == nw[first])]
            _, form, kinds = abi.split_layout(int(lay[first]), int(nw[first]) - 2)
            plan = _plan(form, kinds, trace.types.get(int(shape[first])))
            if plan is not None:
                yield ours[group], plan, "kcovdf"

    def _apply(self, plan: list[_Entry], encoding: str, members: np.ndarray, call: np.ndarray,
               base: np.ndarray, off: np.ndarray, size: np.ndarray, child: np.ndarray,
               types: Mapping[int, TypeEntry]) -> np.ndarray:
        """Add the rows of the members that the plan reads; a mask of them (the others,
        strs the plan cannot cut, are read one by one)."""
        start = off[members]
        ok = np.ones(len(members), bool)
        cols: list[tuple[_Entry, np.ndarray, np.ndarray, np.ndarray]] = []
        for e in plan:
            cls = np.full(len(members), self._class(e.cls), np.int64)
            num = np.full(len(members), np.nan)
            text = np.full(len(members), None, object)
            w = child[start + e.at] if e.source not in ("const", "text") else None
            if e.source == "int":
                num = w.view(np.int64).astype(np.float64)
            elif e.source == "bool":
                num = (w != 0).astype(np.float64)
            elif e.source == "float":
                num = w.view(np.float64).copy()
            elif e.source == "field_float":
                num = w.view(np.float64).copy()
                num[~np.isfinite(num)] = np.nan  # JSON holds no nan or inf: the reference's null
            elif e.source == "len":
                num = w.astype(np.float64)
            elif e.source == "kword":
                fault = w == _U64(abi.FAULT)
                num = np.where(fault, np.nan, w.view(np.int64).astype(np.float64))
                if e.tail:
                    cls = np.where(fault, self._class("FAULT"), cls)
            elif e.source == "obj":
                words, at = np.unique(w, return_inverse=True)
                names = [types[x].cls if x in types else None for x in words.tolist()]
                cls = np.array([self._class(c or "object") for c in names], np.int64)[at.reshape(-1)]
            elif e.source == "str7":
                length = (w >> _U64(56)).astype(np.int64)
                data = np.ascontiguousarray(w, "<u8").view(np.uint8).reshape(-1, 8)[:, :7]
                ascii_ = np.all((data < 0x80) | (np.arange(7) >= length[:, None]), axis=1)
                whole = length <= 7
                ok &= ascii_ | ~whole
                text = _texts(data, np.minimum(length, 7), whole & ascii_)
            elif e.source == "text":
                chars, nbytes = child[start + 2], child[start + 3]
                nchunks = size[members] - 4
                whole = nbytes <= (8 * nchunks).astype(_U64)
                ascii_ = chars == nbytes
                ok &= ascii_ | ~whole
                sel = np.flatnonzero(whole & ascii_)
                if len(sel):
                    got = render.chunk_bytes(start[sel], size[members][sel] - 2,
                                             nbytes[sel].astype(np.int64), child)
                    text[sel] = got.cast(pa.string()).to_numpy(zero_copy_only=False)
            cols.append((e, cls, num, text))
        if not ok.any():
            return ok
        # the plan against the reference, on its first member it reads
        i = int(np.flatnonzero(ok)[0])
        words = child[start[i]:start[i] + size[members[i]]].tolist()
        want = _value_rows(values.structured(words, types, encoding))
        classes = {v: k for k, v in self.classes.items()}
        got = [(e.head, e.tail, classes[int(c[i])], None if np.isnan(n[i]) else float(n[i]), t[i])
               for e, c, n, t in cols]
        if not _same(got, want):  # a plan wrong for its values: never, but they go one by one
            self.rejected += 1
            return np.zeros(len(members), bool)
        sel = np.flatnonzero(ok)
        b = base[members[sel]]
        present = np.flatnonzero(np.bincount(b)).tolist()  # the few variables, without a sort
        lookup = np.zeros(present[-1] + 1, np.int64)
        for e, c, n, t in cols:
            lookup[present] = [self._code(u, e.head, e.tail) for u in present]
            self.parts.append((call[members[sel]], lookup[b], c[sel], n[sel], t[sel]))
        return ok

    def _slow(self, call: int, base: int, words: list[int], encoding: str,
              types: Mapping[int, TypeEntry]) -> None:
        key = (encoding, *words)
        got = self._memo.get(key)
        if got is None:
            if len(self._memo) >= _MEMO_MAX:
                self._memo.clear()  # bounded: a trace of distinct values must not hold them all
            got = self._memo[key] = _value_rows(values.structured(words, types, encoding))
        for head, tail, cls, num, text in got:
            self.parts.append((np.array([call], np.int64), np.array([self._code(base, head, tail)], np.int64),
                               np.array([self._class(cls)], np.int64),
                               np.array([np.nan if num is None else num]), np.array([text], object)))

    def columns(self) -> tuple[np.ndarray, ...]:
        """call, var, cls, num, text of every row added."""
        if not self.parts:
            return (np.zeros(0, np.int64),) * 3 + (np.zeros(0), np.zeros(0, object))
        return tuple(np.concatenate([p[j] for p in self.parts]) for j in range(5))


def _same(got: list[tuple[Any, ...]], want: list[tuple[Any, ...]]) -> bool:
    """Whether two lists of (head, tail, cls, num, text) agree, NaN and None alike."""
    def norm(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        return [(h, t, c, None if n is None or n != n else n, x) for h, t, c, n, x in rows]
    return norm(got) == norm(want)


def _texts(data: np.ndarray, length: np.ndarray, where: np.ndarray) -> np.ndarray:
    """The ASCII strs of the first ``length[i]`` bytes of ``data`` rows, where ``where``."""
    out = np.full(len(length), None, object)
    sel = np.flatnonzero(where)
    if len(sel):
        strs = render.strings(data[sel], length[sel], pa.string())
        out[sel] = strs.to_numpy(zero_copy_only=False)
    return out


def _calls_table(trace: Trace | None, t: pa.Table, include: tuple[str, ...]) -> tuple[pa.Table, list[str]]:
    """The calls table of the observations (of the included functions) and the function
    names its ``function`` column's codes stand for."""
    pcs, pc_at = np.unique(t.column("pc").to_numpy(), return_inverse=True)
    pc_at = pc_at.reshape(-1)
    display, function = [], []
    for p in pcs.tolist():
        sym = trace.names.lookup(p) if trace is not None else None
        shown = function_name(trace, p) if trace is not None else f"{p:#x}"
        display.append(shown)
        function.append(f"{sym.module}:{sym.qualname}" if sym and sym.qualname and sym.module else shown)
    names = sorted(set(function))
    code = {name: i for i, name in enumerate(names)}
    fn_of_pc = np.array([code[f] for f in function], np.int64)
    fn = fn_of_pc[pc_at]
    call, task = t.column("call").to_numpy(), t.column("task").to_numpy()
    # a call's index among the calls of its pc: tasks in trace order, then call order
    order = np.lexsort((call, task, pc_at))
    ordinal = np.empty(len(call), np.int64)
    starts = np.r_[0, np.flatnonzero(np.diff(pc_at[order])) + 1] if len(order) else np.zeros(0, np.int64)
    run = np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    ordinal[order] = np.arange(len(order)) - run
    keep = np.ones(len(call), bool)
    if include:  # a module and its submodules: "mod:qualname", "mod.sub:qualname"
        prefixes = tuple(f"{m}{sep}" for m in include for sep in (":", "."))
        wanted = np.array([n.startswith(prefixes) for n in names], bool)
        keep = wanted[fn] if len(names) else keep
    table = pa.table({
        "call": call[keep], "task": task[keep], "entry_seq": t.column("entry_seq").filter(pa.array(keep)),
        "parent": t.column("parent").filter(pa.array(keep)), "exit": t.column("exit").filter(pa.array(keep)),
        "display": pa.array(display, pa.string()).take(pa.array(pc_at[keep])),
        "function": pa.array(names, pa.string()).take(pa.array(fn[keep])),
        "ordinal": ordinal[keep],
    })
    return table, names


def _functions(calls: pa.Table, names: list[str], rows: _Rows) -> dict[str, Function]:
    """The functions of the calls table, with their variables from the rows."""
    call = calls.column("call").to_numpy()
    fn = pc.index_in(calls.column("function"), pa.array(names, pa.string())).to_numpy()
    ordinal = calls.column("ordinal").to_numpy()
    exits = calls.column("exit").to_numpy(zero_copy_only=False)
    order = np.lexsort((call, ordinal, fn))
    call, fn, ordinal, exits = call[order], fn[order], ordinal[order], exits[order]
    o_call, o_var, o_cls, o_num, o_text = rows.columns()
    # calls of functions not included have rows too
    size = int(max(call.max(initial=-1), o_call.max(initial=-1))) + 1
    fn_of_call = np.full(size, -1, np.int64)
    fn_of_call[call] = fn
    at_of_call = np.zeros(size, np.int64)  # a call's row in its function
    out: dict[str, Function] = {}
    by_fn: dict[int, Function] = {}  # by the function's code in names
    for f, s, e in _runs(fn):
        by_fn[f] = out[names[f]] = Function(names[f], call[s:e], ordinal[s:e], exits[s:e])
        at_of_call[call[s:e]] = np.arange(e - s)
    o_fn = fn_of_call[o_call]
    var_names = np.empty(len(rows.names), object)
    var_names[list(rows.names.values())] = list(rows.names.keys())
    class_names = np.empty(len(rows.classes), object)
    class_names[list(rows.classes.values())] = list(rows.classes.keys())
    # one key per (function, variable); rows of other functions (not included) last
    key = np.where(o_fn >= 0, o_fn * len(var_names) + o_var, len(names) * len(var_names))
    order = np.argsort(key, kind="stable")  # stable: of a call's two values, the later one wins
    key = key[order]
    for k, s, e in _runs(key):
        f, v = divmod(k, len(var_names))
        if f >= len(names):
            break
        function = by_fn[f]
        rows_ = order[s:e]
        at = at_of_call[o_call[rows_]]
        var = Variable.empty(len(function))
        var.num[at], var.text[at], var.cls[at] = o_num[rows_], o_text[rows_], class_names[o_cls[rows_]]
        function.variables[str(var_names[v])] = var
    return out


def _runs(keys: np.ndarray) -> Iterator[tuple[int, int, int]]:
    """(key, start, end) of each run of equal keys in a sorted int array."""
    if not len(keys):
        return
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    ends = np.r_[starts[1:], len(keys)]
    yield from zip(keys[starts].tolist(), starts.tolist(), ends.tolist(), strict=True)
