"""Checksums: Adler-32 of bytes or text, and the Luhn check digit of card-style numbers."""

from __future__ import annotations

MOD_ADLER = 65521
#: The most bytes summed before b can overflow 32 bits and must be reduced (as zlib does).
_NMAX = 5552
#: d doubled, digits summed (the Luhn rule) for d = 0..9.
_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)


def _as_bytes(data: bytes | bytearray | str) -> bytes:
    if isinstance(data, str):
        return data.encode("utf-8")
    return bytes(data)


def adler32(data: bytes | bytearray | str, start: int = 1) -> int:
    """The Adler-32 checksum of data (text as UTF-8), continuing from start (as zlib.adler32)."""
    raw = _as_bytes(data)
    a, b = start & 0xFFFF, start >> 16 & 0xFFFF
    for offset in range(0, len(raw), _NMAX):
        for byte in raw[offset:offset + _NMAX]:
            a += byte
            b += a
        a %= MOD_ADLER
        b %= MOD_ADLER
    return b << 16 | a


def luhn_digit(number: str) -> int:
    """The Luhn check digit to append to the decimal digits of number."""
    if not number.isascii() or not number.isdigit():
        raise ValueError(f"not a decimal number: {number!r}")
    digits = [ord(ch) - 48 for ch in reversed(number)]
    total = sum(_DOUBLED[d] for d in digits[0::2]) + sum(digits[1::2])
    return -total % 10


def luhn_valid(number: str) -> bool:
    """Whether the last digit of number is the Luhn check digit of the ones before it."""
    if len(number) < 2 or not (number.isascii() and number.isdigit()):
        return False
    return luhn_digit(number[:-1]) == int(number[-1])
