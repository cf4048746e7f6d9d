"""Static facts about a training program: model, loss, optimizer, a data sample.

What a static checker (``detectors.structure``) and the fix-suggestion logic
of other detectors need, gathered once before training. Plain numbers and
strings, so they travel in a trace's metadata and a unit record as JSON.
Keras objects are read by attribute; this module never imports TensorFlow.
"""

from __future__ import annotations

import re
import warnings

import numpy as np

from harness.baseline import class_indices, even_rows, learned_reference
from harness.outputs import activation_name, measure

# 5: the learned reference (harness.baseline), dropout rates and regularisers; 6: token ids and sequences read as such;
# 7: the measured outputs (harness.outputs), the activations of
# activation layers and wrappers, input-scaling layers, the validation labels' class counts; 8: the learned
# reference on small samples (principal components and neighbours bounded by the rows); 9: the validation labels'
# class counts in the harness's facts too (a live callback's had them); the loss and labels of each output of a
# model with several (``heads``)
FACTS_VERSION = 9
SAMPLE = 4096  # rows summarised: enough for ranges and label kinds, cheap on any case
# Keras 2 clipped probabilities to [EPS, 1 - EPS] inside its cross-entropies; the best constant
# predictor's loss is computed with the same clip, so a stuck output is compared like with like.
EPS = 1e-7

# Spellings Keras accepts for the same loss.
_LOSS_ALIASES = {"mse": "mean_squared_error", "mae": "mean_absolute_error",
                 "bce": "binary_crossentropy", "cce": "categorical_crossentropy",
                 "msle": "mean_squared_logarithmic_error", "mape": "mean_absolute_percentage_error"}


def describe(model, x=None, y=None, y_val=None, fit_weights: dict | None = None) -> dict:
    """Facts of a compiled ``model`` and, when given, a sample of its training data (and its validation labels),
    with the constant predictor judged under the fit's weights (``with_sample``'s ``fit_weights``)."""
    facts = {"version": FACTS_VERSION, "loss": loss_name(getattr(model, "loss", None)),
             "from_logits": from_logits(getattr(model, "loss", None)),
             # Layer order is data-flow order only in a Sequential model (a functional one may branch).
             "sequential": type(model).__name__ == "Sequential",
             # A subclassed model's layers are whatever it tracks, in no data-flow order, and it has no graph.
             "graph": type(model).__name__ in ("Sequential", "Functional"),
             "optimizer": optimizer_facts(getattr(model, "optimizer", None)),
             "layers": [layer_facts(layer) for layer in probed_layers(model)]}
    if x is not None and y is not None:
        facts.update(sample_facts(facts["loss"], x, y, reads_tokens(facts["layers"])))
        facts.update(_weighted(facts["loss"], y, fit_weights))
    if x is not None:
        facts["outputs"] = measure(model, x, probed_layers(model))
    if y is not None and y_val is not None:
        facts["validation"] = validation_facts(y, y_val)
    heads = head_facts(model)
    if heads:
        facts["heads"] = labelled_heads(heads, y)
    return facts


def head_facts(model) -> list[dict] | None:
    """Per output of a model with several, in ``model.outputs`` order: its name and its loss (``compile`` takes
    one loss for every output, a list in output order, or a dict by output name). None for a single output."""
    names = list(getattr(model, "output_names", None) or [])
    if len(names) < 2:
        return None
    losses = _per_output(getattr(model, "loss", None), names)
    return [{"name": name, "loss": loss_name(loss), "from_logits": from_logits(loss)}
            for name, loss in zip(names, losses)]


def labelled_heads(heads: list[dict], y) -> list[dict]:
    """``heads`` with the facts of each output's labels, where ``y`` gives them per output (a dict by output name,
    or a list in output order, as ``fit`` takes them)."""
    if y is None or hasattr(y, "shape"):
        return heads
    out = []
    for head, label in zip(heads, _per_output(y, [h["name"] for h in heads])):
        array = single_array(label) if label is not None else None
        if array is not None and len(array):
            head = dict(head, y=label_facts(np.asarray(array[even_rows(len(array), SAMPLE)], np.float64)))
        out.append(head)
    return out


