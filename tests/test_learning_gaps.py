"""Training that learns, but worse than its data allow: the learned reference and each evidence source.

Synthetic data and traces for the logic; one tiny real fit per verdict in test_diagnose_live.py.
"""

import math

import numpy as np
import pytest

from detectors import learning_gaps as gaps
from detectors.base import replay
from detectors.diagnose import Diagnose
from harness.baseline import label_noise, learned_reference
from harness.facts import sample_facts
from harness.trace import Budget
from tests.test_diagnose import errors, facts, trace


def blobs(n=600, classes=3, flip=0.0, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.normal(size=(n, 5)) + 3.0 * np.eye(classes, 5)[y]
    flipped = rng.random(n) < flip
    y = np.where(flipped, rng.integers(0, classes, n), y)
    return x, y


def test_the_reference_fits_separable_classes_out_of_fold():
    x, y = blobs()
    ref = learned_reference(x, y, "sparse_categorical_crossentropy")
    assert ref["task"] == "classes" and ref["accuracy"] > 0.9 and ref["majority"] < 0.4
    assert ref["learner"] in ("logistic regression", "k-nearest neighbours") and ref["rows"] == 600
    assert ref["label_noise"]["share"] < 0.05


def test_the_reference_reads_one_hot_labels_and_wide_images():
    x, y = blobs(n=400, classes=4)
    wide = np.repeat(x, 40, axis=1).reshape(400, 10, 20, 1)  # 200 pixels: projected before fitting
    ref = learned_reference(wide, np.eye(4)[y], "categorical_crossentropy")
    assert ref["classes"] == 4 and ref["accuracy"] > 0.8


def test_random_relabelling_looks_like_noise_spread_evenly():
    x, y = blobs(n=1500, classes=4, flip=0.6)
    noise = learned_reference(x, y, "sparse_categorical_crossentropy")["label_noise"]
    assert noise["share"] > 0.3 and noise["spread"] > 0.9


def test_confusion_between_two_classes_is_not_spread_evenly():
    labels = np.repeat(np.arange(4), 100)
    proba = np.full((400, 4), 0.02) + 0.92 * np.eye(4)[labels]
    alike = (labels < 2) & (np.arange(400) % 100 < 40)  # classes 0 and 1 resemble each other
    proba[alike] = np.where(np.eye(4)[1 - labels[alike]] > 0, 0.8, 0.2 / 3)
    found = label_noise(proba, labels)
    assert found["share"] == pytest.approx(0.2) and found["spread"] < gaps.EVEN


def test_the_reference_fits_targets_and_is_skipped_where_it_cannot_read_the_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4))
    ref = learned_reference(x, x @ np.array([1.0, -2.0, 0.5, 0.0]), "mean_squared_error")
    assert ref["task"] == "targets" and ref["mse"] < 0.1 * ref["constant"]
    assert "skipped" in sample_facts("mean_squared_error", {"a": x, "b": x}, x[:, 0])["baseline"]
    assert "skipped" in learned_reference(x, (x[:, :2] > 0).astype(float), "binary_crossentropy")  # multi-label
    assert "skipped" in learned_reference(x[:5], np.arange(5), "sparse_categorical_crossentropy")
    assert "skipped" in learned_reference(x, x[:, 0], "cosine_similarity")


BASE = {"learner": "logistic regression", "task": "classes", "accuracy": 0.93, "loss": 0.2, "majority": 0.5,
        "classes": 2, "label_noise": {"share": 0.02, "spread": 1.0}}


@pytest.mark.parametrize("accuracy, behind", [(0.6, True), (0.71, True), (0.72, False), (0.95, False)])
def test_behind_means_less_than_half_of_the_references_gain(accuracy, behind):
    found = gaps.behind_reference({"baseline": BASE}, accuracy, 0.5)
    assert (found is not None) == behind
    if found:
        assert "0.930" in found["message"] and "logistic regression" in found["message"]


def test_a_reference_that_does_not_learn_is_no_bar():
    weak = dict(BASE, accuracy=0.52)
    assert gaps.behind_reference({"baseline": weak}, 0.5, 0.69) is None
    assert gaps.behind_reference({"baseline": {"skipped": "why"}}, 0.5, 0.69) is None


def test_regression_is_judged_on_the_loss():
    base = {"learner": "ridge regression", "task": "targets", "mse": 0.1, "mae": 0.2, "loss": 0.1, "constant": 1.0}
    assert gaps.behind_reference({"baseline": base}, None, 0.7) is not None
    assert gaps.behind_reference({"baseline": base}, None, 0.4) is None


