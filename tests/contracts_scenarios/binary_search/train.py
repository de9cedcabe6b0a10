"""Training run of binsearch: sorted lists of small ints, searched for values around them
(below the smallest, inside, and past the largest)."""

import hashlib
import random

import binsearch

rng = random.Random(0)
results = []
for _ in range(250):
    seq = sorted(rng.randrange(0, 100) for _ in range(rng.randrange(1, 40)))
    x = rng.randrange(-5, seq[-1] + 10)
    results.append((binsearch.find(seq, x), binsearch.count(seq, x), binsearch.lower_bound(seq, x)))

digest = hashlib.sha256(repr(results).encode()).hexdigest()[:16]
print(f"binsearch train: {len(results)} results, {sum(r[0] >= 0 for r in results)} found, digest {digest}")
