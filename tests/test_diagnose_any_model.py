"""``diagnose`` in fits users write with plain Keras 3: any output layer, wrapper, subclass or training step.

Each model is a tiny real fit (a few hundred rows, 2-3 epochs): a healthy one gets no error finding, a
buggy one the cause its evidence names. The fits that must give the same weights as without the detector
compare every weight after the same seeded fit.
"""

import warnings

import numpy as np
import pytest

keras = pytest.importorskip("keras")
sklearn_datasets = pytest.importorskip("sklearn.datasets")

from detectors.diagnose import Diagnose  # noqa: E402

pytestmark = pytest.mark.fit


def digits(rows=600):
    x, y = sklearn_datasets.load_digits(return_X_y=True)
    x = ((x - x.mean(axis=0)) / (x.std(axis=0) + 1e-6)).astype("float32")
    return x[:rows], y[:rows].astype("int64")


def fit(model, x, y, loss="sparse_categorical_crossentropy", epochs=3, optimizer="adam", verbose=0, **kw):
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])
    detector = Diagnose(sample=(x, y), stop_on_finding=True, verbose=verbose)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a detector that switches itself off fails the test
        history = model.fit(x, y, epochs=epochs, batch_size=32, verbose=0, callbacks=[detector], **kw)
    return detector, history


def errors(detector):
    return [(f.code, f.fix_code, f.layer) for f in detector.findings if f.severity == "error"]


def codes(detector):
    return {f.code for f in detector.findings}


class TwoLayers(keras.Model):
    """A subclassed model as users write them: layers as attributes, the data flow in ``call``."""

    def __init__(self, units, activation):
        super().__init__()
        self.hidden = keras.layers.Dense(32, activation="relu")
        self.out = keras.layers.Dense(units, activation=activation)

    def call(self, x):
        return self.out(self.hidden(x))


# -- the output, measured -------------------------------------------------------------------------------


def test_a_softmax_layer_after_a_linear_dense_is_a_softmax_output():
    keras.utils.set_random_seed(0)
    x, y = digits()
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10),
                              keras.layers.Softmax()])
    detector, history = fit(model, x, y)
    assert errors(detector) == [] and len(history.epoch) == 3


def test_a_time_distributed_softmax_tagger_is_healthy():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 6, 4)).astype("float32")
    y = (x[..., 0] > 0).astype("int64") + (x[..., 1] > 1)
    model = keras.Sequential([keras.Input((6, 4)), keras.layers.LSTM(16, return_sequences=True),
                              keras.layers.TimeDistributed(keras.layers.Dense(3, activation="softmax"))])
    detector, history = fit(model, x, y)
    assert errors(detector) == [] and len(history.epoch) == 3


def test_a_sigmoid_applied_as_an_op_in_a_functional_graph_is_a_sigmoid_output():
    keras.utils.set_random_seed(0)
    x, y = digits()
    inp = keras.Input((64,))
    out = keras.ops.sigmoid(keras.layers.Dense(1)(keras.layers.Dense(16, activation="relu")(inp)))
    detector, _ = fit(keras.Model(inp, out), x, (y < 5).astype("float32"), loss="binary_crossentropy")
    assert errors(detector) == []


def two_heads(value_activation):
    """A functional model with a class head and a value head, as multi-task models are written."""
    inp = keras.Input((64,))
    hidden = keras.layers.Dense(32, activation="relu")(inp)
    digit = keras.layers.Dense(10, activation="softmax", name="digit")(hidden)
    value = keras.layers.Dense(1, activation=value_activation, name="value")(hidden)
    model = keras.Model(inp, {"digit": digit, "value": value})
    model.compile("adam", loss={"digit": "sparse_categorical_crossentropy", "value": "mse"})
    return model


@pytest.mark.parametrize("activation", [None, "sigmoid"])
def test_each_output_of_a_two_output_model_is_judged_with_its_own_loss_and_labels(activation):
    keras.utils.set_random_seed(0)
    x, y = digits()
    labels = {"digit": y, "value": y.astype("float32")}  # the value head regresses the digit, 0 to 9
    detector = Diagnose(sample=(x, labels), stop_on_finding=True, verbose=0)
    model = two_heads(activation)
    model.fit(x, labels, epochs=2, batch_size=32, verbose=0, callbacks=[detector])
    heads = detector._facts["heads"]
    assert [(h["name"], h["loss"], h["y"]["max"]) for h in heads] == [
        ("digit", "sparse_categorical_crossentropy", 9.0), ("value", "mean_squared_error", 9.0)]
    if activation is None:
        assert errors(detector) == []
    else:  # a sigmoid cannot reach targets up to 9; the class head is right
        value = [i for i, la in enumerate(model.layers[1:]) if la.name == "value"]
        assert errors(detector)[0] == ("OUT_RANGE", "ACH", value[0])
        assert detector.findings[0].message.startswith("output 'value': labels span [0, 9] but sigmoid")


