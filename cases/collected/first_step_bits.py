"""Three-step sequences whose label is their first step (so-43442560): step 0 is a bit (0 or 1), steps
1 and 2 are random integers 0..high-1 that carry no information, the target is the bit itself.

The post shows two rows ([1, 5, 9] -> 1, [0, 5, 9] -> 0) and says "200 more records like this"; the
range of the random steps is not given, so integers 0..9 stand in. Shape (n, steps, 1), labels 0/1.
"""

import numpy as np


def make(rng, n=200, steps=3, high=10):
    x = rng.integers(0, high, size=(n, steps)).astype(np.float32)
    bit = rng.integers(0, 2, size=n)
    x[:, 0] = bit
    return x[..., None], bit
