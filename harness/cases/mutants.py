"""Mutation operators: a healthy program's spec in, buggy specs out, each with its ground truth by construction.

In the spirit of DeepCrime (Humbatova et al., ISSTA 2021), whose operators come
from real faults in deep-learning programs. An operator looks at a spec and
returns the mutations it applies to it: forward edits (the bug), the fault code
and layer a detector should name, and a label. The case file it becomes is an
ordinary case: the mutant is the buggy spec, and its patch is the inverse edit,
so the patched variant is the healthy program itself (the same unit, trained
once for all its mutants).
"""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Callable

from harness.cases.patch import apply_patch


@dataclasses.dataclass(frozen=True)
class Mutation:
    operator: str
    param: str  # what this instance does, in a word or number: part of the mutant's id
    edits: tuple  # forward edits: healthy spec -> mutant
    fault: dict  # {code, layer?}: the ground truth
    description: str


OPERATORS: dict[str, Callable[[dict], list[Mutation]]] = {}


def operator(name: str):
    def register(fn):
        OPERATORS[name] = fn
        return fn

    return register


# -- what an operator needs to know about a spec ------------------------------------------------

WEIGHTED = ("Dense", "Conv1D", "Conv2D", "SimpleRNN", "LSTM", "GRU", "Embedding")


def layer_items(spec: dict) -> list[tuple[int, str, dict]]:
    return [(i, *next(iter(layer.items()))) for i, layer in enumerate(spec["model"]["layers"])]


def with_activation(spec: dict) -> list[tuple[int, str, str]]:
    """(index, class, activation) of the layers whose activation is set."""
    return [(i, cls, kw["activation"]) for i, cls, kw in layer_items(spec) if kw.get("activation")]


def output_layer(spec: dict) -> int:
    return len(spec["model"]["layers"]) - 1


def hidden_weighted(spec: dict) -> list[int]:
    return [i for i, cls, _ in layer_items(spec) if cls in WEIGHTED and i != output_layer(spec)]


def loss_name(spec: dict) -> str:
    loss = spec["compile"]["loss"]
    return loss if isinstance(loss, str) else next(iter(loss))


def optimizer_of(spec: dict) -> tuple[str, dict]:
    opt = spec["compile"]["optimizer"]
    return (opt, {}) if isinstance(opt, str) else next(iter(opt.items()))


def is_classification(spec: dict) -> bool:
    return "crossentropy" in loss_name(spec).lower() or "hinge" in loss_name(spec).lower()


def _path(i: int, cls: str, key: str) -> str:
    return f"model.layers.{i}.{cls}.{key}"


# -- the operators ------------------------------------------------------------------------------


@operator("hidden-activation")
def hidden_activation(spec):
    """A hidden layer's activation changed (relu/tanh -> sigmoid, or exponential)."""
    out = []
    for i, cls, act in with_activation(spec):
        if i == output_layer(spec):
            continue
        for new in ("sigmoid", "exponential"):
            if new != act:
                out.append(Mutation("hidden-activation", f"l{i}-{new}", ({"set": _path(i, cls, "activation"),
                                    "to": new},), {"code": "ACH", "layer": i}, f"layer {i}: {act} -> {new}"))
    return out


@operator("remove-activation")
def remove_activation(spec):
    """A hidden layer's activation removed (linear): two layers collapse into one linear map."""
    return [Mutation("remove-activation", f"l{i}", ({"set": _path(i, cls, "activation"), "to": "linear"},),
                     {"code": "AAL", "layer": i}, f"layer {i}: {act} -> linear")
            for i, cls, act in with_activation(spec) if i != output_layer(spec) and act != "linear"]


OUTPUT_SWAPS = {"softmax": ("relu", "linear"), "sigmoid": ("relu", "softmax"), "linear": ("relu", "sigmoid")}


@operator("output-activation")
def output_activation(spec):
    """The output layer's activation changed (softmax -> relu, sigmoid -> softmax on one unit, ...)."""
    i = output_layer(spec)
    items = {k: (cls, kw) for k, cls, kw in layer_items(spec)}
    cls, kw = items[i]
    act = kw.get("activation") or "linear"
    if "activation" not in kw and cls not in ("Dense", "Activation"):
        return []
    return [Mutation("output-activation", new, ({"set": _path(i, cls, "activation"), "to": new},),
                     {"code": "ACH", "layer": i}, f"output layer {i}: {act} -> {new}")
            for new in OUTPUT_SWAPS.get(act, ())]


