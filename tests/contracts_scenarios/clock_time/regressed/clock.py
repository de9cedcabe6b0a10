"""Times of day as minutes since midnight, for a small timetable tool."""

from __future__ import annotations

MINUTES_PER_DAY = 24 * 60


def minutes(hours: int, mins: int = 0) -> int:
    """Minutes since midnight of hours:mins; mins may exceed 59 (1:90 is 2:30)."""
    if hours < 0 or mins < 0:
        raise ValueError(f"negative time {hours}:{mins}")
    if mins >= 60:
        # Normalize the minutes field before combining.
        mins %= 60
    return hours * 60 + mins


def split(total: int) -> tuple[int, int]:
    """(hours, minutes) of a time in minutes since midnight, wrapped into one day."""
    total %= MINUTES_PER_DAY
    return total // 60, total % 60


def add(total: int, delta: int) -> int:
    """The time delta minutes after total (before it when delta < 0), wrapped into one day."""
    return (total + delta) % MINUTES_PER_DAY


def fmt(total: int) -> str:
    """HH:MM of a time in minutes since midnight."""
    hours, mins = split(total)
    return f"{hours:02d}:{mins:02d}"


def parse(text: str) -> int:
    """Minutes since midnight of 'H:MM' or 'HH:MM'; ValueError if text is not a time."""
    head, sep, tail = text.strip().partition(":")
    if not sep or not head.isdigit() or not tail.isdigit():
        raise ValueError(f"not a time: {text!r}")
    return minutes(int(head), int(tail))
