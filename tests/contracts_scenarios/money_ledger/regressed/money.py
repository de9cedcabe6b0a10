"""Money amounts in integer cents, and the arithmetic of a small ledger."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Money:
    """An amount of one currency in cents; negative for a debt."""

    cents: int
    currency: str = "EUR"


def _currency(a: Money, b: Money) -> str:
    if a.currency != b.currency:
        raise ValueError(f"currency mismatch: {a.currency} and {b.currency}")
    return a.currency


def add(a: Money, b: Money) -> Money:
    """a + b."""
    return Money(a.cents + b.cents, _currency(a, b))


def sub(a: Money, b: Money) -> Money:
    """a - b: negative when b is the larger amount."""
    difference = a.cents - b.cents
    return Money(abs(difference), _currency(a, b))


def percent(m: Money, pct: int) -> Money:
    """pct percent of m, rounded half away from zero to the cent."""
    q, r = divmod(abs(m.cents) * pct, 100)
    q += r >= 50
    return Money(q if m.cents >= 0 else -q, m.currency)


def split(m: Money, parts: int) -> list[Money]:
    """m in parts as equal as possible, the first ones a cent larger: they sum to m."""
    if parts < 1:
        raise ValueError(f"cannot split into {parts} parts")
    q, r = divmod(m.cents, parts)
    return [Money(q + (i < r), m.currency) for i in range(parts)]


def fmt(m: Money) -> str:
    """'-12.34 EUR' style text of m."""
    whole, cents = divmod(abs(m.cents), 100)
    return f"{'-' if m.cents < 0 else ''}{whole}.{cents:02d} {m.currency}"
