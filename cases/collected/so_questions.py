"""Stand-in for the Stack Overflow 16k question set of the TensorFlow text-classification tutorial
(gh-tfdocs-2102): question bodies as TextVectorization(max_tokens=10000, output_sequence_length=250)
would give them, 4 tags (python, csharp, javascript, java), 2000 training questions each.

Token ids 2..vocab-1 follow Zipf's law (0 is padding, 1 the out-of-vocabulary id); each tag owns
``keywords`` ids (its language's identifiers and library names) and tags 1 and 3 (csharp, java)
share ``shared`` more, as C# and Java questions share most of their syntax. A token is a keyword of
the question's own tag with probability ``rate``. Lengths are log-normal; sequences are cut at
``length`` and padded with 0 at the end, as TextVectorization does. Labels 0..3.
"""

import numpy as np


def make(rng, n=8000, vocab=10001, length=250, classes=4, keywords=40, shared=15, rate=0.06,
         median_length=110.0):
    ranks = np.arange(2, vocab)
    p = 1.0 / (ranks + 8.0)
    p /= p.sum()
    owned = rng.choice(np.arange(30, vocab), size=classes * keywords + shared, replace=False)
    own = owned[:classes * keywords].reshape(classes, keywords)
    common = owned[classes * keywords:]
    y = np.repeat(np.arange(classes), n // classes)
    y = np.concatenate([y, rng.integers(0, classes, n - y.size)])
    lengths = np.clip(np.round(rng.lognormal(np.log(median_length), 0.7, size=n)), 8, length).astype(int)
    x = np.zeros((n, length), dtype=np.int64)
    for i in range(n):
        words = rng.choice(ranks, size=lengths[i], p=p)
        slots = rng.random(lengths[i]) < rate
        pool = own[y[i]] if y[i] not in (1, 3) else np.concatenate([own[y[i]], common])
        words[slots] = rng.choice(pool, size=int(slots.sum()))
        x[i, :lengths[i]] = words                                  # padded at the end
    order = rng.permutation(n)
    return x[order], y[order]