def test_a_linear_output_under_cross_entropy_is_still_an_error_at_its_layer():
    keras.utils.set_random_seed(0)
    x, y = digits()
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10),
                              keras.layers.Dropout(0.2)])
    detector, history = fit(model, x, y)
    assert errors(detector)[0] == ("OUT_LOSS", "ACH", 1)  # the Dense, not the Dropout after it
    assert len(history.epoch) == 1


# -- subclassed models and the user's own step ----------------------------------------------------------------


def test_a_healthy_subclassed_model_is_watched_and_says_what_is_not(capsys):
    keras.utils.set_random_seed(0)
    x, y = digits()
    detector, history = fit(TwoLayers(10, "softmax"), x, y, verbose=1)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("[diagnose] not watched in this fit: the layers' outputs and gradients (a "
                               "subclassed model") and "their weights and updates are watched" in lines[0]
    assert errors(detector) == [] and len(history.epoch) == 3
    trace = detector._probe.recorder.finish({})
    assert len(trace.layers) == 2  # the model's two Dense layers, in the order it tracks them
    weights = trace.series("weights", "std")
    assert weights.shape == (3 * 19, 2) and np.isfinite(weights).all()
    update = trace.series("update", "std")
    assert (update > 0).all() and np.isnan(trace.series("output", "mean")).all()  # outputs: not watched


def test_a_subclassed_model_whose_steps_barely_move_its_weights_names_the_learning_rate():
    keras.utils.set_random_seed(0)
    x, y = digits()
    detector, _ = fit(TwoLayers(10, "softmax"), x, y, optimizer=keras.optimizers.SGD(1e-6))
    assert errors(detector)[:1] == [("NOT_LEARNING", "HLR", None)]
    assert detector.findings[0].fix == "raise the learning rate"


def test_an_unbuilt_subclassed_model_without_a_sample_says_its_layers_are_not_watched(capsys):
    keras.utils.set_random_seed(0)
    x, y = digits(300)
    model = TwoLayers(10, "softmax")
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=32, verbose=0, callbacks=[Diagnose(verbose=1)])
    line = capsys.readouterr().out.splitlines()[0]
    assert "the layers' statistics (a subclassed model" in line and "not built before training" in line


def test_a_subclassed_softmax_over_one_unit_is_an_error_before_training():
    keras.utils.set_random_seed(0)
    x, y = digits()
    detector, history = fit(TwoLayers(1, "softmax"), x, (y < 5).astype("float32"), loss="binary_crossentropy")
    first = detector.findings[0]
    assert (first.code, first.severity, first.fix_code, first.layer) == ("OUT_LOSS", "error", "ACH", 1)
    assert len(history.epoch) == 1


def test_a_subclassed_model_whose_loss_turns_nan_is_a_numerical_error():
    keras.utils.set_random_seed(0)
    x, y = digits()
    detector, history = fit(TwoLayers(10, "softmax"), x * 1e4, y, optimizer=keras.optimizers.SGD(1e3))
    assert errors(detector)[:1] and errors(detector)[0][0] == "NUMERICAL"


def test_a_subclassed_model_whose_output_dies_is_a_constant_output_at_the_end():
    class DeadHead(keras.Model):  # a ReLU output whose bias starts far below its inputs' reach: 0 for every row
        def __init__(self):
            super().__init__()
            self.hidden = keras.layers.Dense(16, activation="relu")
            self.out = keras.layers.Dense(1, activation="relu", bias_initializer=keras.initializers.Constant(-100.0))

        def call(self, x):
            return self.out(self.hidden(x))

    keras.utils.set_random_seed(0)
    x, y = digits(300)
    detector, history = fit(DeadHead(), x, (y / 9.0).astype("float32"), loss="mse", epochs=2)
    assert [(code, layer) for code, _, layer in errors(detector)] == [("CONSTANT_OUTPUT", 1)]
    assert len(history.epoch) == 2


