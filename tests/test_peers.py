"""The peers as their authors released them: each published threshold pinned just above and just below.

Hand-made traces (exact values, no TensorFlow), then one tiny live fit per peer.
"""

import math

import numpy as np
import pytest

from detectors import autotrainer as at
from detectors import deepdiagnosis as dd
from detectors import registry, replay
from detectors import umlaut as um
from detectors.autotrainer import AutoTrainer
from detectors.deepdiagnosis import DeepDiagnosis
from detectors.toy_traces import make_trace
from detectors.umlaut import Umlaut
from harness.trace import STAGES, STATS


def trace(loss, acc=None, val_loss=None, val_acc=None, layers=None, facts=None, stats=None, lr=0.01):
    """One batch per epoch; epoch logs as given; ``stats[(layer, stage, stat)]`` = a value or one per epoch."""
    n = len(loss)
    acc = acc if acc is not None else [0.5] * n
    logs = []
    for i in range(n):
        row = {"loss": loss[i], "accuracy": acc[i]}
        if val_loss is not None:
            row["val_loss"] = val_loss[i]
        if val_acc is not None:
            row["val_accuracy"] = val_acc[i]
        logs.append(row)
    layers = layers or [{"name": "dense", "class": "Dense", "activation": "relu"},
                        {"name": "dense_1", "class": "Dense", "activation": "sigmoid"}]
    t = make_trace(list(loss), steps_per_epoch=1, epoch_logs=logs, n_layers=len(layers), accuracy=list(acc))
    t.meta["layers"] = layers
    t.meta["facts"] = dict(facts or {}, layers=layers)
    t.arrays["values"][:, 2] = lr
    s = t.arrays["stats"]
    # Healthy defaults: outputs, kernels and gradients that are not zero and move a little every epoch.
    drift = np.linspace(1.0, 1.1, n, dtype=np.float32)[:, None]
    for stage, value in (("output", 0.5), ("weights", 0.1), ("weight_grad", 0.01), ("output_grad", 0.01)):
        s[:, :, STAGES.index(stage), STATS.index("mean")] = value * drift
        s[:, :, STAGES.index(stage), STATS.index("std")] = value * drift
        s[:, :, STAGES.index(stage), STATS.index("max")] = 2 * value * drift
    for (layer, stage, stat), value in (stats or {}).items():
        s[:, layer, STAGES.index(stage), STATS.index(stat)] = value
    return t


def codes(detector, t):
    return [(f.code, f.epoch, f.fix_code) for f in replay(detector, t)]


def flat(n, value=0.5):
    return [value] * n


def grads(first, last):
    """AUTOTRAINER's gradient norms: the two layers' weight-gradient RMS (std 0), kernel size 1."""
    return {(0, "weight_grad", "mean"): first, (0, "weight_grad", "std"): 0.0,
            (1, "weight_grad", "mean"): last, (1, "weight_grad", "std"): 0.0}


# -- AUTOTRAINER -------------------------------------------------------------------------------


def test_autotrainer_constants_are_the_released_defaults():
    assert (at.BETA_1, at.BETA_2, at.BETA_3, at.GAMMA) == (1e-3, 1e-4, 70, 0.7)
    assert (at.ZETA, at.ETA, at.DELTA, at.THETA, at.OMEGA_1, at.OMEGA_2) == (0.03, 0.2, 0.01, 0.7, 10, 1)
    assert (at.JUDGMENT_POINT, at.CHECKGAP, at.DETERMINE) == (0.3, 3, 1)
    assert at.RANK["abnormal_data"] > at.RANK["activation_issue"] == at.RANK["loss_issue"] > at.RANK["vanish"] \
        > at.RANK["not_converge"]


