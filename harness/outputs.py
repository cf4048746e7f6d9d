"""What a model's output *is*, measured on a data sample before training, and which layer owns it.

A static reading of the layers' ``activation`` attributes misses a ``Softmax()`` layer, a wrapper
(``TimeDistributed(Dense(3, activation="softmax"))``), a ``keras.ops.sigmoid`` in a functional graph and
every subclassed model. The output itself says what it is: run the model once on a few hundred rows and
judge the values, per output (``kind``):

* ``one``: a single unit that is exactly 1 on every row (softmax over one unit);
* ``simplex``: non-negative rows summing to 1 over at least two units (a softmax, however written);
* ``unit``: every value in [0, 1], rows not summing to 1 (a probability per unit: sigmoid);
* ``nonnegative``: every value >= 0, some above 1 (ReLU, softplus, exponential);
* ``signed``: negative values (linear, tanh, ...): no probability;
* ``nonfinite``: NaN/Inf already before training.

The values say what is certain (a row sums to 1 on every row of the sample only by construction), and
the layers' configuration names where it happens: the graph is walked back from each output through
layers that do not change the function (Dropout, Flatten, Reshape, ...) to the layer that owns the
output's function. Plain numbers, so they travel in the facts as JSON (``outputs``): part of the facts
(``harness.facts.describe``), as the learned reference is. Never imports TensorFlow itself; the model it is
handed has. Running the model once with ``training=False`` draws no random numbers and updates nothing but
a stateful recurrent layer's state, so such a model is left to the static reading.
"""

from __future__ import annotations

import warnings

import numpy as np

ROWS = 256  # rows run through the model: a chance structure (a linear output inside [0, 1]) on all of them is
# improbable, and one forward pass of 256 rows costs milliseconds on the benchmark's models
SUM_TOL = 1e-3  # a softmax row sums to 1 within float32 rounding (~1e-7 per unit); any other output misses by far more
STRESS = 100.0  # inputs scaled far beyond a normalised range (and sign-flipped): see _stress
ONE_TOL = 1e-6  # a softmax over one unit is 1 up to float32 rounding (Keras gives 1 - 2^-24 = 0.99999994)
# Layers through which the output's function passes unchanged: the layer that owns it sits below them.
PASS_THROUGH = {"Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianDropout",
                "GaussianNoise", "AlphaDropout", "ActivityRegularization", "Flatten", "Reshape", "Permute",
                "Identity", "Cropping1D", "Cropping2D", "Cropping3D"}


# Layer classes that are an activation function, without an ``activation`` attribute to say so.
ACTIVATION_LAYERS = {"Softmax": "softmax", "ReLU": "relu", "LeakyReLU": "leaky_relu", "ELU": "elu", "PReLU": "prelu"}


def activation_name(layer) -> str | None:
    """The activation a layer applies last: its ``activation``, an activation layer's own function, or the
    wrapped layer's (``TimeDistributed``, ``Bidirectional``); None for a layer without one."""
    name = ACTIVATION_LAYERS.get(type(layer).__name__)
    if name == "relu" and getattr(layer, "max_value", None) == 6:
        name = "relu6"
    if name is not None:
        return name
    act = getattr(layer, "activation", None)
    if act is not None:
        return getattr(act, "__name__", None)
    inner = getattr(layer, "forward_layer", None) or getattr(layer, "layer", None)  # Bidirectional, TimeDistributed
    return activation_name(inner) if inner is not None and inner is not layer else None


def output_kind(values) -> dict:
    """``{"kind", "units", "min", "max", "spread"}`` of one output's values (any shape; the last axis is the
    units)."""
    values = np.asarray(values, np.float64)
    units = int(values.shape[-1]) if values.ndim >= 2 else 1
    rows = values.reshape(-1, units)
    out = {"units": units}
    if not rows.size or not np.isfinite(rows).all():
        return dict(out, kind="nonfinite", min=None, max=None)
    lo, hi = float(rows.min()), float(rows.max())
    out.update(min=lo, max=hi, spread=float(rows.std(axis=0).max()))  # spread: over rows, the widest unit's
    if units == 1 and abs(lo - 1.0) <= ONE_TOL and abs(hi - 1.0) <= ONE_TOL:
        return dict(out, kind="one")
    if lo < 0:
        return dict(out, kind="signed")
    if units > 1 and np.all(np.abs(rows.sum(axis=1) - 1.0) <= SUM_TOL):
        return dict(out, kind="simplex")
    return dict(out, kind="unit" if hi <= 1.0 else "nonnegative")


