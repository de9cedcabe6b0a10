"""kcovdf.read.values: value words to Python-like text and JSON-able data."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kcovdf import abi
from kcovdf.abi import Form, Kind
from kcovdf.instrument.redact import DEFAULT_REDACT, Redactor
from kcovdf.read import values
from kcovdf.runtime.encode import encode_value


@dataclasses.dataclass
class Point:
    x: int
    y: int


@dataclasses.dataclass
class Sensor:
    name: str
    celsius: float

    @property
    def celsius(self):  # noqa: F811 - a declared field behind a property: recorded as FAULT
        raise RuntimeError("hardware read")

    @celsius.setter
    def celsius(self, value):
        self.__dict__["_raw"] = value


class Pair:
    __slots__ = ("left", "right")

    def __init__(self, left):
        self.left = left


class Holder:
    def __init__(self):
        self.items = []


class Wide:
    def __init__(self):
        for i in range(13):
            setattr(self, f"f{i}", f"{i:02}_long_value")


for _cls in (Point, Sensor, Pair, Holder, Wide):
    _cls.__module__ = "app"  # after class creation: dataclasses look the module up


def show(obj, **kw) -> str:
    enc = encode_value(obj, **kw)
    return values.render(enc.words, {t.id: t for t in enc.types})


@pytest.mark.parametrize("obj, text", [
    (Point(1, 2), "Point(x=1, y=2)"),
    ("héllo", "'héllo'"),
    ("é" * 50, "'" + "é" * 44 + "…'"),
    ([1, "x", None] + list(range(10)), "[1, 'x', None, 0, 1, 2, 3, 4, 5, 6, 7, 8, …+1]"),
    ({"a": 1}, "{'a': 1}"),
    (ValueError("x", 3), "ValueError('x', 3)"),
    (2**129 + 7, "0x…0000000000000007(130 bits)"),
    (-(2**129 + 7), "-0x…0000000000000007(130 bits)"),
    (Holder(), "Holder(items=<list>)"),
    ([Holder()], "[<app.Holder>]"),
    (Pair(1), "Pair(left=1, right=<unset>)"),
    (Sensor("t", 1.0), "Sensor(name='t', celsius=FAULT, _raw=1.0)"),
    ((1,), "(1,)"),
    (frozenset(), "frozenset()"),
    (set(), "set()"),
    (bytearray(b"ab"), "bytearray(b'ab')"),
    (b"\x00" * 100, "b'" + "\\x00" * 96 + "…'"),
    (["a much longer string"], "['a much longer string']"),  # spare words continue a nested str
    (["x" * 40], "['" + "x" * 31 + "…']"),                  # up to 3 CHUNK words: 31 bytes
    # twelve elements leave no spare word: each keeps its 7 bytes
    ([str(i) * 9 for i in range(12)], "[" + ", ".join(f"'{(str(i) * 9)[:7]}…'" for i in range(12)) + "]"),
    ({"extensions": 1, "extension_configs": 2}, "{'extensions': 1, 'extension_configs': 2}"),
    (ValueError("bad value 2989"), "ValueError('bad value 2989')"),
    ({i: i for i in range(9)}, "{0: 0, 1: 1, 2: 2, 3: 3, 4: 4, 5: 5, …+3}"),
    # object fields: the words after the fields continue their long strings, in field order
    (Sensor("boiler room north", 1.0), "Sensor(name='boiler room north', celsius=FAULT, _raw=1.0)"),
    (Pair("x" * 40), "Pair(left='" + "x" * 31 + "…', right=<unset>)"),
    (Wide(), "Wide(" + ", ".join(f"f{i}='{i:02}_long…'" for i in range(13)) + ")"),  # no word spare
    # classes, functions, methods and modules carry their names through the type table
    (Point, "<class 'app.Point'>"),
    (int, "<class 'int'>"),
    (len, "<built-in len>"),
    (str.upper, "<built-in str.upper>"),
    (json.dumps, "<function json.dumps>"),
    (json, "<module 'json'>"),
    ([Point, len, {"m": json}], "[<class 'app.Point'>, <built-in len>, <dict>]"),
    ({"cls": Point, "f": json.loads}, "{'cls': <class 'app.Point'>, 'f': <function json.loads>}"),
])
def test_text(obj, text):
    assert show(obj) == text


def test_redacted():
    assert show("secret", redacted=True) == "<redacted>"


def test_without_type_table_names_are_unknown_but_values_are_kept():
    enc = encode_value(Point(1, 2))
    assert values.render(enc.words, {}) == f"<class {enc.words[0]:#x}>(1, 2)"
    assert values.render(encode_value([1, "x"]).words, {}) == "[1, 'x']"


def test_named_values_are_structured_with_their_kind_and_name():
    enc = encode_value(Point)
    value = values.structured(enc.words, {t.id: t for t in enc.types})
    assert value == {"form": "named", "class": "builtins.type", "id": f"{enc.words[0]:#x}",
                     "named": "class", "name": "app.Point"}
    method = Holder().__init__
    enc = encode_value([method])
    item = values.structured(enc.words, {t.id: t for t in enc.types})["items"][0]
    assert (item["class"], item["named"], item["name"]) == \
        ("builtins.method", "method", f"{Holder.__init__.__module__}.Holder.__init__")
    assert values.text({"form": "seq", "class": "builtins.list", "items": [item], "length": 1}) == \
        f"[<bound method {Holder.__init__.__module__}.Holder.__init__>]"
    # without the type table: only that it was a named value
    assert values.render(encode_value(len).words, {}) == f"<named {encode_value(len).words[0]:#x}>"


def test_kernel_words_are_hex_and_fault():
    assert values.render([0x11], {}, "kernel") == "0x11"
    assert values.render([0x1, abi.FAULT], {}, "kernel") == "{0x1, FAULT}"


def test_structured_form_is_json_and_carries_lengths():
    enc = encode_value("x" * 100)
    v = values.structured(enc.words, {t.id: t for t in enc.types})
    assert v["form"] == "str" and v["class"] == "builtins.str"
    assert v["length"] == 100 and v["truncated"] and v["value"] == "x" * 88
    enc = encode_value(Point(1, float("nan")))
    v = values.structured(enc.words, {t.id: t for t in enc.types})
    assert json.loads(json.dumps(v, allow_nan=False))["fields"] == [["x", 1], ["y", {"float": "nan"}]]


def test_malformed_words_fall_back_to_raw_hex_with_a_reason():
    v = values.structured([1], {})
    assert v["form"] == "raw" and "fewer than 2" in v["error"]
    bad_form = values.structured([1, abi.layout(1, 13, [Kind.INT]), 5], {})
    assert bad_form["form"] == "raw" and "form 13" in bad_form["error"]
    bad_str = values.structured([1, abi.layout(0, Form.STR, [Kind.INT]), 5], {})
    assert bad_str["form"] == "raw" and values.text(bad_str) == "{0x1, 0x20000000000001, 0x5}"


_redacts = Redactor(DEFAULT_REDACT)
short_text = st.text(max_size=7).filter(lambda s: len(s.encode()) <= 7)
nested_plain = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**63 - 1),
                         st.floats(allow_nan=False), short_text)
plain = st.one_of(
    nested_plain, st.text(max_size=30),
    st.lists(nested_plain, max_size=12), st.tuples(nested_plain, nested_plain),
    st.frozensets(st.integers(-5, 5), max_size=5),
    # a key the default redaction patterns match ('TOKEN') is withheld, not cut: not here
    st.dictionaries(st.integers(-9, 9) | short_text.filter(lambda k: not _redacts(k)), nested_plain,
                    max_size=6))


@settings(max_examples=300, deadline=None)
@given(plain)
def test_text_is_repr_when_nothing_was_cut(obj):
    # nested strings are kept to the 7 UTF-8 bytes a STR7 word holds
    assert show(obj) == repr(obj)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 2**64 - 1), max_size=15), st.sampled_from(["kcovdf", "kernel"]))
def test_any_words_render_without_error(words, encoding):
    v = values.structured(words, {}, encoding)
    json.dumps(v)
    assert isinstance(values.text(v), str)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 15), st.integers(0, 255), st.lists(st.integers(0, 15), min_size=0, max_size=13),
       st.data())
def test_any_layout_renders_without_error(form, total, kinds, data):
    fields = data.draw(st.lists(st.integers(0, 2**64 - 1), min_size=len(kinds), max_size=len(kinds)))
    v = values.structured([7, abi.layout(total, form, kinds)] + fields, {})
    assert isinstance(values.text(v), str)
