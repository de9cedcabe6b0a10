"""FuzzedDataProvider: typed values out of the fuzzer's bytes, with Atheris's method names.

Each ``Consume*`` call takes bytes from the front of the input. While the fuzzer runs
(``provenance`` is a list), every call also notes where its value came from, as
``(start, end, kind, arg, value)``: the input-to-state mutation then writes a compared
or recorded value back *in the encoding of that call* (``encode()``), so a value the
program compares an ``int`` from ``ConsumeIntInRange`` against lands in the input as the
bytes that produce it, not as its own bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any, TypeVar

T = TypeVar("T")

#: Set by the fuzzer to a list while it runs: each Consume call appends its provenance.
provenance: list[tuple[int, int, str, Any, Any]] | None = None

_DOUBLE = struct.Struct("<d")
_U64_MAX = (1 << 64) - 1


class FuzzedDataProvider:
    """Typed values consumed from the front of ``data`` (Atheris's FuzzedDataProvider API)."""

    def __init__(self, data: bytes) -> None:
        self._data = bytes(data)
        self._pos = 0

    # --- bookkeeping --------------------------------------------------------------------------
    def _take(self, n: int) -> bytes:
        n = max(0, min(n, len(self._data) - self._pos))
        out = self._data[self._pos:self._pos + n]
        self._pos += n
        return out

    def _note(self, start: int, kind: str, arg: Any, value: Any) -> None:
        if provenance is not None and len(provenance) < 256:
            provenance.append((start, self._pos, kind, arg, value))

    def remaining_bytes(self) -> int:
        """How many bytes are left."""
        return len(self._data) - self._pos

    def buffer(self) -> bytes:
        """The bytes not consumed yet."""
        return self._data[self._pos:]

    # --- bytes and strings --------------------------------------------------------------------
    def ConsumeBytes(self, count: int) -> bytes:
        """Up to ``count`` bytes."""
        start = self._pos
        out = self._take(count)
        self._note(start, "bytes", count, out)
        return out

    def ConsumeUnicode(self, count: int) -> str:
        """A str of up to ``count`` code points: a first byte picks ASCII, UTF-16 or UTF-32."""
        return self._unicode(count, surrogates=True)

    def ConsumeUnicodeNoSurrogates(self, count: int) -> str:
        """As ConsumeUnicode, without surrogate code points."""
        return self._unicode(count, surrogates=False)

    def ConsumeString(self, count: int) -> str:
        """A str of up to ``count`` code points (ConsumeUnicode)."""
        return self._unicode(count, surrogates=True)

    def _unicode(self, count: int, surrogates: bool) -> str:
        start = self._pos
        tag = self._take(1)
        if not tag or count <= 0:
            self._note(start, "str", count, "")
            return ""
        if not tag[0] & 1:
            out = bytes(b & 0x7F for b in self._take(count)).decode("ascii")
        else:
            width = 2 if not tag[0] & 2 else 4
            raw = self._take(count * width)
            points = [int.from_bytes(raw[i:i + width], "little")
                      for i in range(0, len(raw) - width + 1, width)]
            if width == 4:
                points = [p & 0x1FFFFF for p in points]
                points = [p if p <= 0x10FFFF else p & 0xFFFF for p in points]
            if not surrogates:
                points = [p ^ 0x800 if 0xD800 <= p <= 0xDFFF else p for p in points]
            out = "".join(map(chr, points))
        self._note(start, "str", count, out)
        return out

    # --- integers -----------------------------------------------------------------------------
    def ConsumeInt(self, size: int) -> int:
        """A signed int from ``size`` bytes (two's complement, little-endian)."""
        start = self._pos
        out = int.from_bytes(self._take(size).ljust(size, b"\0"), "little", signed=True)
        self._note(start, "int", size, out)
        return out

    def ConsumeUInt(self, size: int) -> int:
        """An unsigned int from ``size`` bytes (little-endian)."""
        start = self._pos
        out = int.from_bytes(self._take(size).ljust(size, b"\0"), "little")
        self._note(start, "uint", size, out)
        return out

    def ConsumeIntInRange(self, min: int, max: int) -> int:  # noqa: A002 - Atheris's names
        """An int in ``[min, max]``."""
        if min > max:
            raise ValueError(f"ConsumeIntInRange({min}, {max}): min is greater than max")
        span = max - min
        size = (span.bit_length() + 7) // 8
        start = self._pos
        raw = int.from_bytes(self._take(size).ljust(size, b"\0"), "little")
        out = min + raw % (span + 1) if span else min
        self._note(start, "range", (min, max), out)
        return out

    def ConsumeIntList(self, count: int, size: int) -> list[int]:
        """``count`` signed ints of ``size`` bytes each."""
        return [self.ConsumeInt(size) for _ in range(count)]

    def ConsumeIntListInRange(self, count: int, min: int, max: int) -> list[int]:  # noqa: A002
        """``count`` ints in ``[min, max]``."""
        return [self.ConsumeIntInRange(min, max) for _ in range(count)]

    def ConsumeBool(self) -> bool:
        """A bool from one byte."""
        start = self._pos
        raw = self._take(1)
        out = bool(raw and raw[0] & 1)
        self._note(start, "bool", None, out)
        return out

    # --- floats -------------------------------------------------------------------------------
    def ConsumeFloat(self) -> float:
        """Any double, inf and nan included, from 8 bytes."""
        start = self._pos
        out = _DOUBLE.unpack(self._take(8).ljust(8, b"\0"))[0]
        self._note(start, "float", None, out)
        return out

    def ConsumeRegularFloat(self) -> float:
        """A finite double from 8 bytes (inf and nan become 0.0)."""
        start = self._pos
        out = _DOUBLE.unpack(self._take(8).ljust(8, b"\0"))[0]
        if out != out or out in (float("inf"), float("-inf")):
            out = 0.0
        self._note(start, "float", None, out)
        return out

    def ConsumeProbability(self) -> float:
        """A float in [0, 1] from 8 bytes."""
        start = self._pos
        out = int.from_bytes(self._take(8).ljust(8, b"\0"), "little") / _U64_MAX
        self._note(start, "prob", None, out)
        return out

    def ConsumeFloatInRange(self, min: float, max: float) -> float:  # noqa: A002
        """A float in ``[min, max]``."""
        if min > max:
            raise ValueError(f"ConsumeFloatInRange({min}, {max}): min is greater than max")
        return min + (max - min) * self.ConsumeProbability()

    def ConsumeFloatList(self, count: int) -> list[float]:
        """``count`` doubles (ConsumeFloat)."""
        return [self.ConsumeFloat() for _ in range(count)]

    def ConsumeRegularFloatList(self, count: int) -> list[float]:
        """``count`` finite doubles."""
        return [self.ConsumeRegularFloat() for _ in range(count)]

    def ConsumeProbabilityList(self, count: int) -> list[float]:
        """``count`` floats in [0, 1]."""
        return [self.ConsumeProbability() for _ in range(count)]

    def ConsumeFloatListInRange(self, count: int, min: float, max: float) -> list[float]:  # noqa: A002
        """``count`` floats in ``[min, max]``."""
        return [self.ConsumeFloatInRange(min, max) for _ in range(count)]

    # --- choices ------------------------------------------------------------------------------
    def PickValueInList(self, values: Sequence[T]) -> T:
        """One element of ``values``."""
        if not values:
            raise ValueError("PickValueInList(): the list is empty")
        return values[self.ConsumeIntInRange(0, len(values) - 1)]


def encode(kind: str, arg: Any, value: Any) -> bytes | None:
    """The bytes a Consume call of ``kind`` (and ``arg``) turns into ``value``, or None if none can."""
    try:
        if kind == "bytes":
            return bytes(value) if isinstance(value, (bytes, bytearray)) else None
        if kind == "str":
            if not isinstance(value, str):
                return None
            if all(ord(c) < 0x80 for c in value):
                return b"\0" + value.encode("ascii")
            if all(ord(c) < 0x10000 and not 0xD800 <= ord(c) <= 0xDFFF for c in value):
                return b"\1" + value.encode("utf-16-le")
            return b"\3" + b"".join(ord(c).to_bytes(4, "little") for c in value)
        if kind in ("int", "uint") and isinstance(value, int) and not isinstance(value, bool):
            return value.to_bytes(arg, "little", signed=kind == "int")
        if kind == "range" and isinstance(value, int):
            lo, hi = arg
            if not lo <= value <= hi:
                return None
            return (value - lo).to_bytes(((hi - lo).bit_length() + 7) // 8, "little")
        if kind == "bool":
            return b"\1" if value else b"\0"
        if kind == "float" and isinstance(value, (int, float)):
            return _DOUBLE.pack(float(value))
    except (OverflowError, ValueError, TypeError):
        return None
    return None