# Sparse class indices have no swap: every other loss needs targets of the output's shape, so the program would
# not run at all (a crash, no training bug).
LOSS_SWAPS = {"categorical_crossentropy": ("mean_squared_error", "hinge"),
              "binary_crossentropy": ("mean_squared_error", "hinge"),
              "mean_squared_error": ("mean_absolute_percentage_error", "binary_crossentropy"),
              "mse": ("mean_absolute_percentage_error", "binary_crossentropy"),
              "mean_absolute_error": ("mean_absolute_percentage_error", "binary_crossentropy"),
              "mae": ("mean_absolute_percentage_error", "binary_crossentropy"),
              "huber": ("mean_absolute_percentage_error", "binary_crossentropy")}


@operator("loss")
def change_loss(spec):
    """The loss function changed to one that does not fit the task."""
    return [Mutation("loss", new.replace("_", ""), ({"set": "compile.loss", "to": new},), {"code": "LCH"},
                     f"loss: {loss_name(spec)} -> {new}") for new in LOSS_SWAPS.get(loss_name(spec), ())]


@operator("optimizer")
def change_optimizer(spec):
    """The optimizer changed, keeping its learning rate (SGD at Adam's rate barely moves; Adadelta at 1e-3 neither)."""
    name, kwargs = optimizer_of(spec)
    lr = kwargs.get("learning_rate", 0.001 if name != "SGD" else 0.01)
    out = []
    for new in ("SGD", "Adadelta"):
        if new != name:
            edit = {"set": "compile.optimizer", "to": {new: {"learning_rate": lr}}}
            out.append(Mutation("optimizer", new.lower(), (edit,), {"code": "OCH"},
                                f"optimizer: {name} -> {new} (learning rate {lr})"))
    return out


@operator("learning-rate")
def learning_rate(spec):
    """The learning rate multiplied (x100, x1000: divergence) or divided (/1000: no learning)."""
    name, kwargs = optimizer_of(spec)
    lr = kwargs.get("learning_rate", 0.01 if name == "SGD" else 0.001)
    if not isinstance(lr, (int, float)):
        return []
    return [Mutation("learning-rate", tag,
                     ({"set": "compile.optimizer", "to": {name: dict(kwargs, learning_rate=lr * f)}},),
                     {"code": "HLR"}, f"learning rate {lr:g} -> {lr * f:g}")
            for tag, f in (("x100", 100.0), ("x1000", 1000.0), ("div1000", 0.001))]


@operator("weights-init")
def weights_init(spec):
    """A layer's kernel initialised to zeros or ones (every unit the same: symmetry is never broken)."""
    out = []
    for i, cls, _ in layer_items(spec):
        if cls in ("Dense", "Conv1D", "Conv2D"):
            for init in ("zeros", "ones"):
                out.append(Mutation("weights-init", f"l{i}-{init}", ({"set": _path(i, cls, "kernel_initializer"),
                                    "to": init},), {"code": "WCI", "layer": i}, f"layer {i}: kernel {init}"))
    return out[:4]  # the first two weighted layers: enough to see whether position matters


@operator("regulariser")
def regulariser(spec):
    """A heavy L2 regulariser (factor 1.0) put on a weighted layer: weight decay swamps the data."""
    return [Mutation("regulariser", f"l{i}", ({"set": _path(i, cls, "kernel_regularizer"),
                                              "to": {"L2": {"l2": 1.0}}},), {"code": "RRG", "layer": i},
                     f"layer {i}: kernel_regularizer L2(1.0)")
            for i, cls, _ in layer_items(spec) if cls in ("Dense", "Conv1D", "Conv2D")][:2]


@operator("remove-dropout")
def remove_dropout(spec):
    """A Dropout layer removed (the program may then overfit)."""
    return [Mutation("remove-dropout", f"l{i}", ({"delete": f"model.layers.{i}"},), {"code": "REG", "layer": i},
                     f"Dropout at layer {i} removed") for i, cls, _ in layer_items(spec) if cls == "Dropout"]


@operator("remove-regulariser")
def remove_regulariser(spec):
    """A layer's kernel regulariser removed (the program may then overfit: visible on held-out data only)."""
    return [Mutation("remove-regulariser", f"l{i}", ({"delete": _path(i, cls, "kernel_regularizer")},),
                     {"code": "REG", "layer": i}, f"layer {i}: kernel_regularizer removed")
            for i, cls, kw in layer_items(spec) if kw.get("kernel_regularizer")][:1]


@operator("overtrain")
def overtrain(spec):
    """A fifth of the training rows, trained five times as long: the network memorises what is left."""
    n = spec["fit"]["epochs"]
    steps = spec["data"].get("preprocess") or []
    edits = (_append_step(steps, {"subsample": {"fraction": 0.2}}), {"set": "fit.epochs", "to": n * 5})
    return [Mutation("overtrain", "20pc-x5", edits, {"code": "HNE"},
                     f"80 % of the rows deleted and epochs {n} -> {n * 5}")]


