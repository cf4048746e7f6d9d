"""DeepCrime's kill criterion on final metrics over seeds."""

import math
import os
import warnings

import numpy as np
import pytest

from harness.cases.mutants import metric_for
from harness.scoring.killing import decide


def test_a_clearly_worse_mutant_is_killed_and_a_noisy_equal_one_is_not():
    killed = decide([0.95, 0.94, 0.96], [0.50, 0.52, 0.49], higher_is_better=True)
    assert killed["killed"] and killed["p_value"] < 0.05 and killed["effect_size"] > 5
    equal = decide([0.95, 0.94, 0.96], [0.95, 0.93, 0.96], higher_is_better=True)
    assert not equal["killed"]
    better = decide([0.5, 0.5, 0.5], [0.9, 0.9, 0.9], higher_is_better=True)
    assert not better["killed"]  # a mutant that trains better is no bug


def test_a_small_but_significant_difference_needs_an_effect_size():
    small = decide([1.00, 1.01, 1.02], [1.011, 1.021, 1.031], higher_is_better=False)
    assert not small["killed"]  # d below 0.5 however many seeds


def test_a_diverged_mutant_is_worse_than_any_finite_run():
    nan = decide([0.2, 0.21, 0.19], [math.nan, math.inf, math.nan], higher_is_better=False)
    assert nan["killed"] and nan["mutant"] == ["nan", "inf", "nan"]


def test_a_mutant_stuck_at_one_value_in_every_seed_is_judged_without_warnings():
    # 0.48 three times (a mutant at chance) beside a spread base: scipy warns of precision loss in the
    # constant group's moments, but Welch's test rests on the other group's variance and stays sound.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stuck = decide([0.792, 0.782, 0.802], [0.48, 0.48, 0.48], higher_is_better=True)
    assert stuck["killed"] and stuck["p_value"] < 0.001


def test_identical_runs_without_spread():
    assert decide([0.5, 0.5], [0.5, 0.5], True)["killed"] is False
    assert decide([0.9, 0.9], [0.5, 0.5], True)["killed"] is True


def test_the_metric_follows_the_task():
    spec = {"compile": {"loss": "categorical_crossentropy", "metrics": ["accuracy"]}}
    assert metric_for(spec) == ("accuracy", True)
    assert metric_for({"compile": {"loss": "mse", "metrics": ["mae"]}}) == ("mae", False)
    assert metric_for({"compile": {"loss": "mse"}}) == ("loss", False)


def test_a_mutant_that_does_not_run_is_no_killed_bug(tmp_path):
    import yaml

    from harness.cli.kill import record_decision
    from tests.test_validation import GOOD

    path = tmp_path / "m.yaml"
    case = dict(yaml.safe_load(GOOD), id="m", status="questionable", status_reason="x", symptom={"kind": "none"},
                generated={"kill": None, "base": "p"})
    path.write_text("# generated\n" + yaml.safe_dump(case))
    record_decision(str(path), dict(decide([0.9, 0.9], [float("nan")] * 2, True), killed=False,
                                    crashed="ValueError: shapes", metric="accuracy"), True)
    case = yaml.safe_load(path.read_text())
    assert case["status"] == "questionable" and "does not train" in case["status_reason"]
    assert path.read_text().startswith("# generated\n")
    record_decision(str(path), dict(decide([0.9, 0.9], [0.5, 0.5], True), metric="accuracy"), True)
    case = yaml.safe_load(path.read_text())
    assert case["status"] == "valid" and case["symptom"] == {"kind": "accuracy_gap_at_least", "value": 0.2}


# -- killed on held-out test data, by the metric's logged name ----------------------------------

def test_a_metric_is_read_under_the_name_keras_logs_it_and_a_missing_one_fails_loudly():
    from harness.scoring.killing import MetricMissing, logged

    assert logged({"loss": 1.0, "mean_absolute_error": 0.5}, "mae") == 0.5
    assert logged({"binary_accuracy": 0.75}, "accuracy") == 0.75
    assert math.isnan(logged({"loss": "nan"}, "loss"))
    with pytest.raises(MetricMissing, match="logged: loss"):
        logged({"loss": 1.0}, "mae")


