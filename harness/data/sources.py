"""Offline data sources and preprocessing steps.

Every source is offline: scikit-learn's bundled datasets or a seeded generator.
A source is ``fn(rng, **params) -> (x, y)``; preprocessing runs on the whole
array before the validation split, as the benchmark's original scripts did.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable

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
    x_test: np.ndarray | None = None  # held out: never trained on, never in a trace; read only to kill mutants
    y_test: np.ndarray | None = None


# Steps that are faults in the *training* data (label noise, deleted rows): held-out test rows never get them.
TRAINING_ONLY = ("shuffle_labels", "subsample")


def load_data(spec: dict) -> Dataset:
    """Build the arrays a data spec (``case.data``) describes."""
    fn = SOURCES[spec["source"]]
    rng = np.random.default_rng(spec.get("seed", 0))
    x, y = fn(rng, **spec.get("params", {}))
    n_test = 0
    if spec.get("test"):
        x, y, n_test = _test_rows_last(np.asarray(x), np.asarray(y), spec["test"])
    for step in spec.get("preprocess", []):
        (name, args), = step.items()
        if n_test and name in TRAINING_ONLY:
            xt, yt = PREPROCESS[name](x[:-n_test], y[:-n_test], **(args or {}))
            x, y = np.concatenate([xt, x[-n_test:]]), np.concatenate([yt, y[-n_test:]])
        else:  # the program's own pipeline: the test rows go through it as its users' data would
            x, y = PREPROCESS[name](x, y, **(args or {}))
    x, y = np.asarray(x, np.float32), np.asarray(y, np.float32)
    x_test = y_test = None
    if n_test:
        x, y, x_test, y_test = x[:-n_test], y[:-n_test], x[-n_test:], y[-n_test:]
    x, y, x_val, y_val = _split(x, y, spec.get("validation"), rng)
    return Dataset(x, y, x_val, y_val, _describe(spec, x, y, x_val, x_test), x_test, y_test)


def _test_rows_last(x: np.ndarray, y: np.ndarray, test: dict):
    """The rows with the held-out ones moved to the end (drawn by the test's own seed; the others keep their
    order, so that data sorted on purpose stays sorted)."""
    n = test.get("n") or int(round(len(x) * test["split"]))
    if not 0 < n < len(x):
        raise ValueError(f"the test split takes {n} of {len(x)} rows")
    held = np.zeros(len(x), bool)
    held[np.random.default_rng(test.get("seed", 1)).choice(len(x), size=n, replace=False)] = True
    order = np.concatenate([np.flatnonzero(~held), np.flatnonzero(held)])
    return x[order], y[order], n


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
    if validation.get("rows") == "last":  # Keras' validation_split: the arrays' tail, as they stand
        return x[:-n_val], y[:-n_val], x[-n_val:], y[-n_val:]
    order = rng.permutation(len(x))
    val, train = order[:n_val], order[n_val:]
    return x[train], y[train], x[val], y[val]


def _describe(spec: dict, x, y, x_val, x_test=None) -> dict:
    return {
        **({"n_test": int(len(x_test))} if x_test is not None else {}),
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


def _sklearn_table(loader_name: str, what: str):
    def load(rng, n: int | None = None):
        import sklearn.datasets

        d = getattr(sklearn.datasets, loader_name)()
        return _take(rng, d.data, d.target, n)

    load.__doc__ = f"scikit-learn's bundled {what} (``n``: a seeded subsample of that many rows)."
    return load


for _name, _what in (("iris", "iris flowers (150 rows, 4 features, 3 classes)"),
                     ("breast_cancer", "breast cancer table (569 rows, 30 raw features, 2 classes)"),
                     ("wine", "wine table (178 rows, 13 raw features, 3 classes)")):
    source(f"sklearn.{_name}")(_sklearn_table(f"load_{_name}", _what))


@source("sklearn.diabetes")
def diabetes(rng, n: int | None = None, scaled: bool = True):
    """scikit-learn's diabetes regression (442 rows, 10 features; target 25..346). ``scaled``: sklearn's copy
    (each feature centred and scaled to unit norm); ``scaled: false``: the features in raw units (age in years,
    blood pressure in mm Hg, ...)."""
    from sklearn.datasets import load_diabetes

    d = load_diabetes(scaled=scaled)
    return _take(rng, d.data, d.target, n)


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
    """sklearn's make_blobs: ``classes`` Gaussian clusters of standard deviation ``spread``; labels 0..classes-1."""
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
    """sklearn's make_regression: a linear target (Gaussian ``noise``) of inputs multiplied by ``scale``."""
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


