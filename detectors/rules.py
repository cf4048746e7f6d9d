"""The rules several detectors share: what a program's static facts say, and DeepDiagnosis's thresholds.

``issues(facts)`` judges a program before it trains (the ``structure``
detector reports them; ``symptoms``, ``training-problems`` and ``diagnose``
take their fixes from them); the layer helpers say which layer is the output,
which layer has an activation to change, how a layer-trend message names a
layer's forward output; ``saturated_fraction`` bounds how saturated a
sigmoid/tanh layer is from its output's mean and spread.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from harness.facts import TOKEN_LAYERS

# A feature whose standard deviation or mean exceeds this is "far outside a normalised range":
# a z-scored or min-max feature has spread about 1 and mean within 1, while raw pixels (spread
# ~100), prices, counts or years are far beyond.
INPUT_LIMIT = 20.0
# Learning rates at or beyond these bounds rarely train with these optimizers
# (SGD-family tolerate larger steps than the adaptive ones, whose per-weight step
# is about the learning rate itself: 0.1 is the size of a Glorot-initialised weight).
LR_RANGE = {"SGD": (1e-5, 1.0), "Adagrad": (1e-5, 1.0), "Adadelta": (1e-5, 10.0), "Ftrl": (1e-5, 1.0)}
ADAPTIVE_LR_RANGE = (1e-6, 0.1)  # Adam, RMSprop, Nadam, Adamax, AdamW, ...
# Kernel initialiser variances outside [1e-5, 10] (DeepDiagnosis's "poor weight initialization").
INIT_VARIANCE = (1e-5, 10.0)

ACTIVATION_RANGE = {"sigmoid": (0.0, 1.0), "softmax": (0.0, 1.0), "tanh": (-1.0, 1.0), "relu": (0.0, None),
                    "softplus": (0.0, None), "relu6": (0.0, 6.0), "hard_sigmoid": (0.0, 1.0),
                    "exponential": (0.0, None)}
CROSS_ENTROPIES = {"categorical_crossentropy", "sparse_categorical_crossentropy", "binary_crossentropy"}
BINARY_LOSSES = {"binary_crossentropy", "binary_focal_crossentropy"}
REGRESSION_LOSSES = {"mean_squared_error", "mean_absolute_error", "mean_squared_logarithmic_error",
                     "mean_absolute_percentage_error", "huber", "log_cosh", "logcosh"}
# Weight layers whose output is an affine map of their input: two in a row with nothing non-linear between
# them compose into one. A recurrent layer applies its gates' non-linearities to its input's affine map, an
# attention layer a softmax: neither composes with what feeds it.
AFFINE_LAYERS = {"Dense", "EinsumDense", "Conv1D", "Conv2D", "Conv3D", "SeparableConv1D", "SeparableConv2D",
                 "DepthwiseConv1D", "DepthwiseConv2D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose",
                 "LocallyConnected1D", "LocallyConnected2D", "Embedding"}
# Layers that pass values through without adding a non-linearity.
TRANSPARENT = {"Dropout", "Flatten", "Reshape", "BatchNormalization", "GaussianNoise", "ActivityRegularization"}
CONSTANT_INITS = {"Zeros", "Ones", "Constant"}
PROBABILITIES = {"sigmoid", "softmax", "hard_sigmoid"}
# A learning rate arrives as float32 (0.1 reads back as 0.10000000149): compare with float32's rounding.
F32 = 1e-6


# The static checks' codes in words (structure and diagnose both report them).
RULE_CODES = {
    "OUT_LOSS": "output activation does not fit the loss", "OUT_RANGE": "output cannot take the labels' values",
    "LOSS_LABELS": "loss does not fit the labels", "INPUT_SCALE": "inputs not normalised",
    "LR_RANGE": "learning rate out of the usual range", "LINEAR": "layers with no activation between them",
    "INIT": "weight initialisation that cannot learn",
}


@dataclasses.dataclass(frozen=True)
class Issue:
    """One static problem: what, where, and the change that would remove it."""

    code: str
    message: str
    layer: int | None
    fix_code: str
    fix: str
    severity: str = "warning"


def output_layer(layers: list[dict]) -> int | None:
    """Index of the layer whose activation is the model's output activation."""
    for i in range(len(layers) - 1, -1, -1):
        if layers[i].get("activation") is not None:
            return i
    return None


