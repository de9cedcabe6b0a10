"""Check run of clamp: values 10x wider than training's, new steps (25, 0.5) passed by keyword,
scale() between ranges (training never called it). A first batch stays within training's
ranges and steps.
"""

import hashlib
import random

import clamp

rng = random.Random(1)
results = []
for _ in range(40):
    lo = rng.randrange(-100, 1)
    hi = lo + rng.randrange(1, 200)
    results.append(clamp.clamp(rng.randrange(-300, 300), lo, hi, rng.choice((2, 5, 10))))
for _ in range(120):
    lo = rng.randrange(-3_000, 1)
    hi = lo + rng.randrange(1, 2_000)
    x = rng.randrange(-6_000, 6_000)
    results.append(clamp.clamp(x, lo, hi, step=rng.choice((5, 10, 25, 0.5))))
    results.append(round(clamp.scale(x, lo, hi, 0, 255), 6))

digest = hashlib.sha256(repr(results).encode()).hexdigest()[:16]
print(f"clamp check: {len(results)} results, max {max(results)}, digest {digest}")
