"""What a model's output is, measured (``harness.outputs``), and how the static rules read it.

The kinds on hand-made arrays first; then tiny unbuilt-data models (one forward pass, no training) whose
output function hides in an activation layer, a wrapper, a Keras op in a functional graph or a subclass.
"""

import numpy as np
import pytest

from detectors.rules import effective_activation, issues, output_view
from harness.outputs import output_kind

RNG = np.random.default_rng(0)


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("values, kind", [
    (softmax(RNG.normal(size=(50, 4))), "simplex"),
    (softmax(RNG.normal(size=(20, 6, 3))), "simplex"),  # per time step
    (1 / (1 + np.exp(-RNG.normal(size=(50, 4)))), "unit"),
    (1 / (1 + np.exp(-RNG.normal(size=(50, 1)))), "unit"),
    (np.full((50, 1), np.float32(0.99999994)), "one"),  # Keras' softmax over one unit, in float32
    (np.maximum(RNG.normal(size=(50, 4)) * 3, 0), "nonnegative"),
    (RNG.normal(size=(50, 4)), "signed"),
    (np.tanh(RNG.normal(size=(50, 4))), "signed"),
    (np.array([[np.inf, 0.0]]), "nonfinite"),
])
def test_output_kinds(values, kind):
    assert output_kind(values)["kind"] == kind


@pytest.mark.parametrize("configured, kind, owned, judged", [
    ("linear", "simplex", True, "softmax"),  # a Softmax the configuration did not see
    ("relu", "one", True, "softmax"),
    ("softmax", "signed", True, "linear"),  # something after the softmax undid it
    ("linear", "unit", True, "linear"),  # a linear Dense over ReLU features may stay inside [0, 1] by chance
    ("relu", "unit", True, "relu"),
    ("tanh", "signed", True, "tanh"),
    ("linear", "unit", False, "sigmoid"),  # keras.ops.sigmoid after the Dense, or a subclass: the values decide
    ("linear", "nonnegative", False, "relu"),
    (None, "signed", False, "linear"),
])
def test_the_measurement_overrules_the_configuration_where_it_is_certain_or_the_layer_a_guess(configured, kind,
                                                                                                owned, judged):
    assert effective_activation(configured, kind, owned) == judged


def test_rules_read_the_measured_output_and_its_owner_layer():
    layers = [{"name": "d", "class": "Dense", "activation": "linear", "units": 10},
              {"name": "s", "class": "Softmax", "activation": None}]  # an old fact: the Softmax class unread
    stale = {"layers": layers, "loss": "sparse_categorical_crossentropy"}
    assert [i.code for i in issues(stale)] == ["OUT_LOSS"]
    measured = dict(stale, outputs=[{"kind": "simplex", "units": 10, "layer": 1, "owned": True}])
    assert output_view(measured) == (1, "softmax", 10) and issues(measured) == []
    one = dict(stale, loss="binary_crossentropy", outputs=[{"kind": "one", "units": 1, "layer": 0, "owned": False}])
    assert [(i.code, i.layer, i.severity) for i in issues(one)] == [("OUT_LOSS", 0, "error")]


keras = pytest.importorskip("keras")


def measured(model, x):
    from harness.facts import describe

    return describe(model, x)["outputs"]


X = RNG.normal(size=(64, 8)).astype("float32")


def sequential(*layers, shape=(8,)):
    return keras.Sequential([keras.Input(shape), *layers])


def test_a_softmax_layer_class_is_measured_as_a_softmax_at_its_own_layer():
    model = sequential(keras.layers.Dense(4), keras.layers.Softmax(), keras.layers.Dropout(0.5))
    assert measured(model, X) == [dict(output_kind(model(X)), layer=1, owned=True)]
    assert measured(model, X)[0]["kind"] == "simplex"


def test_wrappers_and_activation_layers_own_their_outputs():
    seq = RNG.normal(size=(16, 5, 8)).astype("float32")
    tagger = sequential(keras.layers.TimeDistributed(keras.layers.Dense(3, activation="softmax")), shape=(5, 8))
    assert [(o["kind"], o["layer"]) for o in measured(tagger, seq)] == [("simplex", 0)]
    relu = sequential(keras.layers.Dense(4), keras.layers.ReLU(), keras.layers.Flatten())
    assert [(o["kind"], o["layer"]) for o in measured(relu, X * 10)] == [("nonnegative", 1)]
    bi = sequential(keras.layers.Bidirectional(keras.layers.LSTM(3)), keras.layers.Dense(1, activation="sigmoid"),
                    shape=(5, 8))
    assert [(o["kind"], o["layer"]) for o in measured(bi, seq)] == [("unit", 1)]


def test_an_op_in_a_functional_graph_is_measured_and_named_by_the_last_layer_with_an_activation():
    inp = keras.Input((8,))
    hidden = keras.layers.Dense(6, activation="relu")(inp)
    out = keras.ops.sigmoid(keras.layers.Dense(2)(hidden))
    model = keras.Model(inp, out)
    assert [(o["kind"], o["layer"]) for o in measured(model, X)] == [("unit", 1)]
    two = keras.Model(inp, [keras.layers.Dense(3, activation="softmax")(hidden), keras.layers.Dense(1)(hidden)])
    assert [(o["kind"], o["layer"]) for o in measured(two, X)] == [("simplex", 1), ("signed", 2)]


def test_a_linear_output_that_stays_in_the_unit_interval_is_no_sigmoid():
    """A linear Dense over ReLU features of positive inputs: at init its output often has one sign on every row."""
    positive = np.abs(X)
    for seed in range(5):
        keras.utils.set_random_seed(seed)
        model = sequential(keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1))
        facts = {"layers": [{"class": "Dense", "activation": "relu"}, {"class": "Dense", "activation": "linear"}],
                 "outputs": measured(model, positive)}
        assert output_view(facts)[1] == "linear"

    class Regressor(keras.Model):
        def __init__(self):
            super().__init__()
            self.a, self.b = keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)

        def call(self, x):
            return self.b(self.a(x))

    for seed in range(5):
        keras.utils.set_random_seed(seed)
        net = Regressor()
        net(positive)
        assert measured(net, positive)[0]["kind"] in ("signed", "nonnegative")  # inputs x -100 show the sign


def test_a_subclass_is_measured_and_its_output_named_by_the_last_layer_as_wide():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.a, self.b = keras.layers.Dense(5, activation="relu"), keras.layers.Dense(3)

        def call(self, x):
            return keras.ops.softmax(self.b(self.a(x)))

    net = Net()
    net(X)  # built, as fit builds it before any callback sees the model
    assert [(o["kind"], o["layer"]) for o in measured(net, X)] == [("simplex", 1)]


def test_layer_facts_name_the_activation_of_activation_layers_and_wrappers():
    from harness.facts import layer_facts

    acts = [layer_facts(layer)["activation"] for layer in (
        keras.layers.Softmax(), keras.layers.ReLU(), keras.layers.ReLU(max_value=6), keras.layers.LeakyReLU(),
        keras.layers.TimeDistributed(keras.layers.Dense(3, activation="sigmoid")),
        keras.layers.Bidirectional(keras.layers.LSTM(2)), keras.layers.Flatten())]
    assert acts == ["softmax", "relu", "relu6", "leaky_relu", "sigmoid", "tanh", None]
