"""Training run of interval: slots on a day (0-1440), widened or shrunk by up to 30 minutes a
side (a shrink stops at the midpoint of a short slot)."""

import hashlib
import random

import interval

rng = random.Random(0)
results = []
slots = []
for _ in range(180):
    start = rng.randrange(0, 1200)
    slot = interval.Interval(start, start + rng.randrange(0, 240))
    slot.grow(rng.randrange(-30, 31))
    moved = slot.shift(rng.randrange(0, 60))
    results.append((slot.length(), moved.contains(rng.randrange(0, 1440))))
    slots.append(slot)
for a, b in zip(slots[:-1], slots[1:], strict=True):
    common = a.intersect(b)
    results.append((a.span(b).length(), common.length() if common else None))
try:
    interval.Interval(5, 4)
except ValueError as exc:
    results.append(str(exc))

digest = hashlib.sha256(repr(results).encode()).hexdigest()[:16]
hits = sum(1 for r in results if isinstance(r, tuple) and r[1] is True)
print(f"interval train: {len(results)} results, {hits} hits, digest {digest}")
