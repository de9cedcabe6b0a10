"""Type stub of the record scanner ``kcovdf._core._scan`` (scan.c), owned by ``kcovdf.read.decode``."""

def scan(words: object, start: int, stop: int, columns: bool = False, task: int = 0,
         copy_values: bool = False, wide: bool = False) -> tuple[bytearray, ...]:
    """Find the records in ``words[start:stop]`` of a buffer of little-endian u64 words.

    Returns ``(offsets, skipped)``, or ``(offsets, skipped, columns)`` when ``columns``
    is asked for: bytearrays of native integers, described in scan.c's docstring and
    read by ``kcovdf.read.decode._scan``.
    """