def output_activation(layers: list[dict]) -> str:
    i = output_layer(layers)
    return (layers[i].get("activation") or "linear") if i is not None else "linear"


def activation_layer(layers: list[dict], k: int | None) -> int | None:
    """The layer at or before ``k`` that has an activation to change (a Dropout or Flatten has none)."""
    if k is None:
        return None
    for i in range(min(k, len(layers) - 1), -1, -1):
        if layers[i].get("activation") is not None:
            return i
    return None


def output_units(layers: list[dict]) -> int | None:
    units = [layer.get("units") for layer in layers if layer.get("units")]
    return units[-1] if units else None


# What each measured output kind (harness.outputs) is, as the activation the rules reason with.
KIND_ACTIVATION = {"one": "softmax", "simplex": "softmax", "unit": "sigmoid", "nonnegative": "relu", "signed": "linear"}


def effective_activation(configured: str | None, kind: str | None, owned: bool = True) -> str:
    """The output activation the rules judge, from the configured one and the measured kind (harness.outputs).

    A row summing to 1 (or a lone unit stuck at 1) is a softmax whatever the configuration says, and an output
    that is not one is no softmax. Otherwise a layer whose own output is the model's (``owned``) is what its
    configuration says: a linear Dense over ReLU features may well stay inside [0, 1] on a sample. Where the
    layer is a guess (a Keras op after it, a subclass), the measured kind names the function.
    """
    if kind in ("one", "simplex") or kind not in KIND_ACTIVATION:
        return KIND_ACTIVATION.get(kind) or configured or "linear"
    if configured == "softmax" or not owned or configured is None:
        return KIND_ACTIVATION[kind]
    return configured


def output_view(facts: dict) -> tuple[int | None, str, int | None]:
    """(layer, activation, units) of the model's output: measured when the facts carry one measured output
    (``outputs``, harness.outputs), else read from the layers' configuration."""
    layers = facts.get("layers") or []
    measured = facts.get("outputs") or []
    if len(measured) == 1 and measured[0].get("kind"):
        m = measured[0]
        k = m.get("layer")
        configured = layers[k].get("activation") if k is not None and k < len(layers) else None
        return k, effective_activation(configured, m["kind"], m.get("owned", True)), m.get("units")
    return output_layer(layers), output_activation(layers), output_units(layers)


def issues(facts: dict) -> list[Issue]:
    """Every static issue of a program, in a fixed order (output first: it decides most)."""
    if not facts or "layers" not in facts:
        return []
    found: list[Issue] = []
    for view in output_views(facts):
        for rule in (_output_vs_loss, _loss_vs_labels, _output_range):
            found.extend(_named(issue, view.get("head")) for issue in rule(view))
    for rule in (input_scale, _learning_rate, _initialisers, _linear_stacks):
        found.extend(rule(facts))
    return found


def _named(issue: Issue, head: str | None) -> Issue:
    """``issue`` with the output it concerns named first, for a model with several."""
    return dataclasses.replace(issue, message=f"output '{head}': {issue.message}") if head else issue


def output_views(facts: dict) -> list[dict]:
    """The facts as each output's rules see them: the whole facts for a single output; for a model with several
    (``heads``, each measured in ``outputs``), one view per output with its own loss, labels and measured output.
    A multi-output model without per-output facts has no view: its one loss name would mean nothing."""
    heads, measured = facts.get("heads"), facts.get("outputs") or []
    if not heads:
        return [facts]
    if len(measured) != len(heads):
        return []
    return [dict(facts, loss=head.get("loss"), from_logits=head.get("from_logits", False), y=head.get("y"),
                 outputs=[m], head=head["name"]) for head, m in zip(heads, measured)]


