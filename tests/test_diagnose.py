"""``diagnose`` on hand-made traces: what is an error, what stays a warning, which cause comes first."""

import math

import numpy as np
import pytest

from detectors.base import replay
from detectors.diagnose import Diagnose
from detectors.toy_traces import make_trace
from harness.facts import learns, reference
from harness.trace import STAGES, STATS


def facts(loss="binary_crossentropy", act="sigmoid", units=1, ref=0.6931, x_reach=1.0, lr=0.001, opt="Adam",
          y=None, extra_layers=()):
    layers = [*extra_layers, {"name": "out", "class": "Dense", "activation": act, "units": units}]
    y = y or {"shape": [], "min": 0.0, "max": 1.0, "n_unique": 2, "integer": True, "binary": True, "one_hot": False,
              "multi_hot": False, "classes": 2}
    return {"version": 3, "loss": loss, "from_logits": False, "optimizer": {"class": opt, "learning_rate": lr},
            "layers": layers, "x": {"min": -x_reach, "max": x_reach}, "y": y,
            "reference": {"loss": ref, "binary_accuracy": 0.5, "categorical_accuracy": 0.5}}


def trace(epoch_losses, accuracy=None, f=None, val=None, steps=4, n_layers=1):
    """A trace whose epochs end with ``epoch_losses`` (batch losses interpolate towards them)."""
    batch = [loss for loss in epoch_losses for _ in range(steps)]
    acc = accuracy or [0.5] * len(epoch_losses)
    logs = [dict({"loss": loss, "accuracy": a}, **({"val_loss": val[i]} if val else {}))
            for i, (loss, a) in enumerate(zip(epoch_losses, acc))]
    t = make_trace(batch, steps, epoch_logs=logs, n_layers=n_layers, accuracy=[a for a in acc for _ in range(steps)])
    rng = np.random.default_rng(0)
    # Healthy-looking statistics: outputs that vary, weights of size 1 that move by 1e-3 per step.
    stats = t.arrays["stats"]
    stats[:, :, STAGES.index("output"), STATS.index("mean")] = rng.normal(size=stats.shape[:2])
    stats[:, :, STAGES.index("output"), STATS.index("std")] = 1.0
    stats[:, :, STAGES.index("weights"), STATS.index("std")] = 1.0
    stats[:, :, STAGES.index("update"), STATS.index("std")] = 1e-3
    stats[:, :, STAGES.index("output_grad"), STATS.index("std")] = 1e-2
    t.meta["layers"] = (f or {}).get("layers") or [{"name": f"l{i}", "class": "Dense"} for i in range(n_layers)]
    t.meta["facts"] = f if f is not None else facts()
    return t


def errors(findings):
    return [x for x in findings if x.severity == "error"]


def test_a_run_that_learns_has_no_error():
    found = replay(Diagnose(), trace([0.69, 0.5, 0.3, 0.2], accuracy=[0.5, 0.7, 0.85, 0.9]))
    assert errors(found) == []


def test_no_better_than_the_constant_predictor_is_an_error_at_the_end():
    t = trace([0.70, 0.695, 0.694, 0.693])
    found = errors(replay(Diagnose(), t))
    assert [f.code for f in found] == ["NOT_LEARNING"]
    assert found[0].step == max(s.index for s in t.steps())  # judged when the budget's evidence is in
    assert "0.6931" in found[0].message


def test_accuracy_above_chance_is_learning_even_with_a_high_loss():
    """A classifier can beat the majority class while its loss is above the constant predictor's: it learns (no
    NOT_LEARNING), but loses on its own objective (LOSS_ABOVE_CONSTANT, tests/test_learning_gaps.py)."""
    found = replay(Diagnose(), trace([3.0, 3.0, 3.0], accuracy=[0.6, 0.7, 0.75]))
    assert "NOT_LEARNING" not in [f.code for f in found]


def test_labels_all_alike_judge_against_the_first_loss():
    f = facts(ref=1e-7)  # the clipped cross-entropy of a perfect constant predictor
    assert errors(replay(Diagnose(), trace([0.6, 0.2, 0.1], accuracy=[1, 1, 1], f=f))) == []
    assert learns(0.1, 1e-7, 0.6) is True and learns(0.6, 1e-7, 0.6) is False


def test_nan_is_an_error_at_once():
    t = trace([0.7, 0.6, 0.5])
    t.arrays["values"][5, 0] = math.nan
    found = errors(replay(Diagnose(), t))
    assert found[0].code == "NUMERICAL" and found[0].batch == 1 and found[0].epoch == 1


