"""Check run of money: amounts 10x larger, USD as well as EUR, percentages of debts (negative
amounts; training took percentages of payments only) and over 300, debts split into up to 8
parts. A first batch stays within training's ranges, overdrafts included.

Every call is legal for the correct module (sub of a larger amount is a negative balance).
"""

import hashlib
import random

import money

rng = random.Random(1)
results = []
balance = money.Money(1_000)
for _ in range(40):
    balance = money.sub(balance, money.Money(rng.randrange(0, 5_000)))
    balance = money.add(balance, money.Money(rng.randrange(0, 5_000)))
    results.append((balance.cents, money.fmt(balance)))
for currency in ("EUR", "USD"):
    balance = money.Money(1_000, currency)
    for _ in range(60):
        payment = money.Money(rng.randrange(0, 50_000), currency)
        balance = money.sub(balance, payment)
        balance = money.add(balance, money.Money(rng.randrange(0, 30_000), currency))
        debt_share = money.split(balance, rng.randrange(1, 9))
        results.append((balance.cents, money.percent(balance, rng.randrange(100, 1000)).cents,
                        sum(s.cents for s in debt_share), money.fmt(balance)))
try:
    money.add(money.Money(1, "EUR"), money.Money(1, "USD"))
except ValueError as exc:
    results.append(str(exc))

digest = hashlib.sha256(repr(results).encode()).hexdigest()[:16]
negatives = sum(1 for r in results if isinstance(r, tuple) and r[0] < 0)
print(f"money check: {len(results)} results, {negatives} negative balances, digest {digest}")
