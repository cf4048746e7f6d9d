"""A learned reference: how well a cheap, standard learner fits the same training data, out of fold.

A run that beats the best constant predictor may still learn far less than its
data allows. Practitioners check this by hand ("a logistic regression beats my
network"); this module does it once, before training, on a sample of the
training arrays: a linear model (logistic regression for classes, ridge for
targets) and k-nearest-neighbours, each on standardised, flattened inputs, with
out-of-fold predictions (``cross_val_predict``), so the reference is what the
learner achieves on rows it did not fit. The stronger of the two is the
reference. Plain numbers, so it travels in the facts as JSON.

From the same out-of-fold probabilities, a confident-learning estimate of the
share of labels that look wrong (Northcutt, Jiang, Chuang, JAIR 2021: a row is
suspect when the reference is at least as confident in another class as it is,
on average, in rows labelled with that class), and how evenly the suspects are
spread over the class pairs (random relabelling spreads them evenly; classes
that truly resemble each other concentrate them in a few pairs).

Skipped, with the reason, when the data are not one numeric array per side, the
task is neither classes nor targets, or there are too few rows per class.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

ROWS = 2000  # rows fitted: the budget (about a second on 2 cores, measured in bench/detector_cost.py)
FEATURES = 64  # inputs wider than this are projected to this many principal components (randomised PCA) first
FOLDS = 3  # out-of-fold predictions: each row predicted by a model that did not see it
NEIGHBOURS = 10  # k of k-NN: the usual 5-15; odd/even does not matter with distance ties rare on real inputs
MIN_PER_CLASS = 2 * FOLDS  # a class rarer than this cannot appear in every fold's training part
CLASS_LOSSES = {"categorical_crossentropy", "sparse_categorical_crossentropy", "binary_crossentropy",
                "hinge", "squared_hinge", "categorical_hinge", "kl_divergence", "kullback_leibler_divergence"}
TARGET_LOSSES = {"mean_squared_error", "mean_absolute_error", "huber", "log_cosh", "logcosh",
                 "mean_squared_logarithmic_error", "mean_absolute_percentage_error"}
VOCABULARY = 5000  # token ids beyond it share columns (hashed): a bag of words wider than that adds little here
EPS = 1e-7  # the cross-entropies' probability clip (Keras'), so the reference's loss is the network's kind


def learned_reference(x, y, loss: str | None, seed: int = 0, tokens: bool = False) -> dict:
    """``{"learner", "accuracy" | "mse"/"mae", "loss", "rows", "seconds", ...}`` or ``{"skipped": why}``.

    ``tokens``: the inputs are token ids feeding an Embedding; the learners read them as a bag of words
    (a linear model on flattened ids would read an id's value as a quantity).
    """
    if x is None or y is None:  # harness.facts passes None for a dict or list of several arrays
        return {"skipped": "several input or output arrays: no single table to fit"}
    if len(x) != len(y) or len(x) < 4 * FOLDS:
        return {"skipped": f"too few rows ({len(x)}) for {FOLDS}-fold predictions"}
    start = time.perf_counter()
    rows = even_rows(len(x), ROWS)
    features = _features(np.asarray(x[rows]), tokens)
    target = np.asarray(y[rows], np.float64)
    keep = np.isfinite(features).all(axis=1) & np.isfinite(target.reshape(len(rows), -1)).all(axis=1)
    features, target = features[keep], target[keep]
    if loss in CLASS_LOSSES:
        out = _classes(features, target, seed)
    elif loss in TARGET_LOSSES:
        out = _targets(features, target, loss, seed)
    else:
        out = {"skipped": f"loss {loss!r} is neither a class nor a target loss"}
    if "skipped" not in out:
        out.update(rows=int(len(features)), seconds=round(time.perf_counter() - start, 3))
    return out


def _features(x: np.ndarray, tokens: bool) -> np.ndarray:
    """One row of numbers per example: token counts for ids, the time-average beside the raw values for a sequence
    of feature vectors (a one-hot sequence's average is its bag of words), else the values flattened."""
    if tokens and x.dtype.kind in "biuf" and np.all(np.isfinite(x)):
        ids = np.abs(x.reshape(len(x), -1).astype(np.int64)) % VOCABULARY
        counts = np.zeros((len(x), VOCABULARY), np.float64)
        np.add.at(counts, (np.repeat(np.arange(len(x)), ids.shape[1]), ids.ravel()), 1.0)
        return np.log1p(counts[:, counts.any(axis=0)])
    flat = np.asarray(x, np.float64).reshape(len(x), -1)
    if x.ndim == 3:
        return np.concatenate([flat, np.asarray(x, np.float64).mean(axis=1)], axis=1)
    return flat


def even_rows(n: int, most: int) -> np.ndarray:
    """At most ``most`` row indices at even strides over ``n`` rows: data sorted by class would otherwise give
    one class."""
    return np.unique(np.linspace(0, n - 1, min(n, most)).astype(np.int64)) if n else np.arange(0)


def _project(x: np.ndarray, seed: int) -> np.ndarray:
    """Inputs wider than FEATURES (pixels, long sequences) as their first FEATURES principal components.

    Fitted once on the sample, without labels, so no fold sees another fold's labels through it.
    """
    # At most half a fold's training rows: a linear model with as many features as rows interpolates them.
    components = max(1, min(FEATURES, _fold_rows(len(x)) // 2))
    if x.shape[1] <= components:
        return x
    from sklearn.decomposition import PCA

    x = x.astype(np.float32)  # half the memory traffic; components need no more precision
    std = x.std(axis=0)
    centred = (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)
    # Two power iterations: the leading components are found as well for a reference, in a third of the time.
    return PCA(components, svd_solver="randomized", iterated_power=2, random_state=seed).fit_transform(centred)


def _fold_rows(rows: int) -> int:
    """Rows in the smallest training part of FOLDS folds."""
    return rows - -(-rows // FOLDS)


def _neighbours(rows: int) -> int:
    """NEIGHBOURS, or fewer when a fold's training part has fewer rows (k cannot exceed the rows it fits)."""
    return max(1, min(NEIGHBOURS, _fold_rows(rows)))


def class_indices(y: np.ndarray) -> np.ndarray | None:
    """Class indices from indices, one-hot rows or a single 0/1 column; None for multi-label or soft targets."""
    y = y.reshape(len(y), -1)
    if y.shape[1] == 1:
        col = y[:, 0]
        return col.astype(np.int64) if np.all(col == np.round(col)) and col.min() >= 0 else None
    if set(np.unique(y).tolist()) <= {0.0, 1.0} and np.all(y.sum(axis=1) == 1):
        return y.argmax(axis=1)
    return None


def _classes(x: np.ndarray, y: np.ndarray, seed: int) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    labels = class_indices(y)
    if labels is None:
        return {"skipped": "multi-label or soft targets: no single class per row"}
    classes, counts = np.unique(labels, return_counts=True)
    if len(classes) < 2 or counts.min() < MIN_PER_CLASS:
        return {"skipped": f"a class has fewer than {MIN_PER_CLASS} rows in the sample"}
    index = np.searchsorted(classes, labels)
    x = _project(x, seed)
    folds = StratifiedKFold(FOLDS, shuffle=True, random_state=seed)
    # tol 1e-3 (sklearn's default 1e-4): the accuracy moves by a few tenths of a point, the cost halves.
    learners = {"k-nearest neighbours": KNeighborsClassifier(_neighbours(len(index))),
                "logistic regression": LogisticRegression(max_iter=200, tol=1e-3)}
    best = None
    for name, learner in learners.items():
        with warnings.catch_warnings():  # lbfgs stopping at max_iter is still a fair (weaker) reference
            warnings.simplefilter("ignore")
            proba = cross_val_predict(make_pipeline(StandardScaler(), learner), x, index, cv=folds,
                                      method="predict_proba")
        accuracy = float(np.mean(proba.argmax(axis=1) == index))
        if best is None or accuracy > best[1]:
            best = (name, accuracy, proba)
    name, accuracy, proba = best
    picked = np.clip(proba[np.arange(len(index)), index], EPS, 1.0)
    return {"learner": name, "task": "classes", "accuracy": accuracy, "loss": float(-np.mean(np.log(picked))),
            "majority": float(counts.max() / counts.sum()), "classes": int(len(classes)),
            "label_noise": label_noise(proba, index)}


def _targets(x: np.ndarray, y: np.ndarray, loss: str, seed: int) -> dict:
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import KFold, cross_val_predict
    from sklearn.neighbors import KNeighborsRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y = y.reshape(len(y), -1)
    x = _project(x, seed)
    folds = KFold(FOLDS, shuffle=True, random_state=seed)
    absolute = loss == "mean_absolute_error"
    best = None
    learners = {"ridge regression": Ridge(1.0), "k-nearest neighbours": KNeighborsRegressor(_neighbours(len(y)))}
    for name, learner in learners.items():
        pred = cross_val_predict(make_pipeline(StandardScaler(), learner), x, y, cv=folds).reshape(y.shape)
        mse, mae = float(np.mean((pred - y) ** 2)), float(np.mean(np.abs(pred - y)))
        score = mae if absolute else mse
        if best is None or score < best[1]:
            best = (name, score, mse, mae)
    name, _, mse, mae = best
    constant = float(np.mean(np.abs(y - np.median(y, axis=0)))) if absolute else float(np.mean(np.var(y, axis=0)))
    return {"learner": name, "task": "targets", "mse": mse, "mae": mae,
            "loss": mae if absolute else (mse if loss == "mean_squared_error" else None), "constant": constant}


def label_noise(proba: np.ndarray, labels: np.ndarray) -> dict:
    """Confident learning's count of rows whose given label looks wrong, and how evenly those rows spread.

    ``share``: suspects / rows; ``spread``: the normalised entropy of the suspects over the off-diagonal
    class pairs (1: even, as random relabelling leaves them; near 0: a few pairs, as similar classes do;
    None with two classes, whose one pair cannot tell the two apart, or with no suspects).
    """
    k = proba.shape[1]
    thresholds = np.array([proba[labels == j, j].mean() if np.any(labels == j) else 1.0 for j in range(k)])
    confident = proba >= thresholds[None, :]
    scores = np.where(confident, proba, -1.0)
    guess = scores.argmax(axis=1)
    suspect = confident.any(axis=1) & (guess != labels)
    share = float(suspect.mean())
    pairs = k * (k - 1)
    if k < 3 or not suspect.any():  # two classes have one pair: random and systematic confusion look alike
        return {"share": share, "spread": None}
    counts = np.bincount(labels[suspect] * k + guess[suspect], minlength=k * k).astype(np.float64)
    counts = counts[counts > 0] / counts.sum()
    return {"share": share, "spread": float(-np.sum(counts * np.log(counts)) / np.log(pairs))}