class HalvedSteps(keras.Sequential):
    """A custom train_step: every gradient halved before the update."""

    def train_step(self, data):
        import tensorflow as tf

        x, y = data
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(x=x, y=y, y_pred=y_pred)
        grads = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply_gradients([(g * 0.5, w) for g, w in zip(grads, self.trainable_weights)])
        for metric in self.metrics:
            metric.update_state(loss) if metric.name == "loss" else metric.update_state(y, y_pred)
        return {m.name: m.result() for m in self.metrics}


class RawLoss(keras.Sequential):
    """A custom train_step that returns the batch's own loss, not its metrics' running results."""

    def train_step(self, data):
        import tensorflow as tf

        x, y = data
        with tf.GradientTape() as tape:
            loss = self.compute_loss(x=x, y=y, y_pred=self(x, training=True))
        self.optimizer.apply_gradients(zip(tape.gradient(loss, self.trainable_weights), self.trainable_weights))
        return {"loss": loss}


@pytest.mark.parametrize("step", [RawLoss, HalvedSteps])
def test_a_custom_step_that_logs_batch_values_is_read_as_batch_values(step):
    keras.utils.set_random_seed(0)
    x, y = digits(320)  # ten equal batches: running means invert exactly
    model = step([keras.Input((64,)), keras.layers.Dense(16, activation="relu"),
                  keras.layers.Dense(10, activation="softmax")])
    logged = []
    watch = keras.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: logged.append(float(logs["loss"])))
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")  # learns in its 20 steps
    detector = Diagnose(sample=(x, y), verbose=0)
    model.fit(x, y, epochs=2, batch_size=32, verbose=0, shuffle=False, callbacks=[detector, watch])
    read = list(detector._probe.recorder.finish({}).value("loss"))
    if step is RawLoss:  # what the step logged is each batch's own loss
        np.testing.assert_allclose(read, logged, rtol=1e-6)
    else:  # running means: each epoch's batch values average to its last mean
        for epoch in range(2):
            assert np.mean(read[10 * epoch:10 * epoch + 10]) == pytest.approx(logged[10 * epoch + 9], rel=1e-5)
        assert not np.allclose(read, logged)
    assert not [f for f in detector.findings if f.severity == "error"], [(f.code, f.message) for f in detector.findings]


def trained_weights(kind: str, detector: bool, capsys=None):
    keras.utils.set_random_seed(0)
    x, y = digits(300)
    layers = [keras.Input((64,)), keras.layers.Dense(16, activation="relu"),
              keras.layers.Dense(10, activation="softmax")]
    model = HalvedSteps(layers) if kind == "train_step" else TwoLayers(10, "softmax") if kind == "subclass" \
        else keras.Sequential(layers)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"], jit_compile=kind == "jit_compile")
    callbacks = [Diagnose(sample=(x, y), verbose=1)] if detector else []
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        model.fit(x, y, epochs=2, batch_size=32, verbose=0, shuffle=False, callbacks=callbacks)
    return [np.asarray(w) for w in model.weights], bool(model.jit_compile)


@pytest.mark.parametrize("kind", ["train_step", "jit_compile", "subclass", "plain"])
def test_the_detector_never_changes_the_weights_a_fit_gives(kind, capsys):
    alone, _ = trained_weights(kind, detector=False)
    watched, xla = trained_weights(kind, detector=True)
    assert all(np.array_equal(a, b) for a, b in zip(alone, watched))
    out = capsys.readouterr().out
    if kind == "plain" or (kind == "jit_compile" and not xla):
        # Keras itself turns XLA off once op determinism is on (an earlier in-process training enabled it):
        # then the probe may take the step, and says nothing.
        assert "not watched" not in out
    else:  # the model's own step ran, and one line said what that leaves unwatched
        reason = {"train_step": "its own train_step", "jit_compile": "jit_compile=True", "subclass": "subclassed"}
        assert out.count("not watched in this fit") == 1 and reason[kind] in out


# -- warnings that know the layers ---------------------------------------------------------------------------


