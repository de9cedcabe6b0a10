"""Training run of portparse: decimal ports over the whole range, plain hostnames, and numbers
out of range (which raise ValueError)."""

import hashlib
import random

import portparse

rng = random.Random(0)
results = []
hosts = ("localhost", "db", "example.org", "10.0.0.7", "cache-2")
for port in (1, 80, 443, 65535, *(rng.randrange(1, 65536) for _ in range(150))):
    host = rng.choice(hosts)
    results.append(portparse.parse_port(str(port)))
    results.append(portparse.parse_endpoint(f"{host}:{port}"))
    results.append(portparse.same_endpoint(f"{host}:{port}", f"{host.upper()}:{port}"))
for text in ("0", "65536", "70000", "-5", "100000"):
    try:
        portparse.parse_port(text)
    except ValueError as exc:
        results.append(str(exc))
results.append(portparse.parse_endpoint("db"))

digest = hashlib.sha256(repr(results).encode()).hexdigest()[:16]
print(f"portparse train: {len(results)} results, digest {digest}")
