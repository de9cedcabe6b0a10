"""The C encoder (kcovdf._core._recorder.encode) against the reference encoder, word for word."""

from __future__ import annotations

import collections
import dataclasses
import gc
import math
import re
import sys
import sysconfig
import types
from pathlib import Path
from typing import ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kcovdf import abi, tracefile
from kcovdf._core import _recorder
from kcovdf.runtime.encode import encode_value

pytestmark = pytest.mark.c_core(reason="the C encoder, its layout cache and abi.h against the reference "
                                       "encoder, which is the twin's own")

ABI_H = Path(_recorder.__file__).parent / "abi.h"
if not ABI_H.exists():  # an installed wheel keeps the header beside the sources' copy
    ABI_H = Path(__file__).parents[2] / "src" / "kcovdf" / "_core" / "abi.h"


def check(obj: object) -> None:
    """C words == reference words, plain and redacted."""
    assert _recorder.encode(obj) == encode_value(obj).words
    assert _recorder.encode(obj, redacted=True) == encode_value(obj, redacted=True).words


# --- abi.h mirrors abi.py (and the .kdf header offsets of tracefile.py) ----------------

def test_abi_h_matches_abi_py() -> None:
    defines = dict(re.findall(r"^#define KDF_(\w+) (\S+)", ABI_H.read_text(), re.M))
    defines.pop("", None)
    assert len(defines) > 50
    for name, raw in defines.items():
        if raw.startswith('"'):
            value: object = raw.strip('"')
        else:
            value = int(raw.rstrip("uUlL"), 0)
        if name.startswith("KIND_"):
            expected: object = abi.Kind[name[5:]]
        elif name.startswith("FORM_"):
            expected = abi.Form[name[5:]]
        elif name == "FILE_MAGIC_LE64":
            expected = int.from_bytes(tracefile.FILE_MAGIC, "little")
        else:
            expected = getattr(abi if hasattr(abi, name) else tracefile, name)
        assert value == expected, name


# --- fixed classes the strategies draw instances of ----------------------------------

@dataclasses.dataclass
class Point:
    x: int
    y: float = 0.5
    label: str = "p"
    tags: list = dataclasses.field(default_factory=list)
    ref: object = None
    K: ClassVar[int] = 3


@dataclasses.dataclass
class Late:
    a: int
    b: int = dataclasses.field(init=False)  # never set: UNSET


@dataclasses.dataclass
class Guarded:
    a: int
    b: int = 0


# A declared field behind a property: reading it would run code, so FAULT.
Guarded.b = property(lambda self: 1 / 0)  # type: ignore[assignment]


class Slots:
    __slots__ = ("a", "b", "c")


class SlotsChild(Slots):
    __slots__ = ("d", "a2")


class SlotsWithDict(Slots):
    pass


class Plain:
    pass


class MyInt(int):
    pass


class MyStr(str):
    pass


class MyFloat(float):
    pass


class MyList(list):
    pass


class MyDict(dict):
    pass


class MyBytes(bytes):
    pass


class MySet(set):
    pass


class MyError(Exception):
    pass


NT = collections.namedtuple("NT", "a b c")
Wide = collections.namedtuple("Wide", [f"f{i}" for i in range(16)])


# --- named values: classes, functions, methods and modules --------------------------

class Meta(type):
    pass


class Node(metaclass=Meta):
    def method(self):
        pass

    @classmethod
    def make(cls):
        pass


class Lazy(types.ModuleType):
    pass


def _nameless_module() -> types.ModuleType:
    m = types.ModuleType("m")
    m.__dict__["__name__"] = 3  # not a str: "?"
    return m


def _moduleless_function():
    f = lambda: 0  # noqa: E731
    f.__module__ = None  # not a str: "?"
    return f


NAMED = [Node, Meta, type, int, Node.method, Node().method, Node.make, len, print, [].append,
         dict.fromkeys, str.upper, object.__init__, dict.__dict__["fromkeys"], collections,
         Lazy("lazy"), _nameless_module(), _moduleless_function(), types.MethodType(len, 1),
         _plain_function := (lambda x: x)]


