"""kcovdf.read.render: the value columns of a batch equal those of its records one by one."""

from __future__ import annotations

import dataclasses
import enum

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from kcovdf import abi
from kcovdf.read import render, values
from kcovdf.read.decode import KINDS
from kcovdf.runtime.encode import encode_value


@dataclasses.dataclass
class Point:
    x: object
    y: object


@dataclasses.dataclass
class Flag:
    on: object


class Color(enum.IntEnum):
    RED = 1
    GREEN = 2


# a field name that holds the digits of the renderer's markers: its records are read one by one
Odd = dataclasses.make_dataclass("Odd", [(f"f{render._MARKER}", int)])

for _cls in (Point, Flag, Color, Odd):
    _cls.__module__ = "app"

field = st.one_of(st.integers(-2**63, 2**63 - 1), st.booleans(), st.none(), st.integers(-3, 3))
value = st.one_of(
    st.integers(-2**63, 2**63 - 1), st.integers(-5, 5), st.booleans(), st.none(),
    st.builds(Point, field, field), st.builds(Flag, field), st.sampled_from(list(Color)),
    st.builds(Odd, st.integers(-9, 9)), st.floats(allow_nan=False), st.text(max_size=12),
    st.lists(st.integers(-9, 9), max_size=4), st.integers(2**64, 2**70))
record = st.tuples(st.sampled_from(range(len(KINDS))), st.sampled_from([0, 1, 2, abi.ARG_NONE]),
                   st.integers(0, 2), value | st.lists(st.integers(0, 2**64 - 1), max_size=6))


def _rows(cols: list) -> list[list]:
    """Columns as lists, NaN as a string: NaN equals nothing, not even the reference's NaN."""
    return [["nan" if v != v else v for v in c] for c in cols]


def _batch(draws: list[tuple[int, int, int, object]]) -> tuple[list[list[int]], dict]:
    words, types = [], {}
    for _, _, _, v in draws:
        if isinstance(v, list) and all(isinstance(w, int) and w >= 0 for w in v) and v and v[0] > 9:
            words.append(v)  # any words at all
            continue
        enc = encode_value(v)
        types.update({t.id: t for t in enc.types})
        words.append(list(enc.words))
    return words, types


@settings(max_examples=150, deadline=None)
@given(st.lists(record, max_size=60), st.randoms(use_true_random=False))
def test_columns_equal_the_records_read_one_by_one(draws, rnd):
    words, types = _batch(draws)
    encodings = ["kcovdf", "kcovdf", "kernel"]
    kind = np.array([d[0] for d in draws], np.int8)
    arg_idx = np.array([d[1] for d in draws], np.uint8)
    task = np.array([d[2] for d in draws], np.int64)
    # a list-view whose lists sit anywhere in their child, with gaps, as the decoder's do
    child: list[int] = []
    offsets = [0] * len(words)
    for i in rnd.sample(range(len(words)), len(words)):
        child += [rnd.getrandbits(64)] * rnd.randint(0, 2)
        offsets[i] = len(child)
        child += words[i]
    vals = pa.ListViewArray.from_arrays(pa.array(offsets, pa.int32()),
                                        pa.array([len(w) for w in words], pa.int32()),
                                        pa.array(child, pa.uint64()))
    got = render.columns(task, kind, arg_idx, vals, encodings, types)
    want = [render.one(values.of_record(KINDS[k], a, w, types, encodings[t]))
            for (k, a, t, _), w in zip(draws, words, strict=True)]
    assert _rows([c.to_pylist() for c in got]) == _rows(zip(*want, strict=True)) \
        or (not draws and all(len(c) == 0 for c in got))
    assert [c.type for c in got] == render.SCHEMA.types


def test_a_template_fills_ints_and_keeps_bools_and_none():
    objs = [Point(i, True) for i in range(-3, 3)] + [Point(None, False), 7, Color.GREEN, Odd(4)]
    words, types = _batch([(1, 0, 0, o) for o in objs])
    n = len(objs)
    got = render.columns(np.zeros(n, np.int64), np.ones(n, np.int8), np.zeros(n, np.uint8),
                         pa.array(words, pa.list_(pa.uint64())), ["kcovdf"], types)
    rendered = got[2].to_pylist()
    assert rendered[:7] == [f"Point(x={i}, y=True)" for i in range(-3, 3)] + ["Point(x=None, y=False)"]
    assert rendered[7:] == ["7", "Color(2)", f"Odd(f{render._MARKER}=4)"]
    assert got[1].to_pylist()[7:9] == [7.0, 2.0]
    assert got[0].to_pylist()[0] == "app.Point"


# --- strs: the columnar paths of plain strs, and what stays one by one --------------------

@dataclasses.dataclass
class Item:
    name: object
    qty: object


@dataclasses.dataclass
class Pair:
    a: object
    b: object
    c: object


class Name(str):
    pass


for _cls in (Item, Pair, Name):
    _cls.__module__ = "app"

_PLAIN = "".join(c for c in map(chr, range(0x20, 0x7F)) if c not in "'\"\\")
plain_text = st.text(_PLAIN, max_size=40)
any_text = st.one_of(
    st.just(""), plain_text, st.text(_PLAIN + "'\"\\", max_size=12),  # repr and JSON escape these
    st.text(max_size=12),                                             # non-ASCII, controls
    st.text(_PLAIN, min_size=80, max_size=120),                       # cut: more than 88 bytes
    st.text(st.characters(min_codepoint=0x80), min_size=1, max_size=50))
