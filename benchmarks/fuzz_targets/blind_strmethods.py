"""Blind spot: startswith, endswith and find."""

CLASS = "blind"


class StrMethodBug(Exception):
    """The planted bug."""


def check(line: str) -> None:
    if line.startswith("HDR:"):
        if line.endswith(":END"):
            if line.find("mid") > 0:
                raise StrMethodBug(line)


def TestOneInput(data: bytes) -> None:
    check(data.decode("latin-1"))
