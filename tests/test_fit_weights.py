"""A weighted fit's reference (harness.facts) and how a callback reads the fit's weights (detectors.live), on
arrays alone: no TensorFlow."""

import numpy as np
import pytest

from detectors.learning_gaps import not_generalising
from detectors.live import fit_weights
from harness.facts import reference, row_weights, validation_reference, with_sample

Y = np.array([0.0] * 90 + [1.0] * 10)


def test_row_weights_follow_keras_class_weight_for_every_label_form():
    one_hot = np.eye(2)[Y.astype(int)]
    for labels in (Y, Y.reshape(-1, 1), one_hot, Y.astype(np.int64)):
        weights, unknown = row_weights(labels, {"class_weight": {np.int64(0): 0.5, 1: 5}})
        assert unknown is None and weights.tolist() == [0.5] * 90 + [5.0] * 10


def test_row_weights_never_raise_on_labels_or_weights_keras_takes():
    nan = np.array([0.0, 1.0, np.nan])
    assert row_weights(nan, {"class_weight": {0: 1, 1: 3}})[0].tolist() == [1.0, 3.0, 1.0]  # NaN: no class
    weights, _ = row_weights({"out": Y}, {"sample_weight": {"out": np.full(100, 2.0)}})
    assert weights.tolist() == [2.0] * 100
    assert "does not match" in row_weights(Y, {"sample_weight": np.ones((100, 4))})[1]  # per time step
    assert "does not match" in row_weights(Y, {"sample_weight": np.ones(80)})[1]  # cut by validation_split


def test_weights_that_change_nothing_keep_the_plain_reference():
    for given in ({"class_weight": {}}, {"sample_weight": np.ones(100)}, None, {}):
        assert row_weights(Y, given) == (None, None)
    plain = with_sample({"loss": "binary_crossentropy"}, (np.zeros((100, 2)), Y), {"class_weight": {}})
    assert plain["reference"] == reference("binary_crossentropy", Y)


def test_a_class_weighted_fit_judges_validation_against_the_plain_reference():
    """Keras does not weight validation by class_weight: validation losses meet the plain prior's loss, and a
    healthy validation curve below it is no NOT_GENERALISING (the weighted reference is far lower)."""
    x = np.random.default_rng(0).normal(size=(100, 2))
    facts = with_sample({"loss": "binary_crossentropy"}, (x, Y), {"class_weight": {0: 0.11, 1: 1.0}})
    plain = reference("binary_crossentropy", Y)["loss"]
    assert validation_reference(facts) == pytest.approx(plain)
    assert facts["reference"]["loss"] < 0.5 * plain
    epochs = [{"loss": 0.5 * facts["reference"]["loss"], "val_loss": 0.8 * plain, "val_acc": None}]
    assert not_generalising(facts, epochs) is None
    weighted = with_sample({"loss": "binary_crossentropy"}, (x, Y), {"sample_weight": np.where(Y > 0, 5.0, 0.5)})
    assert validation_reference(weighted) is None  # validation_split would weight it too: not judged


def fit(self, x=None, class_weight=None, sample_weight=None):
    """Stands for Keras' Model.fit: a frame named fit whose self is the model."""
    return fit_weights(self)


class Wrapper:
    """A scikit-learn style wrapper whose own fit is on the stack: its self is not the model."""

    def fit(self, model, class_weight=None):
        return fit_weights(model)


class Dataset:
    def __init__(self, parts):
        self.element_spec = tuple(range(parts))


def test_fit_weights_are_read_from_the_frame_of_the_models_own_fit():
    model = object()
    assert fit(model, class_weight={0: 1, 1: 2}) == {"class_weight": {0: 1, 1: 2}, "sample_weight": None}
    assert Wrapper().fit(model, class_weight={0: 1}) is None  # a wrapper's fit is not the model's
    assert fit_weights(model) is None  # outside any fit
    assert fit_weights(None) is None
    assert "unknown" in fit(model, x=Dataset(3))
    assert fit(model, x=Dataset(2)) == {"class_weight": None, "sample_weight": None}
