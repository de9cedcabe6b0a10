"""What one execution tells the fuzzer: branch counters, compared operands, recorded values.

Three sources, each cheap enough to read after every execution:
  - the coverage map, a shared-memory byte per branch (the pass's ``__kcovdf_cov__``);
  - the comparison tracer (the pass's ``__kcovdf_cmp__``): operands of the comparisons,
    lookups and string tests that failed, which become input-to-state hints and a
    per-site value profile;
  - the records of the kcovdf recorder, read straight out of its buffer (no decoder, no
    pyarrow): (pc, arg_idx, value bucket) and (pc, return bucket) features, and the
    exact values of ints and strings for splicing.
Standard library only: this module is planted in the instrumented code's namespaces.
"""

from __future__ import annotations

import itertools
import mmap
import struct
import zlib
from collections.abc import Iterator, MutableMapping
from typing import Any

from kcovdf.instrument.coverage import CMP, COV, MAP_SIZE

# Hint kinds: what the first operand should become to satisfy the comparison.
EQ = 0        # equal to the second
CONTAINS = 1  # contain the second
PREFIX = 2    # start with the second
SUFFIX = 3    # end with the second

#: Notes kept per execution: beyond it a loop of comparisons adds nothing new.
MAX_NOTES = 512
#: Elements of a container a failed membership test or lookup lists as candidates.
MAX_CANDIDATES = 64

_TRACED = (int, str, bytes, float)

# The shared-memory coverage map: one byte per branch ID (kcovdf.instrument.coverage).
_area = mmap.mmap(-1, MAP_SIZE, flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)
coverage_map = memoryview(_area)


