"""Check run of binsearch: tuples and lists of large and negative ints and of strings, values
far past the largest element, and lower_bound() with explicit lo/hi (training left them out).
A first batch stays within training's shapes (short lists of small ints), past the largest
too.
"""

import hashlib
import random

import binsearch

rng = random.Random(1)
results = []
for _ in range(40):
    # At most 30 long: results (up to len(seq)) stay within the range training's results took.
    seq = sorted(rng.randrange(0, 100) for _ in range(rng.randrange(1, 31)))
    x = rng.randrange(seq[-1] - 5, seq[-1] + 10)
    results.append((binsearch.find(seq, x), binsearch.count(seq, x)))
for i in range(120):
    seq = sorted(rng.randrange(-50_000, 50_000) for _ in range(rng.randrange(1, 80)))
    if i % 2:
        seq = tuple(seq)
    x = rng.choice((seq[0], seq[-1], seq[-1] + rng.randrange(1, 1000), rng.randrange(-60_000, 60_000)))
    results.append((binsearch.find(seq, x), binsearch.count(seq, x),
                    binsearch.lower_bound(seq, x, 0, len(seq) // 2)))
names = sorted(f"user{n:03d}" for n in rng.sample(range(1000), 50))
for name in ("user000", names[10], "zed", "aaa"):
    results.append((binsearch.find(names, name), binsearch.count(names, name)))

digest = hashlib.sha256(repr(results).encode()).hexdigest()[:16]
print(f"binsearch check: {len(results)} results, {sum(r[0] >= 0 for r in results)} found, digest {digest}")