def test_a_loss_still_falling_suggests_a_longer_budget():
    t = np.linspace(0, 1, 200)
    found = gaps.still_falling(list(1.0 + np.exp(-t / 1.5)), Budget(epochs=4, steps_per_epoch=50, batch_size=32))
    assert found and found["factor"] >= 2 and "x" in found["fix"] and "50 steps per epoch" in found["message"]
    assert gaps.still_falling(list(1.0 + np.exp(-t / 0.1)), Budget()) is None  # converged
    assert gaps.still_falling(list(2.0 - t), Budget())["factor"] is None  # a straight line: no floor in sight
    assert gaps.still_falling([1.0, 0.9, 0.8], Budget()) is None  # too short to tell


def test_validation_no_better_than_a_constant_while_training_learns():
    epochs = [{"loss": 0.6, "val_loss": 0.70}, {"loss": 0.3, "val_loss": 0.71}]
    assert gaps.not_generalising({"reference": {"loss": 0.6931}}, epochs)
    epochs[1]["val_loss"] = 0.5
    assert gaps.not_generalising({"reference": {"loss": 0.6931}}, epochs) is None


def test_program_causes_read_width_dropout_penalty_and_symmetry():
    layers = [{"class": "Dense", "units": 2, "activation": "relu", "params": 100,
               "regularizers": {"kernel": {"l2": 1.0}}, "kernel_initializer": {"class": "Ones"}},
              {"class": "Dropout", "rate": 0.9, "activation": None},
              {"class": "Dense", "units": 10, "activation": "softmax", "params": 30}]
    causes = gaps.program_causes({"layers": layers, "y": {"classes": 10}}, 1.0, [0.5, math.nan, 0.1])
    found = {i.code: i for i in causes}
    assert set(found) == {"CAPACITY", "DROPOUT", "REGULARISER", "SYMMETRY"}
    assert (found["CAPACITY"].fix_code, found["CAPACITY"].layer) == ("LSZ", 0)
    assert (found["DROPOUT"].fix_code, found["DROPOUT"].layer) == ("LRM", 1)
    assert found["REGULARISER"].fix_code == "RRG" and "2500%" in found["REGULARISER"].message
    assert found["SYMMETRY"].fix_code == "WCI"


def levelled(n_epochs=10, steps=4, start=0.69, end=0.55):
    return list(end + (start - end) * np.exp(-np.arange(n_epochs) / 1.5))


def test_diagnose_errs_when_a_levelled_run_stays_behind_the_reference():
    f = dict(facts(), baseline=BASE)
    found = errors(replay(Diagnose(), trace(levelled(), accuracy=[0.6] * 10, f=f)))
    assert [x.code for x in found] == ["UNDERFITTING"]
    assert "simple learner" in found[0].message
    # The same run with an accuracy near the reference's: no error.
    assert errors(replay(Diagnose(), trace(levelled(), accuracy=[0.9] * 10, f=f))) == []


def test_a_run_slowing_short_of_its_floor_and_far_behind_the_reference_is_undertrained():
    f = dict(facts(), baseline=BASE)
    slowing = list(0.3 + 0.4 * np.exp(-np.arange(10) / 8))  # a floor in sight, half the fall so far still ahead
    found = errors(replay(Diagnose(), trace(slowing, accuracy=[0.6] * 10, f=f)))
    assert [(x.code, x.fix_code) for x in found] == [("UNDERTRAINED", "HNE")]
    assert "simple learner" in found[0].message and found[0].fix == "train longer (about x4 the epochs)"


def test_a_run_falling_as_fast_as_ever_is_not_judged_against_the_reference_yet():
    """No floor in sight (a straight fall, or a plateau being left): where it ends is unknown, so advice only."""
    f = dict(facts(), baseline=BASE)
    found = replay(Diagnose(), trace(list(np.linspace(0.69, 0.45, 10)), accuracy=[0.6] * 10, f=f))
    assert errors(found) == []
    warned = [x for x in found if x.code == "UNDERTRAINED"]
    assert warned and "simple learner" in warned[0].message


def test_a_run_still_falling_but_near_the_reference_only_warns():
    f = dict(facts(), baseline=BASE)
    falling = list(np.linspace(0.69, 0.45, 10))
    found = replay(Diagnose(), trace(falling, accuracy=[0.85] * 10, f=f))
    assert errors(found) == [] and [x.code for x in found if x.code == "UNDERTRAINED"] == ["UNDERTRAINED"]