def test_named_values_match_and_carry_their_names() -> None:
    for obj in NAMED + [NAMED, {"k": Node, "f": len}, NT(Node, len, collections)]:
        check(obj)
    entry = encode_value(Node).types[0]
    assert (entry.cls, entry.named, entry.name) == (f"{__name__}.Meta", "class", f"{__name__}.Node")
    assert encode_value(Node).words == [abi.named_id(entry.cls, entry.name),
                                        abi.layout(0, abi.Form.NAMED, [])]
    assert [e.name for e in encode_value([len, Node().method, collections]).types][1:] == \
        ["builtins.len", f"{__name__}.Node.method", "collections"]


# --- strategies --------------------------------------------------------------------

BOUNDARY_INTS = [0, 1, -1, 2**63 - 1, -(2**63), 2**63, -(2**63) - 1, 2**64 - 1, 2**64, -(2**64)]
ints = st.one_of(
    st.integers(),
    st.sampled_from(BOUNDARY_INTS),
    st.integers(min_value=-(2**300), max_value=2**300),
)
floats = st.one_of(st.floats(), st.sampled_from([-0.0, math.nan, math.inf, -math.inf, 5e-324]))
# every code point, lone surrogates included; and long strings past the 88-byte prefix
code_points = st.integers(min_value=0, max_value=0x10FFFF).map(chr)
texts = st.one_of(
    st.text(max_size=20),
    st.lists(code_points, max_size=40).map("".join),
    st.tuples(st.sampled_from(["a", "é", "€", "😀", "\udc80"]), st.integers(80, 300)).map(
        lambda t: t[0] * t[1]),
)
blobs = st.one_of(st.binary(max_size=120), st.binary(max_size=120).map(bytearray))
scalars = st.one_of(ints, floats, st.none(), st.booleans(), texts, blobs,
                    st.integers(0, len(NAMED) - 1).map(NAMED.__getitem__))  # (a module named 3 has no repr)
hashables = st.one_of(ints, floats.filter(lambda f: not math.isnan(f)), st.none(), st.booleans(),
                      st.text(max_size=10), st.binary(max_size=10))
names = st.from_regex(r"[a-z_][a-z0-9_]{0,12}", fullmatch=True)


def _plain(attrs: dict) -> Plain:
    obj = Plain()
    obj.__dict__.update(attrs)
    return obj


def _slots(cls: type, values: list) -> object:
    obj = cls()
    for name, value in zip(("a", "b", "c", "d", "a2"), values, strict=True):
        if value is not _UNSET and hasattr(cls, name):
            setattr(obj, name, value)
    return obj


_UNSET = object()


def objects(children: st.SearchStrategy) -> st.SearchStrategy:
    """User-level objects whose fields are drawn from children."""
    maybe = st.one_of(st.just(_UNSET), children)
    return st.one_of(
        st.builds(Point, ints, floats, texts, st.lists(children, max_size=3), children),
        st.builds(Late, ints),
        st.builds(_guarded),
        st.builds(_slots, st.sampled_from([Slots, SlotsChild, SlotsWithDict]),
                  st.lists(maybe, min_size=5, max_size=5)),
        st.dictionaries(names, children, max_size=18).map(_plain),
        st.builds(NT, children, children, children),
        st.lists(children, min_size=16, max_size=16).map(lambda v: Wide(*v)),
        st.lists(children, max_size=14).map(lambda a: MyError(*a)),
        st.lists(children, max_size=3).map(lambda a: ValueError(*a)),
        ints.map(MyInt), texts.map(MyStr), floats.map(MyFloat),
        st.binary(max_size=30).map(MyBytes),
        st.lists(children, max_size=14).map(MyList),
        st.dictionaries(hashables, children, max_size=8).map(MyDict),
        st.sets(hashables, max_size=14).map(MySet),
    )


def _guarded() -> Guarded:
    obj = Guarded.__new__(Guarded)
    obj.__dict__["a"] = 7
    obj.__dict__["extra"] = "e"
    return obj


values = st.recursive(
    st.one_of(scalars, objects(scalars)),
    lambda children: st.one_of(
        st.lists(children, max_size=15),
        st.lists(children, max_size=15).map(tuple),
        st.dictionaries(hashables, children, max_size=8),
        st.sets(hashables, max_size=15),
        st.frozensets(hashables, max_size=15),
        objects(children),
    ),
    max_leaves=25,
)


