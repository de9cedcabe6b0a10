"""Closed integer intervals [start, end] with start <= end, e.g. for booking slots."""

from __future__ import annotations


class Interval:
    """The integers from start to end, both included; start <= end always holds."""

    def __init__(self, start: int, end: int) -> None:
        if start > end:
            raise ValueError(f"empty interval [{start}, {end}]")
        self.start = start
        self.end = end

    def __repr__(self) -> str:
        return f"Interval({self.start}, {self.end})"

    def length(self) -> int:
        """end - start (0 for a single point)."""
        return self.end - self.start

    def contains(self, x: int) -> bool:
        return self.start <= x <= self.end

    def shift(self, by: int) -> Interval:
        """A new interval moved by `by`."""
        return Interval(self.start + by, self.end + by)

    def grow(self, by: int) -> Interval:
        """Widen by `by` on each side, in place (chainable); a negative `by` shrinks it, at most
        to its midpoint."""
        if by < 0:
            mid = (self.start + self.end) // 2
            self.start, self.end = min(self.start - by, mid), max(self.end + by, mid)
        else:
            self.start -= by
            self.end += by
        return self

    def intersect(self, other: Interval) -> Interval | None:
        """The common part, or None when they do not overlap."""
        start, end = max(self.start, other.start), min(self.end, other.end)
        return Interval(start, end) if start <= end else None

    def span(self, other: Interval) -> Interval:
        """The smallest interval holding both."""
        return Interval(min(self.start, other.start), max(self.end, other.end))
