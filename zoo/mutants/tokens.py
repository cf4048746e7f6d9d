"""Token-id text data for the zoo's Embedding programs (integer ids, 0 = padding).

Both generators draw background words from a Zipf-like vocabulary and plant a few
label-bearing words, as real reviews and news items carry them; documents have
different lengths and are padded with 0 at the end, as ``pad_sequences(padding='post')`` does.
"""

import numpy as np


def _background(rng, vocab, size):
    ranks = np.arange(1, vocab)                     # ids 1..vocab-1, id 0 is padding
    p = 1.0 / (ranks + 10.0)
    return rng.choice(ranks, size=size, p=p / p.sum())


def _pad(rng, docs, length, min_len):
    x = np.zeros((len(docs), length), dtype=np.int32)
    for i, doc in enumerate(docs):
        n = int(rng.integers(min_len, length + 1))
        x[i, :n] = doc[:n]
    return x


def sentiment(rng, n=2000, vocab=500, length=30, polar=40, per_doc=4, label_noise=0.05):
    """Binary sentiment: ``polar`` positive and ``polar`` negative word ids; a review carries
    ``per_doc`` sentiment words, mostly of its own polarity; ``label_noise`` of labels flipped."""
    words = rng.permutation(np.arange(1, vocab))[: 2 * polar]
    positive, negative = words[:polar], words[polar:]
    y = rng.integers(0, 2, n)
    docs = []
    for label in y:
        doc = _background(rng, vocab, length)
        own, other = (positive, negative) if label == 1 else (negative, positive)
        k_own = rng.binomial(per_doc, 0.8)
        slots = rng.choice(length // 2, size=per_doc, replace=False)   # in the first half: kept by padding
        doc[slots[:k_own]] = rng.choice(own, k_own)
        doc[slots[k_own:]] = rng.choice(other, per_doc - k_own)
        docs.append(doc)
    x = _pad(rng, docs, length, min_len=length // 2)
    flip = rng.random(n) < label_noise
    return x, np.where(flip, 1 - y, y).astype(np.float32)


def topics(rng, n=1200, vocab=300, length=20, classes=4, keywords=15, share=0.3):
    """News topics: each of ``classes`` topics owns ``keywords`` word ids; a document's words are
    its topic's keywords with probability ``share``, background words otherwise. Labels 0..classes-1."""
    words = rng.permutation(np.arange(1, vocab))[: classes * keywords].reshape(classes, keywords)
    y = rng.integers(0, classes, n)
    docs = []
    for label in y:
        doc = _background(rng, vocab, length)
        topical = rng.random(length) < share
        doc[topical] = rng.choice(words[label], int(topical.sum()))
        docs.append(doc)
    return _pad(rng, docs, length, min_len=length // 2), y


def tags(rng, n=1200, vocab=400, length=25, classes=5, keywords=12, share=0.35, max_tags=3):
    """Multi-label tagging: each document carries 1..``max_tags`` of ``classes`` tags; its words are
    keywords of its tags with probability ``share``, background words otherwise. Targets multi-hot."""
    words = rng.permutation(np.arange(1, vocab))[: classes * keywords].reshape(classes, keywords)
    y = np.zeros((n, classes), dtype=np.float32)
    docs = []
    for i in range(n):
        k = int(rng.integers(1, max_tags + 1))
        own = rng.choice(classes, size=k, replace=False)
        y[i, own] = 1.0
        doc = _background(rng, vocab, length)
        topical = rng.random(length) < share
        doc[topical] = rng.choice(words[own].ravel(), int(topical.sum()))
        docs.append(doc)
    return _pad(rng, docs, length, min_len=length // 2), y
