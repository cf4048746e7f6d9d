"""The static checker on hand-written facts (no TensorFlow, no training)."""

import numpy as np

from detectors import replay
from detectors.structure import Structure, issues
from detectors.toy_traces import make_trace
from harness.facts import data_facts, label_facts, loss_name


def dense(units, activation="linear", init=None, name=None):
    layer = {"name": name or f"d{units}", "class": "Dense", "activation": activation, "units": units}
    layer["kernel_initializer"] = init or {"class": "GlorotUniform", "config": {}}
    return layer


def facts(layers, loss="categorical_crossentropy", lr=0.01, opt="SGD", x=(0.0, 1.0), y=None):
    y = y if y is not None else np.eye(3)[np.arange(30) % 3]
    out = {"layers": layers, "loss": loss, "optimizer": {"class": opt, "learning_rate": lr}}
    out.update(data_facts(np.linspace(*x, 60).reshape(30, 2), y))
    return out


def codes(f):
    return [(i.code, i.layer, i.fix_code) for i in issues(f)]


def test_a_correct_classifier_has_no_issues():
    assert codes(facts([dense(8, "relu"), dense(3, "softmax")])) == []


def test_linear_output_under_categorical_crossentropy_blames_the_output_layer():
    assert codes(facts([dense(8, "relu"), dense(3, "linear")]))[0] == ("OUT_LOSS", 1, "ACH")


def test_categorical_cross_entropy_over_one_unit_is_an_error_naming_the_loss():
    """Keras normalises the one output over one class: the loss is 0 for every row, so nothing is learned."""
    y = np.array([[0.0], [1.0]] * 15)
    for act in ("sigmoid", "linear"):
        found = issues(facts([dense(8, "relu"), dense(1, act)], loss="categorical_crossentropy", y=y))
        assert [(i.code, i.layer, i.fix_code, i.severity) for i in found[:1]] == [("OUT_LOSS", None, "LCH", "error")]
    two = [dense(8, "relu"), dense(2, "softmax")]
    assert issues(facts(two, loss="categorical_crossentropy", y=np.eye(2)[[0, 1] * 15])) == []


def test_separate_activation_layer_is_the_output_activation():
    layers = [dense(8, "relu"), dense(3), {"name": "a", "class": "Activation", "activation": "softmax"}]
    assert codes(facts(layers)) == []


def test_softmax_over_one_unit():
    y = (np.arange(30) % 2).reshape(-1, 1).astype(float)
    assert codes(facts([dense(8, "relu"), dense(1, "softmax")], loss="binary_crossentropy", y=y))[0] == \
        ("OUT_LOSS", 1, "ACH")


def test_mse_on_one_hot_labels_suggests_changing_the_loss():
    found = codes(facts([dense(8, "relu"), dense(3, "softmax")], loss="mean_squared_error"))
    assert found == [("LOSS_LABELS", None, "LCH")]


def test_labels_outside_the_output_range():
    y = np.linspace(-3, 40, 30).reshape(-1, 1)
    found = codes(facts([dense(8, "relu"), dense(1, "sigmoid")], loss="mean_squared_error", y=y))
    assert ("OUT_RANGE", 1, "ACH") in found


def test_two_classes_coded_as_other_numbers_than_0_and_1_under_binary_cross_entropy_name_the_labels():
    """Binary cross-entropy reads its target as a probability: labels 1 and 5 are two classes coded with the
    wrong numbers, which no output activation fits (was: OUT_RANGE, "change the activation")."""
    y = np.where(np.arange(30) % 2, 5.0, 1.0).reshape(-1, 1)
    found = [(i.code, i.layer, i.fix_code, i.severity)
             for i in issues(facts([dense(8, "relu"), dense(1, "sigmoid")], loss="binary_crossentropy", y=y))]
    assert found == [("LOSS_LABELS", None, "CPP", "error")]  # one cause, not also OUT_RANGE
    linear = codes(facts([dense(8, "relu"), dense(1, "linear")], loss="binary_crossentropy", y=y))
    assert ("LOSS_LABELS", None, "CPP") in linear  # beside the linear output's own fault
    message = issues(facts([dense(8, "relu"), dense(1, "sigmoid")], loss="binary_crossentropy", y=y))[0].message
    assert "1" in message and "5" in message
    three = np.arange(30).reshape(-1, 1) % 3.0  # three classes on one sigmoid unit: the output is what is wrong
    assert ("OUT_RANGE", 1, "ACH") in codes(facts([dense(8, "relu"), dense(1, "sigmoid")], loss="binary_crossentropy",
                                                   y=three))
    zero_one = (np.arange(30) % 2.0).reshape(-1, 1)
    assert codes(facts([dense(8, "relu"), dense(1, "sigmoid")], loss="binary_crossentropy", y=zero_one)) == []


