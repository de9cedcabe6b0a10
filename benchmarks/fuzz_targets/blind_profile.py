"""Blind spot: per-site value profile. The compared values are transforms of the input,
so no operand occurs in it: only the distance at each comparison site guides."""

CLASS = "blind"


class ValueProfileBug(Exception):
    """The planted bug."""


def check(a: int, b: int) -> None:
    if a ^ 0x5A5A5A5A == 0x2468ACE0:
        if b ^ 0x0F0F0F0F == 0x13572468:
            raise ValueProfileBug(f"{a:#x} {b:#x}")


def TestOneInput(data: bytes) -> None:
    if len(data) >= 8:
        check(int.from_bytes(data[:4], "little"), int.from_bytes(data[4:8], "little"))
