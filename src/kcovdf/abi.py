"""The KCOV-Dataflow ABI: record framing, magic values, control numbers, word packing.

Only constants and the pure bit-packing of words live here, as kcov keeps its uapi
header apart: first what the kernel defines (docs/abi.md §1), then kcovdf's value
encoding of a Python object inside those words (§2), which ``_core/abi.h`` mirrors.
kcovdf's own container around a buffer (the .kdf file, trace directories) is
``kcovdf.tracefile``. docs/abi.md explains every name.
"""

from __future__ import annotations

import enum

# --- record framing (kernel v2 layout) -------------------------------------
TYPE_ENTRY = 0xE
TYPE_RETURN = 0xF
TYPE_EVENT = 0xD          # kcovdf's own (format 2): a call resumed or suspended
#: The type nibbles a reader takes for a record header (the kernel writes only 0xE and 0xF).
HEADER_TYPES = (TYPE_EVENT, TYPE_ENTRY, TYPE_RETURN)
HEADER_WORDS = 3          # type_and_seq, pc, meta
MAX_VALUES = 15           # 4-bit value count
SEQ_MASK = 0x00FFFFFF     # 24-bit per-task sequence
PTR_MASK = 0xFFFFFFFFFFFF  # 48-bit pointer in meta (format 2: the call id)

ARG_RETURN = 0x00
ARG_EXCEPTION = 0xFF
ARG_YIELD = 0xFE
ARG_MAX_PARAM = 0xFC       # parameters at higher positions are not recorded
ARG_NONE = 0xFD            # format 2: the entry record of a call with no recorded parameter

# arg_idx of a TYPE_EVENT record (format 2)
EVENT_RESUME = 1           # the call runs again; the value word is the resumer's call id (0: none)
EVENT_SUSPEND = 2          # the call left its thread's stack without a yield record; value 0

FAULT = 0xBADADD85
REDACTED = 0x2EDAC7ED

#: Size in bytes kcovdf writes into meta for a Python object (a reference, like a pointer).
PY_VALUE_SIZE = 8

# --- control interface ------------------------------------------------------
KCOV_DF_INIT_TRACE = 0x80086401   # _IOR('d', 1, unsigned long)
KCOV_DF_ENABLE = 0x6464           # _IO('d', 100)
KCOV_DF_DISABLE = 0x6465          # _IO('d', 101)
KERNEL_DEVICE_PATH = "/sys/kernel/debug/kcov_dataflow"

MIN_WORDS = 2
MAX_WORDS = 16 * 1024 * 1024      # 16M words = 128 MiB


# --- word packing of the record header -------------------------------------
def type_seq(rtype: int, nvals: int, seq: int) -> int:
    """Header word: type nibble, value count (15 max; 0 is read as 1), 24-bit seq."""
    return (rtype & 0xF) << 28 | (nvals & 0xF) << 24 | (seq & SEQ_MASK)


def meta(arg_idx: int, size: int, ptr: int) -> int:
    """Meta word: arg_idx<<56 | size<<48 | ptr & 0xFFFFFFFFFFFF."""
    return (arg_idx & 0xFF) << 56 | (size & 0xFF) << 48 | (ptr & PTR_MASK)


def split_type_seq(word: int) -> tuple[int, int, int] | None:
    """(type, nvals, seq) of a valid header word, else None (the reader then skips one word)."""
    if word >> 32:
        return None
    rtype = (word >> 28) & 0xF
    if rtype not in HEADER_TYPES:
        return None
    return rtype, ((word >> 24) & 0xF) or 1, word & SEQ_MASK


def split_meta(word: int) -> tuple[int, int, int]:
    """(arg_idx, size, ptr) of a meta word."""
    return (word >> 56) & 0xFF, (word >> 48) & 0xFF, word & PTR_MASK


# === kcovdf's value encoding (docs/abi.md §2; _core/abi.h mirrors it) ==========
MAX_FIELDS = MAX_VALUES - 2       # shape word and layout word come first
STR_CHUNKS = 11
BYTES_CHUNKS = 12
SEQ_ITEMS = 12
MAP_PAIRS = 6
NESTED_CHUNKS = 3          # CHUNK words that may continue one nested str/bytes (SEQ, MAP, EXCEPTION forms)
TOTAL_CAP = 255


class Kind(enum.IntEnum):
    """How to read one field word (4 bits in the layout word)."""

    NONE = 0
    INT = 1
    INT_TRUNC = 2
    BOOL = 3
    FLOAT = 4
    STR7 = 5
    BYTES7 = 6
    OBJ = 7
    LEN = 8
    CHUNK = 9
    FAULT = 10
    REDACTED = 11
    UNSET = 12


class Form(enum.IntEnum):
    """What the field words of a top-level value are (4 bits in the layout word)."""

    SCALAR = 0
    BIGINT = 1
    STR = 2
    BYTES = 3
    SEQ = 4
    MAP = 5
    OBJECT = 6
    EXCEPTION = 7
    REDACTED = 8
    NAMED = 9


#: What a NAMED value is (the "named" key of its type-table entry, docs/abi.md §2.3).
NAMED_KINDS = ("class", "function", "method", "builtin", "module")


REDACTED_CLASS = "kcovdf.<redacted>"


def layout(total: int, form: int, kinds: list[int] | tuple[int, ...]) -> int:
    """Layout word: total (capped at 255), form, and one kind nibble per field word."""
    word = min(total, TOTAL_CAP) << 56 | (form & 0xF) << 52
    for j, kind in enumerate(kinds):
        word |= (kind & 0xF) << (4 * j)
    return word


def split_layout(word: int, nfields: int) -> tuple[int, int, list[int]]:
    """(total, form, kinds) of a layout word for a record with nfields field words."""
    return (word >> 56) & 0xFF, (word >> 52) & 0xF, \
        [(word >> (4 * j)) & 0xF for j in range(nfields)]


FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3


def fnv1a64(data: bytes) -> int:
    """64-bit FNV-1a, the hash behind class ids, shape ids and pcs."""
    h = FNV_OFFSET
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return h


def class_id(qualified_name: str) -> int:
    """Stable id of a class named "module.Qualname"."""
    return fnv1a64(qualified_name.encode("utf-8", "surrogatepass"))


def named_id(qualified_name: str, name: str) -> int:
    """Stable id of a named value (a class, function, method or module) ``name`` whose own
    class is ``qualified_name``: the separator 0x01 keeps it apart from every shape id."""
    return fnv1a64(qualified_name.encode("utf-8", "surrogatepass") + b"\x01" +
                   name.encode("utf-8", "surrogatepass"))


def shape_id(qualified_name: str, fields: list[str] | tuple[str, ...]) -> int:
    """Stable id of a class together with the names of the fields recorded."""
    if not fields:
        return class_id(qualified_name)
    raw = qualified_name.encode("utf-8", "surrogatepass") + b"\0" + \
        b"\0".join(f.encode("utf-8", "surrogatepass") for f in fields)
    return fnv1a64(raw)
