"""Label-encoded categorical sequences (cv-565956): ``steps`` time steps of ``features`` categorical
columns, each column's categories coded 0..k-1 as sklearn's LabelEncoder does (no scaling, no
one-hot), and one binary target.

Column j has ``cards[j]`` categories, drawn uniformly at every step. The target is 1 when, at the
last step, column 0 is category 1 and column 2 is category 2 or above (about 25% of rows, near the
post's 26%); a ``label_noise`` share of targets is flipped, so the best attainable accuracy is about
1 - label_noise (the post's fixed run: 98%).
"""

import numpy as np


def make(rng, n=10000, steps=5, features=10, cards=(2, 5, 4, 6, 8, 10, 12, 15, 20, 30), label_noise=0.02):
    cards = np.asarray(cards[:features])
    x = np.floor(rng.random((n, steps, features)) * cards).astype(np.float32)
    last = x[:, -1, :]
    y = ((last[:, 0] == 1) & (last[:, 2] >= 2)).astype(np.float32)
    flip = rng.random(n) < label_noise
    return x, np.where(flip, 1.0 - y, y).reshape(-1, 1)