class Tracer:
    """The comparison probes' runtime: each method gives what the original expression gives.

    While ``notes`` is a list, failed comparisons append ``(site, kind, a, b)`` to it.
    """

    def __init__(self) -> None:
        self.notes: list[tuple[int, int, Any, Any]] = []

    def _note(self, site: int, kind: int, a: Any, b: Any) -> None:
        notes = self.notes
        if len(notes) < MAX_NOTES and type(a) in _TRACED and type(b) in _TRACED:
            notes.append((site, kind, a, b))

    def eq(self, site: int, a: Any, b: Any) -> Any:
        """``a == b``."""
        r = a == b
        if not r:
            self._note(site, EQ, a, b)
        return r

    def ne(self, site: int, a: Any, b: Any) -> Any:
        """``a != b``."""
        r = a != b
        if r:
            self._note(site, EQ, a, b)
        return r

    def lt(self, site: int, a: Any, b: Any) -> Any:
        """``a < b``."""
        self._note(site, EQ, a, b)
        return a < b

    def le(self, site: int, a: Any, b: Any) -> Any:
        """``a <= b``."""
        self._note(site, EQ, a, b)
        return a <= b

    def gt(self, site: int, a: Any, b: Any) -> Any:
        """``a > b``."""
        self._note(site, EQ, a, b)
        return a > b

    def ge(self, site: int, a: Any, b: Any) -> Any:
        """``a >= b``."""
        self._note(site, EQ, a, b)
        return a >= b

    def contains(self, site: int, a: Any, b: Any) -> Any:
        """``a in b``."""
        r = a in b
        if not r:
            self._missing(site, a, b)
        return r

    def not_contains(self, site: int, a: Any, b: Any) -> Any:
        """``a not in b``."""
        r = a not in b
        if r:
            self._missing(site, a, b)
        return r

    def _missing(self, site: int, key: Any, container: Any) -> None:
        """``key`` is not in ``container``: the container's elements are candidates."""
        kind = type(container)
        if kind in (str, bytes) and type(key) is kind:
            self._note(site, CONTAINS, container, key)
        elif kind in (dict, set, frozenset, list, tuple) or isinstance(container, (dict, set, frozenset)):
            for element in itertools.islice(container, MAX_CANDIDATES):
                self._note(site, EQ, key, element)

    def item(self, site: int, container: Any, key: Any) -> Any:
        """``container[key]``."""
        if isinstance(container, dict) and type(key) in _TRACED and key not in container:
            self._missing(site, key, container)
        return container[key]

    def call(self, site: int, obj: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        """``obj.name(*args, **kwargs)``, noting string tests and dict lookups that miss."""
        kind = type(obj)
        if args and not kwargs:
            first = args[0]
            if kind in (str, bytes):
                needles = first if type(first) is tuple else (first,)
                for needle in needles:
                    if type(needle) is not kind:
                        continue
                    if name in ("startswith", "removeprefix"):
                        if not obj.startswith(needle):
                            self._note(site, PREFIX, obj, needle)
                    elif name in ("endswith", "removesuffix"):
                        if not obj.endswith(needle):
                            self._note(site, SUFFIX, obj, needle)
                    elif needle not in obj:
                        self._note(site, CONTAINS, obj, needle)
            elif isinstance(obj, dict) and name == "get" and type(first) in _TRACED and first not in obj:
                self._missing(site, first, obj)
        return getattr(obj, name)(*args, **kwargs)

    def match(self, site: int, subject: Any, constants: tuple[Any, ...]) -> Any:
        """The subject of a ``match``, noting the literal patterns it does not equal."""
        if type(subject) in _TRACED:
            for constant in constants:
                if type(constant) is type(subject) and constant != subject:
                    self._note(site, EQ, subject, constant)
        return subject


tracer = Tracer()


def plant(namespace: MutableMapping[str, Any]) -> None:
    """Give an instrumented namespace the probes' runtime (kcovdf.instrument.install calls it)."""
    namespace[COV] = coverage_map
    namespace[CMP] = tracer


# --- per-site value profile ------------------------------------------------------------------
def distance(a: Any, b: Any) -> int:
    """How far ``a`` is from ``b``, in 0..63 (0 means equal): libFuzzer's value profile, per type."""
    if type(a) is int and type(b) is int:
        return min(63, (a ^ b).bit_count())
    if type(a) is float or type(b) is float:
        try:
            return min(63, int(abs(float(a) - float(b))).bit_length())
        except (OverflowError, ValueError, TypeError):
            return 63
    if type(a) is type(b) and isinstance(a, (str, bytes)):
        same = 0
        for x, y in zip(a, b, strict=False):
            if x != y:
                break
            same += 1
        # longer common prefix, then closer length: each a step of its own
        return max(1, 63 - 2 * min(same, 24) - (len(a) == len(b)))
    return 63


def value_profile(notes: list[tuple[int, int, Any, Any]]) -> Iterator[int]:
    """One feature per (site, distance) of the notes (a feature space apart from coverage)."""
    for site, kind, a, b in notes:
        yield (2 << 60) | (site << 8) | (kind << 6) | distance(a, b)


# --- records ---------------------------------------------------------------------------------
_D = struct.Struct("<d")


def records(buf: memoryview, start: int = 1) -> Iterator[tuple[int, int, int, int, Any]]:
    """(seq, rtype, pc, arg_idx, value) of each record in ``buf`` (u64 words); values decoded:
    int, float, str/bytes (their recorded prefix), None, or a (shape id, total) bucket."""
    end = min(buf[0] + 1, len(buf))
    i = start
    while i + 3 <= end:
        head = buf[i]
        rtype = head >> 28
        if head >> 32 or rtype not in (0xD, 0xE, 0xF):
            i += 1
            continue
        n = (head >> 24) & 0xF or 1
        values = buf[i + 3:min(i + 3 + n, end)]
        meta = buf[i + 2]
        yield head & 0xFFFFFF, rtype, buf[i + 1], meta >> 56, _value(values)
        i += 3 + n


def _value(v: Any) -> Any:
    if len(v) < 2:
        return None
    layout = v[1]
    form = (layout >> 52) & 0xF
    if form == 0 and len(v) > 2:  # SCALAR
        kind = layout & 0xF
        word = v[2]
        if kind == 1:
            return word - (1 << 64) if word >> 63 else word
        if kind == 3:
            return bool(word)
        if kind == 4:
            return _D.unpack(word.to_bytes(8, "little"))[0]
        return None
    if form == 1 and len(v) > 2:  # BIGINT: the low 64 bits (a bucket by the bit length)
        return ("bigint", v[2])
    if form in (2, 3):  # STR / BYTES
        nbytes = v[3] if form == 2 and len(v) > 3 else v[2] if len(v) > 2 else 0
        chunks = v[4:] if form == 2 else v[3:]
        raw = b"".join(w.to_bytes(8, "little") for w in chunks)[:nbytes]
        if form == 3:
            return raw
        return raw.decode("utf-8", "replace")
    return ("shape", v[0], layout >> 56)


def bucket(value: Any) -> int:
    """A small number standing for ``value``: log-scale and a hash bit for ints, length and
    prefix for strings, class and size for objects (so features do not explode)."""
    if isinstance(value, bool) or value is None:
        return 1 + int(bool(value))
    if isinstance(value, int):
        return 4 + (value < 0) * 128 + min(abs(value).bit_length(), 64) * 2 + (hash(value) & 1)
    if isinstance(value, float):
        return 300 + (value < 0) + 2 * min(int(abs(value)).bit_length(), 64) if value == value else 299
    if isinstance(value, (str, bytes)):
        head = value[:1].encode("utf-8", "replace") if isinstance(value, str) else value[:1]
        return 512 + min(len(value), 255).bit_length() * 8 + (zlib.crc32(head) & 7)
    return (zlib.crc32(repr(value).encode()) & 0xFFFF) << 16