def test_test_rows_are_held_out_before_training_only_faults_and_shared_by_a_program_and_its_mutants():
    from harness.data.sources import load_data

    spec = {"source": "sklearn.breast_cancer", "preprocess": [{"standardize": {}}], "test": {"split": 0.25, "seed": 1},
            "validation": {"split": 0.2, "n": None}}
    program = load_data(spec)
    noisy = load_data(dict(spec, preprocess=spec["preprocess"] + [{"shuffle_labels": {"fraction": 1.0}},
                                                                 {"subsample": {"fraction": 0.2}}]))
    assert len(program.x_test) == 142 and len(program.x) + len(program.x_val) == 569 - 142
    assert np.array_equal(program.x_test, noisy.x_test) and np.array_equal(program.y_test, noisy.y_test)
    assert len(noisy.x) + len(noisy.x_val) == round(0.2 * (569 - 142))
    train_rows = {r.tobytes() for r in np.concatenate([program.x, program.x_val])}
    assert not any(r.tobytes() in train_rows for r in program.x_test)
    assert program.description["n_test"] == 142 and load_data({"source": "sklearn.iris"}).x_test is None


def test_a_mutant_is_killed_on_test_data_with_the_training_decision_beside_it():
    from harness.running.records import UnitRecord
    from harness.scoring.judge import _decide

    class Case:
        def __init__(self, case_id, spec):
            self.id, self._spec = case_id, spec

        def spec(self, variant):
            return type("S", (), {"model_dump": lambda _, mode=None: self._spec})()

    spec = {"data": {"test": {"split": 0.25}}, "compile": {"loss": "mse", "metrics": ["mae"]}}

    def unit(case, variant, seed, train, test):
        snapshot = {"id": case, "status": "valid", "truth": {"faults": [{"code": "NONE"}]}, "symptom": {"kind": "none"}}
        return UnitRecord(case=snapshot, variant=variant, seed=seed, status="ok", trace="t.npz",
                          summary={"final": {"mean_absolute_error": train}, "test": {"mean_absolute_error": test}})

    finals = {}
    for s in range(3):
        finals["p", "patched", s] = unit("p", "patched", s, 0.50 + s / 100, 0.6 + s / 100)
        # overfits: better on train, worse on test
        finals["m", "buggy", s] = unit("m", "buggy", s, 0.30 + s / 100, 0.9 + s / 100)
    decision = _decide(Case("p", spec), Case("m", spec), finals, 3)
    assert decision["on"] == "test" and decision["metric"] == "mae" and decision["killed"]
    assert decision["train"]["killed"] is False and decision["base"] == [0.6, 0.61, 0.62]


@pytest.mark.fit
def test_kill_trains_a_tiny_regression_program_and_reads_its_mae_from_the_real_log(tmp_path):
    """Was: 'mae' looked up where Keras logs 'mean_absolute_error': NaN against NaN, every mutant equivalent."""
    import shutil
    import subprocess
    import sys

    import yaml

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    (zoo / "reg.yaml").write_text(REGRESSION)
    cmd = [sys.executable, "-m", "harness"]
    out = subprocess.run(cmd + ["mutate", "zoo-reg", "--operator", "epochs", "--zoo", str(zoo), "--out",
                                str(tmp_path / "mutants")], capture_output=True, text=True, cwd=root, timeout=120)
    assert out.returncode == 0, out.stderr
    out = subprocess.run(cmd + ["kill", "--seeds", "3", "--zoo", str(zoo), "--mutants", str(tmp_path / "mutants"),
                                "--cache", str(tmp_path / "cache")], capture_output=True, text=True, cwd=root,
                         timeout=400)
    assert out.returncode == 0, out.stderr[-2000:]
    (path,) = (tmp_path / "mutants").glob("*.yaml")
    kill = yaml.safe_load(path.read_text())["generated"]["kill"]
    assert kill["metric"] == "mae" and kill["on"] == "test"
    assert all(isinstance(v, float) and math.isfinite(v) for v in kill["base"] + kill["mutant"])
    assert kill["killed"], kill
    assert kill["train"]["base"] != kill["base"]
    shutil.rmtree(tmp_path / "cache")


REGRESSION = """\
id: zoo-reg
title: linear regression, MSE, mae metric (healthy)
source: {kind: synthetic, ref: zoo}
task: regression
status: healthy
data:
  source: synthetic.linear
  test: {split: 0.25}
  params: {n: 400, features: 3, noise: 0.1}
  preprocess: [{standardize: {on: y}}]
model:
  input_shape: [3]
  layers:
    - Dense: {units: 8, activation: relu}
    - Dense: {units: 1}
compile: {loss: mse, optimizer: {Adam: {learning_rate: 0.01}}, metrics: [mae]}
fit: {epochs: 20, batch_size: 32}
truth:
  faults: [{code: NONE}]
symptom: {kind: none}
"""
