"""The C core's layout cache against its general encoder and the reference encoder.

The C core remembers, per class, where the fields of the last instance it walked were
(``_core/layout.c``) and encodes a repeat instance from its values alone. Every value it
encodes that way must have the words the general encoder gives (``_encode_general``: the
full walk, the cache neither used nor filled) and the reference encoder gives
(``kcovdf.runtime.encode``). ``_encode_cached`` runs the cache alone, so a test can tell
that the cache served a value and was not bypassed.

C-only: the Python twin has no layout cache to check.
"""

from __future__ import annotations

import collections
import dataclasses
import mmap
import os
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import parse_records
from kcovdf import abi, tracefile
from kcovdf._core import _recorder
from kcovdf.runtime.encode import encode_value, qualified_name


def words(obj: object) -> list[int]:
    """encode() (which may use and fill the cache) == the general encoder == the reference.

    The C encoders run first: the reference asks for ``__dict__``, which makes the dict
    of an instance that keeps its values inline (3.11+).
    """
    got = _recorder.encode(obj)
    cached = _recorder._encode_cached(obj)
    general = _recorder._encode_general(obj)
    assert got == general, "encode() differs from the general encoder"
    if cached is not None:
        assert cached == general, "the layout cache differs from the general encoder"
    assert general == encode_value(obj).words, "the general encoder differs from the reference"
    return got


def served(first: object, second: object) -> list[int]:
    """``first`` fills its class's layout; the cache then serves ``second``, correctly."""
    words(first)
    cached = _recorder._encode_cached(second)
    assert cached is not None, "the layout cache did not serve an instance of the same layout"
    assert cached == _recorder._encode_general(second) == encode_value(second).words
    return cached


# --- each kind of storage the cache reads -------------------------------------------------

def fresh_class(name: str = "Fresh", bases: tuple[type, ...] = (), **ns: object) -> type:
    """A class of its own, so that no other test's instances shaped its shared keys."""
    return type(name, bases, dict(ns))


def with_attrs(cls: type, pairs: list[tuple[str, object]]) -> object:
    obj = cls()
    for name, value in pairs:
        setattr(obj, name, value)
    return obj


def test_inline_values_or_split_table() -> None:
    cls = fresh_class()
    served(with_attrs(cls, [("a", 1), ("b", "x")]), with_attrs(cls, [("a", 2**70), ("b", "é")]))


def test_a_dict_made_from_the_values() -> None:
    cls = fresh_class()
    first, second = (with_attrs(cls, [("a", 1), ("b", 2.5)]) for _ in range(2))
    vars(first), vars(second)  # the dict exists now: on 3.11+, made from the inline values
    served(first, second)


def test_a_combined_table() -> None:
    cls = fresh_class()
    first, second = cls(), cls()
    first.__dict__ = {"b": 1, "a": None}
    second.__dict__ = {"b": "two", "a": True}
    served(first, second)


def test_a_table_with_holes() -> None:
    cls = fresh_class()
    first, second = (with_attrs(cls, [("a", 1), ("gone", 0), ("b", 2)]) for _ in range(2))
    for obj in (first, second):
        vars(obj)
        del obj.gone  # a deleted entry the readers skip
    served(first, second)


def test_slots_and_an_empty_slot() -> None:
    cls = fresh_class(__slots__=("a", "b", "c"))
    first, second = with_attrs(cls, [("a", 1), ("c", 3)]), with_attrs(cls, [("b", [2])])
    assert served(first, second)[1] >> 52 & 0xF == abi.Form.OBJECT


def test_namedtuple_items() -> None:
    nt = collections.namedtuple("FreshNT", "a b c")
    served(nt(1, "b", None), nt(fresh_class()(), 2.0, b"c"))
    # a shorter instance (tuple.__new__) is not of the cached layout
    assert _recorder._encode_cached(tuple.__new__(nt, (1, 2))) is None
    words(tuple.__new__(nt, (1, 2)))


def test_declared_fields_out_of_storage_order() -> None:
    @dataclasses.dataclass
    class Declared:
        a: int
        b: str
        c: object = None

    def build(a: int) -> Declared:
        obj = Declared.__new__(Declared)
        obj.c, obj.extra, obj.b, obj.a = [a], "e", "b", a  # stored c, extra, b, a
        return obj

    served(build(1), build(2))