def test_raw_inputs_and_absurd_learning_rate_and_constant_init():
    layers = [dense(8, "relu", init={"class": "Zeros", "config": {}}), dense(3, "softmax")]
    found = codes(facts(layers, lr=3.0, opt="Adam", x=(0, 255)))
    assert ("INPUT_SCALE", None, "CPP") in found
    assert ("LR_RANGE", None, "HLR") in found
    assert ("INIT", 0, "WCI") in found


def test_linear_layers_stacked_through_dropout_need_an_activation():
    layers = [dense(8), {"name": "drop", "class": "Dropout", "activation": None}, dense(3, "softmax")]
    assert codes(facts(layers)) == [("LINEAR", 0, "AAL")]


def test_loss_names_are_canonical():
    assert loss_name("mse") == "mean_squared_error"
    assert loss_name("CategoricalCrossentropy") == "categorical_crossentropy"

    def binary_crossentropy(y, p):
        return p

    assert loss_name(binary_crossentropy) == "binary_crossentropy"


def test_label_facts_tell_one_hot_from_integers():
    assert label_facts(np.eye(4)[[0, 1, 2, 3, 1]])["one_hot"]
    ints = label_facts(np.array([[0.0], [2.0], [1.0]]))
    assert ints["integer"] and not ints["one_hot"] and ints["classes"] == 3


def test_detector_reports_every_issue_at_the_first_step_in_zero_seconds():
    trace = make_trace([1.0, 0.9, 0.8, 0.7], steps_per_epoch=2)
    trace.meta["facts"] = facts([dense(8, "relu"), dense(3, "linear")], lr=5.0)
    found = replay(Structure(), trace)
    assert [f.code for f in found] == ["OUT_LOSS", "LR_RANGE"]
    assert all(f.step == 0 and f.seconds == 0.0 and f.fix for f in found)
    assert found[0].fix_code == "ACH" and found[0].fix_layer == 1


def test_without_facts_it_stays_silent():
    assert replay(Structure(), make_trace([1.0, 0.9], steps_per_epoch=1)) == []


def severities(f):
    return {i.code: i.severity for i in issues(f)}


def test_programs_that_cannot_be_right_are_errors_the_rest_warnings():
    y = (np.arange(30) % 2).reshape(-1, 1).astype(float)
    assert severities(facts([dense(8, "relu"), dense(1, "softmax")], loss="binary_crossentropy", y=y)) == \
        {"OUT_LOSS": "error"}
    assert severities(facts([dense(8, "relu"), dense(3, "linear")])) == {"OUT_LOSS": "error"}
    # MSE on class labels, raw inputs, a large learning rate: many programs that train well have them.
    found = severities(facts([dense(8, "relu"), dense(3, "softmax")], loss="mean_squared_error", lr=3.0,
                             x=(0, 255)))
    assert found == {"LOSS_LABELS": "warning", "INPUT_SCALE": "warning", "LR_RANGE": "warning"}


def test_sparse_labels_under_softmax_are_class_indices_not_outputs():
    """A user's sparse integer labels (0..9) with a softmax output are right (was: OUT_RANGE)."""
    y = (np.arange(30) % 10).astype(float)
    assert codes(facts([dense(8, "relu"), dense(10, "softmax")], loss="sparse_categorical_crossentropy", y=y)) == []


def test_sparse_crossentropy_on_scaled_or_one_hot_labels_is_an_error():
    scaled = (np.arange(30) % 10) / 255.0
    assert severities(facts([dense(10, "softmax")], loss="sparse_categorical_crossentropy", y=scaled)) == \
        {"LOSS_LABELS": "error"}
    assert codes(facts([dense(3, "softmax")], loss="sparse_categorical_crossentropy")) == [("LOSS_LABELS", None, "LCH")]


def test_softmax_on_independent_labels_cannot_reach_them():
    y = np.array([[1, 1, 0], [0, 1, 1], [1, 0, 0]] * 10, float)
    assert codes(facts([dense(8, "relu"), dense(3, "softmax")], loss="binary_crossentropy", y=y)) == \
        [("OUT_RANGE", 1, "ACH")]


