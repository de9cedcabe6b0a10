"""Blind spot: a `match` statement on a str."""

CLASS = "blind"


class MatchBug(Exception):
    """The planted bug."""


def run(command: str) -> int:
    match command:
        case "status":
            return 1
        case "deploy-now":
            raise MatchBug(command)
        case _:
            return 0


def TestOneInput(data: bytes) -> None:
    run(data.decode("latin-1"))