def test_declared_fields_unset_and_behind_a_property() -> None:
    @dataclasses.dataclass
    class Missing:
        a: int
        b: int = 0
        c: int = 0

    Missing.c = property(lambda self: 1 / 0)  # type: ignore[assignment]

    def build(a: int) -> Missing:
        obj = Missing.__new__(Missing)
        obj.a = a  # b: in no storage, a plain default (UNSET); c: a property (FAULT)
        return obj

    kinds = abi.split_layout(served(build(1), build(2))[1], 3)[2]
    assert kinds == [abi.Kind.INT, abi.Kind.UNSET, abi.Kind.FAULT]


def test_more_fields_than_a_record_holds() -> None:
    cls = fresh_class()
    names = [f"f{i}" for i in range(abi.MAX_FIELDS + 2)]  # recorded: the first MAX_FIELDS
    served(with_attrs(cls, [(n, i) for i, n in enumerate(names)]),
           with_attrs(cls, [(n, str(i)) for i, n in enumerate(names)]))


def test_values_that_are_not_builtins() -> None:
    inner = fresh_class("Inner")
    cls = fresh_class()
    served(with_attrs(cls, [("a", 1), ("b", inner()), ("c", "s")]),
           with_attrs(cls, [("a", inner()), ("b", 2**64), ("c", MyStr("sub"))]))


class MyStr(str):
    pass


# --- where the cache must not serve ------------------------------------------------------------

def test_other_keys_other_order_or_count_are_not_served() -> None:
    cls = fresh_class()
    words(with_attrs(cls, [("a", 1), ("b", 2)]))
    for other in ([("b", 2), ("a", 1)], [("a", 1)], [("a", 1), ("b", 2), ("c", 3)], [("x", 1), ("y", 2)]):
        obj = with_attrs(cls, other)
        assert _recorder._encode_cached(obj) is None, other
        words(obj)


def test_a_class_change_empties_the_cache() -> None:
    cls = fresh_class()
    first, second = (with_attrs(cls, [("a", 1)]) for _ in range(2))
    words(first)
    cls.attribute = 1  # the version tag changes: the plan and its layout are rebuilt
    assert _recorder._encode_cached(second) is None
    served(first, second)
    cls.__qualname__ = "Renamed"  # the name, not the tag: the cached shape id is another
    words(second)
    words(second)


def test_too_many_keys_are_never_cached() -> None:
    cls = fresh_class()
    pairs = [(f"k{i}", i) for i in range(20)]  # more than the cache holds
    words(with_attrs(cls, pairs))
    assert _recorder._encode_cached(with_attrs(cls, pairs)) is None


def test_the_fast_path_follows_the_layout() -> None:
    """A class the cache served before meets an instance of another layout: the encoder's
    first check (straight to the cache) must fall back to the full walk."""
    cls = fresh_class()
    for _ in range(3):
        words(with_attrs(cls, [("a", 1), ("b", 2)]))
    words(with_attrs(cls, [("b", fresh_class("Pending")()), ("a", 1)]))  # a miss, a class met
    words(with_attrs(cls, [("a", 1), ("b", 2)]))


