"""Check run of checksum: inputs 100x longer (past the 5552-byte block), bytearray (training
passed bytes and str), texts with 3- and 4-byte UTF-8 characters (training had at most 'é'),
chained sums with an explicit start, numbers of other lengths, some with wrong check digits.
"""

import hashlib
import random

import checksum

rng = random.Random(1)
results = []
for _ in range(30):
    size = rng.randrange(1_000, 12_000)
    data = bytes(rng.randrange(256) for _ in range(size))
    whole = checksum.adler32(data)
    chained = checksum.adler32(bytearray(data[size // 2:]), start=checksum.adler32(data[:size // 2]))
    text = "".join(rng.choice("aé€𝄞 z") for _ in range(rng.randrange(10, 3_000)))
    results.append((whole, whole == chained, checksum.adler32(text), checksum.adler32(text.encode())))
for _ in range(60):
    number = "".join(str(rng.randrange(10)) for _ in range(rng.randrange(1, 40)))
    digit = checksum.luhn_digit(number)
    results.append((digit, checksum.luhn_valid(number + str(digit)), checksum.luhn_valid(number + "0")))

digest = hashlib.sha256(repr(results).encode()).hexdigest()[:16]
print(f"checksum check: {len(results)} results, {sum(r[0] for r in results) % 100000} mod, digest {digest}")
