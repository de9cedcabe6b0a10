"""Training run of money: one EUR account paid into and out of (now and then overdrawn),
fees of 0-300 percent of a payment, fees split into up to 5 shares."""

import hashlib
import random

import money

rng = random.Random(0)
results = []
balance = money.Money(2_000)
for _ in range(250):
    payment = money.Money(rng.randrange(0, 5_000))
    balance = money.sub(balance, payment)
    balance = money.add(balance, money.Money(rng.randrange(0, 5_000)))
    fee = money.percent(payment, rng.randrange(0, 301))
    shares = money.split(fee, rng.randrange(1, 6))
    results.append((balance.cents, fee.cents, [s.cents for s in shares], money.fmt(balance)))
try:
    money.split(balance, 0)
except ValueError as exc:
    results.append(str(exc))

digest = hashlib.sha256(repr(results).encode()).hexdigest()[:16]
overdrawn = sum(1 for r in results if isinstance(r, tuple) and r[0] < 0)
print(f"money train: {len(results)} results, {overdrawn} overdrawn, balance {money.fmt(balance)}, "
      f"digest {digest}")