def test_too_few_steps_to_see_a_trend_behind_the_reference_is_an_error_naming_the_budget():
    f = dict(facts(), baseline=BASE)
    found = errors(replay(Diagnose(), trace([0.69, 0.66, 0.64, 0.62], accuracy=[0.6] * 4, f=f, steps=1)))
    assert [(x.code, x.fix_code) for x in found] == [("UNDERFITTING", "HBS")]
    assert "only 4 optimizer steps in all (4 epochs of 1 steps" in found[0].message
    found = errors(replay(Diagnose(), trace([0.69, 0.66, 0.64], accuracy=[0.6] * 3, f=f, steps=5)))
    assert [(x.code, x.fix_code) for x in found] == [("UNDERFITTING", "HNE")]
    # Too short to have converged: any shortfall against the reference counts (here 81 % of its gain) ...
    found = errors(replay(Diagnose(), trace([0.69, 0.66, 0.64], accuracy=[0.85] * 3, f=f, steps=5)))
    assert [x.code for x in found] == ["UNDERFITTING"] and "81% of the learner's gain" in found[0].message
    # ... and a short run that matches the reference is fine.
    assert errors(replay(Diagnose(), trace([0.69, 0.66, 0.64], accuracy=[0.95] * 3, f=f, steps=5))) == []


def test_a_heavy_penalty_is_found_from_the_runs_parameter_counts():
    """The facts describe the layers without parameter counts; the trace's layers carry them."""
    regularised = {"name": "hidden", "class": "Dense", "activation": "relu", "units": 8,
                   "regularizers": {"kernel": {"l2": 0.01}}}
    f = dict(facts(extra_layers=[regularised]), baseline=BASE)
    t = trace(levelled(), accuracy=[0.6] * 10, f=f, n_layers=2)
    t.meta["layers"] = [dict(regularised, params=400), {"name": "out", "class": "Dense", "params": 9}]
    found = errors(replay(Diagnose(), t))
    assert [(x.code, x.fix_code, x.layer) for x in found] == [("UNDERFITTING", "RRG", 0)]


def test_a_loss_above_the_constant_predictors_with_accuracy_above_chance_is_an_error():
    found = errors(replay(Diagnose(), trace([3.0, 3.0, 3.0], accuracy=[0.6, 0.7, 0.75])))
    assert [x.code for x in found] == ["LOSS_ABOVE_CONSTANT"]
    assert "ends above a constant predictor's 0.6931" in found[0].message


def test_diagnose_names_noisy_labels_when_the_network_memorises_them():
    noisy = dict(BASE, accuracy=0.6, classes=4, label_noise={"share": 0.4, "spread": 0.99})
    f = dict(facts(), baseline=noisy)
    found = errors(replay(Diagnose(), trace(levelled(), accuracy=[0.9] * 10, f=f)))
    assert [(x.code, x.fix_code) for x in found] == [("LABEL_NOISE", "CPP")]


def test_a_flat_validation_curve_is_a_warning_a_rising_one_an_error():
    flat = [0.55, 0.53, 0.54, 0.54]
    found = replay(Diagnose(), trace([0.62, 0.49, 0.43, 0.37], accuracy=[0.7, 0.8, 0.85, 0.9], val=flat))
    assert errors(found) == [] and [x.code for x in found if x.code == "OVERFITTING"] == ["OVERFITTING"]
    rising = [0.55, 0.50, 0.58, 0.62]
    found = errors(replay(Diagnose(), trace([0.62, 0.49, 0.43, 0.37], accuracy=[0.7, 0.8, 0.85, 0.9], val=rising)))
    assert [x.code for x in found] == ["OVERFITTING"]


def test_a_validation_part_of_unseen_classes_is_a_shifted_split():
    from harness.facts import validation_facts

    y = np.repeat(np.arange(5), 40)  # sorted by class
    found = gaps.shifted_split(validation_facts(y, y[-40:]))  # validation_split=0.2 takes class 4 alone
    assert found and "classes [4] never occur in training" in found["message"]
    assert "validation {4: 40}" in found["message"] and "(5 runs of one class in 200 rows)" in found["message"]
    assert found["fix"].startswith("shuffle the rows before splitting")
    shuffled = np.random.default_rng(0).permutation(y)
    assert gaps.shifted_split(validation_facts(shuffled, shuffled[-40:])) is None
    assert validation_facts(np.linspace(0, 1, 50), np.linspace(0, 1, 10)) is None  # targets: no classes


def test_a_small_random_validation_part_is_not_a_shifted_split():
    from harness.facts import validation_facts

    # Twelve validation rows: shares far from training's by sampling alone, and a rare class that only they
    # hold. A random split does this; it is no evidence of an ordered split.
    y = np.repeat(np.arange(9), 12)
    val = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 9])
    facts = validation_facts(np.concatenate([y, val]), val)
    train, held = np.array(facts["train"]), np.array(facts["validation"])
    assert 0.5 * np.abs(train / train.sum() - held / held.sum()).sum() >= gaps.SHIFT
    assert gaps.shifted_split(facts) is None
    # The same shares over 600 validation rows are no accident.
    assert gaps.shifted_split(validation_facts(np.concatenate([y, np.repeat(val, 50)]), np.repeat(val, 50)))


