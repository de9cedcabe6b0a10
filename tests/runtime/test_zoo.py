"""The adversarial object zoo: recording never crashes, never runs the object's code,
and the words of each core equal the reference encoder's."""

from __future__ import annotations

import datetime
import decimal
import functools
import mmap
import os
import struct
import threading
import unittest.mock
from collections.abc import Callable

import numpy
import pytest

from conftest import R
from kcovdf import abi, tracefile
from kcovdf.runtime.encode import encode_value

# Every test runs on each core (conftest's recorder fixture); R is the one in use.
pytestmark = pytest.mark.usefixtures("recorder")

CALLS: list[str] = []  # every piece of zoo code that runs appends its name


def ran(name: str) -> None:
    CALLS.append(name)


class Props:
    def __init__(self) -> None:
        self.stored = 1

    @property
    def boom(self) -> int:
        ran("property")
        raise RuntimeError("property ran")


class Spy:
    def __init__(self) -> None:
        object.__setattr__(self, "x", 1)

    def __getattr__(self, name: str) -> object:
        ran("__getattr__")
        return 42

    def __getattribute__(self, name: str) -> object:
        ran("__getattribute__")
        return object.__getattribute__(self, name)


class Slotted:
    __slots__ = ("a", "b", "c")


class Counting:
    """Every dunder the encoder could be tempted to call, each recording that it ran."""

    def __eq__(self, other: object) -> bool:
        ran("__eq__")
        return False

    def __hash__(self) -> int:
        ran("__hash__")
        return 1

    def __repr__(self) -> str:
        ran("__repr__")
        return "Counting()"

    def __len__(self) -> int:
        ran("__len__")
        raise RuntimeError

    def __iter__(self):  # type: ignore[no-untyped-def]
        ran("__iter__")
        raise RuntimeError


class NastyStr(str):
    def __str__(self) -> str:
        ran("str.__str__")
        raise RuntimeError

    def __len__(self) -> int:
        ran("str.__len__")
        return -1

    def __eq__(self, other: object) -> bool:
        ran("str.__eq__")
        return True

    def __hash__(self) -> int:
        ran("str.__hash__")
        return 0

    def encode(self, *a: object) -> bytes:  # type: ignore[override]
        ran("str.encode")
        return b""

    def __format__(self, spec: str) -> str:
        ran("str.__format__")
        return ""


class NastyInt(int):
    def __int__(self) -> int:
        ran("int.__int__")
        raise RuntimeError

    def __index__(self) -> int:
        ran("int.__index__")
        raise RuntimeError

    def __eq__(self, other: object) -> bool:
        ran("int.__eq__")
        return True

    def __hash__(self) -> int:
        ran("int.__hash__")
        return 0

    def bit_length(self) -> int:
        ran("int.bit_length")
        return 0


class NastyList(list):
    def __len__(self) -> int:
        ran("list.__len__")
        return 0

    def __iter__(self):  # type: ignore[no-untyped-def]
        ran("list.__iter__")
        raise RuntimeError

    def __getitem__(self, i):  # type: ignore[no-untyped-def]
        ran("list.__getitem__")
        raise RuntimeError


class NastySet(set):
    def __iter__(self):  # type: ignore[no-untyped-def]
        ran("set.__iter__")
        raise RuntimeError


class NastyDict(dict):
    def items(self):  # type: ignore[no-untyped-def,override]
        ran("dict.items")
        raise RuntimeError

    def __iter__(self):  # type: ignore[no-untyped-def]
        ran("dict.__iter__")
        raise RuntimeError


class FakeClass:
    def __init__(self) -> None:
        self.v = 3

    @property  # type: ignore[misc]
    def __class__(self) -> type:  # noqa: F811
        ran("__class__")
        return float


class Meta(type):
    def __getattribute__(cls, name: str) -> object:
        ran("Meta.__getattribute__")
        return type.__getattribute__(cls, name)


class WithMeta(metaclass=Meta):
    pass


def _self_list() -> list:
    loop: list = [1]
    loop.append(loop)
    return loop


def _self_dict() -> dict:
    d: dict = {"a": 1}
    d["me"] = d
    return d


def _slotted_partly() -> Slotted:
    s = Slotted()
    s.b = "set"
    return s


def _gen():  # type: ignore[no-untyped-def]
    ran("generator body")
    yield 1


def _mock() -> unittest.mock.Mock:
    m = unittest.mock.Mock()
    m.attr = 5
    return m


def _magic() -> unittest.mock.MagicMock:
    m = unittest.mock.MagicMock()
    m.side_effect = lambda *a: ran("MagicMock()")
    return m


