"""Blind spot: a str compared with a constant of another length."""

CLASS = "blind"


class UnequalLengthBug(Exception):
    """The planted bug."""


def check(name: str) -> None:
    if name == "a-much-longer-magic-name":
        raise UnequalLengthBug(name)


def TestOneInput(data: bytes) -> None:
    check(data.decode("latin-1")[:40])
