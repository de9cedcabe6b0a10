"""Checksums: Adler-32 of bytes or text, and the Luhn check digit of card-style numbers."""

from __future__ import annotations

MOD_ADLER = 65521


def _as_bytes(data: bytes | bytearray | str) -> bytes:
    return data.encode("utf-8") if isinstance(data, str) else bytes(data)


def adler32(data: bytes | bytearray | str, start: int = 1) -> int:
    """The Adler-32 checksum of data (text as UTF-8), continuing from start (as zlib.adler32)."""
    a, b = start & 0xFFFF, (start >> 16) & 0xFFFF
    for byte in _as_bytes(data):
        a = (a + byte) % MOD_ADLER
        b = (b + a) % MOD_ADLER
    return (b << 16) | a


def luhn_digit(number: str) -> int:
    """The Luhn check digit to append to the decimal digits of number."""
    if not (number.isascii() and number.isdigit()):
        raise ValueError(f"not a decimal number: {number!r}")
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return (10 - total % 10) % 10


def luhn_valid(number: str) -> bool:
    """Whether the last digit of number is the Luhn check digit of the ones before it."""
    if len(number) < 2 or not (number.isascii() and number.isdigit()):
        return False
    return luhn_digit(number[:-1]) == int(number[-1])