def measure(model, x, layers: list | None = None) -> list[dict] | None:
    """Each output's kind on up to ROWS rows of ``x``, with the index of the layer that owns it (``layer``) among
    ``layers`` (the probed layers, default: the model's, input layers excluded) and whether that layer's own
    output is the model's (``owned``: False for a Keras op or a subclass, where the layer is a guess). None
    when the model cannot run on ``x`` as given, or running it would change it (a stateful recurrent layer)."""
    from harness.baseline import even_rows

    layers = layers if layers is not None else [la for la in model.layers if type(la).__name__ != "InputLayer"]
    if any(getattr(layer, "stateful", False) for layer in layers):
        return None
    try:
        rows = _rows(x, even_rows(_length(x), ROWS))
        flat = _run(model, rows)
    except Exception:  # a model that will not run outside fit (odd input structures) keeps the static reading
        return None
    owners = owner_layers(model, layers, [np.shape(v)[-1] if np.ndim(v) >= 2 else 1 for v in flat])
    out = [dict(output_kind(v), layer=k, owned=owned) for v, (k, owned) in zip(flat, owners)]
    if any(not o["owned"] and o["kind"] in ("unit", "nonnegative") for o in out):
        _stress(model, rows, out)
    return out


def _run(model, rows) -> list[np.ndarray]:
    with warnings.catch_warnings():  # what Keras warns of here, the fit itself warns of again
        warnings.simplefilter("ignore")
        return [np.asarray(v) for v in _flatten(model(rows, training=False))]


def _stress(model, rows, out: list[dict]) -> None:
    """Tell a bounded output from one that stayed in [0, 1] or above 0 by chance, where no layer's configuration
    says which: run the inputs scaled by +-STRESS. A network of linear and ReLU-like layers at its initial zero
    biases scales its output with its input (f(kx) = k f(x)), and a sign flip of the inputs flips linear
    features; a sigmoid stays in (0, 1), a ReLU output at 0 or above. Only for one numeric input array (ids
    have no scale)."""
    if not isinstance(rows, np.ndarray) or rows.dtype.kind != "f":
        return
    try:
        stressed = _run(model, np.concatenate([rows * STRESS, rows * -STRESS]))
    except Exception:
        return
    for o, values in zip(out, stressed):
        if o["owned"] or o["kind"] not in ("unit", "nonnegative"):
            continue
        finite = values[np.isfinite(values)]
        if finite.size and finite.min() < 0:
            o["kind"] = "signed"
        elif finite.size and finite.max() > 1 and o["kind"] == "unit":
            o["kind"] = "nonnegative"


def owner_layers(model, layers: list, widths: list[int]) -> list[tuple[int | None, bool]]:
    """Per output, (the index in ``layers`` of the layer that owns its function, whether it is certain).

    Public API only: a graph's ``outputs`` and each layer's ``input``/``output`` (a layer called once). An
    output a Keras op produced (``keras.ops.softmax(h)``) has no layer of its own: the last layer with an
    activation, as the static reading names it. A subclass has no graph: the last layer as wide as the output.
    """
    try:
        outputs = list(model.outputs)
    except (AttributeError, ValueError):  # a subclass
        outputs = None
    if not outputs:
        return [(next((i for i in range(len(layers) - 1, -1, -1)
                       if (getattr(layers[i], "units", None) or getattr(layers[i], "filters", None)) == w), None),
                 False) for w in widths]
    producer = {}
    for i, layer in enumerate(layers):
        try:
            producer[id(layer.output)] = i
        except (AttributeError, ValueError):  # called several times (shared), or never
            continue
    configured = next((i for i in range(len(layers) - 1, -1, -1) if activation_name(layers[i]) is not None), None)
    return [_walk(tensor, layers, producer, configured) for tensor in outputs]


def _walk(tensor, layers: list, producer: dict, configured: int | None) -> tuple[int | None, bool]:
    """From an output tensor down through PASS_THROUGH layers to the layer that owns its function."""
    for _ in range(len(layers) + 1):
        i = producer.get(id(tensor))
        if i is None:
            return configured, False
        if type(layers[i]).__name__ not in PASS_THROUGH:
            return i, True
        try:
            tensor = layers[i].input
        except (AttributeError, ValueError):
            return i, True
    return configured, False


def _length(x) -> int:
    first = next(iter(x.values())) if isinstance(x, dict) else x[0] if isinstance(x, (list, tuple)) else x
    return len(first)


def _rows(x, rows):
    if isinstance(x, dict):
        return {k: np.asarray(v)[rows] for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [np.asarray(v)[rows] for v in x]
    return np.asarray(x)[rows]


def _flatten(predicted) -> list:
    if isinstance(predicted, dict):
        return list(predicted.values())
    if isinstance(predicted, (list, tuple)):
        return [v for p in predicted for v in _flatten(p)]
    return [predicted]
