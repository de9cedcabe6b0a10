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
    assert [c.to_pylist() for c in got] == [list(col) for col in zip(*want, strict=True)] \
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