def _output_vs_loss(facts: dict) -> list[Issue]:
    loss = facts.get("loss") or ""
    k, act, units = output_view(facts)
    y = facts.get("y") or {}
    if act == "softmax" and units == 1:
        return [Issue("OUT_LOSS", "softmax over a single output unit always outputs 1", k, "ACH",
                      f"use sigmoid at layer {k} (or two softmax units)", "error")]
    if loss == "categorical_crossentropy" and units == 1:
        # Keras divides the output by its sum over the classes (softmaxes logits): one unit gives p / p = 1, so
        # -y log 1 = 0 for every row, whatever the weights; nothing is learned.
        return [Issue("OUT_LOSS", "categorical cross-entropy over a single output unit is 0 for every row (the "
                      "output is normalised over one class): no gradient reaches the weights", None, "LCH",
                      "use binary_crossentropy (or two softmax units)", "error")]
    if facts.get("from_logits"):
        if act in PROBABILITIES:
            return [Issue("OUT_LOSS", f"{loss} with from_logits=True on a {act} output: the activation is "
                          "applied twice", k, "ACH", f"use a linear output at layer {k}")]
        return []
    if loss in ("categorical_crossentropy", "sparse_categorical_crossentropy") and act != "softmax":
        # A sigmoid output is a probability per unit (Keras renormalises them): it trains, if oddly.
        return [Issue("OUT_LOSS", f"{loss} expects class probabilities (softmax) but the output is {act}", k,
                      "ACH", f"use softmax at layer {k}", "warning" if act in PROBABILITIES else "error")]
    if loss == "binary_crossentropy" and act != "sigmoid":
        if act == "softmax" and (y.get("classes") or 0) > 2:
            return [Issue("OUT_LOSS", "binary cross-entropy on a softmax over several classes", None, "LCH",
                          "use categorical_crossentropy")]
        if act != "softmax":
            return [Issue("OUT_LOSS", f"binary cross-entropy expects probabilities (sigmoid) but the output is "
                          f"{act}", k, "ACH", f"use sigmoid at layer {k}",
                          "warning" if act in PROBABILITIES else "error")]
    return []


def _loss_vs_labels(facts: dict) -> list[Issue]:
    loss, y = facts.get("loss") or "", facts.get("y")
    if not y:
        return []
    act = output_view(facts)[1]
    if loss in REGRESSION_LOSSES and (y["one_hot"] or (y["binary"] and act in ("sigmoid", "softmax"))):
        return [Issue("LOSS_LABELS", f"a regression loss ({loss}) on class labels", None, "LCH",
                      "use a cross-entropy loss")]
    signed = y.get("min") is not None and y["min"] < 0
    if loss == "mean_absolute_percentage_error" and signed and y["max"] > 0:
        # |y - y_hat| / |y|: targets of both signs pass near zero, where a row's error is divided by almost nothing.
        return [Issue("LOSS_LABELS", f"mean absolute percentage error divides by the target, but the targets span "
                      f"[{y['min']:.4g}, {y['max']:.4g}]: rows near zero swamp it", None, "LCH",
                      "use mean_absolute_error or mean_squared_error (a percentage needs targets of one sign)",
                      "error")]
    if loss == "mean_squared_logarithmic_error" and signed:
        # Keras takes log(max(y, eps) + 1): every target below zero reads as zero.
        return [Issue("LOSS_LABELS", f"mean squared logarithmic error reads targets below zero as zero, but they "
                      f"reach {y['min']:.4g}", None, "LCH", "use mean_squared_error (or shift the targets to be "
                      "non-negative)", "error")]
    if _two_classes_miscoded(loss, y):
        return [Issue("LOSS_LABELS", f"binary cross-entropy needs 0/1 targets, but the labels are the two values "
                      f"{y['min']:.4g} and {y['max']:.4g}: two classes coded with other numbers", None, "CPP",
                      f"map the labels to 0 and 1 (e.g. y == {y['max']:.4g})", "error")]
    if loss == "categorical_crossentropy" and not y["one_hot"] and y["integer"] and (y.get("classes") or 0) > 2:
        return [Issue("LOSS_LABELS", "categorical cross-entropy on integer class labels", None, "CPP",
                      "one-hot encode the labels (or use sparse_categorical_crossentropy)", "error")]
    if loss == "sparse_categorical_crossentropy" and y.get("min") is not None:
        if y["one_hot"] and y["shape"] and y["shape"][-1] > 1:
            return [Issue("LOSS_LABELS", "sparse categorical cross-entropy on one-hot labels", None, "LCH",
                          "use categorical_crossentropy (or integer labels)", "error")]
        if not y["integer"] or y["min"] < 0:
            return [Issue("LOSS_LABELS", f"sparse categorical cross-entropy needs class indices, but the labels "
                          f"span [{y['min']:.4g}, {y['max']:.4g}] and are not whole numbers", None, "CPP",
                          "give the labels as integer class indices (undo their scaling)", "error")]
    return []


