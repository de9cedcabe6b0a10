"""The reference parser's record walk in pure Python: the twin of ``_core/scan.c``.

Standard library only, so ``kcovdf run`` can count the records of a task file inside the
traced interpreter, where the decoder's numpy is not available.
"""

from __future__ import annotations

from collections.abc import Sequence

from kcovdf import abi


def records(w: Sequence[int], start: int, stop: int) -> tuple[list[int], list[tuple[int, int, int]]]:
    """(offsets of the records in ``w[start:stop]``, skipped runs as (offset, count, reason)).

    The loop of the kernel documentation: a word that is not a valid header (type 0xE, 0xF,
    or kcovdf's 0xD event, docs/abi.md §1) is skipped one at a time (reason 0); the words
    after the last whole record are reported as a truncated record (reason 1) or a short
    tail (reason 2).
    """
    offsets: list[int] = []
    skipped: list[tuple[int, int, int]] = []
    i, run = start, -1
    while i + 3 < stop:
        h = w[i]
        if h >> 32 or (h >> 28) & 0xF not in abi.HEADER_TYPES:
            if run < 0:
                run = i
            i += 1
            continue
        if run >= 0:
            skipped.append((run, i - run, 0))
            run = -1
        nvals = (h >> 24) & 0xF or 1
        if i + 3 + nvals > stop:
            break
        offsets.append(i)
        i += 3 + nvals
    if run >= 0:
        skipped.append((run, i - run, 0))
    if i < stop:
        skipped.append((i, stop - i, 1 if abi.split_type_seq(w[i]) else 2))
    return offsets, skipped
