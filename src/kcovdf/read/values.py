"""Values: the value words of one record as Python-like text, or as a JSON-able structure.

``structured(words, types)`` reads the words (docs/abi.md §2) into plain dicts,
lists, strings and numbers; ``text(value)`` prints that structure the way Python
would print the object, with the marks of what the record could not hold:
``'héllo…'`` for a cut string, ``[1, 2, …+5]`` for elements not recorded,
``FAULT``, ``<redacted>``, ``<unset>``, ``<mod.Class>`` for a nested object,
``<class 'mod.Class'>`` or ``<function mod.f>`` for a class or function passed as a value, and
``0x…(130 bits)`` for an int wider than 64 bits. Values of native code (classes
``native.*``) print as the kernel's trigger-view does: ``0x11``, ``pair(a=0x11, b=0x22)``.
Kernel records carry raw words:
one hex word per scalar, ``{0x1, 0x2}`` for struct fields.

Any words at all are accepted: what does not follow the encoding is shown as raw
hex words with the reason, never an exception.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from typing import Any

from kcovdf import abi
from kcovdf.abi import Form, Kind
from kcovdf.runtime.encode import TypeEntry

_U64 = (1 << 64) - 1
_ELLIPSIS = "…"
_PLAIN_SCALARS = {"builtins.int", "builtins.bool", "builtins.float", "builtins.NoneType"}
#: The class names of values recorded by native code (kcovdf/native: C and Rust).
_NATIVE = "native."


def _signed(word: int) -> int:
    return word - (1 << 64) if word >> 63 else word


def _utf8(data: bytes) -> str:
    # A prefix may end inside a multi-byte character: drop that partial character.
    for cut in range(4):
        try:
            return data[:len(data) - cut].decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            continue
    return data.decode("utf-8", "replace")


def _hex(word: int) -> str:
    return "FAULT" if word == abi.FAULT else f"{word:#x}"


def _raw(words: Sequence[int], why: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"form": "raw", "words": [_hex(w) for w in words]}
    if why:
        out["error"] = why
    return out


def nested(kind: int, word: int, types: Mapping[int, TypeEntry], more: bytes = b"") -> Any:
    """One field word read by its kind: a JSON scalar, or a dict for what JSON has no word for.

    ``more``: the bytes of the CHUNK words that continue a STR7/BYTES7 word (format 2).
    """
    if kind == Kind.NONE:
        return None
    if kind == Kind.INT:
        return _signed(word)
    if kind == Kind.BOOL:
        return word != 0
    if kind == Kind.FLOAT:
        f = struct.unpack("<d", struct.pack("<Q", word))[0]
        return f if math.isfinite(f) else {"float": repr(f)}
    if kind in (Kind.STR7, Kind.BYTES7):
        length = word >> 56
        data = ((word & ((1 << 56) - 1)).to_bytes(7, "little") + more)[:length]
        if kind == Kind.STR7:
            s = _utf8(data)
            return s if length <= len(data) else {"str": s, "length": length, "truncated": True}
        return {"bytes": data.hex(), "length": length, "truncated": length > len(data)}
    if kind == Kind.OBJ:
        entry = types.get(word)
        out = {"class": entry.cls if entry else None, "id": f"{word:#x}"}
        if entry and entry.named:
            out.update(named=entry.named, name=entry.name)
        return out
    if kind == Kind.INT_TRUNC:
        return {"int_low64": f"{word:#x}", "truncated": True}
    if kind == Kind.FAULT:
        return {"fault": True}
    if kind == Kind.REDACTED:
        return {"redacted": True}
    if kind == Kind.UNSET:
        return {"unset": True}
    if kind == Kind.LEN:
        return {"len": word}
    return {"word": f"{word:#x}", "kind": int(kind)}


def structured(words: Sequence[int], types: Mapping[int, TypeEntry],
               encoding: str = "kcovdf") -> dict[str, Any]:
    """The value of one record as JSON-able data; ``encoding="kernel"`` for raw kernel words."""
    words = [int(w) & _U64 for w in words]
    if encoding == "kernel":
        return _raw(words)
    if len(words) < 2:
        return _raw(words, "fewer than 2 value words (no shape and layout)")
    shape, lay = words[0], words[1]
    fields = words[2:]
    total, form, kinds = abi.split_layout(lay, len(fields))
    entry = types.get(shape)
    out: dict[str, Any] = {"form": "", "class": entry.cls if entry else None, "id": f"{shape:#x}"}
    try:
        body = _FORMS[Form(form)](fields, kinds, total, entry, types)
    except (ValueError, KeyError):
        return _raw(words, f"form {form} is not a known form")
    if body is None:
        return _raw(words, f"{Form(form).name} value with field kinds {kinds} does not follow the encoding")
    out["form"] = Form(form).name.lower()
    out.update(body)
    return out


def _scalar(fields: list[int], kinds: list[int], total: int, entry: Any, types: Any) -> Any:
    if len(fields) != 1:
        return None
    return {"value": nested(kinds[0], fields[0], types)}


def _bigint(fields: list[int], kinds: list[int], total: int, entry: Any, types: Any) -> Any:
    if kinds != [Kind.INT_TRUNC, Kind.INT]:
        return None
    bits = _signed(fields[1])
    low = fields[0] if bits >= 0 else -fields[0] & _U64
    return {"bits": abs(bits), "negative": bits < 0, "low64": f"{low:#x}"}


def _text_form(fields: list[int], kinds: list[int], nlen: int) -> tuple[list[int], bytes] | None:
    if len(fields) < nlen or kinds[:nlen] != [Kind.LEN] * nlen or \
            any(k != Kind.CHUNK for k in kinds[nlen:]):
        return None
    return fields[:nlen], b"".join(w.to_bytes(8, "little") for w in fields[nlen:])


def _str(fields: list[int], kinds: list[int], total: int, entry: Any, types: Any) -> Any:
    got = _text_form(fields, kinds, 2)
    if got is None:
        return None
    (chars, nbytes), data = got
    data = data[:nbytes]
    return {"value": _utf8(data), "length": chars, "bytes": nbytes, "truncated": len(data) < nbytes}


def _bytes(fields: list[int], kinds: list[int], total: int, entry: Any, types: Any) -> Any:
    got = _text_form(fields, kinds, 1)
    if got is None:
        return None
    (n,), data = got
    data = data[:n]
    return {"hex": data.hex(), "length": n, "truncated": len(data) < n}


def _items(fields: list[int], kinds: list[int], types: Any) -> tuple[int, list[Any]] | None:
    if not fields or kinds[0] != Kind.LEN:
        return None
    out, i = [], 1
    while i < len(fields):
        j = i + 1
        if kinds[i] in (Kind.STR7, Kind.BYTES7):
            while j < len(fields) and kinds[j] == Kind.CHUNK:  # its continuation (docs/abi.md §2.1)
                j += 1
        more = b"".join(w.to_bytes(8, "little") for w in fields[i + 1:j])
        out.append(nested(kinds[i], fields[i], types, more))
        i = j
    return fields[0], out


def _seq(fields: list[int], kinds: list[int], total: int, entry: Any, types: Any) -> Any:
    got = _items(fields, kinds, types)
    return None if got is None else {"length": got[0], "items": got[1]}


def _map(fields: list[int], kinds: list[int], total: int, entry: Any, types: Any) -> Any:
    got = _items(fields, kinds, types)
    if got is None:
        return None
    flat = got[1]
    return {"length": got[0], "items": [[flat[i], flat[i + 1]] for i in range(0, len(flat) - 1, 2)]}


def _continued(kind: int, word: int) -> int:
    """How many CHUNK words a writer gives a STR7/BYTES7 field word, space permitting."""
    if kind not in (Kind.STR7, Kind.BYTES7):
        return 0
    return min(abi.NESTED_CHUNKS, max(0, (word >> 56) - 7 + 7) // 8)


def _object(fields: list[int], kinds: list[int], total: int, entry: Any, types: Any) -> Any:
    # the fields, then the CHUNK words continuing their long strs, in field order (docs/abi.md §2.1)
    n = next((j for j, k in enumerate(kinds) if k == Kind.CHUNK), len(fields))
    chunks = fields[n:]
    if any(k != Kind.CHUNK for k in kinds[n:]):
        return None
    fields, kinds = fields[:n], kinds[:n]
    more = []
    for k, w in zip(kinds, fields, strict=True):
        take = chunks[:_continued(k, w)]
        chunks = chunks[len(take):]
        more.append(b"".join(c.to_bytes(8, "little") for c in take))
    # without its type entry a field has no name (null), and prints positionally
    names: list[str | None] = list(entry.fields) if entry and len(entry.fields) == len(fields) \
        else [None] * len(fields)
    rows = zip(names, kinds, fields, more, strict=True)
    return {"total": total, "fields": [[n, nested(k, w, types, m)] for n, k, w, m in rows]}


def _exception(fields: list[int], kinds: list[int], total: int, entry: Any, types: Any) -> Any:
    got = _items(fields, kinds, types)
    return None if got is None else {"length": got[0], "args": got[1]}


def _redacted(fields: list[int], kinds: list[int], total: int, entry: Any, types: Any) -> Any:
    return {}


def _named(fields: list[int], kinds: list[int], total: int, entry: Any, types: Any) -> Any:
    if fields:
        return None
    # without its type entry the reader knows only that it is a named value
    return {"named": entry.named or None, "name": entry.name or None} if entry else \
        {"named": None, "name": None}


_FORMS = {Form.SCALAR: _scalar, Form.BIGINT: _bigint, Form.STR: _str, Form.BYTES: _bytes,
          Form.SEQ: _seq, Form.MAP: _map, Form.OBJECT: _object, Form.EXCEPTION: _exception,
          Form.REDACTED: _redacted, Form.NAMED: _named}


# --- text ---------------------------------------------------------------------

def _short(cls: str | None, cid: str = "") -> str:
    """Class name as Python prints it in a repr: the last part of the qualified name."""
    return cls.rsplit(".", 1)[-1] if cls else f"<class {cid}>"


def _qual(cls: str | None, cid: str) -> str:
    if not cls:
        return f"class {cid}"
    return cls[len("builtins."):] if cls.startswith("builtins.") else cls


def _quoted(s: str | bytes, truncated: bool) -> str:
    """repr of a str or bytes, with … before the closing quote when it was cut."""
    r = repr(s)
    return r[:-1] + _ELLIPSIS + r[-1] if truncated else r


_NAMED_TEXT = {"class": "<class '{}'>", "function": "<function {}>", "method": "<bound method {}>",
               "builtin": "<built-in {}>", "module": "<module '{}'>"}


def _named_text(named: str | None, name: str | None, cid: str) -> str:
    """A class, function, method or module as Python would name it: ``<class 'pkg.Cls'>``."""
    if not named or not name:
        return f"<named {cid}>"
    short = name[len("builtins."):] if name.startswith("builtins.") else name
    return _NAMED_TEXT.get(named, "<{}>").format(short)


def nested_text(v: Any) -> str:
    """Text of one nested value (an element, a field, a dict key or value)."""
    if v is None or isinstance(v, (bool, int, float)):
        return repr(v)
    if isinstance(v, str):
        return repr(v)
    if "str" in v:
        return _quoted(v["str"], v["truncated"])
    if "bytes" in v:
        return _quoted(bytes.fromhex(v["bytes"]), v["truncated"])
    if v.get("named"):
        return _named_text(v["named"], v["name"], v["id"])
    if "class" in v:
        return f"<{_qual(v['class'], v['id'])}>"
    if "float" in v:
        return v["float"]
    if "int_low64" in v:
        return f"0x{_ELLIPSIS}{int(v['int_low64'], 16):016x}(>64 bits)"
    if v.get("fault"):
        return "FAULT"
    if v.get("redacted"):
        return "<redacted>"
    if v.get("unset"):
        return "<unset>"
    if "len" in v:
        return f"<len {v['len']}>"
    return v.get("word", "?")


def _more(shown: int, length: int) -> list[str]:
    return [f"{_ELLIPSIS}+{length - shown}"] if length > shown else []


def of_record(kind: str, arg_idx: int, words: Sequence[int], types: Mapping[int, TypeEntry],
              encoding: str = "kcovdf") -> dict[str, Any]:
    """The value of one record of a given kind: ``structured``, except for the records of format 2
    that hold no program value: an ARG_NONE entry (form "none") and an event (form "event",
    its word: the resumer's call id of a resume)."""
    if kind == "entry" and arg_idx == abi.ARG_NONE:
        return {"form": "none"}
    if kind in ("resume", "suspend", "event"):
        return {"form": "event", "event": kind if kind != "event" else arg_idx,
                "word": _hex(int(words[0]) & _U64) if len(words) else None}
    return structured(words, types, encoding)


def text(value: Mapping[str, Any]) -> str:
    """Python-like text of a value returned by ``structured`` (or ``of_record``: "" for no value)."""
    form = value["form"]
    cls = value.get("class")
    if form in ("none", "event"):
        return ""
    if form == "raw":
        words = value["words"]
        return words[0] if len(words) == 1 else "{" + ", ".join(words) + "}"
    if form == "scalar":
        if cls and cls.startswith(_NATIVE):
            return _native_scalar(cls, value["value"])
        inner = nested_text(value["value"])
        return inner if cls is None or cls in _PLAIN_SCALARS else f"{_short(cls)}({inner})"
    if form == "bigint":
        sign = "-" if value["negative"] else ""
        return f"{sign}0x{_ELLIPSIS}{int(value['low64'], 16):016x}({value['bits']} bits)"
    if form == "redacted":
        return "<redacted>"
    if form == "named":
        return _named_text(value["named"], value["name"], value["id"])
    if form == "str":
        inner = _quoted(value["value"], value["truncated"])
        return inner if cls in (None, "builtins.str") else f"{_short(cls)}({inner})"
    if form == "bytes":
        data = bytes.fromhex(value["hex"])
        inner = _quoted(data, value["truncated"])
        if cls == "builtins.bytearray":
            return f"bytearray({inner})"
        return inner if cls in (None, "builtins.bytes") else f"{_short(cls)}({inner})"
    if form == "seq":
        return _seq_text(cls, value["items"], value["length"])
    if form == "map":
        parts = [f"{nested_text(k)}: {nested_text(v)}" for k, v in value["items"]]
        body = "{" + ", ".join(parts + _more(len(parts), value["length"])) + "}"
        return body if cls in (None, "builtins.dict") else f"{_short(cls)}({body})"
    if form == "object":
        show = _native_field if cls and cls.startswith(_NATIVE) else nested_text
        parts = [show(v) if n is None else f"{n}={show(v)}" for n, v in value["fields"]]
        return f"{_short(cls, value['id'])}(" + ", ".join(parts + _more(len(parts), value["total"])) + ")"
    if form == "exception":
        parts = [nested_text(a) for a in value["args"]]
        return f"{_short(cls, value['id'])}(" + ", ".join(parts + _more(len(parts), value["length"])) + ")"
    return "?"


def _native_scalar(cls: str, v: Any) -> str:
    """A C or Rust scalar (class ``native.u64``, ``native.i32``, ``native.ptr``…: docs/native.md)
    as trigger-view prints it: unsigned ints and pointers in hex, signed ints in decimal."""
    if cls == "native.void":
        return "void"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v & _U64:#x}" if cls == "native.ptr" or cls.startswith("native.u") else str(v)
    return nested_text(v)


def _native_field(v: Any) -> str:
    """A field of a C or Rust struct: an int in hex (in decimal when negative: a signed field)."""
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:#x}" if v >= 0 else str(v)
    return nested_text(v)


def _seq_text(cls: str | None, items: list[Any], length: int) -> str:
    parts = [nested_text(v) for v in items] + _more(len(items), length)
    inner = ", ".join(parts)
    if cls == "builtins.tuple":
        return f"({inner},)" if length == 1 and len(items) == 1 else f"({inner})"
    if cls == "builtins.set":
        return "{" + inner + "}" if parts else "set()"
    if cls == "builtins.frozenset":
        return "frozenset({" + inner + "})" if parts else "frozenset()"
    body = f"[{inner}]"
    return body if cls in (None, "builtins.list") else f"{_short(cls)}({body})"


def render(words: Sequence[int], types: Mapping[int, TypeEntry], encoding: str = "kcovdf") -> str:
    """Python-like text of one record's value words."""
    return text(structured(words, types, encoding))