def _two_classes_miscoded(loss: str | None, y: dict) -> bool:
    """Two label values, not both in [0, 1], under a binary cross-entropy: the task is binary, its classes coded
    with other numbers (1 and 2, 1 and 5, -1 and 1). The loss reads a target as a probability, so no output
    activation can fit them; more than two values are classes the one output cannot hold (OUT_RANGE). One
    label column only: several columns or masks coded so stay OUT_RANGE."""
    single = len(y.get("shape") or []) == 0 or y["shape"] == [1]
    outside = y.get("min") is not None and (y["min"] < 0 or y["max"] > 1)  # 0.1 and 0.9 are smoothed 0/1
    return loss in BINARY_LOSSES and single and y.get("n_unique") == 2 and outside


def _output_range(facts: dict) -> list[Issue]:
    y = facts.get("y")
    if not y or y.get("min") is None or facts.get("from_logits"):
        return []
    if facts.get("loss") == "sparse_categorical_crossentropy" or _two_classes_miscoded(facts.get("loss"), y):
        return []  # the labels are class indices, not output values (or their coding is the fault: one cause)
    k, act, _ = output_view(facts)
    lo, hi = ACTIVATION_RANGE.get(act, (None, None))
    below = lo is not None and y["min"] < lo - 1e-6
    above = hi is not None and y["max"] > hi + 1e-6
    if below or above:
        return [Issue("OUT_RANGE", f"labels span [{y['min']:.4g}, {y['max']:.4g}] but {act} outputs "
                      f"[{lo:g}, {'inf' if hi is None else f'{hi:g}'}]", k, "ACH",
                      f"use an output activation covering the labels at layer {k} (linear for regression)", "error")]
    if act == "softmax" and y.get("multi_hot"):
        return [Issue("OUT_RANGE", "softmax outputs sum to 1, but a label row has several 1s (independent "
                      "labels)", k, "ACH", f"use sigmoid at layer {k} for independent labels", "error")]
    return []


def input_scale(facts: dict) -> list[Issue]:
    """Features whose spread or offset is far beyond a normalised range (raw pixels, prices, years).

    Judged per feature, not by the extreme value: a standardised feature that is
    almost always zero has rare z-scores of 40, and is normalised all the same. Not judged when the first
    layer reads ids (an Embedding or a lookup: an id is no quantity) or scales the inputs itself (an adapted
    Normalization, a Rescaling).
    """
    x = facts.get("x")
    if not x or x.get("min") is None:
        return []
    first = (facts.get("layers") or [{}])[0]
    if first.get("class") in TOKEN_LAYERS or first.get("scales_inputs"):
        return []
    spread, offset = x.get("feature_std_max"), x.get("feature_mean_absmax")
    if spread is None or offset is None:  # facts of an older version: the extremes are all there is
        spread = offset = max(abs(x["min"]), abs(x["max"]))
    if max(spread, offset) > INPUT_LIMIT:
        return [Issue("INPUT_SCALE", f"inputs are not normalised: a feature's spread reaches {spread:.4g} and its "
                      f"mean {offset:.4g} (range [{x['min']:.4g}, {x['max']:.4g}])", None, "CPP",
                      "normalize the inputs (scale or standardize)")]
    return []


def _learning_rate(facts: dict) -> list[Issue]:
    opt = facts.get("optimizer") or {}
    lr = opt.get("learning_rate")
    if lr is None:
        return []
    lo, hi = LR_RANGE.get(opt.get("class"), ADAPTIVE_LR_RANGE)
    if lr >= hi * (1 - F32):
        return [Issue("LR_RANGE", f"learning rate {lr:.3g} is large for {opt.get('class')} (it usually trains below "
                      f"{hi:g})", None, "HLR", "lower the learning rate")]
    if lr <= lo * (1 + F32):
        return [Issue("LR_RANGE", f"learning rate {lr:.3g} is tiny for {opt.get('class')} (it usually trains above "
                      f"{lo:g})", None, "HLR", "raise the learning rate")]
    return []