def test_autotrainer_schedule_checks_every_checkgap_and_judges_after_slow_convergence_was_seen():
    # 20 epochs: accuracy tests from 0.3 x 20 - 3 = 3 epochs (the check of epoch 3); judged at the next check.
    assert codes(AutoTrainer(), trace(flat(20, 0.69), acc=flat(20))) == [("NOT_CONVERGE", 6, "OCH")]
    # 10 epochs: 0.3 x 10 - 3 = 0, so the check of epoch 0 already sees one epoch without gain.
    assert codes(AutoTrainer(), trace(flat(10, 0.69), acc=flat(10))) == [("NOT_CONVERGE", 3, "OCH")]
    assert codes(AutoTrainer(checkgap=5), trace(flat(20, 0.69), acc=flat(20))) == [("NOT_CONVERGE", 5, "OCH")]
    f = replay(AutoTrainer(), trace(flat(20, 0.69), acc=flat(20)))[0]
    assert f.severity == "error" and f.alternatives == ("HLR: change the learning rate",
                                                        "WCI: change the weight initialisation")
    assert codes(AutoTrainer(), trace(flat(3, 0.69), acc=flat(3))) == []  # one check, at epoch 0: never judged


@pytest.mark.parametrize("best, gain, found", [(0.69, 0.0, True), (0.70, 0.0, False), (0.69, 0.0099, True),
                                               (0.69, 0.0101, False)])
def test_autotrainer_slow_convergence_needs_accuracy_below_theta_and_no_gain_of_delta(best, gain, found):
    acc = [best - gain] + [best] * 19
    assert bool(codes(AutoTrainer(), trace(flat(20, 0.69), acc=acc))) == found


@pytest.mark.parametrize("first, last, code", [(0.99e-4, 0.0991, "VANISH"), (0.99e-4, 0.098, "NOT_CONVERGE"),
                                               (1.01e-4, 1.0, "NOT_CONVERGE"), (71.0, 1.0, "EXPLODE"),
                                               (69.0, 1.0, "NOT_CONVERGE")])
def test_autotrainer_gradient_ratio_thresholds(first, last, code):
    found = codes(AutoTrainer(), trace(flat(20, 0.69), acc=flat(20), stats=grads(first, last)))
    assert found[0][0] == code
    if code != "NOT_CONVERGE":
        assert found[0][2] == "ACH"  # the 'selu' repair comes first for both


@pytest.mark.parametrize("zeros, code", [(0.7001, "RELU"), (0.6999, "NOT_CONVERGE")])
def test_autotrainer_dying_relu_is_a_share_of_zero_gradients_at_least_gamma(zeros, code):
    stats = {(0, "weight_grad", "zero_frac"): zeros, (1, "weight_grad", "zero_frac"): zeros}
    assert codes(AutoTrainer(), trace(flat(20, 0.69), acc=flat(20), stats=stats))[0][0] == code


@pytest.mark.parametrize("swing, pairs, n, expected", [(0.0305, 1, 5, True), (0.0295, 1, 5, False),
                                                      (0.0305, 1, 6, False), (0.0305, 2, 10, True)])
def test_autotrainer_oscillation_is_ol_judge(swing, pairs, n, expected):
    acc = [0.5] * n
    for k in range(pairs):
        acc[1 + 4 * k] = 0.5 + swing  # a peak, then the trough after it
    assert at.oscillates(acc, at.ZETA, at.ETA) is expected


def test_autotrainer_oscillating_accuracy_is_unstable_and_an_activation_problem_outranks_it():
    zigzag = [0.8 if i % 2 else 0.9 for i in range(20)]
    assert codes(AutoTrainer(), trace(flat(20, 0.3), acc=zigzag)) == [("UNSTABLE", 12, "OCH")]
    facts = {"loss": "categorical_crossentropy"}
    layers = [{"name": "dense", "class": "Dense", "activation": "relu"},
              {"name": "dense_1", "class": "Dense", "activation": "sigmoid", "units": 3}]
    f = replay(AutoTrainer(), trace(flat(20, 0.3), acc=zigzag, layers=layers, facts=facts))[0]
    assert (f.code, f.fix_code, f.fix_layer) == ("ACTIVATION_ISSUE", "ACH", 1)
    # A loss neither binary nor categorical is improper (rank 3), above the oscillation (rank 1).
    mse = replay(AutoTrainer(), trace(flat(20, 0.3), acc=zigzag, facts={"loss": "mean_squared_error"}))[0]
    assert (mse.code, mse.epoch, mse.fix_code) == ("LOSS_ISSUE", 12, "LCH") and "unstable" in mse.message


