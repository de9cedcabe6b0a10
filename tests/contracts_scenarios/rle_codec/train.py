"""Training run of rle: strings of up to 400 chars over a small ASCII alphabet, runs of at
most a few chars."""

import hashlib
import random

import rle

rng = random.Random(0)
results = []
for _ in range(300):
    s = "".join(rng.choice("aab c") * rng.randrange(1, 4) for _ in range(rng.randrange(0, 200)))[:400]
    pairs = rle.encode(s)
    text = rle.to_text(s)
    results.append((len(pairs), rle.decode(pairs) == s, text, rle.from_text(text) == s))
for call, bad in ((rle.to_text, "a1b2"), (rle.from_text, "3")):
    try:
        results.append(call(bad))
    except ValueError as exc:
        results.append(str(exc))

digest = hashlib.sha256(repr(results).encode()).hexdigest()[:16]
print(f"rle train: {len(results)} results, {sum(r[0] for r in results[:-2])} runs, digest {digest}")
