"""Stand-in for the Drexel chatbot's question data (gh-drexelchatbot): short questions hashed to
word ids, each labelled with the generic-answer class of its question pattern.

The original hashes each lower-cased word with adler32 modulo ``top_words`` (5000) and pads the
questions to 25 words at the front (Keras' ``pad_sequences`` default). Each class here is a question
pattern ("When does (Event) start?"): a few pattern words in a fixed order with one to three slot
words (building, event, course names) drawn from a pool every class shares, and now and then a
function word. Pattern words are drawn from a small pool, so patterns share words, as
"when"/"where"/"what" are shared by real ones. Ids are 1..vocab-1 (0 is padding).
"""

import numpy as np


def make(rng, n=2596, vocab=5000, length=25, shares=(1103, 362, 96, 42, 327, 235, 122, 138, 171),
         pattern_words=3, pattern_pool=30, slot_pool=400, function_pool=20, label_noise=0.03):
    shares = np.asarray(shares, dtype=float)
    classes = len(shares)
    ids = rng.permutation(np.arange(1, vocab))
    pool, slots, function = (ids[:pattern_pool], ids[pattern_pool:pattern_pool + slot_pool],
                             ids[pattern_pool + slot_pool:pattern_pool + slot_pool + function_pool])
    patterns = [rng.choice(pool, size=pattern_words, replace=False) for _ in range(classes)]
    where = rng.integers(0, pattern_words + 1, size=classes)     # where the slot words go in the pattern
    y = rng.choice(classes, size=n, p=shares / shares.sum())
    x = np.zeros((n, length), dtype=np.int64)
    for i, label in enumerate(y):
        slot = list(rng.choice(slots, size=int(rng.integers(1, 4))))
        words = list(patterns[label][:where[label]]) + slot + list(patterns[label][where[label]:])
        if rng.random() < 0.4:
            words.insert(int(rng.integers(0, len(words) + 1)), int(rng.choice(function)))
        x[i, length - len(words):] = words                       # padding='pre', as pad_sequences does
    flip = rng.random(n) < label_noise
    y = np.where(flip, rng.integers(0, classes, size=n), y)
    return x, y
