"""Static facts about a training program: model, loss, optimizer, a data sample.

What a static checker (``detectors.structure``) and the fix-suggestion logic
of other detectors need, gathered once before training. Plain numbers and
strings, so they travel in a trace's metadata and a unit record as JSON.
Keras objects are read by attribute; this module never imports TensorFlow.
"""

from __future__ import annotations

import re

import numpy as np

FACTS_VERSION = 1
SAMPLE = 4096  # rows summarised: enough for ranges and label kinds, cheap on any case

# Spellings Keras accepts for the same loss.
_LOSS_ALIASES = {"mse": "mean_squared_error", "mae": "mean_absolute_error",
                 "bce": "binary_crossentropy", "cce": "categorical_crossentropy",
                 "msle": "mean_squared_logarithmic_error", "mape": "mean_absolute_percentage_error"}


def describe(model, x=None, y=None) -> dict:
    """Facts of a compiled ``model`` and, when given, a sample of its training data."""
    facts = {"version": FACTS_VERSION, "loss": loss_name(getattr(model, "loss", None)),
             "optimizer": optimizer_facts(getattr(model, "optimizer", None)),
             "layers": [layer_facts(layer) for layer in probed_layers(model)]}
    if x is not None and y is not None:
        facts.update(data_facts(x, y))
    return facts


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


def optimizer_facts(optimizer) -> dict:
    if optimizer is None:
        return {}
    lr = getattr(optimizer, "learning_rate", None)
    try:
        lr = float(np.asarray(lr))
    except (TypeError, ValueError):
        lr = None
    return {"class": type(optimizer).__name__, "learning_rate": lr}


def layer_facts(layer) -> dict:
    act = getattr(layer, "activation", None)
    init = getattr(layer, "kernel_initializer", None)
    out = {"name": layer.name, "class": type(layer).__name__,
           "activation": getattr(act, "__name__", None) if act is not None else None,
           "units": getattr(layer, "units", None) or getattr(layer, "filters", None),
           "trainable_weights": len(getattr(layer, "trainable_weights", []))}
    if init is not None:
        config = init.get_config() if hasattr(init, "get_config") else {}
        out["kernel_initializer"] = {"class": type(init).__name__,
                                     "config": {k: v for k, v in config.items() if isinstance(v, (int, float, str))}}
    return out


def data_facts(x, y) -> dict:
    """Ranges of the inputs and the kind and range of the labels, from the first rows."""
    x = np.asarray(x[:SAMPLE], np.float64)
    y = np.asarray(y[:SAMPLE], np.float64)
    finite = x[np.isfinite(x)]
    per_feature = x.reshape(len(x), -1)
    xs = {"min": _f(finite.min()) if finite.size else None, "max": _f(finite.max()) if finite.size else None,
          "mean": _f(finite.mean()) if finite.size else None, "std": _f(finite.std()) if finite.size else None,
          "feature_std_max": _f(np.nanstd(per_feature, axis=0).max()) if per_feature.size else None}
    return {"x": xs, "y": label_facts(y)}


def label_facts(y: np.ndarray) -> dict:
    shape = list(y.shape[1:])
    values = y[np.isfinite(y)]
    unique = np.unique(values) if values.size else values
    integer = bool(values.size and np.all(values == np.round(values)))
    binary = bool(values.size and set(unique.tolist()) <= {0.0, 1.0})
    one_hot = bool(binary and y.ndim == 2 and y.shape[1] > 1 and np.all(y.sum(axis=1) == 1))
    return {"shape": shape, "min": _f(values.min()) if values.size else None,
            "max": _f(values.max()) if values.size else None, "n_unique": int(min(len(unique), 10**6)),
            "integer": integer, "binary": binary, "one_hot": one_hot,
            "classes": int(y.shape[1]) if one_hot else (int(unique.max()) + 1 if integer and unique.size
                                                         and unique.min() >= 0 and len(unique) <= 1000 else None)}


def _f(v) -> float:
    return float(v)
