"""Training run of settings: decimal ints (an offset may be negative), lowercase booleans, a
few lists; get_* defaults left out."""

import hashlib
import random

import settings

rng = random.Random(0)
results = []
for _ in range(200):
    lines = [
        f"workers = {rng.randrange(1, 64)}",
        f"port={rng.randrange(1024, 65536)}  # listening port",
        f"offset = {rng.randrange(-100, 100)}",
        f"debug = {rng.choice(('yes', 'no', 'true', 'false', '1', '0'))}",
        "hosts = " + ", ".join(rng.sample(["a", "b", "c", "d"], rng.randrange(0, 4))),
        "",
        "# end",
    ]
    cfg = settings.parse("\n".join(rng.sample(lines, len(lines))))
    results.append((settings.get_int(cfg, "workers"), settings.get_int(cfg, "port"),
                    settings.get_int(cfg, "offset"), settings.get_int(cfg, "timeout"),
                    settings.get_bool(cfg, "debug"), settings.get_bool(cfg, "verbose"),
                    settings.get_list(cfg, "hosts")))
try:
    settings.parse("just words")
except ValueError as exc:
    results.append(str(exc))

digest = hashlib.sha256(repr(results).encode()).hexdigest()[:16]
print(f"settings train: {len(results)} results, {sum(r[0] for r in results[:-1])} workers, digest {digest}")