def test_autotrainer_ranks_abnormal_outputs_first_and_an_improper_loss_above_slow_convergence():
    big = {(0, "output", "mean"): 10.0}
    assert codes(AutoTrainer(), trace(flat(20, 0.69), acc=flat(20), stats=big))[0][:2] == ("ABNORMAL_DATA", 6)
    small = {(0, "output", "mean"): 9.9}
    assert codes(AutoTrainer(), trace(flat(20, 0.69), acc=flat(20), stats=small))[0][0] == "NOT_CONVERGE"
    f = replay(AutoTrainer(), trace(flat(20, 0.69), acc=flat(20), facts={"loss": "mean_squared_error"}))[0]
    assert (f.code, f.fix_code) == ("LOSS_ISSUE", "LCH") and "not_converge" in f.message


def test_autotrainer_a_nan_loss_is_judged_at_the_next_check():
    loss = [0.7] * 4 + [math.nan] * 16
    stats = {(0, "weight_grad", "nan"): np.r_[np.zeros(4), np.ones(16)].astype(np.float32)}
    assert codes(AutoTrainer(), trace(loss, acc=[0.8, 0.9] * 10, stats=stats)) == [("EXPLODE", 9, "ACH")]
    big = [0.7] * 4 + [1e3] * 16
    assert codes(AutoTrainer(), trace(big, acc=[0.8, 0.9] * 10))[0][:2] == ("UNSTABLE", 9)  # nan_loss, no NaN grads


# -- DeepDiagnosis -----------------------------------------------------------------------------

DD_LAYERS = [{"name": "dense", "class": "Dense", "activation": "linear"},
             {"name": "activation", "class": "Activation", "activation": "relu"},
             {"name": "dense_1", "class": "Dense", "activation": "linear"},
             {"name": "activation_1", "class": "Activation", "activation": "softmax"}]


def dd_trace(loss, acc=None, **kw):
    return trace(loss, acc=acc if acc is not None else list(np.linspace(0.3, 0.9, len(loss))), layers=DD_LAYERS, **kw)


def test_deepdiagnosis_constants_are_the_released_ones():
    assert (dd.N, dd.FRQ, dd.DEAD, dd.SATURATION, dd.SATURATED, dd.VANISHING) == (5, 20, 0.7, 5, 0.5, 1e-7)
    assert dd.LR_BAND == pytest.approx((1e-5, 1e-1))


@pytest.mark.parametrize("last, found", [(0.7, [("LOSS_NOT_DECREASING", 4, "OCH")]), (0.7000001, [])])
def test_deepdiagnosis_loss_not_decreasing_is_exactly_flat_over_5_epochs(last, found):
    assert codes(DeepDiagnosis(), dd_trace([0.7] * 4 + [last] + list(np.linspace(0.6, 0.5, 3)))) == found


def test_deepdiagnosis_windows_do_not_overlap():
    loss = [0.9, 0.8, 0.7, 0.7, 0.7, 0.7, 0.7, 0.6, 0.5]  # 5 flat epochs straddle two windows
    assert codes(DeepDiagnosis(), dd_trace(loss)) == []


@pytest.mark.parametrize("last, found", [(0.5, [("ACCURACY_NOT_INCREASING", 19, "OCH")]), (0.51, [])])
def test_deepdiagnosis_accuracy_not_increasing_is_flat_over_20_epochs(last, found):
    loss = list(np.linspace(1.0, 0.5, 20))
    assert codes(DeepDiagnosis(), dd_trace(loss, acc=[0.5] * 19 + [last])) == found


def test_deepdiagnosis_zero_accuracy_is_invalid():
    assert codes(DeepDiagnosis(), dd_trace([0.9, 0.8], acc=[0.2, 0.0])) == [("INVALID_ACCURACY", 1, "OCH")]


