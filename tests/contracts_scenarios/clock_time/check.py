"""Check run of clock: minutes fields up to 599 and hours past a day (training had at most
23:179), deltas of days, 'HH:MMM' texts, and minutes(hours) with mins defaulted (training
always passed it). A first batch stays within training's ranges.

Every call is legal for the correct module: minutes() documents that mins may exceed 59.
"""

import hashlib
import random

import clock

rng = random.Random(1)
results = []
for _ in range(30):
    results.append(clock.minutes(rng.randrange(24), rng.randrange(60, 180)))
for _ in range(60):
    hours, mins = rng.randrange(30), rng.randrange(100, 600)
    total = clock.minutes(hours, mins)
    results.append((total, clock.fmt(total), clock.add(total, rng.randrange(-6000, 6000))))
    results.append(clock.parse(f"{hours:02d}:{mins}"))
for hours in range(0, 48, 7):
    results.append(clock.minutes(hours))

digest = hashlib.sha256(repr(results).encode()).hexdigest()[:16]
total = sum(r[0] if isinstance(r, tuple) else r for r in results)
print(f"clock check: {len(results)} results, sum {total}, digest {digest}")
