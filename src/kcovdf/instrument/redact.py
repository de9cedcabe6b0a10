"""Redaction: values whose names match a pattern are never captured.

Patterns are fnmatch globs (``*``, ``?``, ``[seq]``, ``[!seq]``) matched against the whole
name, ASCII letters case-insensitively; the defaults are DEFAULT_REDACT, in force in both
cores from the start (a Config's ``redact`` list replaces them). Two places use them:

- the pass, for parameter names: it passes the recorder's REDACTED sentinel in place of
  such a parameter, so its value never reaches the recorder (docs/abi.md, form REDACTED);
- the encoders of both cores (``set_redact``), for names inside a value: object fields and
  attributes, namedtuple fields, and the str keys of dicts (``**kwargs`` included) — the
  field or the key's value is written as the REDACTED kind (docs/abi.md §2.1).

The C core matches with its own glob (``_core/encode.c``); this is the reference.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable

#: Parameter-name patterns (fnmatch, ASCII case-insensitive) redacted by default. Over-matching
#: ("tokens", "author_auth") only loses a value; under-matching leaks a secret.
DEFAULT_REDACT = (
    "*password*", "*passwd*", "*passphrase*", "*secret*", "*token*", "*api_key*", "*apikey*",
    "*credential*", "*private_key*", "*privkey*", "auth", "*_auth", "auth_*", "*authorization*",
    "*cookie*", "*session_key*", "*sessionid*", "*session_id*", "*csrf*", "*signing_key*",
)

# ASCII letters only, as the C matcher folds them: a name means the same to both cores.
_FOLD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def fold(name: str) -> str:
    """``name`` with its ASCII letters lowercased (other characters as they are)."""
    return name.translate(_FOLD)


class Redactor:
    """Tells which names are redacted under a list of patterns."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(patterns)
        # One alternation, so a name costs one match whatever the number of patterns.
        joined = "|".join(f"(?:{fnmatch.translate(fold(p))})" for p in self.patterns)
        self._regex = re.compile(joined, re.DOTALL) if joined else None
        self._seen: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return self._regex is not None

    def __call__(self, name: str) -> bool:
        """True when a value named ``name`` must not be captured."""
        if self._regex is None:
            return False
        hit = self._seen.get(name)
        if hit is None:
            hit = self._regex.match(fold(name)) is not None
            if len(self._seen) < 4096:  # names come from code: few; keys from data: bounded
                self._seen[name] = hit
        return hit