@pytest.mark.parametrize("grad, fix", [(1.1, "HLR"), (0.9, "OCH"), (0.9e-4, "HLR"), (1.1e-4, "OCH")])
def test_deepdiagnosis_learning_rate_band_of_lr_grad_over_mean_weight(grad, fix):
    """lr 0.01 x |grad| / |mean W| with |mean W| = 0.1: 0.11 and 0.9e-5 are outside [1e-5, 1e-1]."""
    stats = {(k, stage, stat): v for k in (0, 2) for stage, stat, v in
             (("weight_grad", "mean", grad), ("weight_grad", "std", 0.0), ("weights", "mean", 0.1))}
    stats.update({(k, "weights", "mean"): np.linspace(0.1, 0.1001, 6, dtype=np.float32) for k in (0, 2)})
    found = codes(DeepDiagnosis(), dd_trace([0.7] * 5 + [0.6], stats=stats))
    assert found == [("LOSS_NOT_DECREASING", 4, fix)]


def test_deepdiagnosis_decision_tree_names_the_root_cause():
    loss = list(np.linspace(1.0, 0.5, 6))
    # NaN in a forward output: unscaled inputs come first, then the activation after the layer.
    nan = {(0, "output", "nan"): 1.0}
    assert codes(DeepDiagnosis(), dd_trace(loss, stats=nan, facts={"x": {"min": 0.0, "max": 255.0}})) \
        == [("NUMERICAL", 0, "CPP")]
    f = replay(DeepDiagnosis(), dd_trace(loss, stats=nan, facts={"x": {"min": 0.0, "max": 1.0}}))[0]
    assert (f.code, f.layer, f.fix_code, f.fix_layer) == ("NUMERICAL", 0, "ACH", 1)
    # A zero weight gradient on the last Dense layer but one: the loss (or the output activation).
    g = replay(DeepDiagnosis(), dd_trace(loss, stats={(2, "weight_grad", "mean"): 0.0}))[0]
    assert (g.code, g.layer, g.stage, g.fix_code) == ("NUMERICAL", 2, "weight_grad", "LCH")
    assert g.alternatives == ("ACH: change the activation function at layer 3",)
    # Vanishing gradients (mean |g| < 1e-7) without a learning-rate problem: add or delete a layer.
    small_w = np.linspace(1e-6, 1.1e-6, 6, dtype=np.float32)  # lr x |g| / |mean W| = 1e-3: inside the band
    tiny = {(0, "weight_grad", "mean"): 0.99e-7, (0, "weight_grad", "std"): 0.0, (0, "weights", "mean"): small_w}
    assert codes(DeepDiagnosis(), dd_trace(loss, stats=tiny))[0] == ("VANISHING", 0, "LAD")
    ok = {(0, "weight_grad", "mean"): np.linspace(1.01e-7, 1.05e-7, 6, dtype=np.float32),
          (0, "weight_grad", "std"): 0.0, (0, "weights", "mean"): small_w}
    assert codes(DeepDiagnosis(), dd_trace(loss, stats=ok)) == []


@pytest.mark.parametrize("zeros, found", [(0.70, [("DEAD_NODE", 5, "LAD")]), (0.69, [])])
def test_deepdiagnosis_dead_relu_is_judged_at_the_last_epoch_only(zeros, found):
    loss = list(np.linspace(1.0, 0.5, 6))
    assert codes(DeepDiagnosis(), dd_trace(loss, stats={(1, "output", "zero_frac"): zeros})) == found


def test_deepdiagnosis_sees_activations_only_in_activation_layers():
    loss = list(np.linspace(1.0, 0.5, 6))
    fused = [{"name": "dense", "class": "Dense", "activation": "relu"},
             {"name": "dense_1", "class": "Dense", "activation": "softmax"}]
    t = trace(loss, acc=list(np.linspace(0.3, 0.9, 6)), layers=fused, stats={(0, "output", "zero_frac"): 1.0})
    assert codes(DeepDiagnosis(), t) == []  # 'dense' is no ReLU by name
    t.meta["facts"]["loss"] = "categorical_crossentropy"  # a Dense output under a categorical loss: out of range
    f = replay(DeepDiagnosis(), t)[0]
    assert (f.code, f.epoch, f.fix_code) == ("OUT_OF_RANGE", 0, "ACH")
    assert f.fix == "change the activation function to softmax"  # released: `loss == 'a' or 'b'`, always true


