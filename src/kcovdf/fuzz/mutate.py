"""Mutations: libFuzzer's byte-level ones, and input-to-state from compared and recorded values.

``havoc()`` stacks a few of libFuzzer's mutations (bit flips, random and interesting
bytes, insert, erase, copy, dictionary words, crossover). ``solve()`` is input-to-state
(REDQUEEN): given a hint "this value of the input should be that one" from a
comparison, a lookup or the records, it writes the wanted value where the input holds
the current one: through the FuzzedDataProvider call that produced it when there is one
(its own encoding), else where one of the value's byte encodings occurs in the input.
Lengths may change: an unequal-length comparison is solved by splicing.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterator
from typing import Any

from kcovdf.fuzz import provider
from kcovdf.fuzz.feedback import CONTAINS, EQ, PREFIX, SUFFIX

_INTERESTING = (0, 1, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF,
                0x80000000, 0xFFFFFFFF, -1, -128, -32768)
MUTATIONS = ("ChangeBit", "ChangeByte", "InsertByte", "InsertRepeatedBytes", "EraseBytes",
             "CopyPart", "ChangeBinInt", "ChangeASCIIInt", "ShuffleBytes", "DictWord", "CrossOver")


def havoc(data: bytes, rng: random.Random, max_len: int, words: list[bytes],
          other: bytes | None = None, stack: int = 0) -> tuple[bytes, list[str]]:
    """``data`` with 1 to 8 stacked mutations; also their names (libFuzzer's MS: line)."""
    out = bytearray(data)
    names = []
    for _ in range(stack or 1 << rng.randrange(4)):
        name = MUTATIONS[rng.randrange(len(MUTATIONS))]
        if name == "DictWord" and not words:
            name = "InsertByte"
        if name == "CrossOver" and not other:
            name = "ChangeByte"
        _apply(out, name, rng, words, other)
        names.append(name)
    del out[max_len:]
    return bytes(out), names


def _apply(out: bytearray, name: str, rng: random.Random, words: list[bytes], other: bytes | None) -> None:
    n = len(out)
    if name in ("ChangeBit", "ChangeByte", "ShuffleBytes", "EraseBytes", "CopyPart", "ChangeBinInt",
                "ChangeASCIIInt") and n == 0:
        name = "InsertByte"
    if name == "ChangeBit":
        out[rng.randrange(n)] ^= 1 << rng.randrange(8)
    elif name == "ChangeByte":
        out[rng.randrange(n)] = rng.randrange(256)
    elif name == "InsertByte":
        out.insert(rng.randrange(n + 1), rng.randrange(256))
    elif name == "InsertRepeatedBytes":
        at = rng.randrange(n + 1)
        out[at:at] = bytes([rng.choice((0, 0xFF, rng.randrange(256)))]) * rng.randint(3, 32)
    elif name == "EraseBytes":
        at = rng.randrange(n)
        del out[at:at + rng.randint(1, max(1, min(16, n - at)))]
    elif name == "CopyPart":
        src = rng.randrange(n)
        size = rng.randint(1, n - src)
        dst = rng.randrange(n + 1)
        chunk = out[src:src + size]
        if rng.random() < 0.5:
            out[dst:dst] = chunk
        else:
            out[dst:dst + size] = chunk
    elif name == "ChangeBinInt":
        size = rng.choice((1, 2, 4, 8))
        at = rng.randrange(n)
        value = rng.choice(_INTERESTING) if rng.random() < 0.5 else \
            int.from_bytes(out[at:at + size].ljust(size, b"\0"), "little") + rng.randint(-16, 16)
        out[at:at + size] = (value % (1 << 8 * size)).to_bytes(size, rng.choice(("little", "big")))
    elif name == "ChangeASCIIInt":
        at = rng.randrange(n)
        digits = str(rng.choice((rng.randint(-1000, 1000), rng.getrandbits(32), rng.getrandbits(64))))
        out[at:at + rng.randint(1, 4)] = digits.encode()
    elif name == "ShuffleBytes":
        at = rng.randrange(n)
        part = list(out[at:at + 8])
        rng.shuffle(part)
        out[at:at + len(part)] = bytes(part)
    elif name == "DictWord":
        word = words[rng.randrange(len(words))]
        at = rng.randrange(n + 1)
        if rng.random() < 0.5:
            out[at:at] = word
        else:
            out[at:at + len(word)] = word
    elif name == "CrossOver":
        assert other is not None
        at = rng.randrange(len(other))
        part = other[at:at + rng.randint(1, len(other) - at)]
        dst = rng.randrange(n + 1)
        out[dst:dst + (len(part) if rng.random() < 0.5 else 0)] = part


# --- input to state --------------------------------------------------------------------------
def wanted(kind: int, a: Any, b: Any) -> list[Any]:
    """Values that would satisfy the hint: ``a`` should be ``b`` (EQ), contain it, start or end with it."""
    if kind == EQ:
        if isinstance(b, int) and not isinstance(b, bool):
            return [b, b + 1, b - 1]
        if isinstance(b, float):
            return [b, b + 1.0, b - 1.0]
        return [b]
    if kind == CONTAINS:
        return [a + b, b + a, b]
    if kind == PREFIX:
        return [b + a[len(b):], b + a, b]
    if kind == SUFFIX:
        return [a + b, a[:max(0, len(a) - len(b))] + b, b]
    return []


def encodings(value: Any) -> list[bytes]:
    """Byte forms ``value`` may take in an input: UTF-8 and UTF-16 text, ints in 1 to 16
    bytes either way round and in decimal, doubles and floats."""
    if isinstance(value, bytes):
        return [value]
    if isinstance(value, str):
        forms = [value.encode("utf-8", "surrogatepass")]
        try:
            forms.append(value.encode("utf-16-le"))
        except UnicodeEncodeError:
            pass
        return forms
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        forms = [str(value).encode()]
        need = max(1, (value.bit_length() + 8) // 8)
        for size in sorted({1, 2, 4, 8, need, (value.bit_length() + 7) // 8 or 1, 16}):
            for signed in (False, True):
                for order in ("little", "big"):
                    try:
                        forms.append(value.to_bytes(size, order, signed=signed))  # type: ignore[arg-type]
                    except OverflowError:
                        pass
        return list(dict.fromkeys(forms))
    if isinstance(value, float):
        forms = [struct.pack("<d", value), struct.pack(">d", value), repr(value).encode()]
        try:
            forms += [struct.pack("<f", value), struct.pack(">f", value)]
        except OverflowError:
            pass
        return forms
    return []


def _same_form(old: bytes, value: Any, template: Any) -> list[bytes]:
    """Encodings of ``value`` in the form ``old`` has as an encoding of ``template``."""
    out = []
    if isinstance(template, int) and isinstance(value, int) and not isinstance(value, bool):
        if old == str(template).encode():
            return [str(value).encode()]
        size = len(old)
        for order in ("little", "big"):
            for signed in (False, True):
                try:
                    if template.to_bytes(size, order, signed=signed) == old:  # type: ignore[arg-type]
                        for width in (size, (value.bit_length() + 8) // 8):
                            try:
                                out.append(value.to_bytes(width, order, signed=signed))  # type: ignore[arg-type]
                            except OverflowError:
                                pass
                except OverflowError:
                    pass
        return out
    if isinstance(template, str) and isinstance(value, str):
        if old == template.encode("utf-8", "surrogatepass"):
            return [value.encode("utf-8", "surrogatepass")]
        try:
            return [value.encode("utf-16-le")]
        except UnicodeEncodeError:
            return []
    if isinstance(template, float) and isinstance(value, (int, float)):
        for fmt in ("<d", ">d", "<f", ">f"):
            try:
                if struct.pack(fmt, template) == old:
                    return [struct.pack(fmt, float(value))]
            except OverflowError:
                pass
        if old == repr(template).encode():
            return [repr(float(value)).encode()]
    if isinstance(value, bytes) and isinstance(template, bytes):
        return [value]
    return out


def solve(data: bytes, kind: int, a: Any, b: Any,
          prov: list[tuple[int, int, str, Any, Any]]) -> Iterator[bytes]:
    """Inputs in which the value ``a`` of the program's state is replaced by what the hint wants."""
    targets = wanted(kind, a, b)
    if not targets:
        return
    # 1. through the FuzzedDataProvider call that made ``a`` (or a str/bytes holding it)
    for start, end, pkind, arg, value in prov:
        if type(value) is type(a) and value == a:
            news = targets
        elif isinstance(value, (str, bytes)) and type(value) is type(a) and len(a) >= 2 and a in value:
            news = [value.replace(a, t, 1) for t in targets if type(t) is type(a)]
        else:
            continue
        for new in news:
            enc = provider.encode(pkind, arg, new)
            if enc is not None:
                yield data[:start] + enc + data[end:]
    # 2. an empty str/bytes occurs everywhere: insert at the ends and in the middle
    if isinstance(a, (str, bytes)) and not a:
        for target in targets:
            for new in encodings(target)[:1]:
                for at in sorted({0, len(data) // 2, len(data)}):
                    yield data[:at] + new + data[at:]
    # 3. where an encoding of ``a`` occurs in the raw input
    for old in encodings(a):
        if not old:
            continue
        at = data.find(old)
        seen = 0
        while at >= 0 and seen < 4:
            for target in targets:
                for new in _same_form(old, target, a):
                    yield data[:at] + new + data[at + len(old):]
            at = data.find(old, at + 1)
            seen += 1


def dictionary_words(value: Any) -> list[bytes]:
    """Dictionary entries for a constant or recorded value: its likeliest encodings."""
    if isinstance(value, bytes):
        return [value] if value else []
    if isinstance(value, str):
        return [value.encode("utf-8", "surrogatepass")] if value else []
    if isinstance(value, int) and not isinstance(value, bool):
        size = max(1, (value.bit_length() + 8) // 8)
        try:
            return [str(value).encode(), value.to_bytes(size, "little", signed=True)]
        except OverflowError:
            return [str(value).encode()]
    if isinstance(value, float):
        return [struct.pack("<d", value), repr(value).encode()]
    return []


def parse_dict(text: str, path: str) -> list[bytes]:
    """The words of an AFL/libFuzzer dictionary file (``name="word"`` or ``"word"`` per line)."""
    words = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        quote = line.find('"')
        if quote < 0 or not line.endswith('"') or quote == len(line) - 1:
            raise ValueError(f"{path}:{number}: expected \"word\" or name=\"word\", got {line!r}")
        body = line[quote + 1:-1]
        out = bytearray()
        i = 0
        while i < len(body):
            c = body[i]
            if c == "\\" and i + 1 < len(body):
                nxt = body[i + 1]
                if nxt == "x" and i + 3 < len(body):
                    out.append(int(body[i + 2:i + 4], 16))
                    i += 4
                    continue
                out += nxt.encode()
                i += 2
                continue
            out += c.encode("utf-8")
            i += 1
        words.append(bytes(out))
    return words
