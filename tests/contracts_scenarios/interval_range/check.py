"""Check run of interval: negative coordinates, spans 10x longer, shrinks by up to 2000 (the
correct module caps them at the midpoint), and repr(). A first batch stays within training's
ranges: day slots shrunk by at most 30.
"""

import hashlib
import random

import interval

rng = random.Random(1)
results = []
for _ in range(40):
    start = rng.randrange(0, 1200)
    slot = interval.Interval(start, start + rng.randrange(0, 40))
    slot.grow(-rng.randrange(1, 31))
    results.append((slot.start, slot.end, slot.length(), slot.contains(start)))
for _ in range(100):
    start = rng.randrange(-20_000, 20_000)
    slot = interval.Interval(start, start + rng.randrange(0, 2_400))
    slot.grow(-rng.randrange(0, 2_000))
    results.append((slot.start, slot.end, slot.length(), slot.contains(start)))
    common = slot.intersect(interval.Interval(start - 500, start + 500))
    results.append(repr(common))

digest = hashlib.sha256(repr(results).encode()).hexdigest()[:16]
inverted = sum(1 for r in results if isinstance(r, tuple) and r[0] > r[1])
print(f"interval check: {len(results)} results, {inverted} inverted, digest {digest}")