def test_deepdiagnosis_saturated_sigmoid_and_unchanged_output():
    loss = list(np.linspace(1.0, 0.5, 6))
    layers = [{"name": "dense", "class": "Dense", "activation": "linear"},
              {"name": "activation", "class": "Activation", "activation": "sigmoid"},
              {"name": "dense_1", "class": "Dense", "activation": "linear"}]
    sat = {(1, "output", "mean"): 0.999, (1, "output", "std"): 0.001}
    t = trace(loss, acc=list(np.linspace(0.3, 0.9, 6)), layers=layers, stats=sat)
    assert codes(DeepDiagnosis(), t) == [("SATURATED", 4, "LAD")]
    still = {(0, "output", "mean"): 0.5, (1, "output", "mean"): np.linspace(0.5, 0.6, 6, dtype=np.float32),
             (1, "output", "std"): 0.1}
    t = trace(loss, acc=list(np.linspace(0.3, 0.9, 6)), layers=layers, stats=still)
    assert codes(DeepDiagnosis(), t) == [("UNCHANGED", 4, "OCH")]


# -- UMLAUT ------------------------------------------------------------------------------------


def test_umlaut_constants_are_the_released_ones():
    assert (um.LR_RANGE, um.INPUT_RANGE, um.HIGH_VAL_ACC, um.VAL_OVER_TRAIN, um.FIRST_ACC_EPOCH) == \
        ((1e-7, 0.01), (-1, 1), 0.95, 0.05, 3)


def test_umlaut_static_checks_read_layer_names_as_released():
    fused = [{"name": "dense", "class": "Dense", "activation": "linear"},
             {"name": "dense_1", "class": "Dense", "activation": "softmax"}]
    found = {f.code: f for f in replay(Umlaut(), trace([0.5] * 2, layers=fused))}
    assert set(found) == {"NO_SOFTMAX", "MISSING_ACTIVATION", "FINAL_ACTIVATION"}
    no_softmax = found["NO_SOFTMAX"]
    assert (no_softmax.severity, no_softmax.fix_code, no_softmax.epoch, no_softmax.batch) == ("error", "LCH", 0, None)
    assert (found["MISSING_ACTIVATION"].layer, found["MISSING_ACTIVATION"].fix_code) == (0, "AAL")
    assert (found["FINAL_ACTIVATION"].severity, found["FINAL_ACTIVATION"].fix_code) == ("warning", "ACH")
    layer = [{"name": "dense", "class": "Dense", "activation": "linear"},
             {"name": "softmax", "class": "Softmax", "activation": None}]
    assert codes(Umlaut(), trace([0.5] * 2, layers=layer)) == []  # linear just before a softmax layer: fine
    logits = trace([0.5] * 2, layers=fused[:1] + [{"name": "dense_1", "class": "Dense", "activation": "linear"}],
                   facts={"from_logits": True})
    assert [c for c, *_ in codes(Umlaut(), logits)] == ["MISSING_ACTIVATION"]


@pytest.mark.parametrize("lr, code", [(0.0100001, "LR_HIGH"), (0.01, None), (0.99e-7, "LR_LOW"), (1e-7, None)])
def test_umlaut_learning_rate_range(lr, code):
    found = [c for c, *_ in codes(Umlaut(), trace([0.5] * 2, lr=lr, layers=SOFTMAX_LAYERS))]
    assert found == ([code] if code else [])


SOFTMAX_LAYERS = [{"name": "dense", "class": "Dense", "activation": "linear"},
                  {"name": "softmax", "class": "Softmax", "activation": None}]


@pytest.mark.parametrize("lo, hi, found", [(-1.01, 0.5, True), (0.0, 1.01, True), (-1.0, 1.0, False)])
def test_umlaut_input_normalization(lo, hi, found):
    t = trace([0.5] * 2, layers=SOFTMAX_LAYERS, facts={"x": {"min": lo, "max": hi}})
    got = codes(Umlaut(), t)
    assert got == ([("INPUT_NOT_NORMALIZED", 0, "CPP")] if found else [])