@source("synthetic.inline")
def inline(rng, x: list, y: list, repeat: int = 1):
    """Rows written out in the case file (a user's tiny table), tiled ``repeat`` times."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if len(x) != len(y):
        raise ValueError(f"inline: {len(x)} rows of x but {len(y)} labels")
    return np.tile(x, (repeat,) + (1,) * (x.ndim - 1)), np.tile(y, (repeat,) + (1,) * (y.ndim - 1))


def _per_column_array(value, features: int, default: float) -> np.ndarray:
    if value is None:
        return np.full(features, default)
    arr = np.asarray(value, np.float64)
    if arr.ndim == 0:
        return np.full(features, float(arr))
    if len(arr) != features:
        raise ValueError(f"expected {features} per-column values, got {len(arr)}")
    return arr


@source("synthetic.raw_table")
def raw_table(rng, n: int = 1000, features: int = 10, informative: int = 5, classes: int = 2,
              weights: list | None = None, scales: list | float | None = None, shifts: list | float | None = None,
              integer: bool = False, flip: float = 0.01, repeat: int = 1):
    """Tabular classification in raw units: make_classification (informative columns first),
    then column j becomes ``x_j * scales[j] + shifts[j]`` (optionally rounded), so columns can
    span very different magnitudes (packet counters, IP addresses as integers, census weights).
    A scale of 0 gives a constant column. ``weights`` sets the class shares."""
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=n, n_features=features, n_informative=informative,
                               n_redundant=0, n_classes=classes, weights=weights, flip_y=flip,
                               shuffle=False, random_state=int(rng.integers(2**31)))
    order = rng.permutation(n)
    x, y = x[order], y[order]
    x = x * _per_column_array(scales, features, 1.0) + _per_column_array(shifts, features, 0.0)
    if integer:
        x = np.round(x)
    return np.tile(x, (repeat, 1)), np.tile(y, repeat)


@source("synthetic.raw_regression")
def raw_regression(rng, n: int = 1000, features: int = 10, informative: int = 5, noise: float = 10.0,
                   scales: list | float | None = None, shifts: list | float | None = None,
                   target_scale: float = 1.0, target_shift: float = 0.0):
    """Tabular regression in raw units: make_regression, then per-column scale/shift of the
    inputs and ``y * target_scale + target_shift`` (house prices and similar)."""
    from sklearn.datasets import make_regression

    x, y = make_regression(n_samples=n, n_features=features, n_informative=informative, noise=noise,
                           random_state=int(rng.integers(2**31)))
    y = (y - y.mean()) / (y.std() or 1.0)
    x = x * _per_column_array(scales, features, 1.0) + _per_column_array(shifts, features, 0.0)
    return x, y * target_scale + target_shift


@source("synthetic.multilabel")
def multilabel(rng, n: int = 1000, features: int = 20, classes: int = 3, labels: int = 2):
    """sklearn's make_multilabel_classification: small non-negative integer counts and a
    multi-hot target (a flat 0/1 vector when ``classes`` is 1)."""
    from sklearn.datasets import make_multilabel_classification

    x, y = make_multilabel_classification(n_samples=n, n_features=features, n_classes=classes,
                                          n_labels=labels, random_state=int(rng.integers(2**31)))
    return x, (y[:, 0] if classes == 1 else y)


@source("synthetic.linear_formula")
def linear_formula(rng, n: int = 100, features: int = 1, dist: str = "uniform", low: float = 0.0,
                   high: float = 1.0, coef: list | None = None, intercept: float = 0.0, noise_std: float = 0.0,
                   clip: list | None = None, integer: bool = False, repeat: int = 1):
    """y = x @ coef + intercept + N(0, noise_std), x ~ U(low, high) (``dist: uniform``) or
    N(low, high) (``dist: normal``: mean low, std high), optionally integer x and clipped y."""
    if dist == "uniform":
        x = rng.uniform(low, high, (n, features))
    elif dist == "normal":
        x = rng.normal(low, high, (n, features))
    else:
        raise ValueError(f"dist is 'uniform' or 'normal', got {dist!r}")
    if integer:
        x = np.floor(x)
    w = np.ones(features) if coef is None else np.asarray(coef, np.float64)
    y = x @ w + intercept + rng.normal(0.0, noise_std, n) * (noise_std > 0)
    if clip is not None:
        y = np.clip(y, *clip)
    return np.tile(x, (repeat, 1)), np.tile(y, repeat)


@source("synthetic.uniform_clusters")
def uniform_clusters(rng, n_per_class: int = 100, boxes: list = ((0.2, 0.4), (0.5, 0.7)), features: int = 2,
                     interleave: bool = True):
    """Class k is uniform in the cube boxes[k] (low, high) in every coordinate; rows alternate
    between the classes (``interleave``) or are shuffled."""
    xs = [rng.uniform(lo, hi, (n_per_class, features)) for lo, hi in boxes]
    if interleave:
        x = np.stack(xs, axis=1).reshape(-1, features)
        y = np.tile(np.arange(len(boxes)), n_per_class)
        return x, y
    x = np.concatenate(xs)
    y = np.repeat(np.arange(len(boxes)), n_per_class)
    order = rng.permutation(len(x))
    return x[order], y[order]


@source("synthetic.threshold")
def threshold(rng, n: int = 1000, low: float = 0.0, high: float = 1.0, cut: float = 0.5, flip: float = 0.02,
              integer: bool = False):
    """One raw feature x ~ U(low, high); label 1 below ``cut``, 0 above, a ``flip`` share flipped
    among the rows nearest the cut."""
    x = rng.uniform(low, high, n)
    if integer:
        x = np.floor(x)
    y = (x < cut).astype(np.int64)
    k = int(round(flip * n))
    if k:
        near = np.argsort(np.abs(x - cut))[: 3 * k]
        y[rng.choice(near, size=k, replace=False)] ^= 1
    return x[:, None], y


@source("synthetic.bit_permutation")
def bit_permutation(rng, bits: int = 8, permute: bool = True, repeat: int = 1):
    """All 2**bits binary vectors; the target is the same set in a seeded random order (a random
    bijection, ``permute``) or the identity."""
    x = ((np.arange(2**bits)[:, None] >> np.arange(bits)[::-1]) & 1).astype(np.float64)
    y = x[rng.permutation(len(x))] if permute else x.copy()
    return np.tile(x, (repeat, 1)), np.tile(y, (repeat, 1))


@source("synthetic.sine_direction")
def sine_direction(rng, n: int = 300, label: int = 1, noise: float = 0.05):
    """Two smooth series (a sine and a lagged, stretched copy) with a constant label."""
    t = np.arange(n) * 0.1
    s = 0.42 + 0.42 * np.sin(t) + rng.normal(0, noise, n)
    lag = 1.6 * np.sin(t - 0.1) - 0.9 + rng.normal(0, noise, n)
    return np.stack([s, lag], axis=1), np.full(n, label)


@source("synthetic.uniform_noise")
def uniform_noise(rng, n: int = 1000, x_shape: list = (5, 1), y_shape: list = (5, 1)):
    """Inputs and targets both U(0, 1), unrelated to each other."""
    return rng.uniform(0, 1, (n, *x_shape)), rng.uniform(0, 1, (n, *y_shape))


@source("synthetic.digit_groups")
def digit_groups(rng, groups: list = ((0,), (1,)), image_size: int = 8, channels: int = 0, flatten: bool = False,
                 n: int | None = None):
    """sklearn digits (as ``sklearn.digits``) restricted to the digits named in ``groups``;
    the label is the index of the group (e.g. [[0,1,2,3,4],[5,6,7,8,9]] for a two-class image set)."""
    x, y = digits(rng, image_size=image_size, channels=channels, flatten=flatten)
    mapping = {d: g for g, members in enumerate(groups) for d in members}
    keep = np.array([int(v) in mapping for v in y])
    x, y = x[keep], np.array([mapping[int(v)] for v in y[keep]])
    return _take(rng, x, y, n)


@source("synthetic.digit_keypoints")
def digit_keypoints(rng, image_size: int = 96, targets: int = 30, n: int | None = None):
    """Digits upsampled to image_size^2 (flattened, 0..1) with ``targets`` smooth targets in
    [-1, 1]: tanh of a fixed random projection of the 8x8 digit (keypoint-regression stand-in)."""
    from sklearn.datasets import load_digits

    small = load_digits().images.reshape(-1, 64) / 16.0
    w = rng.normal(0, 1, (64, targets)) / 8.0
    y = np.tanh((small - small.mean(axis=0)) @ w * 2.0)
    x, _ = digits(rng, image_size=image_size, flatten=True)
    x = x / 16.0
    if n is not None and n < len(x):
        keep = np.sort(rng.choice(len(x), size=n, replace=False))
        x, y = x[keep], y[keep]
    return x, y


@source("synthetic.superres")
def superres(rng, image_size: int = 32, factor: int = 2, channels: int = 3, n: int | None = None):
    """Super-resolution pairs from digits: the target is the digit at image_size (0..1, smooth
    bilinear upsampling), the input the same image block-downsampled by ``factor`` and
    nearest-upsampled back."""
    import tensorflow as tf
    from sklearn.datasets import load_digits

    imgs = load_digits().images[..., None].astype(np.float32) / 16.0
    if n is not None and n < len(imgs):
        imgs = imgs[np.sort(rng.choice(len(imgs), size=n, replace=False))]
    hi = tf.image.resize(imgs, (image_size, image_size), method="bilinear").numpy()
    small = hi.reshape(len(hi), image_size // factor, factor, image_size // factor, factor, 1).mean(axis=(2, 4))
    lo = np.repeat(np.repeat(small, factor, axis=1), factor, axis=2)
    hi, lo = np.clip(hi, 0, 1), np.clip(lo, 0, 1)
    return np.repeat(lo, channels, axis=-1), np.repeat(hi, channels, axis=-1)


@source("synthetic.digit_pattern")
def digit_pattern(rng, n: int = 2000, classes: int = 69):
    """One raw integer feature; its class encodes the number of digits and the leading digit
    (class c: c // 9 + 1 digits, leading digit c % 9 + 1), so inputs span 1..1e8."""
    c = rng.integers(0, classes, n)
    k, lead = c // 9 + 1, c % 9 + 1
    rest = np.floor(rng.uniform(0, 1, n) * 10.0 ** (k - 1))
    return (lead * 10.0 ** (k - 1) + rest)[:, None], c


@source("synthetic.game_of_life")
def game_of_life(rng, n: int = 1000, size: int = 3, p_alive: float = 0.5):
    """Random size x size boards (toroidal), wrap-padded by one cell as input; the target is the
    next generation under Conway's rules."""
    b = (rng.uniform(0, 1, (n, size, size)) < p_alive).astype(np.float64)
    neighbours = sum(np.roll(np.roll(b, dy, axis=1), dx, axis=2)
                     for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0))
    nxt = ((neighbours == 3) | ((b == 1) & (neighbours == 2))).astype(np.float64)
    x = np.pad(b, ((0, 0), (1, 1), (1, 1)), mode="wrap")
    return x[..., None], nxt[..., None]


