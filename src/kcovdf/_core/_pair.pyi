"""Type stub of the call pairer ``kcovdf._core._pair`` (pair.c), owned by ``kcovdf.read.calls``."""

class Column:
    """One column of ``Pairer.columns()``: read-only native integers, through the buffer protocol."""

class Pairer:
    """The streaming call pairer; ``kcovdf.read.calls.Pairer`` is its twin (and ``CPairer`` its
    wrapper there, which returns numpy arrays and the calls table)."""

    def __init__(self) -> None: ...
    def task(self, index: int, format: int, pid: int) -> None:
        """Declare a task before its first record: format >= 2 pairs it by (pid, call id)."""
    def feed(self, task: object, kind: object, pc: object, arg_idx: object, seq: object,
             ptr: object, value0: object) -> tuple[bytearray, bytearray]:
        """Pair one batch of records (1-d contiguous integer arrays of 4, 1, 8, 1, 4, 8 and 8
        bytes): ``(ids, depths)``, bytearrays of native int64 and int32 (see pair.c)."""
    def columns(self) -> tuple[Column, ...]:
        """Every call not drained yet, in call order: its index (``call``), one column per
        field (see pair.c), the resumers; the pairer's own arrays, handed over without a
        copy, the same objects until the next ``feed`` or ``drain``."""
    def drain(self) -> tuple[Column, ...]:
        """The calls finished since the last ``drain``, laid out as ``columns()``, and
        forgotten, with their call ids (``kcovdf.read.calls.Pairer.drain`` says what
        finished means, and what forgetting an id changes)."""
