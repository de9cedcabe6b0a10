"""Check run of settings: hex, octal and binary ints and underscores in numbers (training had
plain decimals), ports up to 2**32, uppercase keys and booleans, longer host names, and
explicit defaults (training left them out). The first two lookups of each file use training's
keys and no default.
"""

import hashlib
import random

import settings

rng = random.Random(1)
results = []
for _ in range(80):
    workers = rng.choice(("0x10", "0o17", "0b101", "1_000", "-3", str(rng.randrange(1, 64))))
    text = "\n".join([
        f"WORKERS = {workers}",
        f"Port = 0x{rng.randrange(1024, 2**32):x}",
        f"offset = {rng.choice(('-0x20', '0x7f', '-12'))}",
        f"Debug = {rng.choice(('ON', 'Off', 'Yes', 'NO'))}",
        "hosts = " + ",".join(f"node-{n}.example.org" for n in range(rng.randrange(0, 4))),
    ])
    cfg = settings.parse(text)
    results.append((settings.get_int(cfg, "workers"), settings.get_int(cfg, "offset"),
                    settings.get_int(cfg, "port", default=-1), settings.get_int(cfg, "retries", 3),
                    settings.get_bool(cfg, "debug", default=True), settings.get_bool(cfg, "trace", True),
                    len(settings.get_list(cfg, "hosts"))))

digest = hashlib.sha256(repr(results).encode()).hexdigest()[:16]
texts = sum(1 for r in results for v in r if isinstance(v, str))
print(f"settings check: {len(results)} results, {texts} str values, digest {digest}")
