"""IMDB-like token-id reviews (gh-dlwp-notebooks-124): what keras.datasets.imdb.load_data(num_words)
followed by pad_sequences(maxlen) gives, with an invented vocabulary.

Background words follow Zipf's law over ids 3..vocab-1 (ids 1 and 2 are the start and out-of-vocabulary
marks of the real set, 0 is padding); every review begins with the start mark. ``polar`` word ids
carry the sentiment: a token is a sentiment word with probability ``rate``, of the review's own
polarity with probability ``agree``. Review lengths are log-normal around IMDB's median (about 175
words); pad_sequences' defaults pad and truncate at the front, so a long review keeps its end.
Labels are balanced 0/1, a ``label_noise`` share flipped.
"""

import numpy as np


def make(rng, n=10000, vocab=10000, maxlen=100, polar=300, rate=0.06, agree=0.8, label_noise=0.05,
         median_length=175.0):
    ranks = np.arange(3, vocab)
    p = 1.0 / (ranks - 2 + 10.0)
    p /= p.sum()
    sentiment = rng.choice(np.arange(50, vocab), size=2 * polar, replace=False)
    positive, negative = sentiment[:polar], sentiment[polar:]
    y = rng.integers(0, 2, size=n)
    lengths = np.clip(np.round(rng.lognormal(np.log(median_length), 0.6, size=n)), 10, None).astype(int)
    x = np.zeros((n, maxlen), dtype=np.int64)
    for i in range(n):
        length = int(lengths[i])
        words = rng.choice(ranks, size=length, p=p)
        words[0] = 1                                              # the start mark
        slots = np.flatnonzero(rng.random(length) < rate)
        slots = slots[slots > 0]
        own = rng.random(slots.size) < agree
        mine, theirs = (positive, negative) if y[i] == 1 else (negative, positive)
        words[slots[own]] = rng.choice(mine, size=int(own.sum()))
        words[slots[~own]] = rng.choice(theirs, size=int((~own).sum()))
        kept = words[-maxlen:]                                    # truncating='pre'
        x[i, maxlen - kept.size:] = kept                          # padding='pre'
    flip = rng.random(n) < label_noise
    return x, np.where(flip, 1 - y, y)
