"""Training run of checksum: short byte strings and short texts (ASCII and 'é') from the
default start, 15-digit numbers."""

import hashlib
import random

import checksum

rng = random.Random(0)
results = []
for i in range(250):
    if i % 2:
        data = bytes(rng.randrange(32, 127) for _ in range(rng.randrange(0, 64)))
    else:
        data = "".join(rng.choice("abc é") for _ in range(rng.randrange(0, 64)))
    results.append(checksum.adler32(data))
    number = "".join(str(rng.randrange(10)) for _ in range(15))
    digit = checksum.luhn_digit(number)
    results.append((digit, checksum.luhn_valid(number + str(digit)), checksum.luhn_valid(number + "x")))
try:
    checksum.luhn_digit("12a4")
except ValueError as exc:
    results.append(str(exc))

digest = hashlib.sha256(repr(results).encode()).hexdigest()[:16]
print(f"checksum train: {len(results)} results, digest {digest}")