@pytest.mark.parametrize("loss2, val2, found", [(0.5, 0.61, True), (0.4, 0.61, True), (0.51, 0.61, False),
                                                (0.4, 0.6, False)])
def test_umlaut_one_epoch_overfitting(loss2, val2, found):
    t = trace([0.5, loss2], val_loss=[0.6, val2], layers=SOFTMAX_LAYERS)
    got = codes(Umlaut(), t)
    assert got == ([("OVERFITTING", 1, "REG")] if found else [])


@pytest.mark.parametrize("epoch, val, train, found", [(3, 0.951, 0.95, True), (3, 0.95, 0.95, False),
                                                      (2, 0.99, 0.99, False), (3, 0.86, 0.8, True),
                                                      (3, 0.84, 0.8, False)])
def test_umlaut_high_validation_accuracy(epoch, val, train, found):
    n = epoch + 1
    t = trace([0.5] * n, acc=[train] * n, val_loss=[0.5] * n, val_acc=[val] * n, layers=SOFTMAX_LAYERS)
    got = replay(Umlaut(), t)
    assert [(f.code, f.epoch, f.severity) for f in got] == ([("HIGH_VAL_ACCURACY", epoch, "warning")] if found else [])


# -- registry and live fits --------------------------------------------------------------------


def test_peers_are_registered_in_the_default_set_and_their_group():
    assert set(registry.expand(["peers"])) == {"layer-trend-faithful", "autotrainer", "deepdiagnosis", "umlaut"}
    assert {"autotrainer", "deepdiagnosis", "umlaut"} <= set(registry.expand(registry.DEFAULT))
    import bugbench

    assert {"AutoTrainer", "DeepDiagnosis", "Umlaut"} <= set(bugbench.__all__)


@pytest.mark.fit
def test_each_peer_runs_live_as_a_keras_callback():
    keras = pytest.importorskip("keras")
    import bugbench

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 4)).astype("float32"), rng.integers(0, 2, 64).astype("float32")

    def model(last, lr=0.01):
        keras.utils.set_random_seed(0)
        m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1),
                              keras.layers.Activation(last)])
        m.compile(loss="binary_crossentropy", optimizer=keras.optimizers.SGD(learning_rate=lr), metrics=["accuracy"])
        return m

    # AUTOTRAINER: a softmax over one unit under binary cross-entropy, judged at the check of epoch 3.
    trainer = bugbench.AutoTrainer(stop_on_finding=True, verbose=0)
    hist = model("softmax").fit(x, y, batch_size=16, epochs=6, verbose=0, callbacks=[trainer])
    assert isinstance(trainer, keras.callbacks.Callback)
    assert [(f.code, f.epoch, f.fix_code, f.fix_layer) for f in trainer.findings] == [("ACTIVATION_ISSUE", 3, "ACH", 2)]
    assert len(hist.epoch) == 4 and hist.history["autotrainer_errors"][-1] == 1.0

    # DeepDiagnosis: a learning rate of 1e6 turns the outputs NaN; the inputs (normal, beyond [-1, 1]) come first.
    diagnosis = bugbench.DeepDiagnosis(sample=(x, y), verbose=0)
    model("sigmoid", lr=1e6).fit(x, y, batch_size=16, epochs=3, verbose=0, callbacks=[diagnosis])
    first = diagnosis.findings[0]
    assert (first.code, first.fix_code) == ("NUMERICAL", "CPP") and len(diagnosis.findings) == 1

    # UMLAUT: reports before the first batch ends; the last layer is not named softmax.
    lint = bugbench.Umlaut(sample=(x, y), verbose=0)
    model("sigmoid").fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[lint])
    assert {f.code for f in lint.findings} == {"NO_SOFTMAX", "MISSING_ACTIVATION", "FINAL_ACTIVATION",
                                               "INPUT_NOT_NORMALIZED"}
