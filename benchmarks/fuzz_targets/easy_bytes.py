"""Easy: plain value conditions on three bytes."""

CLASS = "easy"


class EasyBytesBug(Exception):
    """The planted bug."""


def check(a: int, b: int, c: int) -> None:
    if a > 200:
        if b < 10:
            if c % 7 == 3:
                raise EasyBytesBug(f"{a} {b} {c}")


def TestOneInput(data: bytes) -> None:
    if len(data) >= 3:
        check(data[0], data[1], data[2])
