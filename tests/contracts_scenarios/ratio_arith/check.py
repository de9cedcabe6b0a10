"""Check run of ratio: negative numerators and denominators (training had none), values 1000x
larger, sub() and neg(), and equal fractions written differently.
"""

import hashlib
import random

import ratio

rng = random.Random(1)
results = []
for _ in range(120):
    a = ratio.Ratio(rng.randrange(-20_000, 20_000), rng.choice((-1, 1)) * rng.randrange(1, 20_000))
    b = ratio.Ratio(rng.randrange(-20_000, 20_000), rng.choice((-1, 1)) * rng.randrange(1, 20_000))
    same = ratio.Ratio(a.num * -3, a.den * -3)
    results.append((repr(a.sub(b)), repr(a.add(b.neg())), repr(a.mul(b)), a.compare(b), a.compare(same)))
    try:
        results.append(repr(a.div(b)))
    except ZeroDivisionError as exc:
        results.append(str(exc))
results.append(repr(ratio.Ratio(6, 4).add(ratio.Ratio(1, 4))))

digest = hashlib.sha256(repr(results).encode()).hexdigest()[:16]
negative = sum(1 for r in results if isinstance(r, tuple) and r[0].startswith("-"))
print(f"ratio check: {len(results)} results, {negative} negative, digest {digest}")
