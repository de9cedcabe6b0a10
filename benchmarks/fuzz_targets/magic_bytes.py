"""Magic: two 4-byte constants in bytes."""

CLASS = "magic"


class MagicBytesBug(Exception):
    """The planted bug."""


def parse(data: bytes) -> None:
    if data[:4] == b"\x7fKDF":
        if data[4:8] == b"v2\x00\x01":
            raise MagicBytesBug(data[:8])


def TestOneInput(data: bytes) -> None:
    parse(data)
