"""Reference value encoder: a Python object to its value words (docs/abi.md §2).

This is the oracle the C encoder in ``kcovdf._core`` is tested against word
for word. Like the C code it never runs code of the traced program: every read
goes through the C-level slot of a builtin type (``int.__int__(x)``,
``list.__getitem__(x, i)``, a member descriptor's ``__get__``), never through
``getattr`` on the object, so properties, ``__getattr__``, overridden dunder
methods and ``__class__`` tricks are not seen.
"""

from __future__ import annotations

import itertools
import struct
import types
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from kcovdf import abi
from kcovdf.abi import Form, Kind
from kcovdf.instrument.redact import DEFAULT_REDACT, Redactor

_I64_MIN = -(1 << 63)
_I64_MAX = (1 << 63) - 1
_U64 = (1 << 64) - 1

_type_module = type.__dict__["__module__"].__get__
_type_qualname = type.__dict__["__qualname__"].__get__
_type_mro = type.__dict__["__mro__"].__get__
_exc_args = BaseException.__dict__["args"].__get__
_type_flags = type.__dict__["__flags__"].__get__
_type_dict = type.__dict__["__dict__"].__get__
_func_module = types.FunctionType.__dict__["__module__"].__get__
_func_qualname = types.FunctionType.__dict__["__qualname__"].__get__
_builtin_self = types.BuiltinFunctionType.__dict__["__self__"].__get__
_builtin_module = types.BuiltinFunctionType.__dict__["__module__"].__get__
_builtin_name = types.BuiltinFunctionType.__dict__["__name__"].__get__
_method_func = types.MethodType.__dict__["__func__"].__get__
_module_dict = types.ModuleType.__dict__["__dict__"].__get__
#: Methods of C types read off the class (str.upper): their owner and name are C members.
_C_METHODS = (types.MethodDescriptorType, types.WrapperDescriptorType, types.ClassMethodDescriptorType)
_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: only classes defined in Python have __slots__ members
_MISSING = object()
_C_DESCRIPTORS = (types.GetSetDescriptorType, types.MemberDescriptorType)


_redact = Redactor(DEFAULT_REDACT)
#: A nested value withheld because of its name (a field, an attribute, a dict key).
_WITHHELD = (Kind.REDACTED, abi.REDACTED)


def set_redact(patterns: Sequence[str]) -> None:
    """Withhold, at every depth, the values whose names match ``patterns`` (see redact.py)."""
    global _redact
    _redact = Redactor(patterns)


def _named(name: object, value: tuple[int, int]) -> tuple[int, int]:
    """``value``, or the REDACTED kind when ``name`` (a field name or dict key) is redacted."""
    return _WITHHELD if _redact and issubclass(type(name), str) and _redact(str.__str__(name)) else value


class TypeEntry(NamedTuple):
    """One row of the trace's type table: an id, the class name, the field names; for a
    named value (a class, function, method or module: form NAMED) also what it is
    (``named``, one of ``abi.NAMED_KINDS``) and its qualified name."""

    id: int
    cls: str
    fields: tuple[str, ...]
    named: str = ""
    name: str = ""


class Encoded(NamedTuple):
    """Value words of one object and the type-table rows they refer to."""

    words: list[int]
    types: list[TypeEntry]


def qualified_name(cls: type) -> str:
    """``module.Qualname`` of a class, read from the type's own slots."""
    try:
        module = _type_module(cls)
    except AttributeError:
        module = None
    if not issubclass(type(module), str):
        module = "?"
    # str.__str__: a str subclass name must not run its own __format__/__str__
    return f"{str.__str__(module)}.{str.__str__(_type_qualname(cls))}"


def _str_or(obj: object, default: str) -> str:
    return str.__str__(obj) if issubclass(type(obj), str) else default  # type: ignore[arg-type]


def _function_name(func: object) -> str:
    return f"{_str_or(_func_module(func), '?')}.{_str_or(_func_qualname(func), '?')}"