def test_token_ids_into_an_embedding_and_lstm_are_neither_unscaled_nor_linear():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    tokens = rng.integers(1, 500, (600, 20))
    y = ((tokens[:, :3] < 250).sum(axis=1) >= 2).astype("float32")
    model = keras.Sequential([keras.Input((20,)), keras.layers.Embedding(500, 16), keras.layers.LSTM(16),
                              keras.layers.Dense(1, activation="sigmoid")])
    detector, _ = fit(model, tokens, y, loss="binary_crossentropy")
    assert not codes(detector) & {"INPUT_SCALE", "LINEAR"}, [(f.code, f.message) for f in detector.findings]


def test_an_adapted_normalization_first_layer_scales_raw_inputs():
    keras.utils.set_random_seed(0)
    raw, y = sklearn_datasets.load_digits(return_X_y=True)
    raw = (raw[:600] * 20).astype("float32")  # spread up to ~130: raw, by INPUT_SCALE's limit
    norm = keras.layers.Normalization()
    norm.adapt(raw)
    model = keras.Sequential([keras.Input((64,)), norm, keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    detector, _ = fit(model, raw, y[:600])
    assert "INPUT_SCALE" not in codes(detector)
    unadapted = keras.Sequential([keras.Input((64,)), keras.layers.Normalization(mean=0.0, variance=1.0),
                                  keras.layers.Dense(10, activation="softmax")])
    detector, _ = fit(unadapted, raw, y[:600])
    # A Normalization that scales nothing leaves the inputs raw: a warning, or the cause of a failing run.
    assert "INPUT_SCALE" in codes(detector) or errors(detector)[0][1] == "CPP", errors(detector)


# -- causes from evidence ----------------------------------------------------------------------------------------


def test_gradients_vanishing_through_eight_sigmoid_layers_change_the_activation_not_the_optimizer():
    keras.utils.set_random_seed(0)
    x, y = digits()
    model = keras.Sequential([keras.Input((64,)), *[keras.layers.Dense(32, activation="sigmoid") for _ in range(8)],
                              keras.layers.Dense(10, activation="softmax")])
    detector, _ = fit(model, x, y, optimizer=keras.optimizers.SGD(0.01))
    first = next(f for f in detector.findings if f.severity == "error")
    assert (first.fix_code, first.layer) == ("ACH", 0), (first.code, first.fix)
    assert "sigmoid" in first.fix


def test_an_overflowing_exponential_activation_is_named_where_the_inf_appears():
    keras.utils.set_random_seed(0)
    x, y = digits()
    wide = keras.initializers.RandomNormal(stddev=2.0)  # variance 4: inside the initialiser rule's band
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(32, activation="exponential", kernel_initializer=wide),
                              keras.layers.Dense(10, activation="softmax")])
    detector, _ = fit(model, x, y, optimizer=keras.optimizers.SGD(0.1))
    first = next(f for f in detector.findings if f.severity == "error")
    assert (first.code, first.layer, first.fix_code) == ("NUMERICAL", 2, "ACH"), (first.message, first.fix)
    assert "layer 2" in first.message and "layer 0" not in first.message and "layer 1" not in first.message


def test_labels_misaligned_with_their_inputs_are_said_to_be_so():
    keras.utils.set_random_seed(0)
    x, y = digits()
    shuffled = y[np.random.default_rng(1).permutation(len(y))]  # each label now belongs to another row
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(256, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    detector, _ = fit(model, x, shuffled, epochs=25, optimizer=keras.optimizers.Adam(0.01))
    assert errors(detector) == [("UNRELATED_LABELS", "CPP", None)]


def test_class_sorted_data_split_by_validation_split_is_a_split_error_with_the_counts():
    keras.utils.set_random_seed(0)
    x, y = digits()
    order = np.argsort(y, kind="stable")
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    detector, history = fit(model, x[order], y[order], validation_split=0.2)
    first = next(f for f in detector.findings if f.severity == "error")
    assert (first.code, first.fix_code, first.epoch) == ("SPLIT", "CPP", 0)
    assert "shuffle the rows before splitting" in first.fix and "never occur in training" in first.message
    healthy, _ = fit(keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"),
                                       keras.layers.Dense(10, activation="softmax")]), x, y, validation_split=0.2)
    assert "SPLIT" not in codes(healthy)


# -- weighted fits ----------------------------------------------------------------------------------------


def imbalanced(rows=1200):
    """Hard, imbalanced binary data (12 % positives, 5 % of labels flipped): a weighted fit's loss stays above
    the unweighted class prior's."""
    x, y = sklearn_datasets.make_classification(n_samples=rows, n_features=10, weights=[0.9, 0.1], flip_y=0.05,
                                                class_sep=0.4, random_state=0)
    return x.astype("float32"), y.astype("float32")