@settings(max_examples=200, deadline=None)
@given(values)
def test_c_encoder_matches_reference(obj: object) -> None:
    check(obj)


@settings(max_examples=100, deadline=None)
@given(scalars)
def test_scalars_match_reference(obj: object) -> None:
    check(obj)


def test_fixed_zoo_of_builtins() -> None:
    import datetime
    import functools
    import sys

    def gen():
        yield 1

    loop: list = []
    loop.append(loop)
    d: dict = {}
    d["self"] = d
    for obj in [sys, Plain, len, check, gen(), functools.partial(check, 1), datetime.date(2020, 1, 2),
                memoryview(b"ab"), range(3), object(), loop, d, Late(1), _guarded(), Wide(*range(16)),
                SlotsChild(), NT(1, 2, 3), MyError(), 2**5000, -(2**5000), "x" * 10**5 + "é"]:
        check(obj)


# --- the type cache notices changes to a class ---------------------------------------

def test_cache_follows_class_mutation() -> None:
    class Mutable:
        pass

    obj = Mutable()
    obj.a = 1
    check(obj)
    Mutable.__qualname__ = "Renamed"
    check(obj)
    Mutable.__module__ = "elsewhere"
    check(obj)
    Mutable.__qualname__ = MyStr("StrSub")
    check(obj)
    check([obj, obj])


def test_cache_follows_new_dataclass_fields() -> None:
    class Base:
        __slots__ = ("s",)

    class Child(Base):
        pass

    obj = Child()
    obj.s = 1
    obj.z = 2
    check(obj)
    # a property now shadows a name that is not stored: nothing changes for plain objects
    Child.q = property(lambda self: 1 / 0)
    check(obj)
    Child.__dataclass_fields__ = Point.__dataclass_fields__  # now a "dataclass"
    check(obj)
    del Child.__dataclass_fields__
    check(obj)
    NT._fields = ("x", "y")  # namedtuple _fields replaced on the class
    try:
        check(NT(1, 2, 3))
    finally:
        NT._fields = ("a", "b", "c")
    check(NT(1, 2, 3))


# --- the per-class layout cache (instances without __slots__, by their dict's keys) ----

def test_layout_cache_follows_each_instance_keys() -> None:
    a, b, c, d, e, f, many = (Plain() for _ in range(7))
    a.x, a.y = 1, "one"
    b.y, b.x = "two", 2  # the same names in another order
    c.x = 3  # fewer names
    d.__dict__.update({"x": 4, "y": 5, "z": 6})
    name = "".join(["na", "me"])  # a str equal to the interned "name", not the same object
    e.__dict__[name] = 7
    e.name = 8  # replaces the value; the key stays the non-interned str
    f.name, f.x = 9, 10
    f.__dict__[1] = "a non-str key: not a field"
    many.__dict__.update({f"k{i}": i for i in range(20)})  # more keys than the cache holds
    for _ in range(3):
        for obj in (a, b, c, d, e, f, a, a, many, many, b):
            check(obj)


def test_layout_cache_follows_declared_fields_and_class_changes() -> None:
    @dataclasses.dataclass
    class DC:
        a: int
        b: str = "b"

    x, y = DC(1), DC(2)
    y.extra = 3
    for obj in (x, x, y, x, DC(4), DC(5)):  # fresh instances too: their dict is made on the way
        check(obj)
    del x.b  # a declared field in no storage, the class default is no descriptor: UNSET
    check(x)
    check(x)
    DC.b = property(lambda self: 1 / 0)  # type: ignore[assignment] # now reading it runs code: FAULT
    check(x)
    check(y)
    x.__dict__ = {"b": "new", "a": 5}  # another dict, other order
    check(x)
    check(x)


def test_layout_cache_leaves_dicts_of_builtin_bases_alone() -> None:
    import functools

    class Partial(functools.partial):
        pass

    p = Partial(len, "abc")
    p.note = "n"
    for _ in range(3):
        check(p)


# --- attributes read where CPython keeps them (3.11+: inline values, no dict made) -------