def _builtin_function_name(func: object) -> str:
    owner = _builtin_self(func)
    name = _str_or(_builtin_name(func), "?")
    if owner is None or issubclass(type(owner), types.ModuleType):
        return f"{_str_or(_builtin_module(func), '?')}.{name}"
    # a method of a C type, bound to an instance (or, for a classmethod, to the class)
    return f"{qualified_name(owner if issubclass(type(owner), type) else type(owner))}.{name}"


def naming(obj: object) -> tuple[str, str] | None:
    """(what, qualified name) of a class, function, method or module: the NAMED form; else None.

    Names come from C-level storage as everywhere here (a function's ``__module__`` and
    ``__qualname__`` members, a module's ``__name__`` in its dict), never from ``getattr``.
    """
    cls = type(obj)
    if issubclass(cls, type):
        return "class", qualified_name(obj)  # type: ignore[arg-type]
    if cls is types.FunctionType:
        return "function", _function_name(obj)
    if issubclass(cls, types.BuiltinFunctionType):
        return "builtin", _builtin_function_name(obj)
    if cls in _C_METHODS:
        owner = cls.__dict__["__objclass__"].__get__(obj)
        return "builtin", f"{qualified_name(owner)}.{_str_or(cls.__dict__['__name__'].__get__(obj), '?')}"
    if cls is types.MethodType:
        func = _method_func(obj)
        inner = naming(func)
        return "method", inner[1] if inner else qualified_name(type(func))
    if issubclass(cls, types.ModuleType):
        return "module", _str_or(dict.get(_module_dict(obj), "__name__"), "?")
    return None


def _named_entry(obj: object, cls: type) -> TypeEntry | None:
    got = naming(obj)
    if got is None:
        return None
    name = qualified_name(cls)
    return TypeEntry(abi.named_id(name, got[1]), name, (), got[0], got[1])


def _i64(v: int) -> int:
    return v & _U64


def _prefix7(head: bytes, length: int) -> int:
    return min(length, abi.TOTAL_CAP) << 56 | int.from_bytes(head[:7], "little")


def _chunks(data: bytes, count: int) -> list[int]:
    return [int.from_bytes(data[i:i + 8], "little") for i in range(0, min(len(data), 8 * count), 8)]


def _utf8(s: str) -> bytes:
    # surrogatepass: a lone surrogate is a legal str, and must not fail a record
    return str.encode(s, "utf-8", "surrogatepass")


def _int_value(obj: object) -> int:
    return int.__int__(obj)  # type: ignore[arg-type]


def nested(obj: object, seen: dict[int, TypeEntry]) -> tuple[int, int]:
    """(kind, word) of a value that sits inside another one (one word, no recursion)."""
    cls = type(obj)
    if obj is None:
        return Kind.NONE, 0
    if cls is bool:
        return Kind.BOOL, int(obj is True)
    # issubclass on type(obj), never isinstance: isinstance consults a __class__ property
    if issubclass(cls, int):
        v = _int_value(obj)
        if _I64_MIN <= v <= _I64_MAX:
            return Kind.INT, _i64(v)
        return Kind.INT_TRUNC, _i64(v)
    if issubclass(cls, float):
        return Kind.FLOAT, struct.unpack("<Q", struct.pack("<d", float.__float__(obj)))[0]
    if issubclass(cls, str):
        data = _utf8(str.__str__(obj))
        return Kind.STR7, _prefix7(data, len(data))
    if issubclass(cls, (bytes, bytearray)):
        base = bytes if issubclass(cls, bytes) else bytearray
        return Kind.BYTES7, _prefix7(bytes(base.__getitem__(obj, slice(0, 7))), base.__len__(obj))
    entry = _named_entry(obj, cls)
    if entry is None:
        name = qualified_name(cls)
        entry = TypeEntry(abi.class_id(name), name, ())
    seen.setdefault(entry.id, entry)
    return Kind.OBJ, entry.id


