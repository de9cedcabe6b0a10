"""Redaction: parameters whose names match a pattern are never captured.

Decided at instrumentation time: the pass passes the recorder's REDACTED sentinel in
place of such a parameter, so its value never reaches the recorder (docs/abi.md, form
REDACTED). Patterns are fnmatch globs matched case-insensitively against the whole
parameter name; the defaults are config.DEFAULT_REDACT.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable


class Redactor:
    """Tells which parameter names are redacted under a list of patterns."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(patterns)
        # One alternation, so a name costs one match whatever the number of patterns.
        joined = "|".join(f"(?:{fnmatch.translate(p)})" for p in self.patterns)
        self._regex = re.compile(joined, re.IGNORECASE) if joined else None

    def __call__(self, name: str) -> bool:
        """True when parameter ``name`` must not be captured."""
        return self._regex is not None and self._regex.match(name) is not None