@operator("add-dropout")
def add_dropout(spec):
    """A Dropout(0.95) inserted after the first hidden layer: almost nothing reaches the next layer."""
    hidden = hidden_weighted(spec)
    if not hidden:
        return []
    i = hidden[0] + 1
    edit = {"insert": f"model.layers.{i}", "value": {"Dropout": {"rate": 0.95}}}
    return [Mutation("add-dropout", f"l{i}", (edit,), {"code": "LRM", "layer": i},
                     f"Dropout(0.95) inserted at layer {i}")]


@operator("batch-size")
def batch_size(spec):
    """The batch size raised to 1024 (a handful of updates per run)."""
    bs = spec["fit"]["batch_size"]
    return [Mutation("batch-size", "1024", ({"set": "fit.batch_size", "to": 1024},), {"code": "HBS"},
                     f"batch size {bs} -> 1024")] if bs < 1024 else []


@operator("epochs")
def epochs(spec):
    """Training cut to one epoch."""
    n = spec["fit"]["epochs"]
    return [Mutation("epochs", "1", ({"set": "fit.epochs", "to": 1},), {"code": "HNE"}, f"epochs {n} -> 1")] \
        if n > 1 else []


@operator("unscale-inputs")
def unscale_inputs(spec):
    """The inputs' scaling removed, or inputs multiplied by 1000 when there was none."""
    if layer_items(spec)[0][1] == "Embedding":
        return []  # token ids are no scale: multiplied, they leave the vocabulary and the program crashes
    steps = spec["data"].get("preprocess") or []
    scaling = [k for k, s in enumerate(steps) if next(iter(s)) in ("scale", "standardize", "minmax")
               and next(iter(s.values())).get("on", "x") == "x"]
    if scaling:
        k = scaling[0]
        return [Mutation("unscale-inputs", "removed", ({"delete": f"data.preprocess.{k}"},), {"code": "CPP"},
                         f"input scaling step {k} ({next(iter(steps[k]))}) removed")]
    return [Mutation("unscale-inputs", "x1000", (_append_step(steps, {"scale": {"by": 1000.0}}),), {"code": "CPP"},
                     "inputs multiplied by 1000")]


def _append_step(steps: list, step: dict) -> dict:
    """The edit that adds a preprocessing step after the existing ones."""
    return {"insert": f"data.preprocess.{len(steps)}", "value": step} if steps \
        else {"set": "data.preprocess", "to": [step]}


@operator("shuffle-labels")
def shuffle_labels(spec):
    """A share of the labels shuffled among the rows (label noise): 50 % or all of them."""
    steps = spec["data"].get("preprocess") or []
    out = []
    for tag, fraction in (("half", 0.5), ("all", 1.0)):
        edit = _append_step(steps, {"shuffle_labels": {"fraction": fraction}})
        out.append(Mutation("shuffle-labels", tag, (edit,), {"code": "CPP"}, f"{fraction:.0%} of labels shuffled"))
    return out


@operator("delete-data")
def delete_data(spec):
    """All but 5 % of the training rows deleted."""
    edit = _append_step(spec["data"].get("preprocess") or [], {"subsample": {"fraction": 0.05}})
    return [Mutation("delete-data", "95pc", (edit,), {"code": "CPP"}, "95 % of the rows deleted")]


@operator("remove-layer")
def remove_layer(spec):
    """A hidden Dense layer removed (where the layers around it still fit)."""
    items = layer_items(spec)
    out = []
    for i, cls, _ in items:
        after_dense = i > 0 and items[i - 1][1] in ("Dense", "Dropout", "Flatten", "BatchNormalization")
        if cls == "Dense" and i != output_layer(spec) and after_dense:
            out.append(Mutation("remove-layer", f"l{i}", ({"delete": f"model.layers.{i}"},),
                                {"code": "LAD", "layer": i}, f"hidden Dense layer {i} removed"))
    return out[:1]


@operator("layer-size")
def layer_size(spec):
    """A hidden layer shrunk to one unit (or filter): a bottleneck nothing passes."""
    out = []
    for i in hidden_weighted(spec):
        cls, kw = next(iter(spec["model"]["layers"][i].items()))
        key = "units" if "units" in kw else "filters" if "filters" in kw else None
        if key and kw[key] > 1:
            out.append(Mutation("layer-size", f"l{i}", ({"set": _path(i, cls, key), "to": 1},),
                                {"code": "LSZ", "layer": i}, f"layer {i}: {kw[key]} {key} -> 1"))
    return out[:1]


# -- from mutation to case file --------------------------------------------------------------------

MAE_NAMES = ("mae", "mean_absolute_error")