def _per_output(value, names: list[str]) -> list:
    """``value`` (one for all, a list in output order, or a mapping by output name) as one entry per output."""
    if hasattr(value, "keys"):
        return [value.get(name) for name in names]
    if isinstance(value, (list, tuple)):
        return list(value) + [None] * (len(names) - len(value))
    return [value] * len(names)


def class_labels(y) -> np.ndarray | None:
    """Labels as one class index per row (integer or one-hot labels, a 0/1 column), None for other targets."""
    y = single_array(y)
    if y is None or not len(y):
        return None
    labels = class_indices(np.asarray(y, np.float64))
    return labels if labels is not None and labels.max() < 1000 else None  # counted per class: a bounded width


def validation_facts(y, y_val) -> dict | None:
    """Class counts of the training and the validation labels (None for targets that are no classes).

    ``validation_split`` takes the last rows of the arrays ``fit`` was given: when ``y`` ends with the
    validation labels, the training part is the rest (``tail``). ``runs``: how many runs of one class the
    training arrays' rows make in their order (about rows x (1 - sum p^2) when shuffled; one per class when
    sorted).
    """
    full, val = class_labels(y), class_labels(y_val)
    if full is None or val is None:
        return None
    tail = len(full) > len(val) and np.array_equal(full[-len(val):], val)
    train = full[:-len(val)] if tail else full
    width = int(max(full.max(), val.max())) + 1
    return {"train": np.bincount(train, minlength=width).tolist(), "validation": np.bincount(val, minlength=width)
            .tolist(), "tail": bool(tail), "runs": int(1 + np.count_nonzero(np.diff(full))), "rows": len(full)}


# Layers that read their inputs as ids (a vocabulary index, a category), not as quantities to scale.
TOKEN_LAYERS = {"Embedding", "StringLookup", "IntegerLookup", "CategoryEncoding", "Hashing", "HashedCrossing",
                "TextVectorization"}


def reads_tokens(layers: list[dict]) -> bool:
    """Whether the model's first layer reads ids (an Embedding or a lookup): its inputs are tokens, not quantities."""
    return bool(layers) and layers[0].get("class") in TOKEN_LAYERS


def probed_layers(model) -> list:
    return [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]


def loss_name(loss) -> str | None:
    """A canonical snake_case name for a loss given as a string, function or Loss object."""
    if loss is None:
        return None
    if isinstance(loss, str):
        name = loss
    else:
        name = getattr(loss, "name", None) or getattr(loss, "__name__", None) or type(loss).__name__
        name = getattr(getattr(loss, "fn", None), "__name__", None) or name
    name = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower() if any(c.isupper() for c in name) else name
    return _LOSS_ALIASES.get(name, name)


def from_logits(loss) -> bool:
    """Whether a Loss object was built with ``from_logits=True`` (a string loss never is)."""
    config = loss.get_config() if hasattr(loss, "get_config") else {}
    return bool(config.get("from_logits", False))


def optimizer_facts(optimizer) -> dict:
    if optimizer is None:
        return {}
    lr = getattr(optimizer, "learning_rate", None)
    try:
        lr = float(np.asarray(lr))
    except (TypeError, ValueError):
        lr = None
    return {"class": type(optimizer).__name__, "learning_rate": lr}


def scales_inputs(layer) -> bool:
    """Whether a Normalization or Rescaling layer changes its inputs' scale (a Normalization left unadapted, with
    mean 0 and variance 1, does not)."""
    kind = type(layer).__name__
    if kind == "Rescaling":
        return bool(np.any(np.asarray(getattr(layer, "scale", 1.0)) != 1)
                    or np.any(np.asarray(getattr(layer, "offset", 0.0)) != 0))
    if kind != "Normalization":
        return False
    try:
        mean, variance = np.asarray(layer.mean, np.float64), np.asarray(layer.variance, np.float64)
    except (AttributeError, TypeError, ValueError):  # not built yet: mean and variance unknown
        return False
    return bool(np.any(mean != 0) or np.any(variance != 1))


