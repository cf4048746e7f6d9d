"""``diagnose`` in a user's own fit: healthy programs get no error, broken ones the right fix.

The healthy programs are written as a user would on sklearn's digits (offline):
sparse and one-hot labels, standardised, min-max and raw inputs, Dropout,
BatchNorm, a functional CNN, validation_split, tf.data, SGD/Adam/RMSprop.
"""

import numpy as np
import pytest

keras = pytest.importorskip("keras")
sklearn_datasets = pytest.importorskip("sklearn.datasets")

from detectors.diagnose import Diagnose  # noqa: E402

pytestmark = pytest.mark.fit


def digits(scale: str = "standard"):
    x, y = sklearn_datasets.load_digits(return_X_y=True)
    x = x.astype("float32")
    if scale == "standard":
        x = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-6)
    elif scale == "minmax":
        x = x / 16.0
    return x, y.astype("int64")


def mlp(out_units, out_act, dropout=True):
    layers = [keras.layers.Dense(64, activation="relu")] + ([keras.layers.Dropout(0.3)] if dropout else []) + \
        [keras.layers.Dense(32, activation="relu"), keras.layers.Dense(out_units, activation=out_act)]
    return keras.Sequential([keras.Input((64,)), *layers])


def cnn():
    inp = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(16, 3, padding="same")(inp)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.Activation("relu")(h)
    h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dropout(0.25)(h)
    return keras.Model(inp, keras.layers.Dense(10, activation="softmax")(h))


def fit(model, x, y, epochs=8, **kw):
    detector = Diagnose(sample=(x, y), stop_on_finding=True, verbose=0)
    history = model.fit(x, y, epochs=epochs, batch_size=32, verbose=0, callbacks=[detector], **kw)
    return detector, history


def assert_healthy(detector, history, epochs):
    errors = [f for f in detector.findings if f.severity == "error"]
    assert errors == [], [(f.code, f.message) for f in errors]
    assert len(history.epoch) == epochs  # stop_on_finding never cut a healthy fit short


def test_mlp_sparse_labels_standardised_dropout_validation_split():
    keras.utils.set_random_seed(0)
    x, y = digits("standard")
    model = mlp(10, "softmax")
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    detector, history = fit(model, x, y, validation_split=0.2)
    assert_healthy(detector, history, 8)
    assert detector.findings == []  # standardised inputs and sparse labels are not even warnings


def test_mlp_one_hot_minmax_sgd_momentum():
    keras.utils.set_random_seed(1)
    x, y = digits("minmax")
    model = mlp(10, "softmax")
    model.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
                  metrics=["accuracy"])
    detector, history = fit(model, x, np.eye(10, dtype="float32")[y])
    assert_healthy(detector, history, 8)


def test_functional_cnn_batchnorm_tf_data():
    import tensorflow as tf

    keras.utils.set_random_seed(2)
    x, y = digits("minmax")
    x = x.reshape(-1, 8, 8, 1)
    model = cnn()
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    detector = Diagnose(sample=(x, y), stop_on_finding=True, verbose=0)
    data = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(2000, seed=0).batch(32)
    history = model.fit(data, epochs=6, verbose=0, callbacks=[detector])
    assert_healthy(detector, history, 6)


def test_binary_task_raw_pixels_rmsprop():
    """Raw pixels (0-16) train fine: unscaled inputs are at most a warning."""
    keras.utils.set_random_seed(3)
    x, y = digits("raw")
    model = mlp(1, "sigmoid", dropout=False)
    model.compile(loss="binary_crossentropy", optimizer=keras.optimizers.RMSprop(0.01), metrics=["accuracy"])
    detector, history = fit(model, x, (y < 5).astype("float32"), epochs=6)
    assert_healthy(detector, history, 6)


