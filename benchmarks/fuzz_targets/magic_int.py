"""Magic: a 6-byte integer constant."""

CLASS = "magic"


class MagicIntBug(Exception):
    """The planted bug."""


def check(n: int) -> None:
    if n == 0x1BADC0DE5EED:
        raise MagicIntBug(hex(n))


def TestOneInput(data: bytes) -> None:
    check(int.from_bytes(data[:8], "little"))