@source("synthetic.bag_of_words")
def bag_of_words(rng, n: int = 5000, vocab: int = 2000, density: float = 0.03, markers: int = 100,
                 label_noise: float = 0.15):
    """Multi-hot documents (IMDB-like): ``markers`` positive and ``markers`` negative words decide
    the label by majority, then a ``label_noise`` share of labels is flipped (room to overfit)."""
    x = (rng.uniform(0, 1, (n, vocab)) < density).astype(np.float32)
    score = x[:, :markers].sum(axis=1) - x[:, markers:2 * markers].sum(axis=1) + rng.normal(0, 0.5, n)
    y = (score > 0).astype(np.int64)
    flip = rng.uniform(0, 1, n) < label_noise
    y[flip] ^= 1
    return x, y


@source("synthetic.reviews")
def reviews(rng, n: int = 7000, vocab: int = 10000, length: float = 150.0, sentiment_words: int = 1000,
            strength: float = 2.5, label_noise: float = 0.2):
    """Multi-hot reviews (IMDB-like): word frequencies follow Zipf's law (p ~ 1/(rank + 10));
    ``sentiment_words`` random words lean positive or negative (log-odds ~ N(0, ``strength``)),
    each review draws Poisson(``length``) words from its label's tilted frequencies, then a
    ``label_noise`` share of labels is flipped. The many rare words let a net without
    regularisation memorise its training reviews within a few epochs, as on IMDB."""
    freq = 1.0 / (np.arange(vocab) + 10.0)
    lean = np.zeros(vocab)
    lean[rng.choice(vocab, sentiment_words, replace=False)] = rng.normal(0, strength, sentiment_words)
    y = rng.integers(0, 2, n)
    x = np.zeros((n, vocab), np.float32)
    for label, sign in ((0, -1.0), (1, 1.0)):
        q = freq * np.exp(sign * lean / 2)
        rows = np.flatnonzero(y == label)
        counts = rng.poisson(length, rows.size)
        x[np.repeat(rows, counts), rng.choice(vocab, counts.sum(), p=q / q.sum())] = 1.0
    flip = rng.uniform(0, 1, n) < label_noise
    return x, np.where(flip, 1 - y, y).astype(np.int64)


