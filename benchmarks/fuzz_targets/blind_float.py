"""Blind spot: a float equality."""

import struct

CLASS = "blind"


class FloatBug(Exception):
    """The planted bug."""


def check(x: float) -> None:
    if x == 2.718281828:
        raise FloatBug(x)


def TestOneInput(data: bytes) -> None:
    if len(data) >= 8:
        check(struct.unpack("<d", data[:8])[0])
