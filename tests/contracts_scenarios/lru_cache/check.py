"""Check run of lrucache: str and tuple keys (training had ints), default=0 passed (training
left it to None), caches 10x larger, and resize() to smaller sizes, evicting. A first batch of
caches stays within training's shapes (int keys, 4-15 entries) and is shrunk too.
"""

import hashlib
import random

import lrucache

rng = random.Random(1)
results = []


def exercise(cache: lrucache.LRUCache, keys: list, lookups: int, new_capacity: int) -> None:
    """A burst of lookups (filling misses), then a resize; results go to `results`."""
    for _ in range(lookups):
        key = rng.choice(keys)
        value = cache.get(key) if isinstance(key, int) else cache.get(key, default=0)
        if not value:
            # Values as training stored them (key * key) for int keys, so that get() returns alike.
            cache.put(key, key * key if isinstance(key, int) else len(str(key)) * 7)
        results.append(value)
    try:
        results.append(cache.resize(new_capacity))
    except Exception as exc:  # a driver records what went wrong and goes on
        results.append(f"resize failed: {type(exc).__name__}: {exc}")
    results.append((len(cache), cache.capacity, round(cache.hit_rate(), 6)))


for _ in range(3):
    cache = lrucache.LRUCache(rng.randrange(8, 16))
    exercise(cache, list(range(cache.capacity * 2)), 40, rng.randrange(2, 6))
for _ in range(3):
    cache = lrucache.LRUCache(rng.randrange(40, 160))
    keys = [f"user-{n}" for n in range(300)] + [(n, "page") for n in range(9)]
    exercise(cache, keys, 200, rng.randrange(2, 20))

digest = hashlib.sha256(repr(results).encode()).hexdigest()[:16]
failed = [r for r in results if isinstance(r, str) and r.startswith("resize failed")]
print(f"lrucache check: {len(results)} results, {len(failed)} failed resizes, digest {digest}")