@source("synthetic.titanic_like")
def titanic_like(rng, n: int = 891):
    """Passenger rows shaped like Kaggle Titanic's train.csv after label-encoding every text column
    (no scaling): Pclass code 0..2, Name code (unique, 0..1308, alphabetical so unrelated to the
    label), Sex code (0 female, 1 male), Age (missing 20% -> the mean), SibSp code, Parch code,
    Ticket code 0..928, Fare 0..512, Cabin code (0..185, 'missing' = 186 for most 2nd/3rd class),
    Embarked code (C 0, Q 1, S 2). Survival follows the published rates by sex and class
    (about 38% survive); children under 10 survive more often."""
    pclass = rng.choice(3, n, p=[0.242, 0.207, 0.551])
    female = rng.uniform(0, 1, n) < np.array([0.435, 0.413, 0.293])[pclass]
    age = np.clip(rng.normal(np.array([38.0, 30.0, 25.0])[pclass], np.array([14.0, 14.0, 12.0])[pclass]), 0.42, 80)
    age = np.where(age >= 1, np.round(age), np.round(age, 2))
    age[rng.uniform(0, 1, n) < 0.2] = np.nan
    age = np.where(np.isnan(age), np.nanmean(age), age)
    sibsp = rng.choice(7, n, p=[0.682, 0.235, 0.031, 0.018, 0.020, 0.006, 0.008])
    parch = rng.choice(7, n, p=[0.761, 0.132, 0.090, 0.006, 0.004, 0.006, 0.001])
    fare = np.exp(rng.normal(np.log(np.array([60.0, 14.0, 8.5]))[pclass], np.array([0.75, 0.4, 0.45])[pclass]))
    fare = np.round(np.clip(fare * (1 + 0.3 * sibsp), 0, 512.33), 4)
    has_cabin = rng.uniform(0, 1, n) < np.array([0.81, 0.09, 0.025])[pclass]
    cabin = np.where(has_cabin, rng.integers(0, 186, n), 186)
    embarked = rng.choice(3, n, p=[0.19, 0.09, 0.72])
    name = rng.permutation(1309)[:n]
    ticket = rng.integers(0, 929, n)
    p_survive = np.where(female, np.array([0.97, 0.92, 0.50])[pclass], np.array([0.37, 0.16, 0.135])[pclass])
    p_survive = np.where(age < 10, np.maximum(p_survive, 0.6), p_survive)
    y = (rng.uniform(0, 1, n) < p_survive).astype(np.int64)
    x = np.stack([pclass, name, (~female).astype(int), age, sibsp, parch, ticket, fare, cabin, embarked], axis=1)
    return x.astype(np.float64), y