def test_imbalanced_binary_labels_that_a_linear_model_predicts_only_by_its_loss_are_not_unrelated():
    """10 % positives, two informative features: a logistic regression's accuracy barely clears the majority rate
    but its log loss is far below the prior's; the healthy network that learns them gets no error."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    y = (rng.random(1000) < 0.1).astype("float32")
    x = rng.normal(size=(1000, 8)).astype("float32")
    x[:, :2] += 1.2 * y[:, None]
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    detector, history = fit(model, x, y, epochs=30)
    assert_healthy(detector, history, 30)


def test_a_learning_rate_of_10_is_an_error_whose_fix_is_the_learning_rate(capsys):
    keras.utils.set_random_seed(4)
    x, y = digits("standard")
    model = mlp(10, "softmax")
    model.compile(loss="sparse_categorical_crossentropy", optimizer=keras.optimizers.SGD(10.0), metrics=["accuracy"])
    detector = Diagnose(sample=(x, y))
    model.fit(x, y, epochs=3, batch_size=32, verbose=0, callbacks=[detector])
    first = next(f for f in detector.findings if f.severity == "error")
    assert first.fix_code == "HLR", (first.code, first.fix)
    assert first.fix_layer is None or model.layers[first.fix_layer].__class__.__name__ != "Dropout"
    assert "fix: lower the learning rate" in capsys.readouterr().out


def test_softmax_on_one_unit_is_an_error_before_training():
    keras.utils.set_random_seed(5)
    x, y = digits("standard")
    model = mlp(1, "softmax")
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    detector = Diagnose(sample=(x, (y < 5).astype("float32")), stop_on_finding=True, verbose=0)
    history = model.fit(x, (y < 5).astype("float32"), epochs=4, batch_size=32, verbose=0, callbacks=[detector])
    first = detector.findings[0]
    assert (first.code, first.severity, first.fix_code, first.layer) == ("OUT_LOSS", "error", "ACH", 3)
    assert len(history.epoch) == 1  # stopped at the first batch's end


def test_a_bottleneck_that_levels_off_behind_a_linear_model_is_an_underfitting_error():
    x, y = digits()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(1, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(keras.optimizers.Adam(0.02), "sparse_categorical_crossentropy", metrics=["accuracy"])
    detector = Diagnose(sample=(x, y), verbose=0)
    model.fit(x, y, epochs=40, batch_size=256, verbose=0, callbacks=[detector])
    found = [f for f in detector.findings if f.severity == "error"]
    assert [(f.code, f.fix_code, f.layer) for f in found] == [("UNDERFITTING", "LSZ", 0)]
    assert "logistic regression" in found[0].message


def test_token_ids_are_read_as_a_bag_of_words_and_data_it_cannot_read_is_skipped_in_one_line(capsys):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 600)
    tokens = rng.integers(2, 200, (600, 12))
    tokens[:, 0] = y  # the first token gives the label away
    model = keras.Sequential([keras.Input((12,)), keras.layers.Embedding(200, 8), keras.layers.Flatten(),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    detector = Diagnose(sample=(tokens, y), verbose=1)
    model.fit(tokens, y, epochs=3, batch_size=64, verbose=0, callbacks=[detector])
    assert detector._facts["baseline"]["accuracy"] > 0.95  # token 0 or 1 in the bag: a linear model reads it
    assert [f for f in detector.findings if f.severity == "error"] == []
    # Two inputs: no single table for the reference; one line says so, the fit and the other checks go on.
    a, b = keras.Input((4,)), keras.Input((3,))
    out = keras.layers.Dense(1, activation="sigmoid")(keras.layers.Concatenate()([a, b]))
    two = keras.Model([a, b], out)
    two.compile("adam", "binary_crossentropy")
    xs = [rng.normal(size=(200, 4)), rng.normal(size=(200, 3))]
    capsys.readouterr()
    history = two.fit(xs, y[:200], epochs=2, verbose=0, callbacks=[Diagnose(sample=(xs, y[:200]))])
    lines = [line for line in capsys.readouterr().out.splitlines() if "no learned reference" in line]
    assert len(lines) == 1 and "several input" in lines[0] and len(history.epoch) == 2
