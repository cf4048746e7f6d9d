"""Builder: names to Keras objects, and the Keras-2 loss semantics switch."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from harness.training.build import build, to_keras_objects  # noqa: E402

SPEC = {
    "data": {"source": "synthetic.constant_rows", "params": {"n_per_class": 20, "dim": 4}},
    "model": {"input_shape": [4], "layers": [
        {"Dense": {"units": 3, "kernel_initializer": {"RandomNormal": {"stddev": 1.0}}}},
        {"Dense": {"units": 1}}, {"Activation": {"activation": "softmax"}}]},
    "compile": {"loss": "binary_crossentropy", "metrics": ["accuracy"],
                "optimizer": {"SGD": {"learning_rate": {"InverseTimeDecay": {
                    "initial_learning_rate": 0.1, "decay_steps": 1, "decay_rate": 0.5}}}}},
    "fit": {"epochs": 1, "batch_size": 8},
}


def test_short_object_form_becomes_keras_config():
    assert to_keras_objects({"RandomNormal": {"stddev": 1.0}}) == {"class_name": "RandomNormal",
                                                                   "config": {"stddev": 1.0}}
    assert to_keras_objects({"units": 3, "activation": "relu"}) == {"units": 3, "activation": "relu"}


def test_build_resolves_everything():
    built = build(SPEC, seed=1)
    model = built.model
    assert [type(layer).__name__ for layer in model.layers] == ["Dense", "Dense", "Activation"]
    assert isinstance(model.optimizer._learning_rate, keras.optimizers.schedules.InverseTimeDecay)
    assert float(np.std(model.layers[0].get_weights()[0])) > 0.3  # N(0, 1), not glorot
    assert built.fit_kwargs == {"epochs": 1, "batch_size": 8, "shuffle": True, "verbose": 0}
    assert built.semantics == "keras2"


def test_steps_per_execution_reaches_compile():
    spec = dict(SPEC, compile=dict(SPEC["compile"], steps_per_execution=4))
    assert build(spec, seed=0).model.steps_per_execution == 4
    assert build(SPEC, seed=0).model.steps_per_execution == 1


def test_same_seed_same_weights():
    a, b = build(SPEC, seed=4).model.get_weights(), build(SPEC, seed=4).model.get_weights()
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("semantics, legacy", [("keras2", True), ("keras3", False)])
def test_loss_semantics_switch(semantics, legacy):
    """Softmax on one unit + BCE: Keras 2 clips p=1 (loss ~8 on half the rows); Keras 3 uses logits."""
    built = build(SPEC, seed=0, semantics=semantics)
    loss = built.model.evaluate(built.data.x, built.data.y, verbose=0, return_dict=True)["loss"]
    assert (loss > 7.5) == legacy
    assert built.semantics == semantics


def test_keras2_accuracy_follows_the_loss():
    spec = dict(SPEC, model={"input_shape": [4], "layers": [{"Dense": {"units": 3, "activation": "sigmoid"}}]},
                data={"source": "synthetic.constant_rows", "params": {"n_per_class": 5, "dim": 4},
                      "preprocess": [{"one_hot": {"classes": 3}}]})
    def accuracy_metric(semantics):
        model = build(spec, seed=0, semantics=semantics).model
        model.evaluate(np.zeros((2, 4)), np.eye(3)[:2], verbose=0)
        return model._compile_metrics.metrics[0]

    legacy = accuracy_metric("keras2")
    assert isinstance(legacy, keras.metrics.BinaryAccuracy) and legacy.name == "accuracy"
    assert not isinstance(accuracy_metric("keras3"), keras.metrics.BinaryAccuracy)


def test_class_weight_reaches_fit_and_the_reference_is_weighted():
    """fit.class_weight is passed to Keras, and the facts judge the constant predictor under it (a weighted
    training loss against the plain prior would read as NOT_LEARNING)."""
    from harness.facts import describe
    from harness.training.train import fit_weights

    spec = dict(SPEC, fit={"epochs": 1, "batch_size": 8, "class_weight": {0: 1.0, 1: 4.0}})
    built = build(spec, seed=0)
    assert built.fit_kwargs["class_weight"] == {0: 1.0, 1: 4.0}
    plain = describe(built.model, built.data.x, built.data.y)
    weighted = describe(built.model, built.data.x, built.data.y, fit_weights=fit_weights(built))
    assert weighted["reference"]["loss"] != plain["reference"]["loss"]
    assert weighted["reference"]["validation_loss"] == plain["reference"]["loss"]
    assert "weights its rows" in weighted["baseline"]["skipped"]
    assert "class_weight" not in build(SPEC, seed=0).fit_kwargs
