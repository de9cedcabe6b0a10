"""Rendering: the value columns (class, number, rendered, value) of many records at once.

``kcovdf.read.values`` reads one record's words; rendering a trace record by record costs
microseconds each, so a trace of millions would take minutes. Most records of a run,
though, share a *template*: the same shape id and layout word (class, form, field kinds
and names), differing only in their int fields. ``columns`` renders one representative
of each template through ``kcovdf.read.values``, with marker ints in the int fields, and
splits its text and JSON at the markers; every record of the template is then its
template joined with its own ints, by pyarrow compute, without Python code per record.
So the output is by construction what ``values`` gives, text and JSON alike. Records of
other values (strs, lists, floats, kernel words, events) are read one distinct value at
a time (a bounded memo), as before.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kcovdf import abi
from kcovdf.abi import Form, Kind
from kcovdf.read import values
from kcovdf.runtime.encode import TypeEntry

#: The columns ``columns`` returns, in this order.
SCHEMA = pa.schema([("class", pa.string()), ("number", pa.float64()),
                    ("rendered", pa.string()), ("value", pa.string())])

#: Field kinds a template can hold: an int varies, a bool is one of two templates, None is constant.
_TEMPLATE_KINDS = (Kind.INT, Kind.BOOL, Kind.NONE)
_TEMPLATE_FORMS = (Form.SCALAR, Form.OBJECT)
#: Marker ints stand for the int fields while a template is rendered: 18 digits, longer than
#: any hex id of 16 digits; a template whose names happen to hold one is not used.
_MARKER = 100_000_000_123_457_000
_SEEN_MAX = 1 << 16
_U64 = np.uint64


def class_name(value: Mapping[str, Any]) -> str | None:
    """The class named by a structured value (``kcovdf.read.values.structured``)."""
    return value.get("class")


def number(value: Mapping[str, Any]) -> float | None:
    """The numeric value of an int, float or bool scalar, else ``None`` (for histograms and SQL)."""
    if value.get("form") != "scalar":
        return None
    v = value.get("value")
    if isinstance(v, dict) and "float" in v:
        return float(v["float"])  # nan and infinities, which JSON cannot hold as numbers
    return float(v) if isinstance(v, (int, float)) else None


def one(value: Mapping[str, Any]) -> tuple[str | None, float | None, str, str]:
    """(class, number, rendered, value) of one structured value: a row of ``SCHEMA``."""
    return class_name(value), number(value), values.text(value), json.dumps(value)


class _Template:
    """One template: constant parts around the int fields, in text and in JSON."""

    def __init__(self, text: list[str], js: list[str], cls: str | None,
                 num: float | None, numeric: bool) -> None:
        self.text, self.js, self.cls, self.num, self.numeric = text, js, cls, num, numeric


def _template(words: list[int], ints: list[int], types: Mapping[int, TypeEntry]) -> _Template | None:
    """The template of a representative's words, its int fields at positions ``ints``."""
    marked = list(words)
    markers = [str(_MARKER + j) for j in range(len(ints))]
    for j, at in enumerate(ints):
        marked[at] = _MARKER + j
    value = values.structured(marked, types)
    cls, num, text, js = one(value)
    parts_text, parts_js = _split(text, markers), _split(js, markers)
    if parts_text is None or parts_js is None:
        return None
    numeric = bool(ints) and value.get("form") == "scalar"
    return _Template(parts_text, parts_js, cls, None if numeric else num, numeric)


def _split(s: str, markers: list[str]) -> list[str] | None:
    """``s`` cut at each marker in turn (None unless each occurs once, in order)."""
    out = []
    for m in markers:
        if s.count(m) != 1:
            return None
        head, s = s.split(m)
        out.append(head)
    out.append(s)
    return out


ALL = (0, 1, 2, 3)