def _initialisers(facts: dict) -> list[Issue]:
    out = []
    for i, layer in enumerate(facts["layers"]):
        init = layer.get("kernel_initializer") or {}
        name, config = init.get("class"), init.get("config") or {}
        variance = _init_variance(name, config)
        if name in CONSTANT_INITS:
            out.append(Issue("INIT", f"kernel initialised with {name}: every unit starts identical", i, "WCI",
                             f"use a random initialiser (glorot_uniform, he_normal) at layer {i}"))
        elif variance is not None and not INIT_VARIANCE[0] <= variance <= INIT_VARIANCE[1]:
            out.append(Issue("INIT", f"kernel initialiser {name} has variance {variance:.3g}", i, "WCI",
                             f"use a scaled initialiser (glorot_uniform, he_normal) at layer {i}"))
    return out


def _init_variance(name: str | None, config: dict) -> float | None:
    if name in ("RandomNormal", "TruncatedNormal") and "stddev" in config:
        return float(config["stddev"]) ** 2
    if name == "RandomUniform" and "minval" in config and "maxval" in config:
        return (float(config["maxval"]) - float(config["minval"])) ** 2 / 12
    return None


def _linear_stacks(facts: dict) -> list[Issue]:
    """A weight layer with a linear output feeding another weight layer through transparent layers only."""
    if facts.get("sequential") is False:
        return []  # branches of a functional model are listed in order, but do not feed each other
    if facts.get("graph") is False:
        return []  # a subclass's tracked layers are in no data-flow order
    layers, out, previous = facts["layers"], [], None
    for i, layer in enumerate(layers):
        cls, act = layer.get("class"), layer.get("activation")
        if cls in AFFINE_LAYERS:
            if previous is not None:
                out.append(Issue("LINEAR", f"no activation between layer {previous} and layer {i}: together they "
                                 "are one linear map", previous, "AAL", f"add an activation (e.g. relu) after "
                                 f"layer {previous}"))
            previous = i if act in (None, "linear") else None
        elif cls not in TRANSPARENT and not (cls == "Activation" and act == "linear"):
            previous = None
    return out


def layer_class(layers: list[dict], k: int) -> str:
    """The Keras class of layer ``k``; "?" for a layer the run did not describe."""
    return layers[k].get("class", "?") if k < len(layers) else "?"


def forward_code(layers: list[dict], k: int) -> str:
    """DeepLocalize's code for a bad forward output: EAA after a separate Activation layer, EBA otherwise."""
    return "EAA" if layer_class(layers, k) == "Activation" else "EBA"


# -- DeepDiagnosis's layer thresholds -------------------------------------------------------------

SATURATED = 0.5  # more than half the inputs of a sigmoid/tanh beyond +-5
DEAD = 0.7  # at least 70 % of a ReLU layer's outputs are zero

_E = 1.0 / (1.0 + math.exp(5.0))  # sigmoid(-5)
_T = math.tanh(5.0)


def saturated_fraction(activation: str, mean, std):
    """A lower bound on the fraction of saturated outputs of a sigmoid or tanh, from mean and std.

    For a sigmoid output in (0, 1), E[x(1-x)] = mean(1-mean) - var, and an output
    outside the tails has x(1-x) >= e(1-e) with e = sigmoid(-5); Markov's
    inequality turns that into a lower bound on the saturated share (likewise
    for tanh with 1 - x^2). Sound, so it only sees heavy saturation.
    """
    mean, var = np.asarray(mean, np.float64), np.asarray(std, np.float64) ** 2
    if activation == "sigmoid":
        inner = mean - var - mean**2  # E[x(1-x)]
        return np.clip(1.0 - inner / (_E * (1 - _E)), 0.0, 1.0)
    if activation == "tanh":
        inner = 1.0 - var - mean**2  # E[1 - x^2]
        return np.clip(1.0 - inner / (1 - _T**2), 0.0, 1.0)
    return np.zeros_like(mean)
