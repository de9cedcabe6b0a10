"""Magic: a command and a user in a str, behind compared constants."""

CLASS = "magic"


class MagicStrBug(Exception):
    """The planted bug."""


def handle(command: str, user: str) -> None:
    if command == "grant":
        if user == "root42":
            raise MagicStrBug(user)


def TestOneInput(data: bytes) -> None:
    text = data.decode("latin-1")
    command, _, user = text.partition(" ")
    handle(command, user)
