"""Exact fractions num/den, kept in lowest terms with den > 0."""

from __future__ import annotations


def _gcd(a: int, b: int) -> int:
    a, b = abs(a), abs(b)
    while b:
        a, b = b, a % b
    return a


class Ratio:
    """num/den in lowest terms; den > 0 and gcd(num, den) == 1 always hold."""

    __slots__ = ("num", "den")

    def __init__(self, num: int, den: int = 1) -> None:
        if not den:
            raise ZeroDivisionError(f"{num}/0")
        g = _gcd(num, den) * (1 if den > 0 else -1)
        self.num = num // g
        self.den = den // g

    def __repr__(self) -> str:
        return f"{self.num}/{self.den}"

    def add(self, other: Ratio) -> Ratio:
        if self.den == other.den:
            return Ratio(self.num + other.num, self.den)
        return Ratio(self.num * other.den + other.num * self.den, self.den * other.den)

    def sub(self, other: Ratio) -> Ratio:
        return Ratio(self.num * other.den - other.num * self.den, self.den * other.den)

    def mul(self, other: Ratio) -> Ratio:
        return Ratio(self.num * other.num, self.den * other.den)

    def div(self, other: Ratio) -> Ratio:
        """self / other; ZeroDivisionError when other is 0."""
        return Ratio(self.num * other.den, self.den * other.num)

    def neg(self) -> Ratio:
        return Ratio(-self.num, self.den)

    def compare(self, other: Ratio) -> int:
        """-1, 0 or 1 as self is smaller than, equal to or larger than other."""
        difference = self.sub(other).num
        return 0 if difference == 0 else (1 if difference > 0 else -1)

    def to_float(self) -> float:
        return self.num / self.den