INLINE = sys.version_info >= (3, 11)


def dict_made(marker: list) -> bool:
    """Whether some dict holds marker: an instance dict made from its inline values would.

    A dict holding a list is tracked by the collector, whether made from inline values
    (3.11, 3.12) or sharing them (3.13), so gc.get_objects() lists it.
    """
    return any(type(o) is dict and any(v is marker for v in o.values()) for o in gc.get_objects())


def first_then_reference(obj: object, marker: list, inline: bool = False) -> None:
    """The C words, taken twice (full walk, then the layout cache) before anything asks
    for obj.__dict__, equal the reference's; recording made no dict that was not there.

    inline: obj must still keep its values inline (3.11+), or the check proves nothing;
    CPython makes the dict itself when an attribute does not fit the class's shared keys.
    """
    before = dict_made(marker)
    if INLINE and inline:
        assert not before
    words = [_recorder.encode(obj), _recorder.encode(obj)]
    assert dict_made(marker) == before, "recording materialised the instance dict"
    expected = encode_value(obj).words  # the reference asks for __dict__: the dict is made now
    assert words == [expected, expected]
    assert _recorder.encode(obj) == expected  # now read through the dict (split or shared values)


@dataclasses.dataclass
class Five:
    x: int
    y: int
    name: str
    weight: float
    flag: object


def test_inline_values_are_read_without_making_the_dict() -> None:
    class Fresh:  # its shared keys hold only what this test sets
        pass

    for make in (lambda m: Five(1, 2, "p", 0.5, m), lambda m: Five(-7, 2**40, "é" * 9, -0.0, [m])):
        marker: list = []
        first_then_reference(make(marker), marker, inline=True)
    marker = []
    obj = Fresh()
    obj.b, obj.a, obj.marker = "bee", None, marker
    first_then_reference(obj, marker, inline=True)


def test_inline_values_follow_each_instance_order_and_deletions() -> None:
    class Shared:
        pass

    def build(steps: list[tuple[str, object]]) -> tuple[Shared, list]:
        obj, marker = Shared(), []
        obj.marker = marker
        for name, value in steps:
            if value is _UNSET:
                delattr(obj, name)
            else:
                setattr(obj, name, value)
        return obj, marker

    scenarios = [
        [("a", 1), ("b", 2)],
        [("b", 2), ("a", 1)],  # the same shared keys, another insertion order
        [("a", 1), ("b", 2), ("a", _UNSET)],  # deleted: one field fewer
        [("a", 1), ("b", 2), ("a", _UNSET), ("a", 3)],  # re-added: now last
        [("a", 1), ("c", True), ("b", 2.5)],  # a key the others never had
        [("a", [1, 2]), ("b", Plain())],  # values the builtin shortcut does not take
        [(f"k{i}", i) for i in range(40)],  # more than the shared keys hold
        [],
    ]
    for _ in range(2):  # the second round meets a warm layout cache
        for steps in scenarios:
            obj, marker = build(steps)
            first_then_reference(obj, marker, inline=len(steps) < 20)


def test_changes_after_caching_are_seen() -> None:
    @dataclasses.dataclass
    class DC:
        a: int
        b: str = "b"

    def fresh() -> tuple[DC, list]:
        marker: list = []
        obj = DC(1)
        obj.m = marker
        return obj, marker

    first_then_reference(*fresh())
    obj, marker = fresh()
    _recorder.encode(obj)
    obj.extra = 5  # an attribute added after the layout was cached
    first_then_reference(obj, marker)
    obj, marker = fresh()
    _recorder.encode(obj)
    del obj.b  # a declared field removed: UNSET
    first_then_reference(obj, marker)
    DC.c = 3  # a class attribute: the type's version tag changes
    first_then_reference(*fresh())
    del DC.c
    first_then_reference(*fresh())
    DC.__qualname__ = "Renamed"  # the name changes; the tag need not
    first_then_reference(*fresh())

    class WithSlots(DC):
        __slots__ = ("s",)

    obj = WithSlots(2)
    obj.s, obj.m = "slot", []
    first_then_reference(obj, obj.m)

    class Sub(DC):
        pass

    obj = Sub(3)
    obj.m = []
    first_then_reference(obj, obj.m)


