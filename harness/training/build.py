"""Turn a variant spec into a compiled Keras model, its data and its fit arguments.

Imports Keras (and so TensorFlow): only code that trains or checks Keras names
imports this module.
"""

from __future__ import annotations

import dataclasses
import re

import keras

from harness.data import files  # noqa: F401  (registers file.csv, file.py and debug.fault)
from harness.data.sources import Dataset, load_data

LEGACY_ACCURACY = ("accuracy", "acc")


@dataclasses.dataclass
class Built:
    model: keras.Model
    data: Dataset
    fit_kwargs: dict
    semantics: str
    callbacks: list = dataclasses.field(default_factory=list)  # the case's own fit callbacks


def build(spec: dict, seed: int = 0, semantics: str | None = None) -> Built:
    """Compile the model of ``spec`` with weights drawn from ``seed``.

    ``semantics`` overrides the spec's loss semantics ("keras2" or "keras3").
    """
    semantics = semantics or spec.get("semantics", "keras2")
    keras.utils.set_random_seed(seed)
    data = load_data(spec["data"])
    model = build_model(spec["model"], semantics)
    compile_model(model, spec["compile"], semantics)
    fit = spec["fit"]
    fit_kwargs = {"epochs": fit["epochs"], "batch_size": fit["batch_size"], "shuffle": fit.get("shuffle", True),
                  "verbose": 0}
    if data.x_val is not None:
        fit_kwargs["validation_data"] = (data.x_val, data.y_val)
    if fit.get("class_weight"):
        fit_kwargs["class_weight"] = {int(k): float(v) for k, v in fit["class_weight"].items()}
    return Built(model, data, fit_kwargs, semantics, fit_callbacks(fit.get("callbacks") or []))


def fit_callbacks(specs: list[dict]) -> list:
    """The case's fit callbacks (``fit.callbacks``), from the schema's safe list; schedules by name."""
    out = []
    for spec in specs:
        (name, kwargs), = spec.items()
        kwargs = dict(kwargs)
        if name == "LearningRateScheduler":
            kwargs["schedule"] = schedule(kwargs.pop("schedule"), **{k: kwargs.pop(k) for k in list(kwargs)
                                                                     if k != "verbose"})
        out.append(getattr(keras.callbacks, name)(**kwargs))
    return out


def schedule(name: str, rate: float = 1.0, factor: float = 1.0, every: int = 1):
    """A learning-rate schedule by name: ``exponential`` multiplies by ``rate`` each epoch; ``step``
    multiplies by ``factor`` every ``every`` epochs."""
    if name == "exponential":
        return lambda epoch, lr: float(lr) * rate if epoch > 0 else float(lr)
    if name == "step":
        return lambda epoch, lr: float(lr) * factor if epoch > 0 and epoch % every == 0 else float(lr)
    raise ValueError(f"unknown schedule '{name}'")


def build_model(model_spec: dict, semantics: str = "keras2") -> keras.Model:
    layers, counts = [], {}
    for entry in model_spec["layers"]:
        for name, kwargs in entry.items():
            layers.append(make_layer(name, {"name": _layer_name(name, counts), **(kwargs or {})}))
    model = keras.Sequential([keras.Input(shape=tuple(model_spec["input_shape"])), *layers])
    if semantics == "keras2":
        for layer in model.layers:
            strip_cached_logits(layer)
    return model


def _layer_name(cls: str, counts: dict) -> str:
    """``dense``, ``dense_1``, ... counted within this model, as Keras names them in a fresh process.

    Keras' own counters are global to the process: a worker that built other
    models first would call the same layer ``dense_6``, and findings would name it so.
    """
    base = re.sub(r"([a-z])([A-Z])", r"\1_\2", re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", cls)).lower()
    n = counts.get(base, 0)
    counts[base] = n + 1
    return base if n == 0 else f"{base}_{n}"


def make_layer(name: str, kwargs: dict | None) -> keras.layers.Layer:
    cls = getattr(keras.layers, name, None)
    if not (isinstance(cls, type) and issubclass(cls, keras.layers.Layer)):
        raise ValueError(f"'{name}' is not a keras.layers class")
    return cls(**to_keras_objects(kwargs or {}))


def compile_model(model: keras.Model, compile_spec: dict, semantics: str = "keras2") -> None:
    loss = keras.losses.get(to_keras_objects(compile_spec["loss"]))
    optimizer = keras.optimizers.get(to_keras_objects(compile_spec["optimizer"]))
    metrics = [resolve_metric(m, compile_spec["loss"], model, semantics) for m in compile_spec.get("metrics", [])]
    model.compile(loss=loss, optimizer=optimizer, metrics=metrics,
                  steps_per_execution=compile_spec.get("steps_per_execution", 1))


def resolve_metric(metric, loss_spec, model: keras.Model, semantics: str):
    """A metric object; under Keras-2 semantics 'accuracy' is resolved as Keras 2.2 did.

    Keras 2.2 picked binary accuracy for any binary-crossentropy loss or 1-unit
    output; Keras 3 looks at the output shape only. The name stays 'accuracy' so
    callbacks monitoring 'accuracy' still find it.
    """
    if isinstance(metric, str) and metric in LEGACY_ACCURACY:
        loss_name = loss_spec if isinstance(loss_spec, str) else next(iter(loss_spec))
        loss_name = loss_name.lower().replace("_", "")
        if semantics == "keras3":
            return "accuracy"
        if model.output_shape[-1] == 1 or loss_name == "binarycrossentropy":
            return keras.metrics.BinaryAccuracy(name="accuracy")
        if loss_name == "sparsecategoricalcrossentropy":
            return keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        return keras.metrics.CategoricalAccuracy(name="accuracy")
    return keras.metrics.get(to_keras_objects(metric))


def to_keras_objects(value):
    """Turn ``{ClassName: {kwargs}}`` mappings into Keras config dicts, recursively.

    Keras' getters (initializers, optimizers, losses, schedules, regularizers)
    accept ``{"class_name": ..., "config": ...}``; case files use the shorter form.
    """
    if isinstance(value, dict):
        if len(value) == 1:
            (key, inner), = value.items()
            if isinstance(key, str) and key[:1].isupper() and isinstance(inner, (dict, type(None))):
                config = {"class_name": key, "config": to_keras_objects(inner or {})}
                if hasattr(keras.optimizers.schedules, key):
                    # nested inside an optimizer config, Keras only finds schedules by module
                    config["module"] = "keras.optimizers.schedules"
                return config
        return {k: to_keras_objects(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_keras_objects(v) for v in value]
    return value


def strip_cached_logits(layer: keras.layers.Layer) -> None:
    """Give ``layer`` Keras-2 loss semantics.

    Keras 3 attaches the logits to every softmax/sigmoid output and the
    cross-entropies use them, which silently repairs a wrong output activation
    (softmax on one unit, sigmoid with categorical cross-entropy). Copying the
    output drops the attribute and hides the Softmax op, so the loss sees the
    probabilities, clipped, exactly as Keras 2 computed it.
    """
    fn = getattr(layer, "activation", None)
    if callable(fn) and getattr(fn, "__name__", "") in ("softmax", "sigmoid"):
        layer.activation = _ProbabilitiesOnly(fn)


class _ProbabilitiesOnly:
    def __init__(self, fn):
        self.fn = fn
        self.__name__ = fn.__name__

    def __call__(self, x):
        return keras.ops.copy(self.fn(x))