def metric_for(spec: dict) -> tuple[str, bool]:
    """(log name, higher is better) of the metric a program and its mutants are compared by: accuracy for a
    classifier, else the mean absolute error when compiled, else the loss (then no mutant may change the loss)."""
    if is_classification(spec):
        return "accuracy", True
    metrics = [m if isinstance(m, str) else next(iter(m)) for m in spec["compile"].get("metrics", [])]
    named = next((m for m in metrics if m.lower() in MAE_NAMES), None)
    return (named, False) if named else ("loss", False)


def applicable(spec: dict, operators=None) -> list[Mutation]:
    """The mutations that can be judged on ``spec``: a changed loss is only comparable by a metric it does not
    define (accuracy, mae)."""
    out = mutations(spec, operators)
    if metric_for(spec)[0] == "loss":
        out = [m for m in out if m.operator != "loss"]
    return out


def at_most(chosen: list[Mutation], cap: int, turn: int, applies_to: dict[str, int], programs: int) -> list[Mutation]:
    """At most ``cap`` of a program's mutants: operators that apply to few programs (a third or fewer: dropout and
    regulariser removal, say) always, the common ones in a window that turns with the program, so that over the
    zoo every operator keeps a share and the suite's cost grows with the number of programs, not operators."""
    if len(chosen) <= cap:
        return chosen
    rare = [m for m in chosen if applies_to.get(m.operator, 0) * 3 <= programs]
    common = sorted((m for m in chosen if m not in rare), key=lambda m: m.operator)
    room = max(0, cap - len(rare))
    start = (turn * room) % len(common) if common else 0
    return rare + (common[start:] + common[:start])[:room]


def one_per_operator(found: list[Mutation], turn: int) -> list[Mutation]:
    """One instance of each operator, the ``turn``-th (cyclically): over the zoo's programs, every instance of
    an operator is used while each program gets one mutant per operator (the suite stays trainable)."""
    by_op: dict[str, list[Mutation]] = {}
    for m in found:
        by_op.setdefault(m.operator, []).append(m)
    return [ms[turn % len(ms)] for ms in by_op.values()]


def mutant_id(base_id: str, mutation: Mutation) -> str:
    return f"mut-{base_id.removeprefix('zoo-')}--{mutation.operator}-{mutation.param}".lower()


def mutant_case(base, mutation: Mutation) -> dict:
    """The case file (as data) of ``mutation`` applied to the healthy program ``base`` (a LoadedCase)."""
    from harness.cases import schema

    spec = base.spec("patched").model_dump(mode="json")
    mutant = apply_patch(spec, list(mutation.edits))
    if apply_patch(mutant, inverse(spec, mutation.edits)) != spec:
        raise ValueError(f"{mutation.operator} {mutation.param}: its inverse does not restore {base.id}")
    c = base.case
    return {
        "id": mutant_id(base.id, mutation), "title": f"{c.title}: {mutation.description}",
        "source": {"kind": "synthetic", "ref": base.id, "title": f"mutant of {base.id} ({mutation.operator})"},
        "task": c.task, "status": "questionable",
        "status_reason": "a generated mutant not judged yet (bugbench kill decides)",
        **{k: mutant[k] for k in schema.SPEC_KEYS if k in mutant},
        "patch": inverse(spec, mutation.edits),
        "truth": {"faults": [dict(mutation.fault, note=mutation.description)]},
        "symptom": {"kind": "none"},
        "generated": {"operator": mutation.operator, "param": mutation.param, "base": base.id,
                      "base_file": os.path.basename(base.path), "metric": metric_for(spec)[0], "kill": None},
    }


def mutations(spec: dict, operators=None) -> list[Mutation]:
    """Every mutation the operators (default: all) apply to ``spec``."""
    return [m for name in (operators or OPERATORS) for m in OPERATORS[name](spec)]


_MISSING = object()


def inverse(spec: dict, edits) -> list[dict]:
    """The edits that turn ``apply_patch(spec, edits)`` back into ``spec`` (the mutant's patch)."""
    current, undo = copy.deepcopy(spec), []
    for edit in edits:
        undo.append(_undo(current, edit))
        current = apply_patch(current, [edit])
    return list(reversed(undo))


def _undo(spec: dict, edit: dict) -> dict:
    if edit.get("insert") is not None:
        return {"delete": edit["insert"]}
    path = edit.get("set") or edit.get("delete")
    before = _get(spec, path)
    if edit.get("set") is not None:
        return {"delete": path} if before is _MISSING else {"set": path, "to": copy.deepcopy(before)}
    parent_is_list = isinstance(_get(spec, path.rsplit(".", 1)[0]), list)
    return {"insert": path, "value": before} if parent_is_list else {"set": path, "to": before}


def _get(spec, path: str):
    node = spec
    for part in path.split("."):
        key = int(part) if part.lstrip("-").isdigit() else part
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return _MISSING
    return node