def layer_facts(layer) -> dict:
    init = getattr(layer, "kernel_initializer", None)
    out = {"name": layer.name, "class": type(layer).__name__, "activation": activation_name(layer),
           "units": getattr(layer, "units", None) or getattr(layer, "filters", None),
           "trainable_weights": len(getattr(layer, "trainable_weights", []))}
    if init is not None:
        config = init.get_config() if hasattr(init, "get_config") else {}
        out["kernel_initializer"] = {"class": type(init).__name__,
                                     "config": {k: v for k, v in config.items() if isinstance(v, (int, float, str))}}
    if scales_inputs(layer):
        out["scales_inputs"] = True
    rate = getattr(layer, "rate", None)
    if isinstance(rate, (int, float)):
        out["rate"] = float(rate)  # Dropout and its kin: the share of units dropped
    penalties = {kind: _penalty(getattr(layer, f"{kind}_regularizer", None)) for kind in ("kernel", "bias", "activity")}
    if any(penalties.values()):
        out["regularizers"] = {k: v for k, v in penalties.items() if v}
    return out


def _penalty(regularizer) -> dict | None:
    """An L1/L2 regulariser's factors (``{"l1": .., "l2": ..}``), None when there is none or it is not L1/L2."""
    if regularizer is None:
        return None
    config = regularizer.get_config() if hasattr(regularizer, "get_config") else {}
    found = {k: float(v) for k, v in config.items() if k in ("l1", "l2") and isinstance(v, (int, float)) and v}
    return found or None


def data_facts(x, y) -> dict:
    """Ranges of the inputs and the kind and range of the labels, from SAMPLE rows spread over the data.

    Rows are taken at even strides, not from the top: data sorted by class would
    otherwise show a single label.
    """
    x, y = single_array(x), single_array(y)
    out = {}
    if y is not None:
        out["y"] = label_facts(np.asarray(y[even_rows(len(y), SAMPLE)], np.float64))
    if x is None:
        return out  # several inputs (a dict or list of arrays): no single range to judge
    x = x[even_rows(len(x), SAMPLE)].astype(np.float64)
    per_feature = x.reshape(len(x), -1)
    if np.isfinite(per_feature).all():  # the usual case, without the NaN-aware (slower) reductions
        finite, std, mean = per_feature.ravel(), per_feature.std(axis=0), per_feature.mean(axis=0)
    else:
        finite = x[np.isfinite(x)]
        with warnings.catch_warnings():  # an all-NaN feature is a NaN statistic, by design
            warnings.simplefilter("ignore", RuntimeWarning)
            std, mean = np.nanstd(per_feature, axis=0), np.nanmean(per_feature, axis=0)
    xs = {"min": _f(finite.min()) if finite.size else None, "max": _f(finite.max()) if finite.size else None,
          "mean": _f(finite.mean()) if finite.size else None, "std": _f(finite.std()) if finite.size else None,
          "feature_std_max": _f(std.max()) if std.size else None,
          "feature_mean_absmax": _f(np.abs(mean).max()) if mean.size else None}
    return dict(out, x=xs)


def with_sample(facts: dict, sample, fit_weights: dict | None = None) -> dict:
    """``facts`` plus the data facts and reference of a live callback's ``sample=(x, y)`` (the harness's facts
    have them). ``fit_weights``: the fit's ``class_weight`` and ``sample_weight`` (``detectors.live.fit_weights``),
    which Keras applies to the logged training loss, so the constant predictor is judged under the same
    weights."""
    if sample is None or "reference" in facts:
        return facts
    x, y = sample
    out = dict(facts, **sample_facts(facts.get("loss"), x, y, reads_tokens(facts.get("layers") or [])))
    if facts.get("heads"):
        out["heads"] = labelled_heads(facts["heads"], y)
    return dict(out, **_weighted(facts.get("loss"), y, fit_weights))


def _weighted(loss: str | None, y, fit_weights: dict | None) -> dict:
    """The reference and baseline facts that replace the plain ones in a weighted fit (none in a plain one)."""
    weights, unknown = row_weights(y, fit_weights)
    if weights is None and not unknown:
        return {}
    # Keras weights validation batches by class_weight never, by sample_weight when validation_split cut
    # them from it: only a class-weighted fit's validation loss is known to be plain.
    plain_validation = unknown is None and (fit_weights or {}).get("sample_weight") is None
    return {"reference": weighted_reference(loss, y, weights, plain_validation),
            "baseline": {"skipped": unknown or "the fit weights its rows (class_weight or sample_weight) and "
                         "the reference learner does not"}}


