"""Blind spot: membership in a tuple of strings (`s in (...)`)."""

CLASS = "blind"


class MembershipBug(Exception):
    """The planted bug."""


def check(word: str) -> None:
    if word in ("alpha7", "bravo-99", "charlie!x"):
        raise MembershipBug(word)


def TestOneInput(data: bytes) -> None:
    check(data.decode("latin-1"))