ZOO: dict[str, Callable[[], object]] = {
    "raising property": Props,
    "__getattr__/__getattribute__ spy": Spy,
    "Mock": _mock,
    "MagicMock": _magic,
    "unset __slots__": Slotted,
    "partly set __slots__": _slotted_partly,
    "huge int": lambda: 7**5000,
    "huge negative int": lambda: -(3**4000),
    "self-referencing list": _self_list,
    "self-referencing dict": _self_dict,
    "counting dunders": Counting,
    "list of counting": lambda: [Counting(), Counting()],
    "dict keyed by counting": lambda: {Counting(): Counting()},
    "str subclass": lambda: NastyStr("hello wörld"),
    "int subclass": lambda: NastyInt(12345),
    "huge int subclass": lambda: NastyInt(2**100),
    "list subclass": lambda: NastyList([1, 2, 3]),
    "set subclass": lambda: NastySet({1, 2}),
    "dict subclass": lambda: NastyDict(a=1),
    "__class__ property": FakeClass,
    "metaclass __getattribute__": WithMeta,
    "datetime": lambda: datetime.datetime(2024, 2, 29, 12, 0, tzinfo=datetime.timezone.utc),
    "Decimal": lambda: decimal.Decimal("3.14159"),
    "numpy array": lambda: numpy.arange(12).reshape(3, 4),
    "numpy scalar": lambda: numpy.float64(2.5),
    "memoryview": lambda: memoryview(b"abcdef"),
    "functools.partial": lambda: functools.partial(ran, "partial"),
    "module": lambda: os,
    "class": lambda: Props,
    "function": lambda: ran,
    "generator": _gen,
    "exception with odd args": lambda: KeyError(Counting(), NastyStr("k")),
}


def new_mapping(words: int) -> mmap.mmap:
    m = mmap.mmap(-1, tracefile.FILE_HEADER_SIZE + 8 * words)
    m[:tracefile.FILE_HEADER_SIZE] = tracefile.pack_header(words, os.getpid(), 0)
    return m


def record_values(m: mmap.mmap) -> list[list[int]]:
    """Value words of every record, in order (framing is checked in test_core_writer)."""
    n = struct.unpack_from("<Q", m, tracefile.FILE_HEADER_SIZE)[0]
    words = struct.unpack_from(f"<{n}Q", m, tracefile.FILE_HEADER_SIZE + 8)
    out, i = [], 0
    while i < n:
        nvals = words[i] >> 24 & 0xF
        out.append(list(words[i + 3:i + 3 + nvals]))
        i += 3 + nvals
    return out


@pytest.mark.parametrize("name", list(ZOO))
def test_zoo_object_is_recorded_without_running_its_code(name: str) -> None:
    obj = ZOO[name]()
    CALLS.clear()
    m = new_mapping(1024)
    R.enable(m, -1)
    try:
        R.entry(1, obj, [obj], {"k": obj})
        assert R.ret(2, obj) is obj
    finally:
        R.disable(m)
    core_words = [R.encode(obj), R.encode(obj, redacted=True)]
    assert CALLS == [], f"code of the object ran: {CALLS}"
    expected = [encode_value(x).words for x in (obj, [obj], {"k": obj}, obj)]
    assert record_values(m) == expected
    assert core_words == [expected[0], encode_value(obj, redacted=True).words]
    assert CALLS == [], f"the reference ran code of the object: {CALLS}"


def test_spy_side_effects_never_happened() -> None:
    spy = Spy()
    CALLS.clear()
    words = R.encode(spy)
    assert CALLS == []
    # the one stored attribute is there, named and encoded as an int
    assert words[1] >> 56 == 1 and words[2] == 1


def test_object_mutated_by_another_thread_while_recorded() -> None:
    class Bag:
        pass

    bag, items = Bag(), list(range(20))
    stop = threading.Event()

    def mutate() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            setattr(bag, f"a{i % 40}", i)
            if i % 3 == 0:
                bag.__dict__.pop(f"a{(i * 7) % 40}", None)
            items.append(i)
            if len(items) > 30:
                del items[:10]

    t = threading.Thread(target=mutate)
    m = new_mapping(1 << 17)
    t.start()
    R.enable(m, -1)
    try:
        for _ in range(2000):
            R.entry(3, bag, items)
    finally:
        R.disable(m)
        stop.set()
        t.join()
    recs = record_values(m)
    assert len(recs) == 4000
    for shape_layout in recs[0::2]:  # Bag: OBJECT form, total = fields found at that moment
        assert shape_layout[1] >> 52 & 0xF == abi.Form.OBJECT
        assert len(shape_layout) == 2 + min(shape_layout[1] >> 56, abi.MAX_FIELDS)
    for seq in recs[1::2]:
        assert seq[1] >> 52 & 0xF == abi.Form.SEQ and seq[2] == seq[1] >> 56
    # once the mutator stops, the words are the reference's again
    assert R.encode(bag) == encode_value(bag).words
    assert R.encode(items) == encode_value(items).words
