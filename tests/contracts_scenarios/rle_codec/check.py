"""Check run of rle: runs longer than 9 (multi-digit counts, training had at most a few chars
a run), non-ASCII characters, and pairs passed to decode() as a generator. A first batch keeps
training's alphabet and runs (65-100 chars).
"""

import hashlib
import random

import rle

rng = random.Random(1)
results = []


def roundtrip(s: str) -> None:
    """Encode s both ways and decode it back; what happened goes to `results`."""
    try:
        pairs = rle.encode(s)
        text = rle.to_text(s)
        results.append((len(s), len(pairs), rle.decode(p for p in pairs) == s, rle.from_text(text) == s))
    except Exception as exc:  # a driver records what went wrong and goes on
        results.append((len(s), f"{type(exc).__name__}: {exc}"))


for _ in range(20):
    roundtrip("".join(rng.choice("aab c") * rng.randrange(1, 4) for _ in range(50))[:rng.randrange(65, 101)])
for _ in range(40):
    s = "".join(rng.choice("xyzéø€ ") * rng.randrange(1, 25) for _ in range(rng.randrange(8, 30)))
    roundtrip(s.ljust(65, "~")[:400])

digest = hashlib.sha256(repr(results).encode()).hexdigest()[:16]
failures = sum(1 for r in results if isinstance(r[1], str))
print(f"rle check: {len(results)} results, {failures} failures, digest {digest}")
