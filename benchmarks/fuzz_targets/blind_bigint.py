"""Blind spot: an 80-bit integer equality."""

CLASS = "blind"


class BigIntBug(Exception):
    """The planted bug."""


def check(n: int) -> None:
    if n == 0xDEADBEEFCAFEBABE1234:
        raise BigIntBug(hex(n))


def TestOneInput(data: bytes) -> None:
    check(int.from_bytes(data[:10], "little"))