def row_weights(y, fit_weights: dict | None) -> tuple[np.ndarray | None, str | None]:
    """Each sample row's weight in the fit's loss (None when the fit is unweighted), or why it is unknown."""
    fit_weights = fit_weights or {}
    if fit_weights.get("unknown"):
        return None, fit_weights["unknown"]
    class_weight, sample_weight = fit_weights.get("class_weight"), fit_weights.get("sample_weight")
    if not class_weight and sample_weight is None:  # Keras ignores an empty class_weight
        return None, None
    try:
        weights = _row_weights(single_array(y), class_weight, sample_weight)
    except _Unmatched as exc:
        return None, str(exc)
    except (TypeError, ValueError) as exc:  # weights Keras takes in a form read here differently: no reference
        return None, f"the fit's weights could not be matched to the sample's rows ({exc})"
    return (None, None) if np.all(weights == 1.0) else (weights, None)


class _Unmatched(Exception):
    """The fit's weights cannot be laid on the sample's rows; the message says why."""


def _row_weights(y, class_weight: dict | None, sample_weight) -> np.ndarray:
    if y is None:
        raise _Unmatched("the fit weights its rows and the labels are several arrays")
    weights = np.ones(len(y))
    if sample_weight is not None:
        given = single_array(sample_weight)
        if given is None or given.ndim != 1 or len(given) != len(y):
            # cut by validation_split, a subset as the sample, or weights per time step: rows cannot be matched
            shape = "no array" if given is None else f"shape {list(given.shape)}"
            raise _Unmatched(f"the fit's sample_weight ({shape}) does not match the sample's {len(y)} rows")
        weights = weights * given.astype(np.float64)
    if class_weight:
        column = y.reshape(len(y), -1)
        labels = np.argmax(column, axis=1) if column.shape[1] > 1 else column[:, 0]
        labels = np.where(np.isfinite(labels), np.rint(labels), -1).astype(np.int64)  # NaN: no class, weight 1
        weights = weights * np.array([float(class_weight.get(int(c), 1.0)) for c in labels])
    return weights


def weighted_reference(loss: str | None, y, weights: np.ndarray | None, plain_validation: bool = False) -> dict:
    """``reference`` under the fit's row weights: the best constant output minimises the weighted loss, which
    Keras reduces as the mean over rows of weight × loss. ``validation_loss`` is what validation losses are
    judged against: the plain constant loss where they are known to be unweighted, else None (not judged).
    The accuracies stay the plain majority rates: Keras weights only ``weighted_metrics``, not ``metrics``.
    Unknown weights (None) give no reference loss: the run's first loss stands in."""
    plain = reference(loss, y)
    out = dict(plain, loss=None, validation_loss=plain["loss"] if plain_validation else None)
    y, keep = _finite_rows(y)
    if weights is None or y is None:
        return out
    w = weights[keep]
    y, w = y[np.isfinite(w)], w[np.isfinite(w)]
    if not len(y) or w.sum() <= 0:
        return out
    share = (w[:, None] * y).sum(axis=0) / w.sum()
    return dict(out, loss=_weighted_constant_loss(loss, y, w, share))


def validation_reference(facts: dict) -> float | None:
    """The constant predictor's loss that validation losses are judged against: the training reference, except
    in a weighted fit, whose validation batches Keras weights otherwise (``weighted_reference``)."""
    ref = facts.get("reference") or {}
    return ref["validation_loss"] if "validation_loss" in ref else ref.get("loss")


def _weighted_constant_loss(loss: str | None, y: np.ndarray, w: np.ndarray, share: np.ndarray) -> float | None:
    rows = None
    if loss == "mean_squared_error":
        rows = np.mean((y - share) ** 2, axis=1)
    elif loss == "binary_crossentropy":
        p = np.clip(share, EPS, 1 - EPS)
        rows = np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p)), axis=1)
    elif loss == "categorical_crossentropy" and y.min() >= 0 and y.shape[1] > 1:
        rows = -(y * np.log(np.clip(share / max(share.sum(), EPS), EPS, 1.0))).sum(axis=1)
    elif loss == "sparse_categorical_crossentropy" and y.shape[1] == 1 and _class_indices(y):
        index = y[:, 0].astype(np.int64)
        p = np.bincount(index, weights=w) / w.sum()
        rows = -np.log(np.clip(p[index], EPS, 1.0))
    return None if rows is None else _f(np.mean(w * rows))


