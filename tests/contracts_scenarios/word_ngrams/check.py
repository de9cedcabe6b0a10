"""Check run of ngram: long texts (60-120 words, training had at most 50) with accents,
digits, apostrophes and capitals kept (lower=False), words passed as tuples and generators
as well as lists, and n up to 5. A first batch keeps training's shapes: lists of 33-50
lowercase ASCII words, n from 1 to 3.
"""

import hashlib
import random

import ngram

rng = random.Random(1)
results = []
lexicon = "the a cat dog sat on mat ran far and then it was good bad day night".split()
for _ in range(20):
    words = ngram.tokenize(" ".join(rng.choice(lexicon) for _ in range(rng.randrange(33, 51))))
    n = rng.randrange(1, 4)
    grams = ngram.ngrams(words, n)
    results.append((len(words), n, len(grams), grams[-1]))
lexicon = "Café naïve don't O'Brien 2024 Zürich über rock'n'roll x86_64 ÉCOLE it's 42".split()
for i in range(60):
    text = ", ".join(rng.choice(lexicon) for _ in range(rng.randrange(60, 121)))
    words = ngram.tokenize(text, lower=False)
    arg = (words, tuple(words), (w for w in words))[i % 3]
    n = rng.randrange(1, 6)
    grams = ngram.ngrams(arg, n)
    results.append((len(words), n, len(grams), grams[-1] if grams else None))
results.append(list(ngram.vocabulary(t for t in ("Ünïcode text", "text again", "again again"))))

digest = hashlib.sha256(repr(results).encode()).hexdigest()[:16]
print(f"ngram check: {len(results)} results, {sum(r[2] for r in results[:-1])} grams, digest {digest}")