def test_instance_dicts_not_split_are_read_too() -> None:
    for _ in range(2):
        obj = Plain()
        obj.__dict__ = {"b": 1, "a": "x"}  # a dict of its own, not on the class's shared keys
        check(obj)
        check(obj)
        obj = Plain()
        obj.x = 1
        obj.__dict__[2] = "a non-str key turns the table combined"
        check(obj)
        check(obj)


# (name, value) set in order; _UNSET deletes the attribute
setattr_steps = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c", "d"]), st.one_of(st.just(_UNSET), scalars)), max_size=12)


class Settable:
    pass


@settings(max_examples=150, deadline=None)
@given(setattr_steps)
def test_attributes_set_and_deleted_in_any_order_match_reference(steps: list) -> None:
    obj, marker = Settable(), []
    obj.marker = marker
    for name, value in steps:
        if value is _UNSET:
            if hasattr(obj, name):
                delattr(obj, name)
        else:
            setattr(obj, name, value)
    first_then_reference(obj, marker)


# --- dicts read by key index (split tables) or by entry (combined ones) -----------------

def test_attributes_are_read_in_place_on_the_known_versions() -> None:
    """The layouts kdf_layout_check() tried at import held (else every dict is read
    through the C API, and the tests below would not reach the in-place readers)."""
    known = (3, 10) <= sys.version_info < (3, 14) and not sysconfig.get_config_var("Py_GIL_DISABLED")
    assert _recorder._layout() == known


def test_split_tables_are_read_by_key_index() -> None:
    """3.10 keeps an instance dict split over the class's shared keys while its
    attributes are set in key order; other orders and deletions make it combined.
    Each state is read twice (the second from the layout cache the first filled)."""
    class Shared:
        pass

    def build(*steps: tuple[str, object]) -> Shared:
        obj = Shared()
        for name, value in steps:
            if value is _UNSET:
                delattr(obj, name)
            else:
                setattr(obj, name, value)
        return obj

    scenarios = [
        (("x", 1), ("y", "why"), ("z", 0.5)),  # split: the shared keys, in order
        (("x", 1), ("y", "why")),  # split, fewer values than the shared keys
        (("x", 2), ("z", 0.5)),  # a key out of order: combined (3.10)
        (("y", "why"), ("x", 1), ("z", 0.5)),  # another order: combined (3.10)
        (("x", 1), ("y", 2), ("z", 3), ("y", _UNSET), ("y", 4)),  # deleted, re-added last
        (("x", 1), ("y", 2), ("z", 3), ("z", _UNSET), ("z", 4)),  # the same order after all
        (("x", [1]), ("y", 2**70), ("z", Plain())),  # values the builtin loop leaves
        (("x", 1), ("y", None), ("z", (1, "t"))),  # the last one only
        (("x", -1), ("y", True), ("z", "é"), ("w", b"b")),  # a new shared key
        (),
    ]
    for _ in range(2):
        for steps in scenarios + scenarios[::-1]:
            obj = build(*steps)
            check(obj)
            check(obj)


def test_split_tables_changed_after_caching_are_seen() -> None:
    @dataclasses.dataclass
    class DC:
        a: int
        b: str
        c: float

    obj = DC(1, "b", 0.5)
    check(obj)
    check(obj)
    obj.a = [1]  # a value the builtin loop does not take
    check(obj)
    obj.a = 2
    del obj.b  # a declared field gone: UNSET
    check(obj)
    obj.b = "b"  # back, now last
    check(obj)
    other = DC(1, "b", 0.5)
    other.d = 4  # an extra key on the shared keys
    check(other)
    check(DC(1, "b", 0.5))


def test_combined_dicts_are_read_by_entry() -> None:
    cases: list[dict] = [
        {"x": 1, "y": "why", "z": 0.5},
        {"y": None, "x": [1, 2]},
        {f"k{i}": i for i in range(40)},  # resized tables, wider indices
        {"x": 1, 2: "a non-str key (general entries on 3.11+)", "z": 3},
        {},
    ]
    holes = {f"k{i}": i for i in range(12)}
    for i in range(0, 12, 3):
        del holes[f"k{i}"]  # deleted entries stay as holes until the next resize
    holes["k0"] = "back, last"
    cases.append(holes)
    for _ in range(2):
        for attrs in cases:
            obj = Plain()
            obj.__dict__ = dict(attrs)
            check(obj)
            check(obj)
            if attrs:
                key = next(iter(attrs))
                del obj.__dict__[key]  # a hole where the cached layout had its first key
                check(obj)
                obj.__dict__[key] = attrs[key]
                check(obj)