@pytest.mark.parametrize("weighting", ["class_weight", "sample_weight"])
def test_a_class_weighted_fit_is_judged_against_the_weighted_constant_predictor(weighting):
    """Keras weights the logged training loss by ``class_weight`` (or ``sample_weight``): against the
    unweighted prior's loss a healthy weighted fit read as NOT_LEARNING (loss 0.52 against 0.37)."""
    keras.utils.set_random_seed(0)
    x, y = imbalanced()
    weights = {0: 0.55, 1: 5.0}
    kw = ({"class_weight": weights} if weighting == "class_weight"
          else {"sample_weight": np.where(y > 0, weights[1], weights[0]).astype("float32")})
    model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])
    detector, history = fit(model, x, y, loss="binary_crossentropy", epochs=6, **kw)
    assert errors(detector) == []
    reference = detector._facts["reference"]
    assert reference["loss"] > history.history["loss"][-1]  # the weighted prior's loss, which the run beats
    assert "skipped" in detector._facts["baseline"]  # an unweighted learner is no reference for a weighted fit


def test_an_unweighted_fit_on_the_same_data_keeps_the_plain_reference():
    keras.utils.set_random_seed(0)
    x, y = imbalanced(600)
    model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(1, activation="sigmoid")])
    detector, _ = fit(model, x, y, loss="binary_crossentropy", epochs=1)
    prior = y.mean()
    plain = -(prior * np.log(prior) + (1 - prior) * np.log(1 - prior))
    assert detector._facts["reference"]["loss"] == pytest.approx(plain, rel=1e-6)


def test_the_weighted_reference_is_what_keras_logs_for_the_best_constant_output():
    """A frozen model that outputs the weighted prior logs the weighted reference's loss: the reduction (mean
    over rows of weight × loss) is Keras' own. Its accuracy is the unweighted share of the class it predicts:
    ``metrics=`` are not weighted, so the accuracy reference stays the plain majority rate."""
    from harness.facts import row_weights, weighted_reference

    x, y = imbalanced(400)
    class_weight = {0: 0.55, 1: 5.0}
    weights, _ = row_weights(y, {"class_weight": class_weight})
    reference = weighted_reference("binary_crossentropy", y, weights)
    p = float((weights * y).sum() / weights.sum())
    prior = keras.initializers.Constant(np.log(p / (1 - p)))
    output = keras.layers.Dense(1, activation="sigmoid", kernel_initializer="zeros", bias_initializer=prior)
    model = keras.Sequential([keras.Input((10,)), output])
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="binary_crossentropy", metrics=["accuracy"])
    logs = model.fit(x, y, epochs=1, batch_size=400, verbose=0, class_weight=class_weight).history
    assert logs["loss"][0] == pytest.approx(reference["loss"], rel=1e-4)
    assert logs["accuracy"][0] == pytest.approx(float(y.mean()), abs=1e-4)  # p > 0.5: every row called positive
    assert reference["binary_accuracy"] == pytest.approx(max(y.mean(), 1 - y.mean()))


def test_raw_text_through_text_vectorization_is_healthy_and_quiet(caplog, capsys):
    """Strings into a TextVectorization layer: no error, the reference's reason names the strings, and no
    TensorFlow notice about watching the layer's integer ids (the probe's own doing)."""
    rng = np.random.default_rng(0)
    words = {1: ["good", "great", "love"], 0: ["bad", "awful", "hate"]}
    y = (np.arange(400) % 2).astype("float32")
    x = np.array([" ".join(rng.choice(["the", "film", "was", "a"], 4).tolist() + rng.choice(words[int(c)], 2).tolist())
                  for c in y], dtype=object)
    vectorize = keras.layers.TextVectorization(max_tokens=50, output_sequence_length=6)
    vectorize.adapt(x)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((1,), dtype="string"), vectorize, keras.layers.Embedding(50, 8),
                              keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(1, activation="sigmoid")])
    detector, _ = fit(model, x, y, loss="binary_crossentropy", epochs=2, verbose=1)
    assert errors(detector) == []
    out = capsys.readouterr()
    assert "not numbers" in out.out
    assert "watched tensor" not in out.err + caplog.text
