"""Checks that need Keras: every name in a case resolves and the model builds.

Schema validation (harness.cases.load) is cheap and runs first; this module imports
Keras, so the CLI calls it only for commands that validate or train.
"""

from __future__ import annotations

import inspect
import warnings

from harness.cases.load import LoadedCase
from harness.cases.yamlfile import line_of
from harness.data import files as data_files
from harness.data import sources as data
from harness.errors import CaseError


def check_spec_of_file(path: str) -> list[CaseError]:
    """The Keras problems of a case file whose schema errors lie outside its spec (title, truth, symptom,
    ...): reported in the same run as those, so a file with mistakes at every stage takes one round."""
    import pydantic

    from harness.cases import schema
    from harness.cases.yamlfile import load_yaml
    from harness.errors import CaseFileError

    try:
        raw, lines = load_yaml(path)
        spec = schema.Spec.model_validate({k: raw[k] for k in schema.SPEC_KEYS if k in raw}).model_dump(mode="json")
        if spec["data"]["source"] in data_files.FILE_SOURCES:
            spec["data"]["params"]["path"] = data_files.resolve(path, str(spec["data"]["params"].get("path", "")))
    except (CaseFileError, pydantic.ValidationError, TypeError, KeyError, ValueError):
        return []  # the spec itself is malformed: its schema errors say so already
    return [CaseError(path, line_of(lines, where), message) for where, message in _spec_problems(spec)]


def check_case(case: LoadedCase) -> list[CaseError]:
    """Every problem that would stop either variant from building, with its line."""
    errors: list[CaseError] = []
    for variant in ("buggy", "patched"):
        spec = case.spec_dict(variant)
        for path, message in _spec_problems(spec):
            line = line_of(case.lines, path) if variant == "buggy" else line_of(case.lines, ("patch",))
            prefix = "" if variant == "buggy" else "in the patched variant: "
            err = CaseError(case.path, line, prefix + message)
            if variant == "patched" and any(e.message == message for e in errors):
                continue  # the same problem in both variants is reported once
            errors.append(err)
    return errors


def _spec_problems(spec: dict) -> list[tuple[tuple, str]]:
    import keras

    from harness.training import build

    problems = []
    d = spec["data"]
    why = data.check_params(d["source"], d.get("params", {}))
    if why:
        problems.append((("data", "source"), why + _hint(d["source"], data.SOURCES)))
    for i, step in enumerate(d.get("preprocess", [])):
        (name, args), = step.items()
        try:
            inspect.signature(data.PREPROCESS[name]).bind(None, None, **(args or {}))
        except TypeError as exc:
            problems.append((("data", "preprocess", i), f"preprocessing step {i} ({name}): {exc}"))
    layers = []
    for i, entry in enumerate(spec["model"]["layers"]):
        (name, kwargs), = entry.items()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                layers.append(build.make_layer(name, kwargs))
        except Exception as exc:  # any constructor complaint is a case error
            hint = _hint(name, _layer_names(keras)) if not hasattr(keras.layers, name) else _legacy_hint(kwargs)
            problems.append((("model", "layers", i), f"layer {i} ({name}): {_first_line(exc)}{hint}"))
    compiled = _compile_problems(spec["compile"])  # names resolve without a model: checked whatever the layers
    problems += compiled
    if len(layers) == len(spec["model"]["layers"]):
        problems += _build_problems(spec, check_shapes=not compiled)
    return problems


def _compile_problems(c: dict) -> list[tuple[tuple, str]]:
    """The loss and the optimizer resolve, with a suggestion for a misspelt name."""
    import keras

    problems = []
    for key, getter in (("loss", "losses"), ("optimizer", "optimizers")):
        try:
            _get(getter, c[key])
        except Exception as exc:
            kwargs = next(iter(c[key].values()), None) if isinstance(c[key], dict) else None
            name = c[key] if isinstance(c[key], str) else next(iter(c[key]), "")
            hint = _hint(name, _names(getattr(keras, getter))) or _legacy_hint(kwargs)
            problems.append((("compile", key), f"{key}: {_first_line(exc)}{hint}"))
    return problems


def _build_problems(spec: dict, check_shapes: bool = True) -> list[tuple[tuple, str]]:
    import keras

    from harness.training import build

    problems = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = build.build_model(spec["model"], spec.get("semantics", "keras2"))
    except Exception as exc:
        return [(("model",), f"the model does not build: {_first_line(exc)}")]
    c = spec["compile"]
    for i, metric in enumerate(c.get("metrics", [])):
        try:
            build.resolve_metric(metric, c["loss"], model, spec.get("semantics", "keras2"))
        except Exception as exc:
            name = metric if isinstance(metric, str) else next(iter(metric), "")
            hint = _hint(name, _names(keras.metrics))
            problems.append((("compile", "metrics", i), f"metric {metric!r}: {_first_line(exc)}{hint}"))
    if check_shapes and not problems:
        problems += _shape_problems(spec, model)
    return problems


def _shape_problems(spec: dict, model) -> list[tuple[tuple, str]]:
    """Load the data and push two rows through the model and the loss, before any training."""
    if getattr(data.SOURCES.get(spec["data"]["source"]), "no_preload", False):
        return []
    try:
        d = data.load_data(spec["data"])
    except Exception as exc:
        return [(("data",), f"the data does not load: {_first_line(exc)}")]
    expected = tuple(spec["model"]["input_shape"])
    if tuple(d.x.shape[1:]) != expected:
        return [(("model", "input_shape"), f"the data's rows have shape {tuple(d.x.shape[1:])} but the model's "
                                           f"input_shape is {expected}")]
    from harness.training.build import compile_model

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile_model(model, spec["compile"], spec.get("semantics", "keras2"))
            pred = model(d.x[:2], training=False)
            model.compute_loss(x=d.x[:2], y=d.y[:2], y_pred=pred)  # the loss as fit() wraps it
    except Exception as exc:
        return [(("compile", "loss"), f"labels of shape {tuple(d.y.shape[1:])} do not fit the model's output "
                                      f"{tuple(pred.shape[1:]) if 'pred' in locals() else '?'} under this loss: "
                                      f"{_first_line(exc)}")]
    return []


def _get(module: str, value):
    import keras

    from harness.training.build import to_keras_objects

    return getattr(keras, module).get(to_keras_objects(value))


def _layer_names(keras) -> list[str]:
    return [n for n in dir(keras.layers) if n[:1].isupper()]


def _names(module) -> list[str]:
    """Public names a Keras module resolves: classes (``MeanSquaredError``) and functions
    (``mean_squared_error``)."""
    return [n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n, None))
            and n not in ("get", "serialize", "deserialize")]


def _hint(name: str, choices) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


# Keras 1/2 spellings that Keras 3 refuses, with what to write instead.
LEGACY_SPELLINGS = {"init": "kernel_initializer", "lr": "learning_rate", "nb_epoch": "epochs",
                    "output_dim": "units", "border_mode": "padding", "subsample": "strides",
                    "W_regularizer": "kernel_regularizer", "b_regularizer": "bias_regularizer"}


def _legacy_hint(kwargs: dict | None) -> str:
    old = [k for k in (kwargs or {}) if k in LEGACY_SPELLINGS]
    return "".join(f" ('{k}' is Keras 1/2; use '{LEGACY_SPELLINGS[k]}')" for k in old)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
