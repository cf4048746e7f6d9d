"""The symptoms and training-problems detectors on hand-made traces (exact, no TensorFlow)."""

import math

import numpy as np
import pytest

from detectors import replay
from detectors.rules import saturated_fraction
from detectors.symptoms import Symptoms
from detectors.toy_traces import make_trace
from detectors.training_problems import TrainingProblems
from harness.trace import STAGES, STATS

LAYERS = [{"name": "hidden", "class": "Dense", "activation": "relu", "params": 40},
          {"name": "act", "class": "Activation", "activation": "sigmoid", "params": 0},
          {"name": "out", "class": "Dense", "activation": "softmax", "params": 30}]


def trace_with(fill=None, n_batches=60, steps_per_epoch=6, losses=None, accuracy=None, layers=LAYERS, facts=None):
    """A healthy 3-layer trace (losses fall, stats move) except where ``fill`` pins a statistic.

    fill: {(stage, stat, layer): value or callable(batch) -> value}
    """
    losses = losses if losses is not None else list(np.linspace(2, 0.5, n_batches))
    accuracy = accuracy if accuracy is not None else list(np.linspace(0.3, 0.9, n_batches))
    t = make_trace(losses, steps_per_epoch, n_layers=len(layers), accuracy=accuracy)
    rng = np.random.default_rng(0)
    stats = rng.uniform(0.1, 0.3, size=t.arrays["stats"].shape).astype(np.float32)
    stats[..., STATS.index("zero_frac")] = 0.2
    stats[..., STATS.index("nan")] = 0
    stats[..., STATS.index("inf")] = 0
    stats[:, :, STAGES.index("update"), STATS.index("mean")] = 0.001  # a sane update/weight ratio
    stats[:, :, STAGES.index("update"), STATS.index("std")] = 0.001
    for (stage, stat, layer), value in (fill or {}).items():
        for b in range(len(losses)):
            stats[b, layer, STAGES.index(stage), STATS.index(stat)] = value(b) if callable(value) else value
    t.arrays["stats"] = stats
    t.arrays["mask"][1, [1, 2, 4]] = False  # the Activation layer has no weights
    t.meta["layers"] = layers
    t.meta["facts"] = facts or {}
    return t


def codes(detector, trace):
    return [(f.code, f.layer, f.fix_code) for f in replay(detector, trace)]


def test_healthy_trace_is_quiet():
    assert replay(Symptoms(), trace_with()) == []
    assert replay(TrainingProblems(), trace_with()) == []


def test_saturation_bound_is_a_true_lower_bound():
    rng = np.random.default_rng(1)
    for scale in (0.5, 3.0, 8.0, 20.0):
        z = rng.normal(0, scale, 10_000)
        for name, fn in (("sigmoid", lambda v: 1 / (1 + np.exp(-v))), ("tanh", np.tanh)):
            out = fn(z)
            bound = saturated_fraction(name, out.mean(), out.std())
            assert bound <= np.mean(np.abs(z) >= 5) + 1e-9
    # A sound bound is a loose one: it sees saturation only when nearly every unit is saturated,
    # as with raw inputs in the thousands.
    big = 1 / (1 + np.exp(-np.clip(rng.normal(0, 1000, 10_000), -700, 700)))
    assert saturated_fraction("sigmoid", big.mean(), big.std()) > 0.5


def test_nan_in_a_layer_output_names_the_layer_and_stops_further_symptoms():
    t = trace_with({("output", "nan", 1): lambda b: 5 if b >= 9 else 0})
    found = replay(Symptoms(), t)
    assert [(f.code, f.layer, f.stage, f.batch) for f in found] == [("NUMERICAL", 1, "output", 3)]


def test_dead_relu_is_blamed_on_its_layer_with_an_activation_fix():
    t = trace_with({("output", "zero_frac", 0): 0.95})
    assert codes(Symptoms(), t)[0] == ("DEAD_RELU", 0, "ACH")


def test_saturated_hidden_sigmoid():
    t = trace_with({("output", "mean", 1): 0.5, ("output", "std", 1): 0.4999})
    assert codes(Symptoms(), t)[0] == ("SATURATED", 1, "ACH")


def test_raw_inputs_turn_the_fix_into_normalize_the_data():
    facts = {"x": {"min": 0.0, "max": 255.0}}
    t = trace_with({("output", "zero_frac", 0): 0.95}, facts=facts)
    assert codes(Symptoms(), t)[0] == ("DEAD_RELU", 0, "CPP")


def test_a_flat_loss_with_a_wrong_output_activation_suggests_that_activation():
    facts = {"layers": LAYERS[:2] + [dict(LAYERS[2], activation="linear")], "loss": "categorical_crossentropy"}
    layers = facts["layers"]
    t = trace_with(losses=[0.7] * 60, accuracy=[0.5] * 60, layers=layers, facts=facts)
    found = replay(Symptoms(), t)
    assert (found[0].code, found[0].fix_code, found[0].fix_layer) == ("LOSS_FLAT", "ACH", 2)
    assert "ACC_FLAT" in [f.code for f in found]


def test_huge_updates_suggest_the_learning_rate():
    t = trace_with({("update", "mean", 0): 5.0, ("output", "zero_frac", 0): 0.95})
    assert codes(Symptoms(), t)[0] == ("DEAD_RELU", 0, "HLR")


