"""The documented entry: `import bugbench`, `python -m bugbench`, detectors as Keras callbacks in a user's fit."""

import subprocess
import sys

import numpy as np
import pytest


def test_import_bugbench_does_not_start_tensorflow():
    code = "import sys, bugbench; print(bugbench.__version__, 'tensorflow' in sys.modules, 'keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout.split()
    assert out[1:] == ["False", "False"]


def test_python_dash_m_bugbench_is_the_cli():
    from harness import __version__

    done = subprocess.run([sys.executable, "-m", "bugbench", "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == f"bugbench {__version__}"


def test_unknown_names_are_attribute_errors():
    import bugbench

    with pytest.raises(AttributeError):
        bugbench.NoSuchDetector  # noqa: B018
    assert "Diagnose" in dir(bugbench)


keras = pytest.importorskip("keras")


def program(seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    x = np.random.default_rng(0).normal(size=(128, 4)).astype("float32")
    return model, x, (x[:, 0] > 0).astype("float32")


@pytest.mark.fit
def test_every_detector_is_a_keras_callback_and_records_into_logs(tmp_path):
    import bugbench

    for name in bugbench.DETECTORS:
        assert issubclass(getattr(bugbench, name), keras.callbacks.Callback), name
    model, x, y = program()
    model.layers[-1].activation = keras.activations.get("softmax")  # softmax on one unit: always 1
    detector, csv = bugbench.Diagnose(verbose=0), keras.callbacks.CSVLogger(str(tmp_path / "log.csv"))
    history = model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[detector, csv])
    assert history.history["diagnose_errors"] == [1.0, 1.0]
    assert history.history["diagnose_first_error_epoch"] == [1.0, 1.0]
    assert detector.first_error.code == "OUT_LOSS" and "sigmoid" in detector.first_error.fix
    assert "diagnose_errors" in (tmp_path / "log.csv").read_text().splitlines()[0]


@pytest.mark.fit
def test_after_the_fit_the_model_behaves_exactly_as_without_the_callback():
    import bugbench

    watched, x, y = program()
    plain, _, _ = program()
    watched.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[bugbench.Diagnose(verbose=0)])
    plain.fit(x, y, epochs=2, batch_size=16, verbose=0)
    for a, b in zip(watched.get_weights(), plain.get_weights()):
        np.testing.assert_array_equal(a, b)  # the probed fit made the same updates
    assert not {"train_step", "_bugbench_live_probe"} & set(vars(watched))
    watched.fit(x, y, epochs=1, batch_size=16, verbose=0)  # a later plain fit: the model's own step
    plain.fit(x, y, epochs=1, batch_size=16, verbose=0)
    for a, b in zip(watched.get_weights(), plain.get_weights()):
        np.testing.assert_array_equal(a, b)
