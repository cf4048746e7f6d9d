"""Offline data sources and preprocessing steps.

Every source is offline: scikit-learn's bundled datasets or a seeded generator.
A source is ``fn(rng, **params) -> (x, y)``; preprocessing runs on the whole
array before the validation split, as the benchmark's original scripts did.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Callable

import numpy as np

SOURCES: dict[str, Callable] = {}


def source(name: str):
    def register(fn):
        SOURCES[name] = fn
        return fn

    return register


@dataclasses.dataclass
class Dataset:
    x: np.ndarray
    y: np.ndarray
    x_val: np.ndarray | None
    y_val: np.ndarray | None
    description: dict


def load_data(spec: dict) -> Dataset:
    """Build the arrays a data spec (``case.data``) describes."""
    fn = SOURCES[spec["source"]]
    rng = np.random.default_rng(spec.get("seed", 0))
    x, y = fn(rng, **spec.get("params", {}))
    for step in spec.get("preprocess", []):
        (name, args), = step.items()
        x, y = PREPROCESS[name](x, y, **(args or {}))
    x, y = np.asarray(x, np.float32), np.asarray(y, np.float32)
    x, y, x_val, y_val = _split(x, y, spec.get("validation"), rng)
    return Dataset(x, y, x_val, y_val, _describe(spec, x, y, x_val))


def check_params(name: str, params: dict) -> str | None:
    """Why ``params`` do not fit source ``name``, or None when they do."""
    if name not in SOURCES:
        return f"unknown data source '{name}'"
    sig = inspect.signature(SOURCES[name])
    try:
        sig.bind(None, **params)
    except TypeError as exc:
        return f"data source '{name}': {exc}"
    return None


def _split(x, y, validation: dict | None, rng):
    if not validation:
        return x, y, None, None
    n_val = validation.get("n") or int(round(len(x) * validation["split"]))
    if not 0 < n_val < len(x):
        raise ValueError(f"validation takes {n_val} of {len(x)} rows")
    order = rng.permutation(len(x))
    val, train = order[:n_val], order[n_val:]
    return x[train], y[train], x[val], y[val]


def _describe(spec: dict, x, y, x_val) -> dict:
    return {
        "source": spec["source"],
        "params": spec.get("params", {}),
        "seed": spec.get("seed", 0),
        "n_train": int(len(x)),
        "n_val": int(len(x_val)) if x_val is not None else 0,
        "x_shape": list(x.shape[1:]),
        "y_shape": list(y.shape[1:]),
        "x_range": [float(np.min(x)), float(np.max(x))],
        "y_range": [float(np.min(y)), float(np.max(y))],
    }


# --- scikit-learn bundled sets -------------------------------------------------


@source("sklearn.digits")
def digits(rng, image_size: int = 8, channels: int = 0, flatten: bool = False, n: int | None = None):
    """8x8 digits (0..16), optionally upsampled to MNIST's 28x28 or CIFAR's 32x32."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = d.images.astype(np.float32)
    if image_size != 8:
        factor = image_size // 8 if image_size % 8 == 0 else 3
        images = np.kron(images, np.ones((1, factor, factor), np.float32))
        pad = image_size - images.shape[1]
        if pad < 0:
            raise ValueError(f"image_size {image_size} is smaller than the upsampled digits")
        images = np.pad(images, ((0, 0), (pad // 2, pad - pad // 2), (pad // 2, pad - pad // 2)))
    if channels:
        images = np.repeat(images[..., None], channels, axis=-1)
    x = images.reshape(len(images), -1) if flatten else images
    return _take(rng, x, d.target, n)


def _sklearn_table(loader_name: str):
    def load(rng, n: int | None = None):
        import sklearn.datasets

        d = getattr(sklearn.datasets, loader_name)()
        return _take(rng, d.data, d.target, n)

    return load


for _name in ("iris", "breast_cancer", "wine", "diabetes"):
    source(f"sklearn.{_name}")(_sklearn_table(f"load_{_name}"))


def _take(rng, x, y, n):
    if n is None or n >= len(x):
        return x, y
    keep = np.sort(rng.choice(len(x), size=n, replace=False))
    return x[keep], y[keep]


# --- seeded generators ---------------------------------------------------------


@source("synthetic.xor")
def xor(rng, repeat: int = 1):
    """The four XOR rows, tiled ``repeat`` times (more updates per epoch, same data)."""
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
    y = np.array([0, 1, 1, 0], np.float32)
    return np.tile(x, (repeat, 1)), np.tile(y, repeat)


@source("synthetic.constant_rows")
def constant_rows(rng, n_per_class: int = 1000, dim: int = 16, values: tuple = (0.0, 1.0)):
    """Class k is ``n_per_class`` rows that all equal ``values[k]``; labels are k."""
    x = np.concatenate([np.full((n_per_class, dim), v, np.float32) for v in values])
    y = np.repeat(np.arange(len(values)), n_per_class)
    order = rng.permutation(len(x))
    return x[order], y[order]


@source("synthetic.blobs")
def blobs(rng, n: int = 500, features: int = 2, classes: int = 3, spread: float = 1.0):
    from sklearn.datasets import make_blobs

    return make_blobs(n_samples=n, n_features=features, centers=classes, cluster_std=spread,
                      random_state=int(rng.integers(2**31)))


@source("synthetic.classification")
def classification(rng, n: int = 1000, features: int = 20, informative: int = 10, classes: int = 2,
                   scale: float = 1.0, shift: float = 0.0):
    """sklearn's make_classification, optionally scaled/shifted to mimic raw units."""
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=n, n_features=features, n_informative=informative,
                               n_classes=classes, random_state=int(rng.integers(2**31)))
    return x * scale + shift, y


@source("synthetic.linear")
def linear(rng, n: int = 500, features: int = 1, noise: float = 0.1, scale: float = 1.0):
    from sklearn.datasets import make_regression

    x, y = make_regression(n_samples=n, n_features=features, noise=noise,
                           random_state=int(rng.integers(2**31)))
    return x * scale, y


@source("synthetic.polynomial")
def polynomial(rng, coef: tuple = (0.0, 1.0), start: float = 0.0, stop: float = 1.0, step: float = 0.1,
               noise_std: float = 0.0, noise_power: int = 1):
    """y = sum(coef[i] x^i) + noise^power on an evenly spaced 1-D grid."""
    x = np.arange(start, stop, step, dtype=np.float64)
    y = sum(c * x**i for i, c in enumerate(coef)) + rng.normal(0.0, noise_std, len(x)) ** noise_power
    return x[:, None], y


# --- preprocessing -------------------------------------------------------------


def _on(x, y, on: str, fn):
    if on == "x":
        return fn(x), y
    if on == "y":
        return x, fn(y)
    raise ValueError(f"'on' is 'x' or 'y', got {on!r}")


def _standardize(x, y, on: str = "x"):
    from sklearn.preprocessing import StandardScaler

    return _on(x, y, on, lambda a: _per_column(a, StandardScaler()))


def _minmax(x, y, on: str = "x", low: float = 0.0, high: float = 1.0):
    from sklearn.preprocessing import MinMaxScaler

    return _on(x, y, on, lambda a: _per_column(a, MinMaxScaler((low, high))))


def _per_column(a, scaler):
    flat = np.asarray(a, np.float64).reshape(len(a), -1) if np.ndim(a) > 1 else np.asarray(a)[:, None]
    return scaler.fit_transform(flat).reshape(np.shape(a))


def _scale(x, y, by: float, on: str = "x", shift: float = 0.0):
    return _on(x, y, on, lambda a: np.asarray(a, np.float64) * by + shift)


def _one_hot(x, y, classes: int):
    labels = np.asarray(y).astype(int)
    if labels.min() < 0 or labels.max() >= classes:
        raise ValueError(f"one_hot: labels span {labels.min()}..{labels.max()}, not 0..{classes - 1}")
    return x, np.eye(classes, dtype=np.float32)[labels]


def _reshape(x, y, shape: list, on: str = "x"):
    return _on(x, y, on, lambda a: np.reshape(a, (len(a), *shape)))


def _cast(x, y, dtype: str, on: str = "y"):
    return _on(x, y, on, lambda a: np.asarray(a).astype(dtype))


PREPROCESS = {
    "standardize": _standardize,
    "minmax": _minmax,
    "scale": _scale,
    "one_hot": _one_hot,
    "reshape": _reshape,
    "cast": _cast,
}