def test_labels_out_of_the_output_range_at_the_first_batch():
    layers = LAYERS[:2] + [dict(LAYERS[2], activation="sigmoid")]
    t = trace_with(layers=layers, facts={"y": {"min": 0.0, "max": 7.0}})
    f = replay(Symptoms(), t)[0]
    assert (f.code, f.layer, f.step) == ("OUT_OF_RANGE", 2, 0)


def test_exploding_gradients_on_nan_gradient_with_the_epoch():
    t = trace_with({("weight_grad", "inf", 2): lambda b: 1 if b >= 14 else 0})
    f = replay(TrainingProblems(), t)[0]
    assert (f.code, f.epoch, f.fix_code) == ("EXPLODING_GRADIENT", 2, "HLR")
    assert "epoch 3" in f.message


def test_vanishing_gradient_only_while_accuracy_is_poor():
    fill = {("weight_grad", "mean", 0): 1e-9, ("weight_grad", "std", 0): 1e-9}
    poor = trace_with(fill, accuracy=[0.2] * 60, losses=list(np.linspace(2, 1.5, 60)))
    assert codes(TrainingProblems(), poor)[0] == ("VANISHING_GRADIENT", None, "ACH")
    good = trace_with(fill, accuracy=list(np.linspace(0.8, 0.95, 60)))
    assert "VANISHING_GRADIENT" not in [c for c, *_ in codes(TrainingProblems(), good)]


def test_slow_convergence_and_oscillation():
    slow = trace_with(accuracy=[0.3] * 60, losses=[1.0] * 60)
    assert "SLOW_CONVERGENCE" in [c for c, *_ in codes(TrainingProblems(), slow)]
    zigzag = [0.5 if (b // 6) % 2 else 0.7 for b in range(60)]
    assert "OSCILLATING" in [c for c, *_ in codes(TrainingProblems(), trace_with(accuracy=zigzag))]


@pytest.mark.parametrize("detector", [Symptoms, TrainingProblems])
def test_nan_loss_without_layer_stats_is_reported(detector):
    losses = [1.0] * 10 + [math.nan] * 50
    found = replay(detector(), trace_with(losses=losses))
    assert found and found[0].batch == 4 and found[0].epoch == 1


def test_zero_gradients_everywhere_are_vanishing_not_exploding_and_not_a_learning_rate():
    zero = {(stage, stat, layer): 0.0 for stage in ("weight_grad", "update") for stat in ("mean", "std")
            for layer in (0, 2)}
    t = trace_with(zero, accuracy=[0.5] * 60, losses=[0.7] * 60)
    assert [c for c, *_ in codes(TrainingProblems(), t)][0] == "VANISHING_GRADIENT"
    found = replay(Symptoms(), t)
    assert found[0].code == "VANISHING" and found[0].fix_code != "HLR"


def test_advice_is_a_warning_and_a_gated_symptom_an_error_only_while_not_learning():
    facts = {"reference": {"loss": 1.0}}
    dead = trace_with({("output", "zero_frac", 0): 0.95}, facts=facts)  # the loss falls from 2 to 0.5
    assert [(f.code, f.severity) for f in replay(Symptoms(), dead)][:1] == [("DEAD_RELU", "warning")]
    flat = trace_with(losses=[1.2] * 60, accuracy=[0.3] * 60, facts=facts)
    found = {f.code: f.severity for f in replay(Symptoms(), flat)}
    assert found["LOSS_FLAT"] == "error"  # no better than a constant predictor's 1.0
    learning = trace_with(losses=[0.5] * 60, accuracy=[0.3] * 60, facts=facts)
    assert {f.code: f.severity for f in replay(Symptoms(), learning)}["LOSS_FLAT"] == "warning"


def test_a_program_that_cannot_be_right_gets_its_fix_from_training_problems():
    """Softmax over one unit was told to 'raise the learning rate' (slow convergence's tuning repair)."""
    facts = {"layers": [{"name": "out", "class": "Dense", "activation": "softmax", "units": 1}],
             "loss": "binary_crossentropy", "reference": {"loss": 0.69}}
    flat = trace_with(losses=[7.7] * 60, accuracy=[0.5] * 60, facts=facts)
    found = [f for f in replay(TrainingProblems(), flat) if f.code == "SLOW_CONVERGENCE"]
    assert found and found[0].fix_code == "ACH" and "sigmoid" in found[0].fix and found[0].severity == "error"


def test_sparse_class_indices_are_no_output_range():
    """Found on the zoo: a softmax over 10 classes with sparse labels 0..9 was called out of range."""
    layers = LAYERS[:2] + [dict(LAYERS[2], activation="softmax")]
    facts = {"y": {"min": 0.0, "max": 9.0}, "loss": "sparse_categorical_crossentropy"}
    assert "OUT_OF_RANGE" not in [f.code for f in replay(Symptoms(), trace_with(layers=layers, facts=facts))]
    logits = {"y": {"min": -1.0, "max": 1.0}, "loss": "mean_squared_error", "from_logits": True}
    assert "OUT_OF_RANGE" not in [f.code for f in replay(Symptoms(), trace_with(layers=layers, facts=logits))]
