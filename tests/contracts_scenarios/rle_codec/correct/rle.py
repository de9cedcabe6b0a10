"""Run-length encoding of strings: (char, count) pairs, and the compact text form '3ab2c'."""

from __future__ import annotations

from collections.abc import Iterable
from itertools import groupby

#: Past this length encode() uses itertools.groupby, which is faster on long inputs.
LONG = 64


def encode(s: str) -> list[tuple[str, int]]:
    """The runs of s as (char, count) pairs, in order."""
    if len(s) > LONG:
        pairs = [(ch, sum(1 for _ in run)) for ch, run in groupby(s)]
    else:
        pairs = []
        for ch in s:
            if pairs and pairs[-1][0] == ch:
                pairs[-1] = (ch, pairs[-1][1] + 1)
            else:
                pairs.append((ch, 1))
    return pairs


def decode(pairs: Iterable[tuple[str, int]]) -> str:
    """The string whose runs are pairs."""
    return "".join(ch * count for ch, count in pairs)


def to_text(s: str) -> str:
    """The compact form of s: each run as its count (left out when 1) and its char."""
    if any(ch.isdigit() for ch in s):
        raise ValueError("digits cannot be run-length encoded as text")
    return "".join(f"{count if count > 1 else ''}{ch}" for ch, count in encode(s))


def from_text(text: str) -> str:
    """The string whose compact form is text."""
    out, count = [], ""
    for ch in text:
        if ch.isdigit():
            count += ch
        else:
            out.append(ch * int(count or 1))
            count = ""
    if count:
        raise ValueError(f"text ends with a count: {text!r}")
    return "".join(out)