def _slot_fields(obj: object, cls: type) -> list[tuple[str, tuple[int, int] | None]]:
    out: list[tuple[str, tuple[int, int] | None]] = []
    for klass in _type_mro(cls):
        own = _type_dict(klass)
        if "__slots__" not in own or not (_type_flags(klass) & _HEAPTYPE):
            continue
        for name, desc in own.items():
            # another class's slot held as a class attribute does not apply to obj: skipped
            if type(desc) is types.MemberDescriptorType and issubclass(cls, desc.__objclass__):
                try:
                    out.append((name, ("value", desc.__get__(obj))))  # type: ignore[arg-type]
                except AttributeError:
                    out.append((name, None))
    return out


def _instance_dict(obj: object, cls: type) -> dict | None:
    if issubclass(cls, (type, types.ModuleType)):
        return None  # a class or module: its dict is a namespace, not state
    for klass in _type_mro(cls):
        desc = _type_dict(klass).get("__dict__")
        if type(desc) in _C_DESCRIPTORS:
            d = desc.__get__(obj, cls)
            return d if issubclass(type(d), dict) else None
    return None


def _namedtuple_fields(cls: type) -> tuple[str, ...] | None:
    if not issubclass(cls, tuple):
        return None
    fields = _type_dict(cls).get("_fields")
    if type(fields) is tuple and all(type(f) is str for f in fields):
        return fields
    return None


