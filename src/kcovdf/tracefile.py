"""The trace's table: JSON Lines (types, symbols, tasks) appended after the buffer.

Standard library only: the device reads its own table with it, and so do the readers.
"""

from __future__ import annotations

import json
from typing import Any

try:  # json's C encoder, called directly: a program recording the json module must not see kcovdf's lines
    from _json import encode_basestring as _c_str
    from _json import encode_basestring_ascii as _c_ascii
    from _json import make_encoder as _c_make_encoder
except ImportError:
    _c_make_encoder = None


def _unserializable(obj: object) -> object:
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def _dumps(obj: dict[str, Any], ascii: bool) -> str:
    """``json.dumps(obj, separators=(",", ":"), ensure_ascii=ascii)``, through no Python function of json."""
    if _c_make_encoder is None:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=ascii)
    encode = _c_make_encoder({}, _unserializable, _c_ascii if ascii else _c_str, None, ":", ",", False, False,
                             True)
    return "".join(encode(obj, 0))


def line(obj: dict[str, Any]) -> bytes:
    """One table line, without its newline: compact UTF-8 JSON.

    A lone surrogate in a name (legal in a Python str) cannot be UTF-8: such a line is
    written with \\u escapes instead, valid and lossless. The C core writes type lines
    byte for byte the same way.
    """
    try:
        return _dumps(obj, False).encode("utf-8")
    except UnicodeEncodeError:
        return _dumps(obj, True).encode("ascii")


def _clean(value: Any) -> Any:
    # A class or function name may hold a lone surrogate (legal in a Python str, escaped
    # as "\udXXX" in JSON); it cannot be written as UTF-8 by pyarrow, rich or a file, so
    # each one becomes U+FFFD while proper surrogate pairs become their character.
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return value
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    return value


def parse(data: bytes, name: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Table lines (JSON objects) of ``data``, and notes naming the lines that were skipped.

    The last line of a table that is still being appended to may be cut short; it is
    ignored with a note, as is any other line that is not a JSON object.
    """
    lines: list[dict[str, Any]] = []
    notes: list[str] = []
    raw = data.split(b"\n")
    for number, line in enumerate(raw, 1):
        if not line.strip(b"\0 \t\r"):
            continue
        try:
            obj = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            obj = None
        if isinstance(obj, dict):
            lines.append(_clean(obj))
        elif number == len(raw):
            notes.append(f"{name}: table: last line truncated ({len(line)} bytes ignored)")
        else:
            notes.append(f"{name}: table line {number}: not a JSON object (skipped)")
    return lines, notes
