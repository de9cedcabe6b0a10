"""Training run of ratio: small positive fractions, added, multiplied, divided and compared."""

import hashlib
import random

import ratio

rng = random.Random(0)
results = []
acc = ratio.Ratio(0)
for _ in range(200):
    r = ratio.Ratio(rng.randrange(0, 20), rng.randrange(1, 20))
    acc = acc.add(r) if rng.random() < 0.7 else acc.mul(r)
    if r.num:
        results.append(repr(acc.div(r)))
    results.append((repr(acc), r.compare(ratio.Ratio(1, 2)), round(r.to_float(), 9)))
    if acc.den > 10**6:
        acc = ratio.Ratio(acc.num % 7, 7)
try:
    ratio.Ratio(1, 0)
except ZeroDivisionError as exc:
    results.append(str(exc))

digest = hashlib.sha256(repr(results).encode()).hexdigest()[:16]
print(f"ratio train: {len(results)} results, acc {acc!r}, digest {digest}")
