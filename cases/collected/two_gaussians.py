"""Two correlated 2-D Gaussian clouds (gh-dlwp-notebooks-8428a87): Deep Learning with Python's
chapter 3 toy set, ``n_per_class`` negative points around (0, 3) and as many positive ones around
(3, 0), both with covariance [[1, 0.5], [0.5, 1]]; targets 0/1 as float32 of shape (n, 1).

The rows come shuffled (the notebook permutes them before slicing off its validation rows).
"""

import numpy as np


def make(rng, n_per_class=1000):
    cov = [[1.0, 0.5], [0.5, 1.0]]
    negative = rng.multivariate_normal(mean=[0.0, 3.0], cov=cov, size=n_per_class)
    positive = rng.multivariate_normal(mean=[3.0, 0.0], cov=cov, size=n_per_class)
    x = np.vstack((negative, positive)).astype(np.float32)
    y = np.vstack((np.zeros((n_per_class, 1), dtype=np.float32), np.ones((n_per_class, 1), dtype=np.float32)))
    order = rng.permutation(len(x))
    return x[order], y[order]