# --- slots and namedtuple layouts, cached by class ------------------------------------

def test_slots_layouts_are_cached_and_follow_changes() -> None:
    class S5:
        __slots__ = ("x", "y", "name", "weight", "flag")

    def make(*values: object) -> S5:
        obj = S5()
        for name, value in zip(S5.__slots__, values, strict=True):
            if value is not _UNSET:
                setattr(obj, name, value)
        return obj

    for _ in range(2):
        check(make(1, 2, "p", 0.5, True))
        check(make(1, 2, "p", 0.5, True))  # the fixed-place reader
        check(make(-1, 2**70, "é" * 9, [1], Plain()))  # values the builtin loop leaves
        check(make(1, _UNSET, "p", _UNSET, None))  # never set
    obj = make(1, 2, "p", 0.5, True)
    check(obj)
    del obj.y  # unset after caching
    check(obj)
    obj.y = "back"
    check(obj)
    S5.extra = 3  # a class attribute: the tag changes, the plan and its cache are rebuilt
    check(obj)
    S5.x = "shadows the slot"  # the member descriptor is gone: x is no field any more
    check(make(_UNSET, 2, "p", 0.5, True))
    del S5.x, S5.extra
    check(make(_UNSET, 2, "p", 0.5, True))

    class Sub(S5):  # its own slot, then the base's
        __slots__ = ("z",)

    class SubDict(S5):  # slots and a dict: not cached
        pass

    for _ in range(2):
        sub = Sub()
        sub.z, sub.y = "z", 1  # (x has no slot any more)
        check(sub)
        check(sub)
        sd = SubDict()
        sd.y, sd.free = 1, "f"
        check(sd)
        check(sd)


def test_another_classes_slot_held_as_class_attribute_is_no_field() -> None:
    class A:
        __slots__ = ("x",)

    class B:
        __slots__ = ("y",)
        stolen = A.x  # a member descriptor that does not apply to B's instances

    obj = B()
    obj.y = 1
    for _ in range(2):  # the full walk, then the cached layout
        check(obj)
    assert list(encode_value(obj).types[-1].fields) == ["y"]


def test_slots_layouts_with_declared_fields() -> None:
    @dataclasses.dataclass
    class DS:  # slots are sorted by CPython; fields keep their declared order
        __slots__ = ("b", "a")
        b: int
        a: str

    for _ in range(3):
        check(DS(1, "a"))
    obj = DS(2, "b")
    del obj.a  # a declared field unset
    check(obj)


def test_namedtuple_layouts_are_cached_and_follow_changes() -> None:
    NT = collections.namedtuple("NT", "x y name weight flag")
    for _ in range(3):
        check(NT(1, 2, "p", 0.5, True))
        check(NT([1], 2**70, "é" * 9, -0.0, Plain()))
        check(tuple.__new__(NT, (1, 2)))  # another length: a miss, then cached again
        check(tuple.__new__(NT, (1, 2, 3, 4, 5, 6, 7)))  # more items than fields
    check(NT(1, 2, "p", 0.5, True))

    class Sub(NT):
        __slots__ = ()
        _fields = ("a", "b", "c", "d", "e")  # its own names

    for _ in range(2):
        check(Sub(1, 2, "p", 0.5, True))
    NT._fields = ("p", "q", "r", "s", "t")  # renamed after caching: the tag changes
    check(NT(1, 2, "p", 0.5, True))
    check(Sub(1, 2, "p", 0.5, True))
    Wide = collections.namedtuple("Wide", [f"f{i}" for i in range(20)])  # past the field cap
    for _ in range(2):
        check(Wide(*range(20)))
    Empty = collections.namedtuple("Empty", "")
    for _ in range(2):
        check(Empty())
