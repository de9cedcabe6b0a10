"""Easy: counts and lengths of a text."""

CLASS = "easy"


class EasyTextBug(Exception):
    """The planted bug."""


def words(text: str) -> list[str]:
    return text.split()


def check(text: str) -> None:
    parts = words(text)
    if len(parts) >= 3:
        if len(parts[0]) > len(parts[1]):
            if text.count("a") >= 2:
                raise EasyTextBug(text)


def TestOneInput(data: bytes) -> None:
    check(data.decode("latin-1"))