# --- preprocessing -------------------------------------------------------------


def _on(x, y, on: str, fn):
    if on == "x":
        return fn(x), y
    if on == "y":
        return x, fn(y)
    raise ValueError(f"'on' is 'x' or 'y', got {on!r}")


def _standardize(x, y, on: str = "x"):
    """Each feature (column, or pixel) to mean 0 and standard deviation 1, over the whole array."""
    from sklearn.preprocessing import StandardScaler

    return _on(x, y, on, lambda a: _per_column(a, StandardScaler()))


def _minmax(x, y, on: str = "x", low: float = 0.0, high: float = 1.0):
    """Each feature to the range [``low``, ``high``]."""
    from sklearn.preprocessing import MinMaxScaler

    return _on(x, y, on, lambda a: _per_column(a, MinMaxScaler((low, high))))


def _per_column(a, scaler):
    flat = np.asarray(a, np.float64).reshape(len(a), -1) if np.ndim(a) > 1 else np.asarray(a)[:, None]
    return scaler.fit_transform(flat).reshape(np.shape(a))


def _scale(x, y, by: float, on: str = "x", shift: float = 0.0):
    """``value * by + shift``, element-wise (``by: 0.00392`` is the usual ``/ 255``)."""
    return _on(x, y, on, lambda a: np.asarray(a, np.float64) * by + shift)


