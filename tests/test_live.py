"""Detectors as plain Keras callbacks in a user's own fit (no patched Keras)."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from detectors import replay  # noqa: E402
from detectors.layer_trend import LayerTrend  # noqa: E402
from harness.training.probe import Probe  # noqa: E402

pytestmark = pytest.mark.fit


def stuck_classifier(functional: bool, steps_per_execution: int = 1):
    """Softmax on one unit: the output is 1.0 for every input (so-31880720's bug)."""
    keras.utils.set_random_seed(0)
    layers = [keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1),
              keras.layers.Activation("softmax")]
    if functional:
        inp = keras.Input((4,))
        x = inp
        for layer in layers:
            x = layer(x)
        model = keras.Model(inp, x)
    else:
        model = keras.Sequential([keras.Input((4,)), *layers])
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"],
                  steps_per_execution=steps_per_execution)
    rng = np.random.default_rng(0)
    return model, rng.normal(size=(256, 4)).astype("float32"), rng.integers(0, 2, 256).astype("float32")


@pytest.mark.parametrize("functional", [False, True])
def test_layer_trend_in_a_plain_fit_stops_and_prints(functional, capsys):
    model, x, y = stuck_classifier(functional)
    detector = LayerTrend(stop_on_finding=True)
    hist = model.fit(x, y, batch_size=8, epochs=5, verbose=0, callbacks=[detector])
    assert detector.findings, "the stuck softmax output should be found"
    first = detector.findings[0]
    # Keras 3's cached logits make the loss skip the softmax: its output gradient does not exist,
    # and the layer is still found by its constant output.
    assert (first.layer, first.layer_name, first.code) == (2, model.layers[-1].name, "EAA")
    assert len(hist.epoch) < 5  # stopped early
    out = capsys.readouterr().out
    assert "[layer-trend]" in out and "EAA layer 2" in out


@pytest.mark.parametrize("per_call", [1, 5])
def test_live_findings_equal_replay_of_the_same_fit(per_call):
    """With steps_per_execution = 5 the detector sees 5 batches per call (32 = 6 x 5 + 2), each in order."""
    model, x, y = stuck_classifier(False, per_call)
    live = LayerTrend(verbose=0)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False, callbacks=[live])

    model2, _, _ = stuck_classifier(False, per_call)
    probe = Probe(model2)
    model2.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False, callbacks=[probe])
    from harness.training.probe import describe_layers

    trace = probe.recorder.finish({"layers": describe_layers(model2),
                                   "budget": {"epochs": 2, "steps_per_epoch": 32}})
    strip = lambda fs: [(f.code, f.layer, f.epoch, f.batch, f.step, f.message) for f in fs]  # noqa: E731
    assert strip(live.findings) == strip(replay(LayerTrend(), trace))
    assert live.findings
    assert live._live_rows == trace.n_batches == 64


def test_healthy_fit_has_no_findings(capsys):
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 4)).astype("float32")
    y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5).astype(int)
    detector = LayerTrend()
    model.fit(x, y, batch_size=16, epochs=6, verbose=0, callbacks=[detector])
    assert detector.findings == []


@pytest.mark.parametrize("functional", [False, True])
def test_structure_and_symptoms_as_plain_callbacks(functional, capsys):
    from detectors.structure import Structure
    from detectors.symptoms import Symptoms

    model, x, y = stuck_classifier(functional)
    static, symptoms = Structure(sample=(x, y.reshape(-1, 1))), Symptoms()
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[static, symptoms])
    first = static.findings[0]
    assert (first.code, first.layer, first.fix_code, first.seconds) == ("OUT_LOSS", 2, "ACH", 0.0)
    assert symptoms.findings and symptoms.findings[0].code == "UNCHANGED"  # a softmax over one unit is always 1
    assert "[structure]" in capsys.readouterr().out


def test_facts_of_a_compiled_model():
    from harness.facts import describe

    model, x, y = stuck_classifier(False)
    facts = describe(model, x, y)
    assert facts["loss"] == "binary_crossentropy"
    assert facts["optimizer"]["class"] == "Adam" and facts["optimizer"]["learning_rate"] == pytest.approx(0.001)
    assert [layer["activation"] for layer in facts["layers"]] == ["relu", "linear", "softmax"]
    assert facts["layers"][0]["kernel_initializer"]["class"] == "GlorotUniform"
    assert facts["y"]["binary"] and not facts["y"]["one_hot"]