short_field = st.one_of(st.text(_PLAIN, max_size=7), st.text(_PLAIN, min_size=8, max_size=30),
                        st.text(max_size=9), st.integers(-9, 9), st.booleans(), st.none())
str_value = st.one_of(
    any_text, any_text.map(Name), st.integers(-2**63, 2**63 - 1),
    st.builds(Item, short_field, short_field), st.builds(Pair, short_field, short_field, short_field),
    st.builds(Point, short_field, st.integers(-5, 5)))
#: How a record's words are changed (words of another writer, or of none): 0 as encoded;
#: 1 junk in the bytes past a str's length; 2 its last CHUNK word dropped (cut); 3 one more
#: CHUNK word; 4 its char count changed; 5 junk past the length of an object's STR7 fields.
mutation = st.sampled_from([0, 0, 0, 1, 2, 3, 4, 5])


def _mutate(words: list[int], how: int, junk: int) -> list[int]:
    words = list(words)
    lay = words[1]
    form, nf = (lay >> 52) & 0xF, len(words) - 2
    if form == abi.Form.STR and how in (1, 2, 3, 4):
        nbytes = words[3]
        if how == 1 and nbytes % 8 and len(words) > 4:
            keep = (1 << (8 * (nbytes % 8))) - 1
            words[-1] = (words[-1] & keep) | (junk & ~keep & (2**64 - 1))
        elif how == 2 and nf > 2:
            words = words[:-1]
        elif how == 3 and nf < abi.MAX_FIELDS:
            words.append(junk)
            words[1] = lay | abi.Kind.CHUNK << (4 * nf)
        elif how == 4:
            words[2] = (words[2] + 1 + junk % 3) & (2**64 - 1)
    elif form == abi.Form.OBJECT and how == 5:
        for j in range(nf):
            if (lay >> (4 * j)) & 0xF == abi.Kind.STR7 and (words[2 + j] >> 56) < 7:
                n = words[2 + j] >> 56
                words[2 + j] |= (junk << (8 * n)) & ((1 << 56) - 1)
    return words


def _columns(words: list[list[int]], types: dict, want=render.ALL) -> list[pa.Array]:
    n = len(words)
    return render.columns(np.zeros(n, np.int64), np.ones(n, np.int8), np.zeros(n, np.uint8),
                          pa.array(words, pa.list_(pa.uint64())), ["kcovdf"], types, want)


def _reference(words: list[list[int]], types: dict) -> list[list]:
    rows = [render.one(values.of_record("return", 0, w, types)) for w in words]
    return [list(col) for col in zip(*rows, strict=True)] if rows else [[], [], [], []]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(str_value, mutation, st.integers(0, 2**64 - 1)), max_size=50),
       st.sampled_from([render.ALL, (0, 1), (2,), (3, 0), (1,)]))
def test_strs_and_objects_with_strs_equal_the_records_read_one_by_one(draws, want):
    words, types = _batch([(1, 0, 0, v) for v, _, _ in draws])
    words = [_mutate(w, how, junk) for w, (_, how, junk) in zip(words, draws, strict=True)]
    got = _columns(words, types, want)
    ref = _reference(words, types)
    assert _rows([c.to_pylist() for c in got]) == _rows([ref[i] for i in want])
    assert [c.type for c in got] == [render.SCHEMA.field(i).type for i in want]


def _slow_rows(monkeypatch) -> list[int]:
    """Counts the records ``render`` reads one by one (the slow path)."""
    counted = [0]
    slow = render._one_by_one

    def counting(rows, *args):
        counted[0] += len(rows)
        return slow(rows, *args)

    monkeypatch.setattr(render, "_one_by_one", counting)
    return counted


def test_plain_strs_and_short_str_fields_are_columnar(monkeypatch):
    counted = _slow_rows(monkeypatch)
    objs = ["", "bolt", "bolt-5", "a" * 40, "x" * 88, Name("gear"), "a b~c", 7,
            Item("nut", 3), Item("", None), Item("axle", True), Point("abcdefg", 1)]
    words, types = _batch([(1, 0, 0, o) for o in objs])
    got = _columns(words, types)
    assert counted[0] == 0
    assert [c.to_pylist() for c in got] == _reference(words, types)
    assert got[2].to_pylist()[:7] == ["''", "'bolt'", "'bolt-5'", repr("a" * 40), repr("x" * 88),
                                      "Name('gear')", "'a b~c'"]
    assert got[2].to_pylist()[8] == "Item(name='nut', qty=3)"
    assert got[3].to_pylist()[1] == ('{"form": "str", "class": "builtins.str", "id": "' + hex(words[1][0])
                                     + '", "value": "bolt", "length": 4, "bytes": 4, "truncated": false}')


def test_strs_that_need_escapes_or_are_cut_are_read_one_by_one(monkeypatch):
    counted = _slow_rows(monkeypatch)
    slow = ["it's", 'say "hi"', "back\\slash", "héllo", "tab\t", "x" * 89,
            Item("it's", 1), Item("eight ch", 1), Item("é", 1)]
    words, types = _batch([(1, 0, 0, o) for o in ["ok", Item("ok", 1), *slow]])
    got = _columns(words, types)
    assert counted[0] == len(slow)
    assert [c.to_pylist() for c in got] == _reference(words, types)
    # class and number do not depend on what the strs hold: only the object whose long str
    # CHUNK words continue (no template holds those) is read one by one
    counted[0] = 0
    got = _columns(words, types, (0, 1))
    assert counted[0] == 1
    assert [c.to_pylist() for c in got] == _reference(words, types)[:2]