def _one_hot(x, y, classes: int):
    """Class indices 0..``classes``-1 in y to one-hot rows."""
    labels = np.asarray(y).astype(int)
    if labels.min() < 0 or labels.max() >= classes:
        raise ValueError(f"one_hot: labels span {labels.min()}..{labels.max()}, not 0..{classes - 1}")
    return x, np.eye(classes, dtype=np.float32)[labels]


def _reshape(x, y, shape: list, on: str = "x"):
    """Each row to ``shape`` (the row count stays)."""
    return _on(x, y, on, lambda a: np.reshape(a, (len(a), *shape)))


def _cast(x, y, dtype: str, on: str = "y"):
    """To ``dtype`` (``int32`` truncates labels, as a program that cast them did)."""
    return _on(x, y, on, lambda a: np.asarray(a).astype(dtype))


def _binarize(x, y, threshold: float = 0.0, on: str = "x"):
    """1 where a value is above ``threshold``, else 0: a bag of words' presence, a label's sign."""
    return _on(x, y, on, lambda a: (np.asarray(a, np.float64) > threshold).astype(np.float64))


def _shuffle_labels(x, y, fraction: float = 1.0, seed: int = 0):
    """A ``fraction`` of the labels permuted among their rows (label noise; ``seed`` picks which)."""
    rng = np.random.default_rng(seed)
    y = np.array(y, copy=True)
    rows = rng.choice(len(y), size=int(round(fraction * len(y))), replace=False)
    y[rows] = y[rng.permutation(rows)]
    return x, y


def _subsample(x, y, fraction: float, seed: int = 0):
    """Only a ``fraction`` of the rows kept (training data deleted; ``seed`` picks which)."""
    keep = np.sort(np.random.default_rng(seed).choice(len(x), size=max(1, int(round(fraction * len(x)))),
                                                      replace=False))
    return np.asarray(x)[keep], np.asarray(y)[keep]


PREPROCESS = {
    "standardize": _standardize,
    "minmax": _minmax,
    "scale": _scale,
    "one_hot": _one_hot,
    "reshape": _reshape,
    "cast": _cast,
    "binarize": _binarize,
    "shuffle_labels": _shuffle_labels,
    "subsample": _subsample,
}
