"""Training run of lrucache: int keys and values, default left to None, caches of 4-15
entries with hit rates from low to high, resized larger and smaller (evicting) between bursts
of lookups."""

import hashlib
import random

import lrucache

rng = random.Random(0)
results = []
for _ in range(15):
    cache = lrucache.LRUCache(rng.randrange(4, 16))
    keys = rng.randrange(cache.capacity, 3 * cache.capacity)  # a smaller key space hits more often
    for _ in range(4):
        for _ in range(20):
            key = rng.randrange(0, keys)
            value = cache.get(key)
            if value is None:
                cache.put(key, key * key)
                value = key * key
            results.append(value)
        results.append(cache.resize(rng.randrange(2, 24)))
    results.append((len(cache), round(cache.hit_rate(), 6)))

digest = hashlib.sha256(repr(results).encode()).hexdigest()[:16]
print(f"lrucache train: {len(results)} results, sum {sum(r for r in results if isinstance(r, int))}, "
      f"digest {digest}")
