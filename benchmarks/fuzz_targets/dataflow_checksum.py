"""Data flow: a checksum computed by one function must come back as a handle to another.

The handle is the CRC of the payload (3 bytes of it); it is found through a dict.
"""

import zlib

CLASS = "dataflow"


class ChecksumBug(Exception):
    """The planted bug."""


_handlers: dict[int, bytes] = {}


def register(payload: bytes) -> int:
    handle = zlib.crc32(payload) & 0xFFFFFF
    _handlers[handle] = payload
    return handle


def dispatch(handle: int) -> None:
    if handle in _handlers:
        raise ChecksumBug(f"handle {handle:#x} dispatched")


def TestOneInput(data: bytes) -> None:
    _handlers.clear()
    if len(data) < 4:
        return
    register(data[3:])
    dispatch(int.from_bytes(data[:3], "little"))