def test_a_record_that_misses_after_meeting_a_class(tmp_path) -> None:
    """Recorded, an instance whose first field holds a class not yet in the table, and
    whose second key is not the cached one: the cache gives up after meeting the class,
    the full walk records the value, and the class gets its table line once."""
    cls, pending = fresh_class(), fresh_class("Pending")
    values = [with_attrs(cls, [("a", 1), ("b", 2)]), with_attrs(cls, [("a", 1), ("b", 2)]),
              with_attrs(cls, [("a", pending()), ("c", 3)]), with_attrs(cls, [("a", 1), ("b", 2)])]
    words = 1 << 12
    m = mmap.mmap(-1, tracefile.FILE_HEADER_SIZE + 8 * words)
    m[:tracefile.FILE_HEADER_SIZE] = tracefile.pack_header(words, os.getpid(), 0)
    table = tmp_path / "table"
    fd = os.open(table, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    _recorder.add_table(fd)
    _recorder.enable(m, fd)
    try:
        for value in values:
            _recorder.entry(0x1234, value)
    finally:
        _recorder.disable(m)
        _recorder.remove_table(fd)
        os.close(fd)
    buf = memoryview(m)[tracefile.FILE_HEADER_SIZE:].cast("Q")
    try:
        recs = parse_records(buf)
    finally:
        buf.release()
    assert [r.values for r in recs] == [encode_value(v).words for v in values]
    name = f'"class":"{qualified_name(pending)}","fields":[]'
    assert sum(name in line for line in table.read_text().splitlines()) == 1


# --- any class, any instances, any order ---------------------------------------------------------

class Plain:
    pass


class Slots:
    __slots__ = ("a", "b", "c", "d")


class SlotsDict(Slots):
    pass


@dataclasses.dataclass
class DC:
    a: object
    b: object = None
    c: object = None


NT = collections.namedtuple("NT", "a b c d")
Inner = fresh_class("Inner")
NAMES = ["a", "b", "c", "d", "e"]

values = st.one_of(
    st.integers(min_value=-(2**40), max_value=2**40), st.integers(), st.text(max_size=12),
    # past the STR7 word's 7 bytes, and past the 3 CHUNK words continuing it (31 bytes)
    st.text(min_size=8, max_size=40), st.binary(min_size=8, max_size=40).map(bytearray),
    st.floats(allow_nan=False), st.booleans(), st.none(), st.binary(max_size=9),
    st.builds(Inner), st.builds(MyStr, st.text(max_size=4)), st.lists(st.integers(), max_size=3),
    st.sampled_from([len, Inner, collections, str.upper]),
)
_DELETE = object()
steps = st.lists(st.tuples(st.sampled_from(NAMES), st.one_of(st.just(_DELETE), values)), max_size=8)


@st.composite
def instances(draw: st.DrawFn) -> object:
    kind = draw(st.sampled_from(["plain", "plain+dict", "own dict", "slots", "slots+dict", "dc", "nt"]))
    if kind == "nt":
        items = draw(st.lists(values, min_size=4, max_size=4))
        return NT(*items) if draw(st.booleans()) else tuple.__new__(NT, items[:draw(st.integers(0, 4))])
    if kind == "own dict":
        obj = Plain()
        obj.__dict__ = dict(draw(st.lists(st.tuples(st.sampled_from(NAMES), values), max_size=5)))
        return obj
    obj = {"plain": Plain, "plain+dict": Plain, "slots": Slots, "slots+dict": SlotsDict}.get(kind)
    obj = DC(draw(values)) if obj is None else obj()
    for name, value in draw(steps):
        if isinstance(obj, Slots) and name not in Slots.__slots__ and kind == "slots":
            continue
        if value is _DELETE:
            try:
                delattr(obj, name)
            except AttributeError:  # not set on the instance (perhaps a class default)
                pass
        else:
            setattr(obj, name, value)
    if kind == "plain+dict":
        vars(obj)
    return obj


@settings(max_examples=300, deadline=None)
@given(st.lists(instances(), min_size=1, max_size=12))
def test_cache_matches_general_and_reference_encoders(objs: list[object]) -> None:
    """Instances of a few long-lived classes in any sequence: each is encoded while the
    cache holds whatever the ones before it left there, then again once the reference
    encoder has made its dict."""
    for obj in objs:
        words(obj)
    for obj in objs:
        words(obj)


def test_the_cache_serves_most_repeats() -> None:
    """The property above is not vacuous: repeats of one layout are served by the cache."""
    cls, servings = fresh_class(), 0
    for i in range(50):
        obj = with_attrs(cls, [("a", i), ("b", str(i)), ("c", Inner())])
        servings += _recorder._encode_cached(obj) is not None
        words(obj)
    assert servings == 49


def test_the_cache_makes_no_dict() -> None:
    """Reading an instance's values in place (3.11+: inline) makes no dict that was not there."""
    import gc

    def dict_made(marker: list) -> bool:
        return any(type(o) is dict and any(v is marker for v in o.values()) for o in gc.get_objects())

    cls = fresh_class()
    marker: list = []
    words(with_attrs(cls, [("a", 1), ("m", [])]))
    obj = with_attrs(cls, [("a", 2), ("m", marker)])
    before = dict_made(marker)
    assert before == (sys.version_info < (3, 11)), "3.11+ keeps a fresh instance's values inline"
    assert _recorder._encode_cached(obj) is not None
    assert dict_made(marker) == before
