"""Check run of portparse: blanks, '+' signs, non-ASCII digits, IPv6 brackets, an explicit
default_port, and text that is not a number at all (training only had out-of-range numbers).

The correct module raises ValueError on the non-numbers; the driver records it and goes on.
"""

import hashlib
import random

import portparse

rng = random.Random(1)
results = []
# Fullwidth digits are digits to int(): "\uff18\uff10" is 80.
texts = [" 8080 ", "+443", "\uff18\uff10", "\uff18\uff10\uff18\uff10", "22\n"]
texts += ["http", "80a", "", "  ", "1e3", "0x50"]  # not numbers: training never had such text
texts += [f" {rng.randrange(1, 65536)} " for _ in range(40)]
for text in texts:
    try:
        results.append(portparse.parse_port(text))
    except ValueError as exc:
        results.append(f"ValueError: {exc}")
for endpoint in ("[::1]:8443", "[fe80::2]", "proxy:", "proxy:web", "Example.org:+80", "[::1]:x"):
    try:
        results.append(portparse.parse_endpoint(endpoint, default_port=8000))
    except ValueError as exc:
        results.append(f"ValueError: {exc}")

digest = hashlib.sha256(repr(results).encode()).hexdigest()[:16]
errors = sum(1 for r in results if isinstance(r, str))
print(f"portparse check: {len(results)} results, {errors} errors, digest {digest}")