def test_a_static_error_fires_before_training_and_explains_the_run():
    f = facts(act="softmax", units=1)
    found = errors(replay(Diagnose(), trace([8.0, 8.0, 8.0], f=f)))
    assert [(x.code, x.layer, x.fix_code, x.seconds, x.batch) for x in found] == [("OUT_LOSS", 0, "ACH", 0.0, None)]


def test_red_flags_of_a_run_that_learns_are_warnings():
    f = facts(x_reach=255.0, lr=0.5)  # raw pixels, a large Adam learning rate: often harmless
    found = replay(Diagnose(), trace([0.69, 0.4, 0.2], accuracy=[0.5, 0.8, 0.9], f=f))
    assert errors(found) == []
    assert {x.code for x in found} == {"INPUT_SCALE", "LR_RANGE"}
    assert all(x.severity == "warning" for x in found)


def test_red_flags_of_a_failing_run_are_its_causes_in_order():
    f = facts(x_reach=255.0, lr=0.5)
    found = errors(replay(Diagnose(), trace([0.7, 0.7, 0.7], f=f)))
    assert [(x.code, x.fix_code, x.diagnosis) for x in found] == [("NOT_LEARNING", "CPP", "CPP")]
    assert found[0].alternatives[0].startswith("HLR: lower the learning rate")


def test_large_updates_name_the_learning_rate():
    t = trace([0.7, 0.7, 0.7])
    t.arrays["stats"][:, :, STAGES.index("update"), STATS.index("std")] = 0.5  # half the weights per step
    found = errors(replay(Diagnose(), t))
    assert (found[0].code, found[0].fix_code, found[0].fix) == ("NOT_LEARNING", "HLR", "lower the learning rate")


def test_overfitting_needs_patience_a_falling_training_loss_and_a_gap():
    val = [0.55, 0.50, 0.58, 0.62]  # rising well above its best (a flat curve is a warning: test_learning_gaps)
    found = errors(replay(Diagnose(), trace([0.62, 0.49, 0.43, 0.37], accuracy=[0.7, 0.8, 0.85, 0.9], val=val)))
    assert [(x.code, x.fix_code) for x in found] == [("OVERFITTING", "REG")]
    # One epoch past the best is noise, not overfitting.
    found = errors(replay(Diagnose(), trace([0.62, 0.49, 0.43], accuracy=[0.7, 0.8, 0.85], val=[0.55, 0.53, 0.56])))
    assert found == []
    # A gap that is small against the no-learning loss is no failure.
    small = [0.05, 0.04, 0.045, 0.046]
    found = errors(replay(Diagnose(), trace([0.1, 0.05, 0.03, 0.02], accuracy=[0.9, 0.95, 0.97, 0.98], val=small)))
    assert found == []


def test_constant_output_is_an_error_after_the_window():
    t = trace([0.7] * 10, steps=4, n_layers=2)
    out = t.arrays["stats"][:, 1, STAGES.index("output")]
    out[:, STATS.index("mean")], out[:, STATS.index("std")] = 1.0, 0.0
    found = errors(replay(Diagnose(), t))
    assert found[0].code == "CONSTANT_OUTPUT" and found[0].layer == 1


def test_the_verdict_comes_when_training_stops_early():
    """A fit stopped before its budget (EarlyStopping, a timeout) is judged by finish()."""
    t = trace([0.7, 0.7, 0.7])
    t.meta["budget"]["epochs"] = 10
    assert [f.code for f in errors(replay(Diagnose(), t))] == ["NOT_LEARNING"]


def test_fixes_never_name_a_layer_without_an_activation():
    from detectors import rules

    layers = [{"class": "Dense", "activation": "relu"}, {"class": "Dropout", "activation": None}]
    assert rules.activation_layer(layers, 1) == 0
    assert rules.activation_layer([{"class": "Dropout", "activation": None}], 0) is None


@pytest.mark.parametrize("loss, y, expected", [
    ("binary_crossentropy", [0, 1, 1, 1], -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))),
    ("mean_squared_error", [1.0, 2.0, 3.0], 2 / 3),
    ("mean_absolute_error", [1.0, 2.0, 10.0], 3.0),
    ("sparse_categorical_crossentropy", [0, 1, 2, 2], -(0.5 * math.log(0.25) + 0.5 * math.log(0.5))),
])
def test_reference_loss_is_the_best_constant_predictors(loss, y, expected):
    assert reference(loss, np.array(y, float))["loss"] == pytest.approx(expected, rel=1e-6)


