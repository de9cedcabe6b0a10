"""Training run of clamp: ints and floats within a few hundred, snapped to small steps
(1, 2, 5 or 10) about half of the time."""

import hashlib
import random

import clamp

rng = random.Random(0)
results = []
for _ in range(300):
    lo = rng.randrange(-100, 1)
    hi = lo + rng.randrange(1, 200)
    x = rng.randrange(-300, 300)
    step = rng.choice((None, None, 1, 2, 5, 10))
    results.append(clamp.clamp(x, lo, hi) if step is None else clamp.clamp(x, lo, hi, step))
    results.append(clamp.clamp(x + 0.5, float(lo), float(hi)))
    results.append(round(clamp.normalize(x, lo, hi), 9))
    results.append(clamp.wrap(x, 0, 360))
try:
    clamp.clamp(1, 5, 4)
except ValueError as exc:
    results.append(str(exc))

digest = hashlib.sha256(repr(results).encode()).hexdigest()[:16]
print(f"clamp train: {len(results)} results, digest {digest}")