def test_standardised_inputs_with_rare_large_z_scores_are_normalised():
    """Digits standardised per pixel reach z = 40 in almost-always-zero pixels: still normalised."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 4))
    x[0, 3] = 42.0  # one rare pixel
    f = {"layers": [dense(3, "softmax")], "loss": "categorical_crossentropy",
         "optimizer": {"class": "Adam", "learning_rate": 0.001}}
    f.update(data_facts(x, np.eye(3)[np.arange(500) % 3]))
    assert codes(f) == []
    f.update(data_facts(x * 100, np.eye(3)[np.arange(500) % 3]))  # raw pixels: spread ~100
    assert codes(f) == [("INPUT_SCALE", None, "CPP")]


def test_learning_rate_messages_do_not_contradict_themselves():
    """RMSprop at 0.1 (0.10000000149 in float32) was reported as 'above 0.1'."""
    found = issues(facts([dense(3, "softmax")], lr=0.10000000149011612, opt="RMSprop"))
    assert [(i.code, i.message) for i in found] == [
        ("LR_RANGE", "learning rate 0.1 is large for RMSprop (it usually trains below 0.1)")]
    assert issues(facts([dense(3, "softmax")], lr=0.0999, opt="RMSprop")) == []


def test_from_logits_losses_take_a_linear_output():
    f = facts([dense(8, "relu"), dense(3, "linear")])
    f["from_logits"] = True
    assert codes(f) == []
    f = facts([dense(8, "relu"), dense(3, "softmax")])
    f["from_logits"] = True
    assert severities(f) == {"OUT_LOSS": "warning"}


def test_token_ids_and_inputs_the_first_layer_scales_are_not_unscaled_inputs():
    ids = {"name": "e", "class": "Embedding", "activation": None, "units": None}
    norm = {"name": "n", "class": "Normalization", "activation": None, "scales_inputs": True}
    idle = {"name": "n", "class": "Normalization", "activation": None}  # mean 0, variance 1: scales nothing
    tail = [dense(8, "relu"), dense(3, "softmax")]
    raw = (0.0, 500.0)
    assert [c for c in codes(facts([ids, *tail], x=raw)) if c[0] == "INPUT_SCALE"] == []
    assert [c for c in codes(facts([norm, *tail], x=raw)) if c[0] == "INPUT_SCALE"] == []
    assert ("INPUT_SCALE", None, "CPP") in codes(facts([idle, *tail], x=raw))


def test_recurrent_attention_and_normalisation_layers_are_not_a_missing_activation():
    embed = {"name": "e", "class": "Embedding", "activation": None}
    for between in ({"name": "r", "class": "LSTM", "activation": "tanh", "units": 8},
                    {"name": "g", "class": "GRU", "activation": "tanh", "units": 8},
                    {"name": "a", "class": "MultiHeadAttention", "activation": None},
                    {"name": "l", "class": "LayerNormalization", "activation": None}):
        layers = [embed, between, dense(3, "softmax")]
        assert [c for c in codes(facts(layers)) if c[0] == "LINEAR"] == [], between["class"]
    assert ("LINEAR", 0, "AAL") in codes(facts([dense(8), dense(3, "softmax")]))  # two Dense still compose


def test_a_subclassed_models_layers_are_no_data_flow_for_the_linear_rule():
    assert codes(dict(facts([dense(8), dense(3, "softmax")]), graph=False)) == []


def test_percentage_and_logarithmic_losses_on_targets_of_both_signs_are_errors():
    signed = np.linspace(-1.5, 2.5, 30)  # standardised targets
    for loss in ("mean_absolute_percentage_error", "mean_squared_logarithmic_error"):
        assert severities(facts([dense(8, "relu"), dense(1)], loss=loss, y=signed)) == {"LOSS_LABELS": "error"}
        positive = np.linspace(0.5, 2.0, 30)  # prices, counts: a percentage error is meaningful
        assert codes(facts([dense(8, "relu"), dense(1)], loss=loss, y=positive)) == []


def test_each_output_of_a_model_with_several_is_checked_against_its_own_loss_and_labels():
    f = facts([dense(8, "relu"), dense(3, "softmax", name="kind"), dense(1, "sigmoid", name="size")], loss="dict")
    f.pop("y")  # several label arrays: no single label facts
    f["heads"] = [{"name": "kind", "loss": "categorical_crossentropy", "y": label_facts(np.eye(3)[[0, 1, 2, 0]])},
                  {"name": "size", "loss": "mean_squared_error", "y": label_facts(np.array([[0.5], [3.0]]))}]
    assert codes(f) == []  # heads without measured outputs: which output is which is unknown, nothing is judged
    f["outputs"] = [{"kind": "simplex", "units": 3, "layer": 1, "owned": True},
                    {"kind": "unit", "units": 1, "layer": 2, "owned": True}]
    assert codes(f) == [("OUT_RANGE", 2, "ACH")]  # a sigmoid cannot reach the size target of 3
    assert issues(f)[0].message.startswith("output 'size': labels span [0.5, 3]")
    f["heads"][1]["y"] = label_facts(np.array([[0.5], [0.9]]))
    assert codes(f) == []


def test_smoothed_binary_labels_inside_0_1_are_no_coding_fault():
    """0.1 and 0.9 (label smoothing) are targets a binary cross-entropy reads as meant."""
    for low, high in ((0.1, 0.9), (0.0, 0.5)):
        y = np.where(np.arange(30) % 2, high, low).reshape(-1, 1)
        assert codes(facts([dense(8, "relu"), dense(1, "sigmoid")], loss="binary_crossentropy", y=y)) == []
    minus = np.where(np.arange(30) % 2, 1.0, -1.0).reshape(-1, 1)
    assert codes(facts([dense(8, "relu"), dense(1, "sigmoid")], loss="binary_crossentropy", y=minus)) == \
        [("LOSS_LABELS", None, "CPP")]
