"""Token-id texts in three classes (gh-keras-7223): what a Tokenizer + pad_sequences(maxlen=100) gives
for short documents of three kinds, with an invented vocabulary.

Background words follow Zipf's law over ids 1..vocab-1 (0 is padding). Each class owns ``topic``
word ids; a token is a topic word with probability ``rate``, of the document's own class with
probability ``agree`` (else of another class). Lengths are log-normal around ``median_length``;
documents are padded and truncated at the front (pad_sequences' defaults). Classes are balanced,
a ``label_noise`` share of labels replaced by a random class.
"""

import numpy as np


def make(rng, n=3000, vocab=5000, maxlen=100, classes=3, topic=150, rate=0.08, agree=0.8,
         label_noise=0.03, median_length=60.0):
    ranks = np.arange(1, vocab)
    p = 1.0 / (ranks + 10.0)
    p /= p.sum()
    owned = rng.choice(np.arange(50, vocab), size=classes * topic, replace=False).reshape(classes, topic)
    y = rng.integers(0, classes, size=n)
    lengths = np.clip(np.round(rng.lognormal(np.log(median_length), 0.5, size=n)), 5, None).astype(int)
    x = np.zeros((n, maxlen), dtype=np.int64)
    for i in range(n):
        length = int(lengths[i])
        words = rng.choice(ranks, size=length, p=p)
        slots = np.flatnonzero(rng.random(length) < rate)
        own = rng.random(slots.size) < agree
        words[slots[own]] = rng.choice(owned[y[i]], size=int(own.sum()))
        others = (y[i] + rng.integers(1, classes, size=int((~own).sum()))) % classes
        words[slots[~own]] = owned[others, rng.integers(0, topic, size=others.size)]
        kept = words[-maxlen:]
        x[i, maxlen - kept.size:] = kept
    noisy = rng.random(n) < label_noise
    y = np.where(noisy, rng.integers(0, classes, size=n), y)
    return x, y