def sample_facts(loss: str | None, x, y, tokens: bool = False) -> dict:
    """What the training data say before any training: their ranges, the best constant predictor (``reference``)
    and a cheap learner's out-of-fold fit (``baseline``, see ``harness.baseline``)."""
    try:
        baseline = _unreadable(x, y) or learned_reference(single_array(x), single_array(y), loss, tokens=tokens)
    except Exception as exc:  # a reference is evidence, never a reason to lose the facts
        baseline = {"skipped": f"the reference learner failed ({type(exc).__name__}: {exc})"}
    return dict(data_facts(x, y), reference=reference(loss, y), baseline=baseline)


def _unreadable(x, y) -> dict | None:
    """Why no learner can read a single array of these inputs or labels (strings for a TextVectorization
    layer, say), where the reason is not that there are several."""
    for name, value in (("inputs", x), ("labels", y)):
        parts = _parts(value)
        if parts is not None and len(parts) != 1:
            continue
        value = parts[0] if parts else value
        if value is not None and single_array(value) is None:
            kind = getattr(value, "dtype", type(value).__name__)
            return {"skipped": f"the {name} are not numbers ({kind}): a layer of the model reads them"}
    return None


def _parts(value) -> list | None:
    """The entries of a multi-input or multi-output model's dict or list of arrays, or None for anything else."""
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, (list, tuple)) and value and hasattr(value[0], "shape"):
        return list(value)
    return None


def single_array(value) -> np.ndarray | None:
    """``value`` as one numeric array, or None for several (a multi-input or multi-output model's dict or list)."""
    parts = _parts(value)
    if parts is not None:
        return single_array(parts[0]) if len(parts) == 1 else None
    try:
        array = np.asarray(value)
    except (TypeError, ValueError):
        return None
    return array if array.dtype != object and array.ndim >= 1 and array.dtype.kind in "biuf" else None


def label_facts(y: np.ndarray) -> dict:
    shape = list(y.shape[1:])
    values = y[np.isfinite(y)]
    unique = np.unique(values) if values.size else values
    integer = bool(values.size and np.all(values == np.round(values)))
    binary = bool(values.size and set(unique.tolist()) <= {0.0, 1.0})
    one_hot = bool(binary and y.ndim == 2 and y.shape[1] > 1 and np.all(y.sum(axis=1) == 1))
    multi_hot = bool(binary and y.ndim == 2 and y.shape[1] > 1 and np.any(y.sum(axis=1) > 1))
    return {"shape": shape, "min": _f(values.min()) if values.size else None,
            "max": _f(values.max()) if values.size else None, "n_unique": int(min(len(unique), 10**6)),
            "integer": integer, "binary": binary, "one_hot": one_hot, "multi_hot": multi_hot,
            "classes": int(y.shape[1]) if one_hot else (int(unique.max()) + 1 if integer and unique.size
                                                         and unique.min() >= 0 and len(unique) <= 1000 else None)}


def reference(loss: str | None, y) -> dict:
    """What the training labels allow *without* learning: the best constant predictor.

    ``loss``: the loss of the best constant output for this loss and these
    labels (class prior for the cross-entropies, target mean for MSE, median
    for MAE; None for losses without a closed form); ``accuracy``: the accuracy
    of always predicting the majority, as a binary accuracy (per output
    column) and as a categorical one. A run whose loss is no better than
    ``loss`` has learned nothing from the inputs.
    """
    y, _ = _finite_rows(y)
    if y is None or not len(y):
        return {"loss": None, "binary_accuracy": None, "categorical_accuracy": None}
    return {"loss": _constant_loss(loss, y), "binary_accuracy": _binary_majority(y),
            "categorical_accuracy": _categorical_majority(y)}


