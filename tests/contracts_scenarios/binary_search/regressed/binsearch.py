"""Binary search over sorted sequences (lists, tuples, anything indexable with a length)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def lower_bound(seq: Sequence[Any], x: Any, lo: int = 0, hi: int | None = None) -> int:
    """The first index i in [lo, hi) with seq[i] >= x, or hi when there is none."""
    if hi is None:
        hi = len(seq)
    while lo < hi:
        mid = (lo + hi) // 2
        if seq[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


def upper_bound(seq: Sequence[Any], x: Any, lo: int = 0, hi: int | None = None) -> int:
    """The first index i in [lo, hi) with seq[i] > x, or hi when there is none."""
    if hi is None:
        hi = len(seq)
    while lo < hi:
        mid = (lo + hi) // 2
        if x < seq[mid]:
            hi = mid
        else:
            lo = mid + 1
    return lo


def find(seq: Sequence[Any], x: Any) -> int:
    """The index of the first x in seq, or -1 when x is not in it."""
    i = lower_bound(seq, x)
    if i < len(seq) and seq[i] != x:
        return -1
    return i


def count(seq: Sequence[Any], x: Any) -> int:
    """How many times x occurs in seq."""
    return upper_bound(seq, x) - lower_bound(seq, x)
