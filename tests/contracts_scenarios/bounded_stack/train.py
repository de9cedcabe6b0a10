"""Training run of bstack: small undo stacks of ints, short strs, tuples and None, pushed and
popped, extended from short lists and drained (whole or n items)."""

import hashlib
import random

import bstack


def edit(rng: random.Random) -> object:
    """An undo record: one of the kinds an editor pushes."""
    return rng.choice((rng.randrange(100), f"edit-{rng.randrange(100)}", (rng.randrange(5), "move"), None))


rng = random.Random(0)
results = []
for _ in range(36):
    stack = bstack.BoundedStack(rng.randrange(1, 12))
    for _ in range(16):
        try:
            if rng.random() < 0.6:
                results.append(stack.push(edit(rng)))
            else:
                results.append(stack.pop())
        except (bstack.StackFull, IndexError) as exc:
            results.append(type(exc).__name__)
        results.append(stack.peek())
    try:
        results.append(stack.extend([edit(rng) for _ in range(rng.randrange(0, 6))]))
    except bstack.StackFull as exc:
        results.append(str(exc))
    results.append(stack.drain(rng.choice((None, rng.randrange(0, 15)))))
    results.append(stack.drain())

full = sum(1 for r in results if r == "StackFull" or str(r).startswith("stack full"))
digest = hashlib.sha256(repr(results).encode()).hexdigest()[:16]
print(f"bstack train: {len(results)} results, {full} full, digest {digest}")
