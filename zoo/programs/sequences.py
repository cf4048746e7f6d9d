"""Numeric sequences for the zoo's Conv1D and recurrent programs: (n, steps, 1) inputs."""

import numpy as np


def bump(rng, n=1000, length=50, width=3.0, height=1.5, noise=0.5):
    """Binary event detection: a noisy series that holds a Gaussian bump somewhere (label 1) or not (0)."""
    t = np.arange(length)
    y = rng.integers(0, 2, n)
    x = rng.normal(0.0, noise, (n, length))
    centres = rng.uniform(width * 2, length - width * 2, n)
    x += y[:, None] * height * np.exp(-0.5 * ((t[None, :] - centres[:, None]) / width) ** 2)
    return x[..., None].astype(np.float32), y.astype(np.float32)


def sine_next(rng, n=1000, window=20, noise=0.05):
    """Forecasting: a window of a sine of random frequency and phase (plus noise); the target is the next value."""
    freq = rng.uniform(0.05, 0.2, n)
    phase = rng.uniform(0.0, 2 * np.pi, n)
    t = np.arange(window + 1)
    series = np.sin(2 * np.pi * freq[:, None] * t[None, :] + phase[:, None])
    x = series[:, :window] + rng.normal(0.0, noise, (n, window))
    return x[..., None].astype(np.float32), series[:, window].astype(np.float32)


def sum_sign(rng, n=1000, length=15):
    """Sequence classification: steps ~ N(0, 1); the label is 1 when the sequence sums to more than 0."""
    x = rng.normal(0.0, 1.0, (n, length))
    return x[..., None].astype(np.float32), (x.sum(axis=1) > 0).astype(np.float32)