def columns(task: np.ndarray, kind: np.ndarray, arg_idx: np.ndarray, vals: pa.Array,
            encodings: Sequence[str], types: Mapping[int, TypeEntry],
            want: Sequence[int] = ALL) -> list[pa.Array]:
    """class, number, rendered and value (``SCHEMA``) of a batch of records.

    ``task`` (task index), ``kind`` (codes of ``kcovdf.read.decode.KINDS``) and ``arg_idx``
    are numpy columns; ``vals`` the records' value words, a list or list-view array;
    ``encodings`` the value encoding of each task ("kcovdf" or "kernel"). ``want``: the
    indexes in ``SCHEMA`` of the columns to compute, all by default.
    """
    n = len(kind)
    if n == 0:
        return [pa.array([], SCHEMA.field(i).type) for i in want]
    off, size, child = _lists(vals)
    kcovdf = np.array([e == "kcovdf" for e in encodings], bool)[task] if len(encodings) \
        else np.zeros(n, bool)
    nf = size - 2
    valued = kcovdf & (kind < 4) & ~((kind == 0) & (arg_idx == abi.ARG_NONE)) \
        & (nf >= 1) & (nf <= abi.MAX_FIELDS)
    rows = np.flatnonzero(valued)
    base = off[rows]
    lay = child[base + 1]
    form = (lay >> _U64(52)) & _U64(0xF)
    nfr = nf[rows]
    ok = (form == Form.OBJECT) | ((form == Form.SCALAR) & (nfr == 1))
    bools = np.zeros(len(rows), _U64)
    for j in range(int(nfr.max()) if len(nfr) else 0):
        has = nfr > j
        k = (lay >> _U64(4 * j)) & _U64(0xF)
        ok &= ~has | (k == Kind.INT) | (k == Kind.NONE) | (k == Kind.BOOL)
        is_bool = has & (k == Kind.BOOL)
        if is_bool.any():
            word = child[np.where(is_bool, base + 2 + j, base)]
            bools |= np.where(is_bool & (word != 0), _U64(1 << j), _U64(0))
    rows, base, lay, nfr, bools = rows[ok], base[ok], lay[ok], nfr[ok], bools[ok]
    shape = child[base]
    # one u64 key per template (shape, layout, field count, bool fields); members are checked
    # against their group's first record below, so a hash collision only loses speed
    with np.errstate(over="ignore"):
        key = shape ^ (lay * _U64(0x9E3779B97F4A7C15)) ^ \
            ((nfr.astype(_U64) | (bools << _U64(8))) * _U64(0xC2B2AE3D27D4EB4F))
    codes = pa.array(key).dictionary_encode().indices.to_numpy()
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    pieces: list[tuple[np.ndarray, list[pa.Array]]] = []
    rest = np.ones(n, bool)
    nothing = np.flatnonzero((kind == 0) & (arg_idx == abi.ARG_NONE))
    if len(nothing):  # the entry of a call with no recorded parameter (format 2)
        rest[nothing] = False
        pieces.append((nothing, _constant(one(values.of_record("entry", abi.ARG_NONE, [], types)),
                                          len(nothing), want)))
    for members in np.split(order, bounds) if len(order) else []:
        first = members[0]
        members = members[(shape[members] == shape[first]) & (lay[members] == lay[first])
                          & (nfr[members] == nfr[first]) & (bools[members] == bools[first])]
        nfields = int(nfr[first])
        start = int(base[first])
        words = child[start:start + 2 + nfields].tolist()
        kinds = [(words[1] >> (4 * j)) & 0xF for j in range(nfields)]
        ints = [2 + j for j, k in enumerate(kinds) if k == Kind.INT]
        tpl = _template(words, ints, types)
        if tpl is None:
            continue
        where = rows[members]
        rest[where] = False
        field_words = [child[base[members] + at].view(np.int64) for at in ints]
        pieces.append((where, _fill(tpl, field_words, len(members), want)))
    rest_rows = np.flatnonzero(rest)
    if len(rest_rows):
        pieces.append((rest_rows, _one_by_one(rest_rows, task, kind, arg_idx, off, size, child,
                                              encodings, types, want)))
    where = np.concatenate([w for w, _ in pieces])
    inverse = np.empty(n, np.int64)
    inverse[where] = np.arange(n)
    inv = pa.array(inverse)
    if len(pieces) == 1:  # all rows of one kind, in order
        return pieces[0][1]
    return [pa.chunked_array([cols[j] for _, cols in pieces], SCHEMA.field(i).type)
            .combine_chunks().take(inv) for j, i in enumerate(want)]