def test_labels_no_learner_predicts_while_the_network_fits_them_are_unrelated():
    f = dict(facts(), baseline={"learner": "k-nearest neighbours", "task": "classes", "accuracy": 0.49,
                                "majority": 0.5, "loss": 0.70, "rows": 600})
    fitted = [{"loss": 0.3, "acc": 0.9, "val_loss": math.nan, "val_acc": None}]
    assert gaps.reference_learns(f) is False
    assert "misaligned or shuffled apart" in gaps.unrelated_labels(f, fitted, 0.5)["message"]
    assert gaps.unrelated_labels(f, [dict(fitted[0], loss=0.69, acc=0.5)], 0.5) is None  # not even memorised
    generalises = [dict(fitted[0], val_loss=0.4, val_acc=0.85)]
    assert gaps.unrelated_labels(f, generalises, 0.5) is None  # new rows are predicted: the inputs carry them
    learnt = dict(f, baseline=dict(f["baseline"], accuracy=0.8))
    assert gaps.unrelated_labels(learnt, fitted, 0.5) is None
    tokens = dict(f, layers=[{"name": "e", "class": "Embedding"}, *f["layers"]])
    assert gaps.reference_learns(tokens) is None  # a bag of words may miss what order says
    few = dict(f, baseline=dict(f["baseline"], rows=30))
    assert gaps.reference_learns(few) is None  # 30 rows: chance and a 5-point margin are within noise


def test_a_reference_at_the_majority_rate_of_imbalanced_labels_learns_by_its_log_loss():
    """10 % positives: a logistic regression at 0.93 accuracy (majority 0.90) whose log loss is well below the
    prior's learns; the bar is the same margin the run's own loss is judged by."""
    base = {"learner": "logistic regression", "task": "classes", "accuracy": 0.93, "majority": 0.90, "loss": 0.20,
            "classes": 2, "rows": 1000}
    f = dict(facts(ref=0.325), baseline=base)
    assert gaps.reference_learns(f) is True
    fitted = [{"loss": 0.15, "acc": 0.95, "val_loss": math.nan, "val_acc": None}]
    assert gaps.unrelated_labels(f, fitted, 0.9) is None
    assert gaps.reference_learns(dict(f, baseline=dict(base, loss=0.32))) is False  # within the margin: no learning
    # A loss that is not the classes' log loss (MSE on the labels; binary cross-entropy over several columns)
    # gives no prior to compare with: the accuracy alone judges.
    assert gaps.reference_learns(dict(f, loss="mean_squared_error")) is False
    columns = dict(f["y"], shape=[3], one_hot=True, classes=3)
    assert gaps.reference_learns(dict(f, y=columns)) is False
    assert gaps.reference_learns(dict(f, loss="categorical_crossentropy", y=columns)) is True


@pytest.mark.parametrize("rows", [14, 30, 60])
def test_the_reference_fits_small_samples_of_wide_inputs(rows):
    """A few dozen rows of 100 features: the projection and k-NN are bounded by the rows (they used to fail)."""
    x, y = blobs(n=rows, classes=2)
    wide = np.repeat(x, 20, axis=1)
    found = learned_reference(wide, y, "sparse_categorical_crossentropy")
    assert "skipped" not in found and found["accuracy"] > 0.5, found
    target = learned_reference(wide, x[:, 0], "mean_squared_error")
    assert "skipped" not in target and target["mse"] < target["constant"], target


def test_recover_is_read_when_judging_so_the_sensitivity_bench_can_move_it(monkeypatch):
    f = dict(facts(), baseline=BASE)
    assert gaps.behind_reference(f, 0.6, 0.6)  # 23 % of the reference's gain
    monkeypatch.setattr(gaps, "RECOVER", 0.1)
    assert gaps.behind_reference(f, 0.6, 0.6) is None


def test_string_inputs_skip_the_learned_reference_saying_so():
    """Raw text for a TextVectorization layer is one array, not several: the reason says what it is."""
    from harness.facts import sample_facts

    x = np.array(["good film", "bad film"] * 20, dtype=object)
    y = np.array([1.0, 0.0] * 20)
    skipped = sample_facts("binary_crossentropy", x, y)["baseline"]["skipped"]
    assert "not numbers" in skipped and "several" not in skipped


def test_one_named_input_of_strings_is_unreadable_not_several():
    """A functional model's one named input is a dict of one entry: its strings are the reason, not a count."""
    from harness.facts import sample_facts

    text = np.array(["good film", "bad film"] * 20, dtype=object)
    y = np.array([1.0, 0.0] * 20)
    skipped = sample_facts("binary_crossentropy", {"review": text}, y)["baseline"]["skipped"]
    assert "not numbers" in skipped and "several" not in skipped
    two = sample_facts("binary_crossentropy", {"a": text, "b": text}, y)["baseline"]["skipped"]
    assert "several" in two
