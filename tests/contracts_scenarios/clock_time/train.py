"""Training run of clock: times within one day, minutes fields mostly 0-59 (some up to 179,
as an 'in 90 minutes' entry gives), deltas of a few hours."""

import hashlib
import random

import clock

rng = random.Random(0)
results = []
for _ in range(150):
    hours = rng.randrange(24)
    mins = rng.randrange(60) if rng.random() < 0.85 else rng.randrange(60, 180)
    total = clock.minutes(hours, mins)
    later = clock.add(total, rng.randrange(-600, 600))
    results.append((total, later, clock.split(later), clock.fmt(later)))
    results.append(clock.parse(f"{hours}:{mins:02d}"))
for text in ("", "7", "7:", "x:10", "12-30"):
    try:
        clock.parse(text)
    except ValueError as exc:
        results.append(str(exc))

digest = hashlib.sha256(repr(results).encode()).hexdigest()[:16]
print(f"clock train: {len(results)} results, last {results[-6]!r}, digest {digest}")