def _finite_rows(y) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The labels as float64 rows (one column per output unit) with every non-finite row dropped, and the mask
    of the rows kept; (None, None) for several label arrays."""
    y = single_array(y)
    if y is None:
        return None, None
    y = np.asarray(y, np.float64)
    y = y.reshape(len(y), -1) if y.ndim != 1 else y.reshape(-1, 1)
    keep = np.all(np.isfinite(y), axis=1)
    return y[keep], keep


def _constant_loss(loss: str | None, y: np.ndarray) -> float | None:
    if loss == "mean_squared_error":
        return _f(np.mean(np.var(y, axis=0)))
    if loss == "mean_absolute_error":
        return _f(np.mean(np.abs(y - np.median(y, axis=0))))
    if loss == "binary_crossentropy":
        m = y.mean(axis=0)
        p = np.clip(m, EPS, 1 - EPS)
        return _f(np.mean(-(m * np.log(p) + (1 - m) * np.log(1 - p))))
    if loss == "categorical_crossentropy" and y.min() >= 0 and y.shape[1] > 1:
        m = y.mean(axis=0)
        p = np.clip(m / max(m.sum(), EPS), EPS, 1.0)
        return _f(-np.sum(m * np.log(p)))
    if loss == "sparse_categorical_crossentropy" and y.shape[1] == 1 and _class_indices(y):
        p = np.bincount(y[:, 0].astype(np.int64)) / len(y)
        p = p[p > 0]
        return _f(-np.sum(p * np.log(p)))
    return None


def _binary_majority(y: np.ndarray) -> float | None:
    if not set(np.unique(y).tolist()) <= {0.0, 1.0}:
        return None
    m = y.mean(axis=0)
    return _f(np.mean(np.maximum(m, 1 - m)))


def _categorical_majority(y: np.ndarray) -> float | None:
    if y.shape[1] > 1 and set(np.unique(y).tolist()) <= {0.0, 1.0} and np.all(y.sum(axis=1) == 1):
        return _f(y.mean(axis=0).max())
    if y.shape[1] == 1 and _class_indices(y):
        return _f(np.bincount(y[:, 0].astype(np.int64)).max() / len(y))
    return None


def _class_indices(y: np.ndarray) -> bool:
    return bool(y.min() >= 0 and np.all(y == np.round(y)) and y.max() < 10**5)


def _f(v) -> float:
    return float(v)


# A run "learns" when it beats what the labels allow without learning by a margin no noise
# explains: its loss 5 % below the best constant predictor's, or its accuracy 5 points above the
# majority-class rate. The same rule judges a detector's "not learning" and fidelity's "learns".
LOSS_MARGIN = 0.05
ACC_MARGIN = 0.05
# Labels that are all alike: the best constant predictor is perfect (its clipped cross-entropy is EPS),
# so it cannot be beaten and the run's own first loss is the reference instead.
DEGENERATE = 10 * EPS


def accuracy_reference(reference: dict | None, metric: str, loss: str | None, units: int | None):
    """The majority-class rate matching how ``metric`` counts (binary per output, or categorical)."""
    reference = reference or {}
    binary = "binary" in metric or (metric == "accuracy" and (loss == "binary_crossentropy" or units == 1))
    return reference.get("binary_accuracy" if binary else "categorical_accuracy")


def learns(loss: float, reference_loss: float | None, initial_loss: float | None = None,
           accuracy: float | None = None, chance: float | None = None) -> bool | None:
    """Whether a final training ``loss`` (and ``accuracy``) beat the no-learning reference.

    The reference is the best constant predictor's loss; where it is unknown or
    zero (a loss without closed form, labels all alike) the run's own initial
    loss stands in. None when nothing can be judged.
    """
    if accuracy is not None and chance is not None and np.isfinite(accuracy) and accuracy >= chance + ACC_MARGIN:
        return True
    if loss is None or not np.isfinite(loss):
        return False if loss is not None else None
    ref = reference_loss if reference_loss is not None and reference_loss > DEGENERATE else initial_loss
    if ref is None or not np.isfinite(ref) or ref <= 0:
        return None
    return bool(loss <= (1 - LOSS_MARGIN) * ref)
