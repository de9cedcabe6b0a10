"""Check run of bstack: capacities 10x larger, bigger ints and longer strs, extend() from
generators and tuples (training passed lists), drain(n) with n past the size, and
peek(default=...) (training left the default).
"""

import hashlib
import random

import bstack


def edit(rng: random.Random) -> object:
    """An undo record, with larger values than training's."""
    return rng.choice((rng.randrange(10**6), f"edit-{rng.randrange(10**6)}-" + "x" * rng.randrange(50),
                       (rng.randrange(500), "move"), None))


rng = random.Random(1)
results = []
for _ in range(12):
    stack = bstack.BoundedStack(rng.randrange(10, 120))
    for _ in range(30):
        try:
            if rng.random() < 0.7:
                results.append(stack.push(edit(rng)))
            else:
                results.append(stack.pop())
        except (bstack.StackFull, IndexError) as exc:
            results.append(type(exc).__name__)
    try:
        results.append(stack.extend(edit(rng) for _ in range(rng.randrange(0, 100))))
    except bstack.StackFull as exc:
        results.append(str(exc))
    results.append(stack.peek(default="<empty>"))
    results.append(stack.drain(rng.randrange(0, 200)))
    results.append((stack.size, stack.peek(default="<empty>")))
    results.append(stack.extend(("a", "b")) if stack.capacity - stack.size >= 2 else "no room")

full = sum(1 for r in results if r == "StackFull" or str(r).startswith("stack full"))
digest = hashlib.sha256(repr(results).encode()).hexdigest()[:16]
print(f"bstack check: {len(results)} results, {full} full, digest {digest}")