def encode_value(obj: object, *, redacted: bool = False) -> Encoded:
    """Value words (shape, layout, fields) of ``obj`` as the C core writes them."""
    seen: dict[int, TypeEntry] = {}
    if redacted:
        return _finish(abi.REDACTED_CLASS, (), 1, Form.REDACTED,
                       [(Kind.REDACTED, abi.REDACTED)], seen)
    cls = type(obj)
    name = qualified_name(cls)
    if obj is None or cls is bool or issubclass(cls, float):
        return _finish(name, (), 1, Form.SCALAR, [nested(obj, seen)], seen)
    if issubclass(cls, int):
        v = _int_value(obj)
        if _I64_MIN <= v <= _I64_MAX:
            return _finish(name, (), 1, Form.SCALAR, [(Kind.INT, _i64(v))], seen)
        sign = -1 if v < 0 else 1
        return _finish(name, (), 1, Form.BIGINT,
                       [(Kind.INT_TRUNC, _i64(v)), (Kind.INT, _i64(sign * v.bit_length()))], seen)
    if issubclass(cls, str):
        s = str.__str__(obj)
        data = _utf8(s)
        fields = [(Kind.LEN, len(s)), (Kind.LEN, len(data))]
        fields += [(Kind.CHUNK, w) for w in _chunks(data, abi.STR_CHUNKS)]
        return _finish(name, (), 0, Form.STR, fields, seen)
    if issubclass(cls, (bytes, bytearray)):
        base = bytes if issubclass(cls, bytes) else bytearray
        n = base.__len__(obj)
        data = bytes(base.__getitem__(obj, slice(0, 8 * abi.BYTES_CHUNKS)))
        fields = [(Kind.LEN, n)] + [(Kind.CHUNK, w) for w in _chunks(data, abi.BYTES_CHUNKS)]
        return _finish(name, (), 0, Form.BYTES, fields, seen)
    if issubclass(cls, BaseException):
        args = _exc_args(obj)
        return _finish(name, (), len(args), Form.EXCEPTION, _items(args, tuple, seen), seen)
    nt_fields = _namedtuple_fields(cls)
    if nt_fields is not None:
        n = min(tuple.__len__(obj), len(nt_fields), abi.MAX_FIELDS)
        items = [tuple.__getitem__(obj, i) for i in range(n)]
        fields = [(nt_fields[i], nested(v, seen), _more(v, abi.NESTED_CHUNKS)) for i, v in enumerate(items)]
        return _finish(name, nt_fields[:n], len(nt_fields), Form.OBJECT, _object_words(fields), seen)
    for base in (list, tuple):
        if issubclass(cls, base):
            fields = _items(obj, base, seen)
            return _finish(name, (), fields[0][1], Form.SEQ, fields, seen)
    for base in (set, frozenset):
        if issubclass(cls, base):
            it = base.__iter__(obj)
            elems = list(itertools.islice(it, abi.SEQ_ITEMS))
            n = _count(elems, abi.SEQ_ITEMS, base.__len__, obj)
            return _finish(name, (), n, Form.SEQ,
                           [(Kind.LEN, n)] + _run(elems, abi.MAX_FIELDS - 1 - len(elems), seen), seen)
    if issubclass(cls, dict):
        pairs = list(itertools.islice(dict.items(obj), abi.MAP_PAIRS))
        n = _count(pairs, abi.MAP_PAIRS, dict.__len__, obj)
        flat = [x for pair in pairs for x in pair]
        redacted = _redact and [issubclass(type(k), str) and _redact(str.__str__(k)) for k, _ in pairs]
        fields = [(Kind.LEN, n)] + _run(flat, abi.MAX_FIELDS - 1 - len(flat), seen,
                                        lambda i: bool(redacted) and i % 2 == 1 and redacted[i // 2])
        return _finish(name, (), n, Form.MAP, fields, seen)
    entry = _named_entry(obj, cls)
    if entry is not None:
        return Encoded([entry.id, abi.layout(0, Form.NAMED, [])], [entry])
    return _encode_object(obj, cls, name, seen)


# Containers are copied in one C call before their items are read: between two reads in
# Python another thread may change them (the C encoder runs no Python code meanwhile).
def _count(copied: Sequence[object], cap: int, length: Callable[[Any], int], obj: object) -> int:
    # the copy's own size where it holds everything, so that the count and the items agree
    return len(copied) if len(copied) < cap else length(obj)


def _items(obj: object, base: type, seen: dict[int, TypeEntry]) -> list[tuple[int, int]]:
    items = base.__getitem__(obj, slice(0, abi.SEQ_ITEMS))
    n = _count(items, abi.SEQ_ITEMS, base.__len__, obj)
    return [(Kind.LEN, n)] + _run(items, abi.MAX_FIELDS - 1 - len(items), seen)


def _more(obj: object, spare: int) -> list[tuple[int, int]]:
    """CHUNK words continuing a nested str or bytes past the 7 bytes of its STR7/BYTES7
    word: up to NESTED_CHUNKS of them, and no more than ``spare``."""
    cls = type(obj)
    if spare <= 0:
        return []
    if issubclass(cls, str):
        data = _utf8(str.__str__(obj))[7:7 + 8 * abi.NESTED_CHUNKS]
    elif issubclass(cls, (bytes, bytearray)):
        base = bytes if issubclass(cls, bytes) else bytearray
        data = bytes(base.__getitem__(obj, slice(7, 7 + 8 * abi.NESTED_CHUNKS)))
    else:
        return []
    return [(Kind.CHUNK, w) for w in _chunks(data, min(spare, abi.NESTED_CHUNKS))]


def _run(values: Sequence[object], spare: int, seen: dict[int, TypeEntry],
         withheld: Callable[[int], bool] = lambda i: False) -> list[tuple[int, int]]:
    """The nested words of ``values``, in order; the ``spare`` field words the record has
    left go, first come first served, to CHUNK words continuing their long strings and bytes.
    ``withheld(i)``: value i is REDACTED instead."""
    out: list[tuple[int, int]] = []
    for i, v in enumerate(values):
        if withheld(i):
            out.append(_WITHHELD)
            continue
        out.append(nested(v, seen))
        more = _more(v, spare)
        spare -= len(more)
        out += more
    return out


def _class_lookup(cls: type, name: str) -> object:
    for klass in _type_mro(cls):
        own = _type_dict(klass)
        if name in own:
            return own[name]
    return _MISSING


def _is_descriptor(obj: object) -> bool:
    # tp_descr_get != NULL: reading the attribute through the class would run its __get__
    return _class_lookup(type(obj), "__get__") is not _MISSING


def _dataclass_fields(cls: type) -> list[str] | None:
    fields = _class_lookup(cls, "__dataclass_fields__")
    if type(fields) is not dict:
        return None
    import dataclasses  # already imported: the class above was made by it

    field_type = dataclasses.Field.__dict__["_field_type"].__get__  # the slot, never a property
    return [name for name, f in fields.items()
            if type(name) is str and issubclass(type(f), dataclasses.Field)
            and _slot_or_none(field_type, f) is dataclasses._FIELD]  # type: ignore[attr-defined]


def _slot_or_none(get: object, obj: object) -> object:
    try:
        return get(obj)  # type: ignore[operator]
    except AttributeError:
        return None


#: A field of an object: its name, its nested word and the CHUNK words continuing a long str.
_Field = tuple[str, tuple[int, int], list[tuple[int, int]]]


def _stored(value: object, seen: dict[int, TypeEntry]) -> tuple[tuple[int, int], list[tuple[int, int]]]:
    return nested(value, seen), _more(value, abi.NESTED_CHUNKS)


def _encode_object(obj: object, cls: type, name: str, seen: dict[int, TypeEntry]) -> Encoded:
    stored: dict[str, tuple[tuple[int, int], list[tuple[int, int]]]] = {}
    for fname, got in _slot_fields(obj, cls):
        if fname not in stored:
            stored[fname] = ((Kind.UNSET, 0), []) if got is None else _stored(got[1], seen)
        elif got is not None:
            nested(got[1], seen)  # a repeated slot name is still met: its class registered
    d = _instance_dict(obj, cls)
    if d is not None:
        for k, v in list(dict.items(d)):
            if type(k) is str:
                stored.setdefault(k, _stored(v, seen))
    declared = _dataclass_fields(cls) or []
    order: list[_Field] = []
    for fname in declared:
        if fname in stored:
            order.append((fname, *stored[fname]))
        elif _is_descriptor(_class_lookup(cls, fname)):
            order.append((fname, (Kind.FAULT, abi.FAULT), []))
        else:
            order.append((fname, (Kind.UNSET, 0), []))
    listed = set(declared)
    order += [(k, *v) for k, v in stored.items() if k not in listed]
    kept = order[:abi.MAX_FIELDS]
    return _finish(name, tuple(k for k, _, _ in kept), len(order), Form.OBJECT, _object_words(kept), seen)


def _object_words(fields: list[_Field]) -> list[tuple[int, int]]:
    """The words of an OBJECT form's fields, each under its name (redaction), then the
    CHUNK words continuing their long strs and bytes in field order while spare words
    remain: after all fields, so that field j stays word j, as the type table names them."""
    words = [_named(k, v) for k, v, _ in fields]
    trailing: list[tuple[int, int]] = []
    for word, (_, _, more) in zip(words, fields, strict=True):
        if word is not _WITHHELD:
            trailing += more[:abi.MAX_FIELDS - len(words) - len(trailing)]
    return words + trailing


def _finish(name: str, fields: tuple[str, ...], total: int, form: int,
            values: list[tuple[int, int]], seen: dict[int, TypeEntry]) -> Encoded:
    sid = abi.shape_id(name, fields)
    entries = [TypeEntry(sid, name, tuple(fields))]
    entries += [e for cid, e in seen.items() if cid != sid]
    kinds = [k for k, _ in values]
    words = [sid, abi.layout(total, form, kinds)] + [w & _U64 for _, w in values]
    return Encoded(words, entries)