def _fill(tpl: _Template, ints: list[np.ndarray], n: int, want: Sequence[int]) -> list[pa.Array]:
    """The wanted columns of ``n`` records of one template, its int fields given."""
    texts = [pa.array(v).cast(pa.string()) for v in ints] if 2 in want or 3 in want else []
    out = []
    for i in want:
        if i == 0:
            out.append(_repeat(tpl.cls, pa.string(), n))
        elif i == 1:
            out.append(pa.array(ints[0].astype(np.float64)) if tpl.numeric
                       else _repeat(tpl.num, pa.float64(), n))
        else:
            out.append(_join(tpl.text if i == 2 else tpl.js, texts, n))
    return out


def _repeat(value: Any, kind: pa.DataType, n: int) -> pa.Array:
    return pa.repeat(pa.scalar(value, kind), n)


def _constant(row: tuple[Any, ...], n: int, want: Sequence[int]) -> list[pa.Array]:
    return [_repeat(row[i], SCHEMA.field(i).type, n) for i in want]


def _join(parts: list[str], texts: list[pa.Array], n: int) -> pa.Array:
    if not texts:
        return _repeat(parts[0], pa.string(), n)
    pieces: list[Any] = []
    for head, t in zip(parts, texts, strict=False):
        if head:
            pieces.append(head)
        pieces.append(t)
    if parts[-1]:
        pieces.append(parts[-1])
    if len(pieces) == 1:
        return pieces[0]
    return pc.binary_join_element_wise(*pieces, "")


def _one_by_one(rows: np.ndarray, task: np.ndarray, kind: np.ndarray, arg_idx: np.ndarray,
                off: np.ndarray, size: np.ndarray, child: np.ndarray, encodings: Sequence[str],
                types: Mapping[int, TypeEntry], want: Sequence[int]) -> list[pa.Array]:
    """The wanted columns of records outside every template, each distinct value read once."""
    from kcovdf.read.decode import KINDS

    seen: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    out: tuple[list[Any], ...] = ([], [], [], [])
    for t, k, a, o, s in zip(task[rows].tolist(), kind[rows].tolist(), arg_idx[rows].tolist(),
                             off[rows].tolist(), size[rows].tolist(), strict=True):
        words = child[o:o + s].tolist()
        enc = encodings[t] if t < len(encodings) else "kernel"
        key = (enc, k, a, *words)
        got = seen.get(key)
        if got is None:
            if len(seen) >= _SEEN_MAX:
                seen.clear()  # bounded: a trace of distinct values must not hold them all twice
            got = seen[key] = one(values.of_record(KINDS[k], a, words, types, enc))
        for col, v in zip(out, got, strict=True):
            col.append(v)
    return [pa.array(out[i], SCHEMA.field(i).type) for i in want]


def _lists(vals: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(offsets, sizes, child words) of a list or list-view array of u64 words."""
    if isinstance(vals, pa.ChunkedArray):
        vals = vals.combine_chunks() if vals.num_chunks != 1 else vals.chunk(0)
    child = vals.values.to_numpy(zero_copy_only=False)
    if pa.types.is_list_view(vals.type) or pa.types.is_large_list_view(vals.type):
        return (vals.offsets.to_numpy().astype(np.int64), vals.sizes.to_numpy().astype(np.int64), child)
    offs = vals.offsets.to_numpy().astype(np.int64)
    return offs[:-1], np.diff(offs), child
