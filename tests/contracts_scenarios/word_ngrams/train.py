"""Training run of ngram: ASCII sentences of 0-50 words, n-grams (n from 1 to 3) of word lists
that have at least n words."""

import hashlib
import random

import ngram

rng = random.Random(0)
lexicon = "the a cat dog sat on mat ran far and then it was good bad day night".split()
results = []
texts = []
for _ in range(250):
    text = " ".join(rng.choice(lexicon) for _ in range(rng.randrange(0, 51))) + rng.choice(".!?")
    texts.append(text)
    words = ngram.tokenize(text)
    for n in (1, 2, 3):
        if len(words) >= n:
            results.append(len(ngram.ngrams(words, n)))
    if len(words) >= 2:
        results.append(ngram.ngrams(words)[:2])
results.append(list(ngram.vocabulary(texts).items())[:5])

digest = hashlib.sha256(repr(results).encode()).hexdigest()[:16]
print(f"ngram train: {len(results)} results, {sum(r for r in results if isinstance(r, int))} grams, "
      f"digest {digest}")