def test_reference_accuracy_is_the_majority_rate():
    y = np.eye(3)[[0, 0, 1, 2]]
    ref = reference("categorical_crossentropy", y)
    assert ref["categorical_accuracy"] == 0.5
    assert ref["loss"] == pytest.approx(-(0.5 * math.log(0.5) + 0.5 * math.log(0.25)))
    assert reference("binary_crossentropy", np.array([[0, 1], [0, 0], [0, 1], [1, 1]]))["binary_accuracy"] == 0.75


def test_numerical_names_the_first_layer_whose_output_overflows_and_only_that_layer():
    layers = [{"name": f"l{i}", "class": "Dense", "activation": a} for i, a in
              enumerate(["relu", "exponential", "softmax"])]
    t = trace([0.7, 0.6, 0.5], f=facts(extra_layers=layers[:2], act="softmax", units=3), n_layers=3)
    t.meta["layers"] = layers
    stats = t.arrays["stats"]
    nan, inf = STATS.index("nan"), STATS.index("inf")
    stats[5:, :, STAGES.index("update"), nan] = 1  # the Inf gradient spoils every layer's update at once
    stats[5:, 1, STAGES.index("output"), inf] = 1  # but the forward pass overflowed at the exponential
    first = errors(replay(Diagnose(), t))[0]
    assert (first.code, first.layer, first.fix_code) == ("NUMERICAL", 1, "ACH")
    assert "layer 1's output" in first.message and "layer 0" not in first.message


def test_a_trace_without_layer_statistics_is_judged_by_its_loss():
    from harness.trace import TraceRecorder

    rec = TraceRecorder([], ["loss", "learning_rate"])
    empty = np.zeros((0, len(STAGES), len(STATS)), np.float32)
    for i, loss in enumerate([0.7, 0.69, float("nan"), float("nan")]):
        rec.add_batch(i // 2, i % 2, 0.1 * i, empty, np.zeros((0, len(STAGES)), bool), [loss, 0.01], {"loss": loss})
        if i % 2:
            rec.add_epoch(i // 2, 0.1 * i, {"loss": loss})
    t = rec.finish({"budget": {"epochs": 2, "steps_per_epoch": 2}, "facts": facts()})
    assert [(f.code, f.layer) for f in errors(replay(Diagnose(), t))] == [("NUMERICAL", None)]


def test_gradients_vanishing_through_sigmoid_layers_blame_the_lowest_sigmoid():
    layers = [{"name": f"l{i}", "class": "Dense", "activation": "sigmoid"} for i in range(4)] + \
        [{"name": "out", "class": "Dense", "activation": "softmax", "units": 3}]
    t = trace([1.1] * 10, f=facts(extra_layers=layers[:4], act="softmax", units=3, ref=1.0986), n_layers=5)
    t.meta["layers"] = layers
    grad = t.arrays["stats"][:, :, STAGES.index("output_grad"), STATS.index("std")]
    grad[:] = 1e-2 * np.array([1e-5, 1e-4, 1e-3, 1e-2, 1.0])  # each sigmoid layer shrinks it tenfold
    out = t.arrays["stats"][:, :4, STAGES.index("output")]
    out[..., STATS.index("mean")], out[..., STATS.index("std")] = 0.5, 0.1  # sigmoid outputs in their middle
    first = errors(replay(Diagnose(), t))[0]
    assert (first.code, first.fix_code, first.layer) == ("NOT_LEARNING", "ACH", 0)
    assert "sigmoid" in first.fix


def test_a_run_too_short_to_move_its_weights_names_the_budget_not_the_optimizer():
    t = trace([0.70, 0.70, 0.70, 0.70])  # 16 steps of 1e-3 of the weights: they moved 1.6 % at most
    found = errors(replay(Diagnose(), t))
    assert [(x.code, x.fix_code) for x in found] == [("NOT_LEARNING", "HNE")]
    assert found[0].fix == ("train for more epochs (or raise the learning rate): in all 16 steps the weights could "
                            "move by at most 1.6% of their size (0.001 per step)")
    moved = trace([0.70, 0.70, 0.70, 0.70])
    moved.arrays["stats"][:, :, STAGES.index("update"), STATS.index("std")] = 0.02  # 32 % in all: moved enough
    assert [(x.code, x.fix_code) for x in errors(replay(Diagnose(), moved))] == [("NOT_LEARNING", "OCH")]
