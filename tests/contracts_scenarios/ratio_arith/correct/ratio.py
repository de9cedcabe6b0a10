"""Exact fractions num/den, kept in lowest terms with den > 0."""

from __future__ import annotations

from math import gcd


class Ratio:
    """num/den in lowest terms; den > 0 and gcd(num, den) == 1 always hold."""

    __slots__ = ("num", "den")

    def __init__(self, num: int, den: int = 1) -> None:
        if den == 0:
            raise ZeroDivisionError(f"{num}/0")
        if den < 0:
            num, den = -num, -den
        g = gcd(num, den)
        self.num = num // g
        self.den = den // g

    def __repr__(self) -> str:
        return f"{self.num}/{self.den}"

    def add(self, other: Ratio) -> Ratio:
        return Ratio(self.num * other.den + other.num * self.den, self.den * other.den)

    def sub(self, other: Ratio) -> Ratio:
        return self.add(other.neg())

    def mul(self, other: Ratio) -> Ratio:
        return Ratio(self.num * other.num, self.den * other.den)

    def div(self, other: Ratio) -> Ratio:
        """self / other; ZeroDivisionError when other is 0."""
        return Ratio(self.num * other.den, self.den * other.num)

    def neg(self) -> Ratio:
        return Ratio(-self.num, self.den)

    def compare(self, other: Ratio) -> int:
        """-1, 0 or 1 as self is smaller than, equal to or larger than other."""
        left, right = self.num * other.den, other.num * self.den
        return (left > right) - (left < right)

    def to_float(self) -> float:
        return self.num / self.den
