"""The probe against a tiny model computed by hand, and its transparency."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from harness.trace import STAGES, STATS  # noqa: E402
from harness.training.probe import Probe  # noqa: E402

pytestmark = pytest.mark.fit

W1 = np.array([[0.5, -1.0], [0.25, 1.0]], np.float32)
B1 = np.array([0.1, -0.2], np.float32)
W2 = np.array([[1.5], [-0.5]], np.float32)
B2 = np.array([0.05], np.float32)
X = np.array([[1.0, 2.0], [-1.0, 0.5], [0.0, -1.0]], np.float32)
Y = np.array([[1.0], [0.0], [2.0]], np.float32)
LR = 0.1


def tiny_model(functional: bool):
    dense1 = keras.layers.Dense(2, name="d1")
    relu = keras.layers.Activation("relu", name="relu")
    dense2 = keras.layers.Dense(1, name="d2")
    if functional:
        inp = keras.Input((2,))
        model = keras.Model(inp, dense2(relu(dense1(inp))))
        probed = [dense1, relu, dense2]
    else:
        model = keras.Sequential([keras.Input((2,)), dense1, relu, dense2])
        probed = model.layers
    dense1.set_weights([W1, B1])
    dense2.set_weights([W2, B2])
    model.compile(loss="mse", optimizer=keras.optimizers.SGD(learning_rate=LR))
    return model, probed


def by_hand():
    """Forward, backward and update of one MSE/SGD step, in numpy."""
    z1 = X @ W1 + B1
    a1 = np.maximum(z1, 0)
    out = a1 @ W2 + B2
    n = len(X)
    g_out = 2 * (out - Y) / n
    g_w2 = a1.T @ g_out
    g_a1 = g_out @ W2.T
    g_z1 = g_a1 * (z1 > 0)
    g_w1 = X.T @ g_z1
    loss = np.mean((out - Y) ** 2)
    return {
        0: {"output": z1, "weights": W1 - LR * g_w1, "weight_grad": g_w1, "output_grad": g_z1,
            "update": -LR * g_w1},
        1: {"output": a1, "output_grad": g_a1},
        2: {"output": out, "weights": W2 - LR * g_w2, "weight_grad": g_w2, "output_grad": g_out,
            "update": -LR * g_w2},
    }, loss


def expected_stats(t):
    t = np.asarray(t, np.float64).ravel()
    return [t.mean(), t.std(), t.min(), t.max(), np.mean(t == 0), 0, 0]


@pytest.mark.parametrize("stats", ["native", "tf"])
@pytest.mark.parametrize("functional", [False, True])
def test_one_step_matches_hand_computation(functional, stats):
    model, layers = tiny_model(functional)
    probe = Probe(model, stats=stats)
    model.fit(X, Y, batch_size=3, epochs=1, shuffle=False, verbose=0, callbacks=[probe])
    trace = probe.recorder.finish({"budget": {"epochs": 1, "steps_per_epoch": 1}})
    expected, loss = by_hand()
    names = [layer["name"] for layer in trace.layers]
    assert names == ["d1", "relu", "d2"]
    for layer, stages in expected.items():
        for stage, tensor in stages.items():
            got = trace.arrays["stats"][0, layer, STAGES.index(stage)]
            np.testing.assert_allclose(got, expected_stats(tensor), rtol=1e-5, atol=1e-6,
                                       err_msg=f"layer {layer} {stage}")
    assert not trace.applies(1, "weights") and trace.applies(0, "weights")
    assert trace.value("loss")[0] == pytest.approx(loss, rel=1e-6)
    assert trace.value("learning_rate")[0] == pytest.approx(LR)
    assert trace.arrays["stats"][0, 1, STAGES.index("output"), STATS.index("zero_frac")] > 0  # relu zeros


@pytest.mark.parametrize("stats", ["native", "tf"])
def test_nan_and_inf_are_counted(stats):
    model, _ = tiny_model(False)
    probe = Probe(model, stats=stats)
    x = X.copy()
    x[0, 0] = np.nan
    model.fit(x, Y, batch_size=3, epochs=1, shuffle=False, verbose=0, callbacks=[probe])
    trace = probe.recorder.finish({})
    out = trace.arrays["stats"][0, 0, STAGES.index("output")]
    assert np.isnan(out[STATS.index("mean")])
    assert out[STATS.index("nan")] == 2  # one NaN input row feeds both units
    assert np.isnan(trace.value("loss")[0])


def test_probed_fit_trains_exactly_like_plain_fit():
    """Same seed, same data: the probe must not change a single weight."""
    def train(with_probe):
        keras.utils.set_random_seed(3)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                                  keras.layers.Dropout(0.3), keras.layers.BatchNormalization(),
                                  keras.layers.Dense(3, activation="softmax")])
        model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
        rng = np.random.default_rng(0)
        x, y = rng.normal(size=(64, 4)).astype("float32"), rng.integers(0, 3, 64)
        cbs = [Probe(model)] if with_probe else []
        hist = model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=cbs)
        return model.get_weights(), hist.history

    (w_plain, h_plain), (w_probe, h_probe) = train(False), train(True)
    for a, b in zip(w_plain, w_probe):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert h_plain.keys() == h_probe.keys()
    np.testing.assert_allclose(h_plain["loss"], h_probe["loss"], rtol=1e-6)


def test_conv_pool_flatten_batchnorm_layers_are_probed():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
                              keras.layers.MaxPooling2D(), keras.layers.BatchNormalization(),
                              keras.layers.Flatten(), keras.layers.Dropout(0.2),
                              keras.layers.Dense(2), keras.layers.Activation("softmax")])
    model.compile(loss="categorical_crossentropy", optimizer="sgd", metrics=["accuracy"])
    probe = Probe(model)
    x = np.random.default_rng(0).normal(size=(20, 8, 8, 1)).astype("float32")
    y = np.eye(2, dtype="float32")[np.arange(20) % 2]
    model.fit(x, y, batch_size=10, epochs=2, verbose=0, callbacks=[probe])
    trace = probe.recorder.finish({"budget": {"epochs": 2, "steps_per_epoch": 2}})
    assert trace.arrays["stats"].shape == (4, 7, len(STAGES), len(STATS))
    has_weights = [trace.applies(i, "weights") for i in range(7)]
    assert has_weights == [True, False, True, False, False, True, False]
    # Keras 3 computes this loss from cached logits: the softmax output is off the gradient path.
    assert not trace.applies(6, "output_grad") and trace.applies(5, "output_grad")
    assert trace.meta["value_names"] == ["loss", "accuracy", "learning_rate"]
    assert list(trace.arrays["epoch_index"]) == [0, 1]


def numpy_stats(a):
    a = np.asarray(a, np.float64).ravel()
    ok = np.isfinite(a)
    with np.errstate(invalid="ignore"):  # NaN/Inf propagate into mean and std, as in the probe
        return [a.mean(), a.std(), a[ok].min(), a[ok].max(), np.mean(a == 0), np.isnan(a).sum(),
                np.isinf(a).sum()]


@pytest.mark.parametrize("unknown_batch", [False, True])
@pytest.mark.parametrize("poison", [False, True])
def test_stacked_statistics_equal_per_tensor_numpy(poison, unknown_batch):
    """Stacking same-shaped tensors must not mix their statistics up, on the clean and the NaN path.

    With ``unknown_batch`` the step is traced as Keras traces it: a batch of 4 rows is an unknown dimension.
    """
    import tensorflow as tf

    from harness.training.probe import batched_stats, stack_groups

    rng = np.random.default_rng(0)
    arrays = [rng.normal(size=(4, 3)), rng.normal(size=(5,)), rng.normal(size=(4, 3)), np.zeros((2, 2)),
              rng.normal(size=(5,)) * 1e3, np.array([[0.0, 1.0, 2.0]])]
    if poison:
        arrays[2][0, 0], arrays[4][1] = np.nan, np.inf
    tensors = [tf.constant(a, tf.float32) for a in arrays]
    assert stack_groups(tensors) == [[0, 2], [1, 4], [3], [5]]
    if unknown_batch:
        spec = [tf.TensorSpec([None if t.shape[0] == 4 else t.shape[0], *t.shape[1:]], tf.float32) for t in tensors]
        got = tf.function(lambda *ts: batched_stats(list(ts)), input_signature=spec)(*tensors).numpy()
    else:
        got = batched_stats(tensors).numpy()
    want = np.array([numpy_stats(np.float32(a)) for a in arrays])
    finite = np.isfinite(want)
    assert np.array_equal(np.isfinite(got), finite)
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-5, atol=1e-6)


def test_large_tensors_are_reduced_alone():
    import tensorflow as tf

    from harness.training.probe import STACK_LIMIT, stack_groups

    big = int(STACK_LIMIT ** 0.5) + 1
    tensors = [tf.zeros((big, big)), tf.zeros((big, big)), tf.zeros((3, 3)), tf.zeros((3, 3))]
    assert stack_groups(tensors) == [[0], [1], [2, 3]]


@pytest.mark.parametrize("streaming", [False, True])
def test_steps_per_execution_keeps_every_batch(streaming):
    """Keras calls the batch hook once per execution; the trace must still have one row per batch."""
    from harness.training.probe import StreamingProbe

    def fit(per_call):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="relu"), keras.layers.Dense(1)])
        model.compile(loss="mse", optimizer="sgd", steps_per_execution=per_call)
        probe = StreamingProbe(model, chunk=4) if streaming else Probe(model)
        x = np.random.default_rng(0).normal(size=(70, 4)).astype("float32")
        model.fit(x, x[:, :1], batch_size=10, epochs=2, shuffle=False, verbose=0, callbacks=[probe])
        return probe.recorder.finish({})

    one, three = fit(1), fit(3)
    assert list(three.arrays["batch"]) == list(one.arrays["batch"]) == list(range(7)) * 2
    assert list(three.arrays["epoch"]) == [0] * 7 + [1] * 7
    np.testing.assert_allclose(three.arrays["stats"], one.arrays["stats"], rtol=1e-5, atol=1e-6)
    assert np.all(np.diff(three.arrays["seconds"][:7]) >= 0)


def test_unknown_epoch_length_needs_a_streaming_probe():
    import tensorflow as tf

    from harness.training.probe import StreamingProbe

    def data():
        rng = np.random.default_rng(0)
        for _ in range(5):
            x = rng.normal(size=(8, 4)).astype("float32")
            yield x, x[:, :1]

    def dataset():
        spec = (tf.TensorSpec([None, 4], tf.float32), tf.TensorSpec([None, 1], tf.float32))
        return tf.data.Dataset.from_generator(data, output_signature=spec)

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(loss="mse", optimizer="sgd")
    with pytest.raises(ValueError, match="StreamingProbe"):
        model.fit(dataset(), epochs=1, verbose=0, callbacks=[Probe(model)])
    probe = StreamingProbe(model, chunk=2)
    model.fit(dataset(), epochs=2, verbose=0, callbacks=[probe])
    trace = probe.recorder.finish({})
    assert list(trace.arrays["batch"]) == [0, 1, 2, 3, 4] * 2


def test_native_and_tensorflow_statistics_agree_on_a_fit_that_diverges():
    """The two implementations differ only in float32 rounding (the native op sums in double)."""
    def fit(stats):
        keras.utils.set_random_seed(1)
        model = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Conv2D(3, 3, activation="relu"),
                                  keras.layers.Flatten(), keras.layers.Dense(5), keras.layers.Dense(1)])
        model.compile(loss="mse", optimizer=keras.optimizers.SGD(learning_rate=0.2))
        probe = Probe(model, stats=stats)
        x = np.random.default_rng(0).normal(size=(40, 6, 6, 1)).astype("float32") * 3
        model.fit(x, x[:, :1, 0, 0] * 40, batch_size=8, epochs=2, shuffle=False, verbose=0, callbacks=[probe])
        return probe.recorder.finish({}).arrays["stats"]

    native, tf_ops = fit("native"), fit("tf")
    assert np.isnan(native).any() and np.isfinite(native[0]).all()  # it diverged, after a finite start
    counts = [STATS.index("nan"), STATS.index("inf")]
    np.testing.assert_array_equal(native[..., counts], tf_ops[..., counts])
    both = np.isfinite(native) & np.isfinite(tf_ops)
    np.testing.assert_allclose(native[both], tf_ops[both], rtol=2e-5, atol=1e-6)
    # Elsewhere only float32 overflow differs: TensorFlow's float sums and squares overflow sooner.
    one = np.isfinite(native) != np.isfinite(tf_ops)
    assert np.all(np.abs(np.where(np.isfinite(native), native, tf_ops)[one]) > 1e15)
