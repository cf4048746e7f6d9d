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


def trend(rng, n=900, length=30, slope=0.05, noise=0.5):
    """Three-class trend: a noisy random-level series that rises (label 0), falls (1) or stays flat (2)."""
    y = rng.integers(0, 3, n)
    t = np.arange(length) - (length - 1) / 2.0
    direction = np.array([1.0, -1.0, 0.0])[y]
    level = rng.normal(0.0, 1.0, n)
    x = level[:, None] + direction[:, None] * slope * t[None, :] + rng.normal(0.0, noise, (n, length))
    return x[..., None].astype(np.float32), y


def frequency_band(rng, n=900, length=40, bands=((0.03, 0.06), (0.1, 0.15), (0.22, 0.3)), noise=0.3):
    """Multiclass: a sine of random phase and amplitude whose frequency falls in one of ``bands``; the label is the band."""
    y = rng.integers(0, len(bands), n)
    lows, highs = np.array([b[0] for b in bands]), np.array([b[1] for b in bands])
    freq = rng.uniform(lows[y], highs[y])
    phase = rng.uniform(0.0, 2 * np.pi, n)
    amp = rng.uniform(0.5, 1.5, n)
    t = np.arange(length)
    x = amp[:, None] * np.sin(2 * np.pi * freq[:, None] * t[None, :] + phase[:, None])
    x += rng.normal(0.0, noise, (n, length))
    return x[..., None].astype(np.float32), y


def amplitude(rng, n=1000, length=40, noise=0.1):
    """Regression: a noisy sine of random frequency and phase; the target is its amplitude (0.5..2)."""
    amp = rng.uniform(0.5, 2.0, n)
    freq = rng.uniform(0.05, 0.2, n)
    phase = rng.uniform(0.0, 2 * np.pi, n)
    t = np.arange(length)
    x = amp[:, None] * np.sin(2 * np.pi * freq[:, None] * t[None, :] + phase[:, None])
    x += rng.normal(0.0, noise, (n, length))
    return x[..., None].astype(np.float32), amp.astype(np.float32)
