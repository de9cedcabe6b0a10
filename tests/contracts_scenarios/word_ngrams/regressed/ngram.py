"""Word tokenizing and n-grams, for a small full-text index."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable

_WORD = re.compile(r"\w+(?:'\w+)?")

#: Past this many words, ngrams() slides a window instead of slicing at every position.
LONG = 32


def tokenize(text: str, lower: bool = True) -> list[str]:
    """The words of text (letters, digits and inner apostrophes), lowercased unless lower=False."""
    words = _WORD.findall(text)
    return [w.lower() for w in words] if lower else words


def ngrams(words: Iterable[str], n: int = 2) -> list[tuple[str, ...]]:
    """The n-grams of a word sequence, in order: len(words) - n + 1 of them (none if fewer words)."""
    if n < 1:
        raise ValueError(f"n must be at least 1, not {n}")
    words = list(words)
    if len(words) < n:
        return []
    if len(words) > LONG:
        window = deque(words[:n], maxlen=n)
        grams = []
        for word in words[n:]:
            grams.append(tuple(window))
            window.append(word)
        return grams
    return [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]


def vocabulary(texts: Iterable[str]) -> dict[str, int]:
    """How often each word occurs over texts, most frequent first (ties in first-seen order)."""
    counts: dict[str, int] = {}
    for text in texts:
        for word in tokenize(text):
            counts[word] = counts.get(word, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: -item[1]))
